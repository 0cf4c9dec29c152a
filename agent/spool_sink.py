"""Where the agent's events go first: the spool (and the journal after it)."""

from __future__ import annotations

import logging
import random
import time
from collections import deque
from typing import Callable

from . import wire
from .loop_guard import backoff
from .spool import Spool, SpoolError

log = logging.getLogger("branchwatch.spool")


class SpoolSink:
    """EventSink that spools each event durably, then wakes the sender.

    An event the spool cannot take (a full disk) is kept pending, in order,
    and spooled by `retry` (or the next emit) once the spool writes again:
    a state change is never lost to a failing disk. At most `max_pending`
    wait in memory; beyond that the oldest are dropped and counted.
    """

    def __init__(self, spool: Spool, wake: Callable[[], None] = lambda: None,
                 max_pending: int = 10_000, clock: Callable[[], float] = time.monotonic,
                 rand: Callable[[], float] = random.random):
        self.spool = spool
        self.wake = wake
        self.max_pending = max_pending
        self.pending: deque[wire.Event] = deque()
        self.dropped = 0
        self.clock, self.rand = clock, rand
        self.failures = 0                 # failed flushes in a row (drives the backoff)
        self.retry_at: float | None = None
        self._flushing = False

    def emit(self, event: wire.Event) -> None:
        self.pending.append(event)
        if len(self.pending) > self.max_pending:
            self.pending.popleft()
            self.dropped += 1
            if self.dropped % 1000 == 1:   # the first, then every thousandth
                log.error("%d event(s) waiting for the spool: dropped the oldest (%d in all); "
                          "heartbeats still carry every check's current state",
                          self.max_pending, self.dropped)
        if self.retry_at is None or self.clock() >= self.retry_at:   # not backing off
            self.flush()

    def retry(self) -> None:
        """Flush the pending events if the backoff has passed (called every tick)."""
        if self.pending and (self.retry_at is None or self.clock() >= self.retry_at):
            self.flush()

    def flush(self) -> bool:
        """Spool the pending events, oldest first; False if the spool failed."""
        if self._flushing:    # a spool health change is being reported from inside
            return False
        self._flushing = True
        try:
            while self.pending:
                self.spool.put(self.pending[0])
                self.pending.popleft()
        except SpoolError:
            self.failures += 1
            self.retry_at = self.clock() + backoff(self.failures, self.rand, 1.0, 30.0)
            return False
        finally:
            self._flushing = False
        self.failures, self.retry_at = 0, None
        self.wake()
        return True


class Tee:
    """EventSink that hands each event to several sinks (spool and journal)."""

    def __init__(self, *sinks):
        self.sinks = sinks

    def emit(self, event: wire.Event) -> None:
        for sink in self.sinks:
            sink.emit(event)
