"""Incidents to and from plain data: for the store and the API.

The book's dataclasses hold a dict keyed by (agent, check); JSON has no
such keys, so faults become a list. Times stay datetimes: msgspec.json
encodes them (RFC 3339) in C, which matters because an incident is saved
on every change (`encode`). `from_dict` takes either datetimes or their
text. `from_dict(to_dict(i)) == i` (a test holds it).
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from .grading import Assertion
from .incident_grades import DeadlineState, GradeRecord
from .incident_reporter import ReporterChange
from .incidents import Action, Fault, Incident
from .notify.state import NotifyState
from .runbooks.run import AgentAction, Run


_encoder = msgspec.json.Encoder()


def _t(dt: datetime | None) -> datetime | None:
    return dt


def _dt(value: str | datetime | None) -> datetime | None:
    return value if value is None or isinstance(value, datetime) else datetime.fromisoformat(value)


def encode(data) -> bytes:
    """JSON bytes for to_dict data (or lists/dicts of it)."""
    return _encoder.encode(data)


def _action(a: Action | None) -> dict | None:
    return None if a is None else {"who": a.who, "why": a.why, "at": _t(a.at)}


def _from_action(d: dict | None) -> Action | None:
    return None if d is None else Action(d["who"], d["why"], _dt(d["at"]))


def to_dict(inc: Incident, stored: bool = False) -> dict:
    """An incident as plain data (faults as a list); `encode` makes it JSON.

    `stored`: for the database, faults stay Fault dataclasses (msgspec encodes
    them in C; an incident is saved on every change) and carry no derived
    `active`; `from_dict` reads either form."""
    return {
        "id": inc.id, "branch": inc.branch, "title": inc.title,
        "started_at": _t(inc.started_at), "status": inc.status,
        "drill": inc.drill,                      # domain.md §5: a drill's incident
        "resolved_at": _t(inc.resolved_at), "closed": _action(inc.closed),
        "resolved_by": _action(inc.resolved_by),
        "acks": [_action(a) for a in inc.acks], "notes": [_action(a) for a in inc.notes],
        "faults": list(inc.faults.values()) if stored else [{
            "agent": f.agent, "branch": f.branch, "check": f.check, "category": f.category,
            "state": f.state, "reason": f.reason, "diagnosis": f.diagnosis,
            "last_at": _t(f.last_at), "active": f.active,
            "spans": [[_t(s), _t(e)] for s, e in f.spans],
            "flapping": f.flapping, "suppressed": f.suppressed,
            "history": [[_t(h[0]), *h[1:]] for h in f.history],
            "merged_gap": f.merged_gap, "spans_merged": f.spans_merged,
        } for f in inc.faults.values()],
        # issue 5: dataclasses msgspec encodes as they are.
        "grades": inc.grades, "assertions": inc.assertions, "deadlines": inc.deadlines,
        "runbooks": inc.runbooks, "actions": inc.actions,
        "notify": inc.notify,                    # issue 7: NotifyState or None
        "reporters": inc.reporters,              # ReporterChange list
    }


def from_dict(d: dict) -> Incident:
    """The incident `to_dict` gave."""
    faults = {}
    for f in d["faults"]:
        fault = Fault(
            agent=f["agent"], branch=f["branch"], check=f["check"], category=f["category"],
            state=f["state"], reason=f["reason"], diagnosis=f["diagnosis"],
            last_at=_dt(f["last_at"]), spans=[[_dt(s), _dt(e)] for s, e in f["spans"]],
            flapping=f["flapping"], suppressed=f["suppressed"],
            history=[(_dt(h[0]), *h[1:]) for h in f["history"]],
            # Absent before spans were bounded (incidents.SPAN_KEEP).
            merged_gap=f.get("merged_gap", 0.0), spans_merged=f.get("spans_merged", 0))
        faults[(fault.agent, fault.check)] = fault
    return Incident(
        id=d["id"], branch=d["branch"], title=d["title"], started_at=_dt(d["started_at"]),
        status=d["status"], drill=d.get("drill", False), resolved_at=_dt(d["resolved_at"]),
        closed=_from_action(d["closed"]), resolved_by=_from_action(d["resolved_by"]),
        acks=[_from_action(a) for a in d["acks"]], notes=[_from_action(a) for a in d["notes"]],
        faults=faults,
        # Absent in incidents stored before grading existed.
        grades=msgspec.convert(d.get("grades", {}), dict[str, GradeRecord]),
        assertions=msgspec.convert(d.get("assertions", []), list[Assertion]),
        deadlines=msgspec.convert(d.get("deadlines", []), list[DeadlineState]),
        runbooks=msgspec.convert(d.get("runbooks", []), list[Run]),
        actions=msgspec.convert(d.get("actions", []), list[AgentAction]),
        notify=msgspec.convert(d.get("notify"), NotifyState | None),
        reporters=msgspec.convert(d.get("reporters", []), list[ReporterChange]))
