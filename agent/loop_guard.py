"""Keeps the agent's loops alive: an exception is logged once, counted, retried.

A loop (a probe's schedule, the sender, the heartbeats, the agent's tick)
that meets an exception hands it to `LoopGuard.failed` and waits the delay
it returns (exponential, full jitter) before its next turn. The first time
a cause is seen it is logged with its traceback; the same cause again is
only counted, so a broken disk cannot flood the journal. `on_change(loop,
why or None)` hears when a loop starts or stops failing, so the agent can
raise and clear its `agent/loops` check.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable

from .model import Sample

log = logging.getLogger("branchwatch.agent")


def backoff(failures: int, rand: Callable[[], float], base: float = 1.0, cap: float = 60.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(failures-1))] (AWS architecture blog)."""
    return rand() * min(cap, base * 2 ** min(failures - 1, 32))


class LoopGuard:
    """Failure bookkeeping for the agent's loops (one instance shared by all)."""

    def __init__(self, on_change: Callable[[str, str | None], None] = lambda loop, why: None,
                 clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random,
                 base: float = 1.0, cap: float = 60.0):
        self.on_change = on_change
        self.clock, self.rand, self.base, self.cap = clock, rand, base, cap
        self.errors: dict[str, int] = {}        # loop -> exceptions met (a counter)
        self.failing: dict[str, str] = {}       # loop -> why, while it fails
        self._streak: dict[str, int] = {}
        self._logged: set[tuple[str, str]] = set()

    def watch(self, *loops: str) -> None:
        """Export these loops' error counters from the start, at 0."""
        for loop in loops:
            self.errors.setdefault(loop, 0)

    def failed(self, loop: str, e: BaseException, *, shown: bool = True) -> float:
        """Count one exception of `loop`; log it if its cause is new; the seconds to wait.

        `shown=False`: a cause another check already shows (a failing spool is
        agent/spool), so agent/loops does not say it twice.
        """
        why = f"{type(e).__name__}: {e}"
        self.errors[loop] = self.errors.get(loop, 0) + 1
        streak = self._streak[loop] = self._streak.get(loop, 0) + 1
        if (loop, why) not in self._logged:
            self._logged.add((loop, why))
            log.error("%s loop failed (retrying with backoff; logged once per cause): %s",
                      loop, why, exc_info=e)
        delay = backoff(streak, self.rand, self.base, self.cap)
        if shown and self.failing.get(loop) != why:
            self.failing[loop] = why
            self.on_change(loop, why)
        return delay

    def worked(self, loop: str) -> None:
        """`loop` made a turn without an exception."""
        self._streak.pop(loop, None)
        if self.failing.pop(loop, None) is not None:
            log.info("%s loop works again", loop)
            self.on_change(loop, None)

    def samples(self) -> list[Sample]:
        """branchwatch_agent_loop_errors per loop."""
        return [Sample.of("branchwatch_agent_loop_errors", n, loop=loop)
                for loop, n in sorted(self.errors.items())]
