"""What a report says about an incident, drawn from the incident alone (pure).

Each function reads the typed incident (incident_codec.from_dict) and returns
plain rows (dicts of text, numbers and datetimes) that the templates lay out;
nothing here knows a language except the data files' own texts (step and
runbook titles), asked through texts.py in the report's language. The sections follow domain.md §3:
第二十八條 (time, place, symptoms, affected business, cause, measures),
第三十四條 (scope, handling time and process, what went wrong).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..config import DEFAULT_BUSINESS_STOPS, BusinessStop
from ..grading import Calendar
from ..incident_facts import outages
from ..incidents import Fault, Incident
from .texts import text_of

# How bad a state is, for the worst state a fault reached (ok is no fault).
_RANK = {"critical": 3, "warning": 2, "unknown": 1}


@dataclass(frozen=True)
class Scope:
    """What the incident alone does not say: each branch's region (the scope unit,
    domain.md §2.1), which faults stop business, business hours, the time zone."""

    regions: Mapping[str, str] = field(default_factory=dict)
    stops: tuple[BusinessStop, ...] = tuple(DEFAULT_BUSINESS_STOPS)
    calendar: Calendar | None = None
    timezone: str = "UTC"

    def region_of(self, branch: str) -> str:
        """The branch's region; a branch without one is its own scope unit."""
        return self.regions.get(branch) or branch

    @classmethod
    def from_grader(cls, grader, timezone: str | None = None) -> Scope:
        """The running collector's scope (collector.grader.Grader, or None)."""
        if grader is None:
            return cls(timezone=timezone or "UTC")
        return cls(dict(grader.regions), tuple(grader.stops), grader.calendar,
                   timezone or grader.calendar.timezone)


