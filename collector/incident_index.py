"""Look-ups the incident book needs on every event, kept up to date as faults
are added, start, clear and as incidents change status, so that one event
costs the same whatever else the book holds: a 500-fault incident costs what
a 5-fault one does, and 10,000 open incidents elsewhere (or 3,000 resolved
ones at the same branch, long past joining) cost nothing.

Only open incidents are in the branch and cause indexes. Resolved ones wait
in a per-branch list ordered by resolution time, where a question about time
t reads only those resolved after t (minus the joining window): the rest can
neither be joined nor block anything at t. Closed ones are in neither.

Pure bookkeeping over the book's own objects; the book (incidents.py) calls
`add_incident`, `add_fault`, `span_started`, `span_ended`, `span_merged` and
`status_changed` at the points where those things happen, and asks the rest.
"""

from __future__ import annotations

import bisect
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from .incident_rules import drill_of

if TYPE_CHECKING:
    from .incident_model import Fault, Incident

NOTABLE = ("silent", "network")    # categories that can block others or name the title

Side = str | None                  # None: the real world; else a drill run's id (domain.md §5)


def device_of(check: str) -> str | None:
    """`ups/NAME`, `switch/NAME`, ...: the device a check is about (None for one-part ids)."""
    parts = check.split("/")
    return "/".join(parts[:2]) if len(parts) > 1 else None


_newest = operator.attrgetter("started_at", "id")


class _PerIncident:
    __slots__ = ("notable", "unsuppressed", "every", "active", "starts", "by_device",
                 "branches", "causes", "cause_branches", "side", "resolved_key")

    def __init__(self, side: Side):
        self.side = side
        self.notable: dict[str, list[Fault]] = defaultdict(list)   # branch -> notable faults
        self.unsuppressed: Counter = Counter()     # category -> faults not suppressed
        self.every: Counter = Counter()            # category -> all faults
        self.active = 0                            # faults not cleared
        self.starts: list[datetime] = []           # span starts of unsuppressed faults, sorted
        self.by_device: dict[str, list[Fault]] = defaultdict(list)
        self.branches: set[str] = set()
        self.causes: dict[str, list[Fault]] = defaultdict(list)   # cause -> its faults
        self.cause_branches: dict[str, Counter] = defaultdict(Counter)  # cause -> branch counts
        self.resolved_key: tuple | None = None     # its place in the resolved list


