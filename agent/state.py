"""Per-check state machine: debounce and flap detection.

Pure: it is fed verdicts and the time they were made, and returns the
transitions worth telling anyone about. No clock and no I/O inside.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from .model import CheckResult, State
from .wire import cut


@dataclass(frozen=True)
class Policy:
    """How eagerly a check changes state.

    debounce: consecutive readings of a new state needed to change to it.
    flap_window / flap_threshold: that many raw changes within the window
    mean the check is flapping; it stops flapping once the changes in the
    window fall to half the threshold.
    """

    debounce: int = 2
    flap_window: float = 600.0
    flap_threshold: int = 6


@dataclass(frozen=True)
class Transition:
    """Something a person should hear about one check.

    kind "state": the debounced state changed (old is None on the first
    reading). "flapping": the check started flapping; state changes are
    not reported one by one until "flapping_end", which carries the state
    it settled in.
    """

    kind: str
    check: str
    old: State | None
    new: State
    reason: str
    at: float
    diagnosis: str | None = None


class CheckTracker:
    """Debounced state of one check, fed one verdict at a time."""

    def __init__(self, check: str, policy: Policy):
        self.check = check
        self.policy = policy
        self.state: State | None = None
        self.reason = ""
        self.diagnosis: str | None = None
        self.since: float | None = None   # when the debounced state last changed
        self.flapping = False
        self._pending: State | None = None
        self._pending_count = 0
        self._raw_last: State | None = None
        self._raw_changes: deque[float] = deque()
        self._state_before_flapping: State | None = None

    @property
    def pending(self) -> bool:
        """A different state has been seen but not yet confirmed by debounce."""
        return self._pending is not None

    def observe(self, result: CheckResult, now: float, *, confirmed: bool = False) -> list[Transition]:
        """Take one verdict; return the transitions it causes (often none).

        `confirmed` skips debounce: the device itself said so (an SNMP trap).
        """
        self._count_raw_change(result.state, now)
        if self.state is None:
            self.state, self.reason, self.diagnosis = result.state, result.reason, result.diagnosis
            self.since = now
            return [Transition("state", self.check, None, result.state, result.reason, now,
                               result.diagnosis)]

        out: list[Transition] = []
        old = self.state
        changed = self._debounce(result, confirmed)
        if changed:
            self.since = now
        if result.state == self.state:
            self.reason, self.diagnosis = result.reason, result.diagnosis

        n = len(self._raw_changes)
        if not self.flapping and n >= self.policy.flap_threshold:
            self.flapping = True
            self._state_before_flapping = old
            out.append(Transition(
                "flapping", self.check, old, self.state,
                cut(f"flapping: {n} changes in {self.policy.flap_window:g} s "
                    f"(last: {result.reason})"), now, self.diagnosis))
        elif self.flapping and n <= self.policy.flap_threshold // 2:
            self.flapping = False
            out.append(Transition(
                "flapping_end", self.check, self._state_before_flapping, self.state,
                cut(f"stopped flapping, settled {self.state.label}: {self.reason}"), now,
                self.diagnosis))
        elif changed and not self.flapping:
            out.append(Transition("state", self.check, old, self.state, self.reason, now,
                                  self.diagnosis))
        return out

    def _debounce(self, result: CheckResult, confirmed: bool = False) -> bool:
        if result.state == self.state:
            self._pending, self._pending_count = None, 0
            return False
        if confirmed:
            self._pending_count = self.policy.debounce
        elif result.state == self._pending:
            self._pending_count += 1
        else:
            self._pending, self._pending_count = result.state, 1
        if self._pending_count >= self.policy.debounce:
            self.state, self.reason, self.diagnosis = result.state, result.reason, result.diagnosis
            self._pending, self._pending_count = None, 0
            return True
        return False

    def _count_raw_change(self, state: State, now: float) -> None:
        if self._raw_last is not None and state != self._raw_last:
            self._raw_changes.append(now)
        self._raw_last = state
        horizon = now - self.policy.flap_window
        while self._raw_changes and self._raw_changes[0] <= horizon:
            self._raw_changes.popleft()
