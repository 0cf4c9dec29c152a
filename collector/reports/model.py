"""A report's fields: machine facts drawn from the incident, and the fields only
a person can fill (domain.md §3). Pure: the incident, a scope, the settings
and `now` in; plain JSON data out (times as RFC 3339 text), so what is
stored renders exactly as what was built.

Kinds and what they hold:
- written (第二十八條): time (start, grades reached and when), place (branches,
  regions), symptoms (faults), affected business (business-stopping outages,
  regions, durations), cause analysis (diagnosis, runbook decisions, criteria;
  text editable), preliminary consequences*, measures taken (steps done with
  who and when, agent actions), proposed next steps* (with the steps still
  pending), reporting unit*, contact person* and details*, anything else*,
  items needing the regulator's coordination*.
- progress (第二十七條; grade I every 2 h): what changed since the last issued
  report of the incident: new faults, faults cleared, grade changes, steps done,
  plans that failed (第三十條);
  deadlines still due; the situation*, next steps*, coordination*.
- summary (第三十四條): assessment (symptoms, scope, handling time and process,
  losses*), review of the handling (runbooks, failed steps, missed or late
  deadlines; was the plan usable*), root cause*, recommendations*, and the
  timeline. Only once the incident has ended (第三十三條).
Every kind names the reporter (報告責任人, 第二十六條) and each change of them.
(* editable until the report is issued.)
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ..incident_codec import from_dict
from ..incidents import Incident
from . import facts as F
from .language import localise
from .facts import Scope
from .settings import ReportSettings
from .timeline import timeline

CONTACT = ("unit", "contact", "phone")
# The fields a person fills, per kind (第二十八條, 第三十四條); all text.
EDITABLE = {
    "written": CONTACT + ("cause_analysis", "consequences", "next_steps", "other",
                          "coordination"),
    "progress": CONTACT + ("situation", "next_steps", "coordination"),
    "summary": CONTACT + ("losses", "plan_review", "root_cause", "recommendations"),
}
MAX_TEXT = 20_000            # characters in one edited field


class NotYet(Exception):
    """A report the incident's state does not allow yet (-> 409)."""


def plain(data):
    """JSON-ready data: datetimes as RFC 3339 text, tuples as lists."""
    return msgspec.json.decode(msgspec.json.encode(data))


def _incident(inc: Incident) -> dict:
    return {"id": inc.id, "title": inc.title, "branch": inc.branch, "status": inc.status,
            "started_at": inc.started_at, "resolved_at": inc.resolved_at,
            "closed_at": inc.closed.at if inc.closed else None}


def build(kind: str, incident: dict, scope: Scope, settings: ReportSettings, language: str,
          now: datetime, since: datetime | None = None, since_report: str | None = None,
          carried: dict | None = None, progress_since: datetime | None = None) -> dict:
    """The fields of a new draft of `kind` for the incident (incident_codec.to_dict,
    datetimes or their text). `since`: when the last issued report was drawn (a
    progress report tells what changed after it). `carried`: the person's text
    from the previous report of this kind, kept in the new draft. `progress_since`:
    when the last issued progress report was drawn (第三十條: a failed plan is an
    entry in the next progress report, whatever was issued in between)."""
    inc = from_dict(incident)
    if kind == "summary" and inc.status == "open":
        # 第三十三條: the incident ends when service is back; the summary follows.
        raise NotYet(f"{inc.id} is still open: the closing summary (第三十四條) follows the "
                     "end of the incident; draft a written or progress report instead")
    fields: dict = {"kind": kind, "language": language, "timezone": scope.timezone,
                    "as_of": now, "incident": _incident(inc),
                    "unit": settings.unit, "contact": settings.contact, "phone": settings.phone}
    for name in EDITABLE[kind]:
        if name not in CONTACT:
            fields[name] = (carried or {}).get(name, "")
    fields.update(_SECTIONS[kind](inc, scope, now, since or inc.started_at))
    if kind == "progress":
        after = progress_since or inc.started_at
        fields["plan_failures"] = [s for s in F.failed_steps(inc) if s["at"] > after]
    fields["reporters"] = F.reporters(inc)          # 第二十六條, every kind
    if kind == "progress":
        fields["since_report"] = since_report
    return plain(localise(fields, inc, language))


def _written(inc: Incident, scope: Scope, now: datetime, since: datetime) -> dict:
    return {"grades": F.grades(inc), "grade_history": F.grade_history(inc),
            "place": F.place(inc, scope), "symptoms": F.symptoms(inc),
            "business": F.business(inc, scope, now), "cause_facts": F.cause_facts(inc),
            "measures": F.measures(inc), "pending": F.pending(inc)}


def _progress(inc: Incident, scope: Scope, now: datetime, since: datetime) -> dict:
    return {"since": since, "grades": F.grades(inc),
            "grade_changes": [g for g in F.grade_history(inc) if g["at"] > since],
            "new_faults": F.symptoms(inc, since), "cleared": F.cleared(inc, since),
            "business": [b for b in F.business(inc, scope, now)
                         if b["end"] is None or b["end"] > since],
            "measures": F.measures(inc, since), "pending": F.pending(inc),
            "deadlines": F.deadlines(inc, lambda d: d.status != "met")}


def _summary(inc: Incident, scope: Scope, now: datetime, since: datetime) -> dict:
    return {"grades": F.grades(inc), "grade_history": F.grade_history(inc),
            "place": F.place(inc, scope), "symptoms": F.symptoms(inc),
            "business": F.business(inc, scope, now), "handling": F.handling(inc, now),
            "runbooks": F.runbooks(inc), "failed_steps": F.failed_steps(inc),
            "measures": F.measures(inc),
            # missed, or met only after they were missed
            "late_deadlines": F.deadlines(inc, lambda d: d.missed_at is not None),
            "timeline": timeline(inc, now)}


_SECTIONS = {"written": _written, "progress": _progress, "summary": _summary}


def edit(fields: dict, changes: dict) -> tuple[dict, dict]:
    """The fields with a person's changes applied, and the changes that differ.
    ValueError (one line) for a field a machine fills or a value that is not text."""
    allowed = EDITABLE[fields["kind"]]
    for name, value in changes.items():
        if name not in allowed:
            raise ValueError(f"{name}: not a field a person fills in a {fields['kind']} "
                             f"report; expected one of {', '.join(allowed)}")
        if not isinstance(value, str):
            raise ValueError(f"{name}: expected text, got {type(value).__name__}")
        if len(value) > MAX_TEXT:
            raise ValueError(f"{name}: {len(value)} characters is over the limit of "
                             f"{MAX_TEXT}")
    changed = {k: v for k, v in changes.items() if fields.get(k) != v}
    return {**fields, **changed}, changed


def carried_text(fields: dict) -> dict:
    """The person's text a new draft of the same kind keeps (not the contact details,
    which come from the settings afresh)."""
    return {k: fields.get(k, "") for k in EDITABLE[fields["kind"]] if k not in CONTACT}