def _minutes(start: datetime, end: datetime) -> int:
    return max(0, int((end - start).total_seconds() // 60))


def worst_state(f: Fault) -> str:
    """The worst state a fault was in (its history, else its state now)."""
    states = [h[2] for h in f.history if h[2] in _RANK] + ([f.state] if f.state in _RANK else [])
    return max(states, key=_RANK.get) if states else f.state


def grades(inc: Incident) -> list[dict]:
    """Each table's grade now (第五條, 第六條), with since when and why."""
    return [{"table": name, "grade": g.grade, "provisional": g.provisional,
             "reached_at": g.reached_at, "rule": g.rule, "reasons": list(g.reasons[:3])}
            for name, g in sorted(inc.grades.items())]


def grade_history(inc: Incident) -> list[dict]:
    """Every grade the incident reached, when its rule first held, and who set it
    when a person did; the first "not yet graded" step is left out."""
    out = []
    for name, g in sorted(inc.grades.items()):
        for h in g.history:
            if h.grade is None and h.who is None:
                continue
            out.append({"table": name, "grade": h.grade, "provisional": h.provisional,
                        "reached_at": h.reached_at or h.at, "at": h.at, "rule": h.rule,
                        "who": h.who, "why": h.why})
    return sorted(out, key=lambda r: (r["reached_at"], r["table"]))


def place(inc: Incident, scope: Scope) -> dict:
    """Where: the branches with faults and their regions."""
    branches = sorted({inc.branch} | {f.branch for f in inc.faults.values()})
    return {"branches": branches, "regions": sorted({scope.region_of(b) for b in branches})}


def symptoms(inc: Incident, since: datetime | None = None) -> list[dict]:
    """What was seen: every fault (suppressed children marked), first start first;
    with `since`, only faults that started (a span) after it."""
    rows = []
    for f in inc.faults.values():
        if not f.spans or since is not None and not any(s > since for s, _ in f.spans):
            continue
        rows.append({"branch": f.branch, "agent": f.agent, "check": f.check,
                     "category": f.category, "state": worst_state(f), "reason": f.reason,
                     "diagnosis": f.diagnosis, "start": f.spans[0][0], "end": f.spans[-1][1],
                     "active": f.active, "suppressed": f.suppressed, "flapping": f.flapping})
    return sorted(rows, key=lambda r: (r["start"], r["branch"], r["check"]))


def cleared(inc: Incident, since: datetime) -> list[dict]:
    """Faults that cleared after `since` and are still clear."""
    rows = [{"branch": f.branch, "check": f.check, "category": f.category,
             "end": f.spans[-1][1], "reason": f.reason}
            for f in inc.faults.values()
            if f.spans and not f.active and f.spans[-1][1] > since]
    return sorted(rows, key=lambda r: (r["end"], r["branch"], r["check"]))


def business(inc: Incident, scope: Scope, now: datetime) -> list[dict]:
    """Affected business: when each branch could not do business (the configured
    business-stopping faults, domain.md §2.1), with wall-clock and business minutes."""
    rows = []
    for branch in sorted({f.branch for f in inc.faults.values()}):
        faults = [f for f in inc.faults.values() if f.branch == branch]
        for o in outages(faults, list(scope.stops), scope.region_of):
            end = o.end or now
            cause = o.cause.split(": ", 1)[-1]       # "branch B1: core system unreachable"
            rows.append({"region": o.region, "branch": branch, "cause": cause,
                         "start": o.start, "end": o.end, "minutes": _minutes(o.start, end),
                         "business_minutes": None if scope.calendar is None else
                         int(scope.calendar.open_seconds(o.start, end) // 60)})
    return sorted(rows, key=lambda r: (r["start"], r["branch"], r["cause"]))


def _step_rows(inc: Incident, keep: Callable[[object], bool], language: str = "en"
               ) -> list[dict]:
    rows = []
    for run in inc.runbooks:
        for r in run.records:
            if keep(r):
                step = run.runbook.step(r.step)
                rows.append({"kind": "step", "run": run.id, "runbook": run.runbook.id,
                             "step": r.step, "step_kind": step.kind,
                             "title": text_of(step, "title", language),
                             "role": text_of(step, "role", language) or None,
                             "status": r.status, "at": r.ended_at or r.started_at,
                             "who": r.who, "choice": r.choice,
                             # not_needed says why (the collector's "incident resolved")
                             "note": None if r.status == "not_needed" else r.note})
    return rows


def measures(inc: Incident, since: datetime | None = None, language: str = "en"
             ) -> list[dict]:
    """Measures taken (第二十八條), in time order: runbook steps done or failed (who,
    when, note), the agents' own actions (e.g. the uplink failover) and what people
    did on the incident itself (acknowledgements)."""
    def after(t):
        return since is None or t > since
    rows = _step_rows(inc, lambda r: r.status in ("done", "failed") and after(r.ended_at),
                      language)
    rows += [{"kind": "action", "run": None, "runbook": None, "step": a.check,
              "step_kind": "action", "title": a.check, "role": None,
              "status": "done" if a.ok else "failed", "at": a.at, "who": "agent",
              "note": a.reason, "choice": None} for a in inc.actions if after(a.at)]
    rows += [{"kind": "ack", "run": None, "runbook": None, "step": "ack", "step_kind": "ack",
              "title": "", "role": None, "status": "done", "at": a.at, "who": a.who,
              "note": a.why, "choice": None} for a in inc.acks if after(a.at)]
    # A person's note on the incident is often what they did ("customers redirected
    # to B3"); it is listed as theirs, for the reporter to keep or strike.
    rows += [{"kind": "note", "run": None, "runbook": None, "step": "note", "step_kind": "note",
              "title": "", "role": None, "status": "done", "at": n.at, "who": n.who,
              "note": n.why, "choice": None} for n in inc.notes if after(n.at)]
    return sorted(rows, key=lambda r: (r["at"], r["step"]))


def pending(inc: Incident, language: str = "en") -> list[dict]:
    """Steps still waiting or running (what the runbooks plan next)."""
    return _step_rows(inc, lambda r: r.status in ("waiting", "running"), language)


def failed_steps(inc: Incident, language: str = "en") -> list[dict]:
    """Steps that failed (第三十條: the plan failed there)."""
    return sorted(_step_rows(inc, lambda r: r.status == "failed", language),
                  key=lambda r: r["at"])


def cause_facts(inc: Incident, language: str = "en") -> list[dict]:
    """What points at the cause: the agents' device/line diagnosis (domain.md §4.1),
    decisions taken in the runbooks, and criteria a person set with a reason."""
    rows = [{"kind": "diagnosis", "subject": f"{f.branch} {f.check}", "text": f.diagnosis,
             "who": f.agent, "at": f.spans[0][0]}
            for f in inc.faults.values() if f.diagnosis and f.spans]
    rows += [{"kind": "decision", "subject": f"{r['run']} {r['step']}: {r['title']}",
              "text": r["choice"] + (f" ({r['note']})" if r["note"] else ""),
              "who": r["who"], "at": r["at"]}
             for r in _step_rows(inc, lambda r: r.choice is not None, language)]
    rows += [{"kind": "criterion", "subject": a.criterion, "text": a.why, "who": a.who,
              "at": a.at} for a in inc.assertions if not a.withdrawn]
    return sorted(rows, key=lambda r: (r["at"], r["kind"], r["subject"]))


def deadlines(inc: Incident, which: Callable[[object], bool] = lambda d: True) -> list[dict]:
    """The incident's deadlines (domain.md §3) that `which` keeps."""
    return [{"table": d.table, "key": d.key, "rule": d.rule, "title": d.title,
             "due_at": d.due_at, "status": d.status, "met_at": d.met_at, "met_by": d.met_by,
             "what": d.what, "missed_at": d.missed_at}
            for d in inc.deadlines if which(d)]


def reporters(inc: Incident) -> list[dict]:
    """The reporter (報告責任人, 第二十六條) and every change of them, oldest first."""
    return [{"name": r.name, "by": None if r.by == "collector" else r.by, "why": r.why,
             "at": r.at} for r in inc.reporters]


def handling(inc: Incident, now: datetime) -> dict:
    """Handling time (第三十四條): start, first acknowledgement, resolution, closing."""
    ack = min(inc.acks, key=lambda a: a.at) if inc.acks else None
    end = inc.resolved_at
    return {"started_at": inc.started_at, "first_ack_at": ack and ack.at,
            "first_ack_by": ack and ack.who, "resolved_at": end,
            "closed_at": inc.closed and inc.closed.at,
            "minutes_to_ack": ack and _minutes(inc.started_at, ack.at),
            "minutes_to_resolve": _minutes(inc.started_at, end or now)}


def runbooks(inc: Incident, language: str = "en") -> list[dict]:
    """Each runbook run: which plan, how it ended, its steps by outcome."""
    out = []
    for run in inc.runbooks:
        count = {s: sum(r.status == s for r in run.records) for s in ("done", "failed", "skipped")}
        out.append({"id": run.id, "runbook": run.runbook.id,
                    "title": text_of(run.runbook, "title", language),
                    "status": run.status, "started_at": run.started_at,
                    "started_by": run.started_by, "ended_at": run.ended_at, **count})
    return out
