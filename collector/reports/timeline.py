"""The incident's timeline for the closing summary (第三十四條; 第二十九條: every
piece of information and every step is recorded): faults starting and
clearing, grades reached, criteria set, deadlines due, met and missed,
runbook steps, the agents' own actions, acknowledgements, notes, the
resolution and the closing, in time order. Pure.

Each entry: at, kind (a key the templates put into words), subject (what it
concerns: a check, a table, a step), state (a state or grade), who, text.
"""

from __future__ import annotations

from datetime import datetime

from .facts import worst_state
from ..incidents import Incident

# Ties at one moment read in this order: the cause before its consequences.
ORDER = ("opened", "fault", "action", "graded", "criterion", "ack", "reporter", "runbook",
         "step", "deadline_due", "deadline_met", "deadline_missed", "note", "cleared", "resolved",
         "closed")


def _e(at: datetime, kind: str, subject: str = "", state: str | None = None,
       who: str | None = None, text: str | None = None) -> dict:
    return {"at": at, "kind": kind, "subject": subject, "state": state, "who": who,
            "text": text}


def _faults(inc: Incident) -> list[dict]:
    out = []
    for f in inc.faults.values():
        subject = f"{f.branch} {f.check}" + (" *" if f.suppressed else "")
        for start, end in f.spans:
            # The reason the fault gave when it began, where the history still has it.
            began = [h for h in f.history if h[0] == start and h[2] != "ok"]
            state, reason = (began[0][2], began[0][3]) if began else (worst_state(f), f.reason)
            out.append(_e(start, "fault", subject, state, f.agent, reason))
            if end is not None:
                out.append(_e(end, "cleared", subject, "ok", f.agent))
    return out


def _grades(inc: Incident) -> list[dict]:
    out = []
    for name, g in inc.grades.items():
        for h in g.history:
            if h.grade is None and h.who is None:
                continue
            # state: the grade (None: below the table); text: the rule, or the person's why
            out.append(_e(h.reached_at or h.at, "graded", name, h.grade, h.who,
                          h.why if h.who else h.rule))
    out += [_e(a.at, "criterion", a.criterion, "withdrawn" if a.withdrawn else None, a.who,
               a.why) for a in inc.assertions]
    return out


def _deadlines(inc: Incident) -> list[dict]:
    out = []
    for d in inc.deadlines:
        out.append(_e(d.due_at, "deadline_due", d.key, d.rule, None, d.title))
        if d.missed_at is not None:
            out.append(_e(d.missed_at, "deadline_missed", d.key, d.rule))
        if d.met_at is not None:
            out.append(_e(d.met_at, "deadline_met", d.key, d.rule, d.met_by, d.what))
    return out


def _runbooks(inc: Incident) -> list[dict]:
    out = [_e(a.at, "action", a.check, "ok" if a.ok else "critical", "agent", a.reason)
           for a in inc.actions]
    for run in inc.runbooks:
        # "collector": started by itself when the incident opened (no person)
        by = None if run.started_by == "collector" else run.started_by
        out.append(_e(run.started_at, "runbook", f"{run.id} {run.runbook.id}", None, by,
                      run.runbook.title))
        for r in run.records:
            if r.ended_at is None:
                continue
            title = run.runbook.step(r.step).title
            note = " / ".join(x for x in (r.choice, r.note if r.status != "not_needed" else None) if x)
            out.append(_e(r.ended_at, "step", f"{run.id} {r.step}: {title}", r.status, r.who,
                          note or None))
    return out


def _people(inc: Incident) -> list[dict]:
    out = [_e(inc.started_at, "opened", inc.branch, None, None, inc.title)]
    out += [_e(a.at, "ack", "", None, a.who, a.why) for a in inc.acks]
    out += [_e(a.at, "note", "", None, a.who, a.why) for a in inc.notes]
    # 第二十六條: the reporter named, and each change (who named them, why)
    out += [_e(r.at, "reporter", r.name, None, None if r.by == "collector" else r.by, r.why)
            for r in inc.reporters]
    if inc.resolved_at is not None:
        by = inc.resolved_by
        out.append(_e(inc.resolved_at, "resolved", "", None, by and by.who, by and by.why))
    if inc.closed is not None:
        out.append(_e(inc.closed.at, "closed", "", None, inc.closed.who, inc.closed.why))
    return out


def timeline(inc: Incident, now: datetime) -> list[dict]:
    """Everything that happened to the incident by `now`, oldest first (ties: ORDER);
    a deadline still in the future is in the deadlines table, not here."""
    entries = _people(inc) + _faults(inc) + _grades(inc) + _deadlines(inc) + _runbooks(inc)
    entries = [e for e in entries if e["at"] <= now]
    return sorted(entries, key=lambda e: (e["at"], ORDER.index(e["kind"]), e["subject"]))
