"""What an incident is made of: faults with their active spans and history,
people's actions, and the changes the book reports. Plain data; the book
(incidents.py) changes it, the codec (incident_codec.py) stores it.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import datetime


# A fault's history is for people reading the incident; the full record of
# every event is the events table. Bounded so a chatty check cannot make
# every save of its incident slower.
HISTORY_KEEP = 20
# A fault keeps at most this many active intervals: a link bouncing through a
# 100k-event partition must not grow its incident without bound. Beyond it the
# spans with the shortest gaps between them are joined, SPAN_SLACK at a time so
# the cost spreads over many starts (each gap is counted in `merged_gap`, so the
# time really active stays exact: `active_seconds`).
SPAN_KEEP = 32
SPAN_SLACK = 8


class Refused(Exception):
    """An operator action that the incident's state does not allow (→ 409)."""


def _span_start(span: list) -> datetime:
    return span[0]


@dataclass
class Fault:
    """One check's trouble inside one incident; `spans` are its active intervals."""

    agent: str
    branch: str
    check: str
    category: str
    state: str
    reason: str
    diagnosis: str | None
    last_at: datetime
    spans: list[list] = field(default_factory=list)   # [start, end | None]
    flapping: bool = False
    suppressed: bool = False
    history: list[tuple] = field(default_factory=list)  # (observed_at, kind, state, reason)
    merged_gap: float = 0.0     # seconds inside `spans` when it was not active (merged spans)
    spans_merged: int = 0       # spans merged into others to keep SPAN_KEEP

    def note(self, entry: tuple) -> None:
        """Add to the history in time order, keeping the newest HISTORY_KEEP entries."""
        self.history.append(entry)
        if len(self.history) > 1 and entry[0] < self.history[-2][0]:
            self.history.sort(key=lambda h: h[0])
        del self.history[:-HISTORY_KEEP]

    @property
    def active(self) -> bool:
        """Not cleared yet."""
        return bool(self.spans) and self.spans[-1][1] is None

    def active_at(self, t: datetime) -> bool:
        """Active at time t (by observation time; inside a merged gap counts as active)."""
        # Spans are in time order and do not overlap: only the last one starting by t counts.
        i = bisect.bisect_right(self.spans, t, key=_span_start) - 1
        return i >= 0 and (self.spans[i][1] is None or t < self.spans[i][1])

    def active_seconds(self, now: datetime) -> float:
        """Seconds it has been active in all, exact even after spans were merged."""
        return sum(((e or now) - s).total_seconds() for s, e in self.spans) - self.merged_gap

    def bound_spans(self) -> list[datetime]:
        """Past SPAN_KEEP + SPAN_SLACK spans, join across the shortest gaps down to
        SPAN_KEEP; the span starts that went away."""
        spans = self.spans
        if len(spans) <= SPAN_KEEP + SPAN_SLACK:
            return []
        gaps = sorted(range(len(spans) - 1), key=lambda k: spans[k + 1][0] - spans[k][1])
        joined = set(gaps[:len(spans) - SPAN_KEEP])       # span k+1 joins span k
        kept, gone = [], []
        for k, (s, e) in enumerate(spans):
            if k - 1 in joined:
                self.merged_gap += (s - kept[-1][1]).total_seconds()
                kept[-1][1] = e
                gone.append(s)
            else:
                kept.append([s, e])
        self.spans[:] = kept
        self.spans_merged += len(gone)
        return gone


@dataclass(frozen=True)
class Action:
    """Who did what to an incident, and why."""

    who: str
    why: str
    at: datetime


@dataclass
class Incident:
    """A group of faults at one branch, from opening to closing."""

    id: str
    branch: str
    title: str
    started_at: datetime
    status: str = "open"                    # open | resolved | closed
    drill: bool = False                     # domain.md §5: opened by a drill's faults
    resolved_at: datetime | None = None
    closed: Action | None = None
    resolved_by: Action | None = None       # set when a person resolved it
    acks: list[Action] = field(default_factory=list)
    notes: list[Action] = field(default_factory=list)
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    # Grading (collector/incident_grades.py): table -> GradeRecord, the
    # criteria people set (grading.Assertion), DeadlineState list.
    grades: dict = field(default_factory=dict)
    assertions: list = field(default_factory=list)
    deadlines: list = field(default_factory=list)
    # Runbooks (collector/incident_runbooks.py): runbooks.run.Run list, and the
    # agents' action events at the branch (runbooks.run.AgentAction).
    runbooks: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    # Notifications (collector/notify/state.py): NotifyState once anyone was told,
    # so escalation, who was notified and waiting deliveries survive a restart.
    notify: object = None
    # (collector/incident_reporter.py): the reporter (報告責任人,
    # 第二十六條) and every change of them, ReporterChange list, newest last.
    reporters: list = field(default_factory=list)

    def active_faults(self) -> list[Fault]:
        """Faults not yet cleared."""
        return [f for f in self.faults.values() if f.active]


@dataclass(frozen=True)
class Change:
    """One state change of an incident: for the audit trail and notifications.

    kind: opened|joined|suppressed|cleared|resolved|reopened|flapping|
    acknowledged|closed|noted|retitled. `alert` is True only when it raises
    a new alert (opened, joined, reopened); suppressed children never do.
    """

    kind: str
    incident_id: str
    at: datetime
    detail: str
    check: str | None = None
    alert: bool = False
