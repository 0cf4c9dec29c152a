"""Look-ups the incident book needs on every event, kept up to date as faults
are added, start and clear, so that one event costs the same in a 500-fault
incident as in a 5-fault one (issue 4 bench: a spool replay of 100-event
batches must not slow down as incidents grow).

Pure bookkeeping over the book's own objects; the book (incidents.py)
calls `add_incident`, `add_fault`, `span_started` and `span_ended` at the
points where those things happen, and asks the rest.
"""

from __future__ import annotations

import bisect
import operator
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .incidents import Fault, Incident

NOTABLE = ("silent", "network")    # categories that can block others or name the title


def device_of(check: str) -> str | None:
    """`ups/NAME`, `switch/NAME`, ...: the device a check is about (None for one-part ids)."""
    parts = check.split("/")
    return "/".join(parts[:2]) if len(parts) > 1 else None


_newest = operator.attrgetter("started_at", "id")


class _PerIncident:
    __slots__ = ("notable", "unsuppressed", "every", "active", "starts", "by_device",
                 "branches", "causes")

    def __init__(self):
        self.notable: list[Fault] = []
        self.unsuppressed: Counter = Counter()     # category -> faults not suppressed
        self.every: Counter = Counter()            # category -> all faults
        self.active = 0                            # faults not cleared
        self.starts: list[datetime] = []           # span starts of unsuppressed faults, sorted
        self.by_device: dict[str, list[Fault]] = defaultdict(list)
        self.branches: set[str] = set()
        self.causes: dict[str, list[Fault]] = defaultdict(list)   # cause -> its faults


class IncidentIndex:
    """Per incident and per branch look-ups for IncidentBook."""

    def __init__(self, cause_of: Callable[[str], str | None] | None = None):
        self.cause_of = cause_of
        self._of: dict[str, _PerIncident] = {}
        self._branch: dict[str, list[Incident]] = defaultdict(list)
        self._cause: dict[str, list[Incident]] = defaultdict(list)

    def add_incident(self, inc: Incident) -> None:
        """A new or loaded incident (with whatever faults it already holds)."""
        self._of[inc.id] = _PerIncident()
        self._add_branch(inc, inc.branch)
        for f in inc.faults.values():
            self.add_fault(inc, f)
            for start, end in f.spans:
                self._started(inc, f, start)
                if end is not None:
                    self._of[inc.id].active -= 1

    def add_fault(self, inc: Incident, f: Fault) -> None:
        """A fault placed in the incident (before its first span starts)."""
        ix = self._of[inc.id]
        if f.category in NOTABLE:
            ix.notable.append(f)
        ix.every[f.category] += 1
        if not f.suppressed:
            ix.unsuppressed[f.category] += 1
        if f.check.count("/") >= 2:          # a part of a device, not the device itself
            ix.by_device[device_of(f.check)].append(f)
        self._add_branch(inc, f.branch)
        cause = self.cause_of(f.check) if self.cause_of else None
        if cause is not None:
            if not ix.causes.get(cause):
                self._cause[cause].append(inc)
            ix.causes[cause].append(f)

    def _add_branch(self, inc: Incident, branch: str) -> None:
        ix = self._of[inc.id]
        if branch not in ix.branches:
            ix.branches.add(branch)
            self._branch[branch].append(inc)

    def remove_fault(self, inc: Incident, f: Fault) -> None:
        """A fault object replaced in the incident: rebuild its look-ups."""
        for branch in self._of[inc.id].branches:
            self._branch[branch].remove(inc)
        for cause in self._of[inc.id].causes:
            self._cause[cause].remove(inc)
        self.add_incident(inc)

    def span_started(self, inc: Incident, f: Fault, t: datetime) -> None:
        """f became active at t."""
        self._started(inc, f, t)

    def _started(self, inc: Incident, f: Fault, t: datetime) -> None:
        ix = self._of[inc.id]
        ix.active += 1
        if not f.suppressed:
            bisect.insort(ix.starts, t)

    def span_ended(self, inc: Incident) -> None:
        """One of its faults cleared."""
        self._of[inc.id].active -= 1

    # --- questions ------------------------------------------------------------------
    def any_active(self, inc: Incident) -> bool:
        """Some fault in it is not cleared."""
        return self._of[inc.id].active > 0

    def notable(self, inc: Incident) -> list[Fault]:
        """Its silent and network faults."""
        return self._of[inc.id].notable

    def categories(self, inc: Incident) -> tuple[set[str], bool]:
        """Categories of its unsuppressed faults (all, if every one is suppressed);
        and whether that fallback was taken."""
        ix = self._of[inc.id]
        if ix.unsuppressed:
            return set(ix.unsuppressed), False
        return set(ix.every), True

    def starts_near(self, inc: Incident, t: datetime, window: timedelta) -> bool:
        """An unsuppressed fault started within `window` of t (either side)."""
        starts = self._of[inc.id].starts
        i = bisect.bisect_left(starts, t - window)
        return i < len(starts) and starts[i] <= t + window

    def device_active(self, inc: Incident, device: str) -> bool:
        """An active fault of this device is in the incident."""
        return any(f.active for f in self._of[inc.id].by_device.get(device, ()))

    def with_cause(self, cause: str) -> list[Incident]:
        """Not-closed incidents holding faults of this cause, newest first."""
        incs = self._cause.get(cause, [])
        incs[:] = [i for i in incs if i.status != "closed"]
        return sorted(incs, key=_newest, reverse=True)

    def caused(self, inc: Incident, cause: str) -> list[Fault]:
        """Its faults that show this cause."""
        return self._of[inc.id].causes.get(cause, [])

    def spread(self, inc: Incident) -> tuple[str, set[str]] | None:
        """(cause, branches) when one cause holds it at more than one branch."""
        for cause, faults in self._of[inc.id].causes.items():
            branches = {f.branch for f in faults}
            if len(branches) > 1:
                return cause, branches
        return None

    def branches(self, inc: Incident) -> set[str]:
        """Every branch with a fault in it."""
        return set(self._of[inc.id].branches)

    def live(self, branch: str) -> list[Incident]:
        """Not-closed incidents at a branch, newest first (closed ones are dropped)."""
        incs = self._branch.get(branch, [])
        incs[:] = [i for i in incs if i.status != "closed"]
        return sorted(incs, key=_newest, reverse=True)
