"""Uplink failover policy: when to swap to the backup line, and when back (pure).

domain.md §4.1 (branch plan §5.1): on a line fault the branch swaps to the
backup line; when the primary line is back, it swaps back. The goal is the
shortest possible loss of communication, without flapping back and forth.
The swap itself is pre-authorised (預授權, domain.md §4, 第三條(二)): the agent
may do it without waiting for a person.

`FailoverPolicy` is fed the primary line's state and the time, and answers
with a `Decision`. No clock and no I/O inside: the runner
(agent/failover_runner.py) reads the states, carries out the decision and
tells the policy how it went (`settle`).

The rules:
- fail over once the primary has been critical for `hold` seconds without a
  break (any other state restarts the count);
- swap back once, on the backup, the primary has been ok for `return_after`
  seconds without a break;
- at most `max_swaps_per_hour` swaps (fail over or swap back, counted when
  attempted) in any rolling hour; a swap the limit holds back is said once
  (BLOCKED, with the reason) per run of the primary's state, and carried out
  later if the condition still holds when the hour allows it;
- a swap that failed is not retried while the primary's state stays the
  same: a person has been told to act by hand (plan failed, 第三十條) and
  the agent must not fight them. A new run of the state re-arms it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

OK, WARNING, CRITICAL, UNKNOWN = "ok", "warning", "critical", "unknown"
NOTHING, FAIL_OVER, SWAP_BACK, BLOCKED = "nothing", "fail_over", "swap_back", "blocked"
HOUR = 3600.0


@dataclass(frozen=True)
class Limits:
    """The hold-down timers and the hourly limit (config `failover:`)."""

    hold: float = 30.0
    return_after: float = 600.0
    max_swaps_per_hour: int = 4

    @classmethod
    def from_config(cls, f) -> "Limits":
        """The limits of a `failover:` config section (agent/schema_failover.py)."""
        return cls(f.hold, f.return_after, f.max_swaps_per_hour)


@dataclass(frozen=True)
class Decision:
    """What to do now. For BLOCKED, `wanted` is the swap the limit held back."""

    action: str = NOTHING
    reason: str = ""
    wanted: str | None = None


def line_state(states: list[str]) -> str:
    """One line's state from its targets' check states.

    The line is down (critical) only when none of its targets answers, and
    healthy (ok) only when all of them do: one target down is that target's
    trouble (the core system itself, say), and no swap of lines mends it.
    """
    if states and all(s == CRITICAL for s in states):
        return CRITICAL
    if states and all(s == OK for s in states):
        return OK
    if not states or UNKNOWN in states:
        return UNKNOWN
    return WARNING


class FailoverPolicy:
    """The failover state machine for one primary/backup pair."""

    def __init__(self, limits: Limits):
        self.limits = limits
        self.on_backup = False
        self.busy: str | None = None      # a swap decided whose outcome is not settled yet
        self.swaps: deque[float] = deque()   # when swaps were attempted, last hour only
        self._state: str | None = None    # the primary's state, and since when
        self._since = 0.0
        self._spent = False               # a swap failed during this run of the state
        self._told = False                # BLOCKED already said during this run

    def observe(self, state: str, now: float) -> Decision:
        """Take the primary line's state at `now`; say what to do."""
        if state != self._state:
            # A new run of the state: the hold-down counts restart, and a
            # failed or blocked swap may be tried (and said) again.
            self._state, self._since = state, now
            self._spent = self._told = False
        if self.busy is not None:
            return Decision()
        wanted, why = self._wanted(now)
        if wanted is None or self._spent:
            return Decision()
        while self.swaps and self.swaps[0] <= now - HOUR:
            self.swaps.popleft()
        limit = self.limits.max_swaps_per_hour
        if len(self.swaps) >= limit:
            if self._told:
                return Decision()
            self._told = True
            free_in = self.swaps[0] + HOUR - now
            return Decision(BLOCKED, f"{_WORDS[wanted]} held back: {why}, but {len(self.swaps)} "
                                     f"swaps in the last hour already (limit {limit}); "
                                     f"the next is allowed in {free_in:.0f} s", wanted)
        self.swaps.append(now)
        self.busy, self._told = wanted, False
        return Decision(wanted, why)

    def settle(self, ok: bool) -> None:
        """The outcome of the swap last decided: True if the SET was confirmed."""
        action, self.busy = self.busy, None
        if action is None:
            return
        if ok:
            self.on_backup = action == FAIL_OVER
        else:
            self._spent = True

    def swaps_within_hour(self, now: float) -> int:
        """Swaps attempted in the rolling hour up to `now`."""
        return sum(1 for t in self.swaps if t > now - HOUR)

    def _wanted(self, now: float) -> tuple[str | None, str]:
        """The swap the primary's state asks for, and why (None: none)."""
        held = now - self._since
        if not self.on_backup and self._state == CRITICAL and held >= self.limits.hold:
            return FAIL_OVER, (f"the primary line has been down for {held:.0f} s "
                               f"(hold {self.limits.hold:g} s)")
        if self.on_backup and self._state == OK and held >= self.limits.return_after:
            return SWAP_BACK, (f"the primary line has been healthy for {held:.0f} s "
                               f"(return_after {self.limits.return_after:g} s)")
        return None, ""


_WORDS = {FAIL_OVER: "fail over", SWAP_BACK: "swap back"}
