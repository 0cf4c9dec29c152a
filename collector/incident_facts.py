"""From an incident's faults to the facts grading reads (pure).

domain.md §2.1: a unit "cannot do business" while a business-stopping
fault holds at a share of its branches or at a key site. Each `BusinessStop`
of the config says which faults those are: any fault of `checks`, or faults
of every one of `all_of` at the same time and branch (both uplinks down).
`branch_stops` gives each branch's stopped spans; grading/units.py turns
them into `Outage`s of units (the share, key sites and channels).

domain.md §2.2: the hospital classes follow from what failed; `ObservedKind`
maps checks to the kinds its table names (server_down, uplink_down, ...).

Fault durations are read through `fault_spans` only, so a bounded span
history with exact totals fits behind it.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Iterable
from datetime import datetime

from .config import BusinessStop, ObservedKind
from .grading import Assertion, IncidentFacts, Observed, Outage
from .grading.units import StopSpan, UnitScope, unit_outages
from .incidents import Fault, Incident

Span = tuple[datetime, datetime | None]


def fault_spans(f: Fault) -> list[Span]:
    """A fault's active intervals [start, end | None], oldest first."""
    return [(s, e) for s, e in f.spans]


def _matches(check: str, patterns: Iterable[str]) -> bool:
    return _match_any(check, tuple(patterns))


@functools.lru_cache(maxsize=1 << 16)
def _match_any(check: str, patterns: tuple[str, ...]) -> bool:
    # Graded every second for every incident that changed: the same few
    # hundred check ids against the same patterns, so remember the answers.
    return any(fnmatch.fnmatchcase(check, p) for p in patterns)


def cause_lookup(stops: list[BusinessStop]) -> Callable[[str], str | None]:
    """check id -> the business-stopping cause it shows, for faults that join across
    branches (only `checks` stops: one uplink down at two branches is not one cause)."""
    def cause_of(check: str) -> str | None:
        return next((b.name for b in stops if b.checks and _matches(check, b.checks)), None)
    return cause_of


def _union(spans: Iterable[Span]) -> list[Span]:
    out: list[list] = []
    for s, e in sorted(spans, key=lambda x: x[0]):
        if out and (out[-1][1] is None or s <= out[-1][1]):
            if out[-1][1] is not None and (e is None or e > out[-1][1]):
                out[-1][1] = e
            continue
        out.append([s, e])
    return [(s, e) for s, e in out]


def _intersect(a: list[Span], b: list[Span]) -> list[Span]:
    out = []
    for s1, e1 in a:
        for s2, e2 in b:
            s = max(s1, s2)
            ends = [e for e in (e1, e2) if e is not None]
            e = min(ends) if ends else None
            if e is None or s < e:
                out.append((s, e))
    return out


def _spans(faults: Iterable[Fault]) -> list[Span]:
    return _union(s for f in faults for s in fault_spans(f))


def stopping_spans(f: Fault, states: Iterable[str]) -> list[Span]:
    """The parts of a fault's spans when its state was one of `states` (a UPS
    battery that went warning at 09:00 and critical at 09:20 stops business
    from 09:20). States come from the fault's history (its newest entries;
    before the oldest one kept, the oldest one's state is assumed)."""
    states = set(states)
    history = sorted(f.history, key=lambda h: h[0])
    out = []
    for start, end in fault_spans(f):
        # The state at the span's start, then each change inside it.
        before = [h for h in history if h[0] <= start]
        state = (before[-1] if before else history[0] if history else (start, "", f.state))[2]
        t = start
        for h in (h for h in history if start < h[0] and (end is None or h[0] < end)):
            if state in states:
                out.append((t, h[0]))
            state, t = h[2], h[0]
        if state in states:
            out.append((t, end))
    return _union(out)


def outages(faults: Iterable[Fault], stops: list[BusinessStop],
            region_of: Callable[[str], str]) -> tuple[Outage, ...]:
    """Per branch, when it could not do business, as outages of its region (reports)."""
    return tuple(Outage(region_of(branch), s, e, f"branch {branch}: {cause}")
                 for branch, spans in branch_stops(faults, stops).items() for s, e, cause in spans)


def branch_stops(faults: Iterable[Fault], stops: list[BusinessStop]) -> dict[str, list[StopSpan]]:
    """Per branch, when it could not do business: (start, end | None, cause)."""
    by_branch: dict[str, list[Fault]] = {}
    for f in faults:
        by_branch.setdefault(f.branch, []).append(f)
    out: dict[str, list[StopSpan]] = {}
    for branch, fs in sorted(by_branch.items()):
        for stop in stops:
            def stopped(patterns) -> list[Span]:
                return _union(s for f in fs if _matches(f.check, patterns)
                              for s in stopping_spans(f, stop.states))
            if stop.checks:
                spans = stopped(stop.checks)
            else:
                spans = None
                for pattern in stop.all_of:
                    part = stopped([pattern])
                    spans = part if spans is None else _intersect(spans, part)
            for s, e in spans or []:
                out.setdefault(branch, []).append((s, e, stop.name))
    return out


def observed(faults: Iterable[Fault], kinds: list[ObservedKind]) -> tuple[Observed, ...]:
    """Every active span of a fault mapped to an observed kind."""
    return tuple(Observed(k.kind, s, e, f"{f.branch}: {f.check}")
                 for f in faults for k in kinds if _matches(f.check, k.checks)
                 for s, e in fault_spans(f))


def facts_of(inc: Incident, stops: list[BusinessStop], kinds: list[ObservedKind],
             scope: UnitScope, assertions: Iterable[Assertion] = ()) -> IncidentFacts:
    """What grading needs to know about one incident: its units' outages."""
    faults = list(inc.faults.values())
    ended = inc.resolved_at if inc.status != "open" else None
    return IncidentFacts(started_at=inc.started_at, ended_at=ended,
                         outages=unit_outages(branch_stops(faults, stops), scope),
                         observed=observed(faults, kinds), assertions=tuple(assertions))