class IncidentIndex:
    """Per incident, per branch and per cause look-ups for IncidentBook."""

    def __init__(self, cause_of: Callable[[str], str | None] | None = None):
        self.cause_of = cause_of
        self._of: dict[str, _PerIncident] = {}
        self._incident: dict[str, Incident] = {}
        # (branch, side) -> open incidents there; (cause, side) -> open incidents with it.
        self._open: dict[tuple[str, Side], dict[str, Incident]] = defaultdict(dict)
        self._cause: dict[tuple[str, Side], dict[str, Incident]] = defaultdict(dict)
        # (branch, side) -> sorted [(resolved_at, id)] of resolved-not-closed incidents there.
        self._resolved: dict[tuple[str, Side], list[tuple[datetime, str]]] = defaultdict(list)
        self._counts: Counter = Counter()          # (status, drill) -> incidents
        self._sides: dict[str, set[Side]] = defaultdict(set)   # branch -> sides seen there

    # --- changes ----------------------------------------------------------------------
    def add_incident(self, inc: Incident, side: Side = None) -> None:
        """A new or loaded incident (with whatever faults it already holds). A new
        one has no fault yet to tell its side: the book passes it."""
        first = next(iter(inc.faults.values()), None)
        if first is not None:
            side = drill_of(first.agent)
        self._of[inc.id] = _PerIncident(side)
        self._incident[inc.id] = inc
        self._counts[inc.status, inc.drill] += 1
        self._enter(inc)
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
            ix.notable[f.branch].append(f)
        ix.every[f.category] += 1
        if not f.suppressed:
            ix.unsuppressed[f.category] += 1
        if f.check.count("/") >= 2:          # a part of a device, not the device itself
            ix.by_device[device_of(f.check)].append(f)
        self._add_branch(inc, f.branch)
        cause = self.cause_of(f.check) if self.cause_of else None
        if cause is not None:
            ix.causes[cause].append(f)
            ix.cause_branches[cause][f.branch] += 1
            if inc.status == "open":
                self._cause[cause, ix.side][inc.id] = inc

    def _add_branch(self, inc: Incident, branch: str) -> None:
        ix = self._of[inc.id]
        if branch not in ix.branches:
            ix.branches.add(branch)
            self._sides[branch].add(ix.side)
            if inc.status == "open":
                self._open[branch, ix.side][inc.id] = inc
            elif ix.resolved_key is not None:
                bisect.insort(self._resolved[branch, ix.side], ix.resolved_key)

    def remove_fault(self, inc: Incident, f: Fault) -> None:
        """A fault object replaced in the incident: rebuild its look-ups."""
        self._leave(inc)
        self._counts[inc.status, inc.drill] -= 1
        self.add_incident(inc, self._of[inc.id].side)

    def status_changed(self, inc: Incident, old: str) -> None:
        """The book moved inc from status `old` to its current one."""
        self._counts[old, inc.drill] -= 1
        self._counts[inc.status, inc.drill] += 1
        self._leave(inc, old)
        self._enter(inc)

    def _enter(self, inc: Incident) -> None:
        """Into the live indexes its (current) status puts it in."""
        ix = self._of[inc.id]
        if inc.status == "open":
            for b in ix.branches:
                self._open[b, ix.side][inc.id] = inc
            for cause in ix.causes:
                self._cause[cause, ix.side][inc.id] = inc
        elif inc.status == "resolved":
            ix.resolved_key = (inc.resolved_at or inc.started_at, inc.id)
            for b in ix.branches:
                bisect.insort(self._resolved[b, ix.side], ix.resolved_key)

    def _leave(self, inc: Incident, status: str | None = None) -> None:
        """Out of the live indexes of `status` (default: its current one)."""
        ix = self._of[inc.id]
        status = status or inc.status
        if status == "open":
            for b in ix.branches:
                self._open[b, ix.side].pop(inc.id, None)
            for cause in ix.causes:
                self._cause[cause, ix.side].pop(inc.id, None)
        elif status == "resolved" and ix.resolved_key is not None:
            for b in ix.branches:
                rows = self._resolved[b, ix.side]
                i = bisect.bisect_left(rows, ix.resolved_key)
                if i < len(rows) and rows[i] == ix.resolved_key:
                    del rows[i]
            ix.resolved_key = None

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

    def span_merged(self, inc: Incident, f: Fault, start: datetime) -> None:
        """Two of f's spans became one: the later one's `start` is no span start now."""
        if f.suppressed:
            return
        starts = self._of[inc.id].starts
        i = bisect.bisect_left(starts, start)
        if i < len(starts) and starts[i] == start:
            del starts[i]

    # --- questions about one incident ----------------------------------------------------
    def any_active(self, inc: Incident) -> bool:
        """Some fault in it is not cleared."""
        return self._of[inc.id].active > 0

    def notable(self, inc: Incident, branch: str | None = None) -> list[Fault]:
        """Its silent and network faults (at one branch, or everywhere)."""
        per = self._of[inc.id].notable
        if branch is not None:
            return per.get(branch, [])
        return [f for fs in per.values() for f in fs]

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

    def caused(self, inc: Incident, cause: str) -> list[Fault]:
        """Its faults that show this cause."""
        return self._of[inc.id].causes.get(cause, [])

    def spread(self, inc: Incident) -> tuple[str, Collection[str]] | None:
        """(cause, branches) when one cause holds it at more than one branch.
        Counted as faults join, not by walking them: a join costs the same at
        3,000 branches as at 2."""
        for cause, branches in self._of[inc.id].cause_branches.items():
            if len(branches) > 1:
                return cause, branches.keys()
        return None

    def branches(self, inc: Incident) -> set[str]:
        """Every branch with a fault in it."""
        return set(self._of[inc.id].branches)

    # --- questions about a branch, a cause, the book ----------------------------------------
    def open_at(self, branch: str, side: Side = None) -> Collection[Incident]:
        """Open incidents at a branch on one side (real, or one drill run)."""
        return self._open.get((branch, side), {}).values()

    def resolved_since(self, branch: str, since: datetime,
                       side: Side = None) -> Iterator[Incident]:
        """Resolved-not-closed incidents at a branch resolved at or after `since`
        (only those: the cost is what could matter at that time)."""
        rows = self._resolved.get((branch, side), [])
        for _, iid in rows[bisect.bisect_left(rows, (since, "")):]:
            yield self._incident[iid]

    def with_cause(self, cause: str, side: Side = None) -> list[Incident]:
        """Open incidents holding faults of this cause, newest first."""
        return sorted(self._cause.get((cause, side), {}).values(), key=_newest, reverse=True)

    def live(self, branch: str) -> list[Incident]:
        """Not-closed incidents at a branch on every side, newest first."""
        sides = self._sides.get(branch, ())
        out = [i for side in sides for i in self.open_at(branch, side)]
        out += [self._incident[iid] for side in sides
                for _, iid in self._resolved.get((branch, side), [])]
        return sorted(out, key=_newest, reverse=True)

    def count(self, status: str, drill: bool = False) -> int:
        """How many incidents the book holds with this status (drills apart)."""
        return self._counts[status, drill]

    def side(self, inc: Incident) -> Side:
        """The drill run an incident belongs to; None for a real one."""
        return self._of[inc.id].side
