"""A report's fields: machine facts drawn from the incident, and the fields only
a person can fill (domain.md §3). Pure: the incident, a scope, the settings
and `now` in; plain JSON data out (times as RFC 3339 text), so what is
stored renders exactly as what was built.

Kinds and what they hold (every section a person can write while the report is
a draft: SECTIONS; those marked + are prefilled from the record in the
report's language, prefill.py):
- written (第二十八條): time+ (start, grades reached and when), place+
  (branches, regions), symptoms+ (faults), affected business+ (outages,
  durations), cause analysis+ (diagnosis, runbook decisions, criteria),
  preliminary consequences, measures taken+ (runbook steps done, the agents'
  actions, acknowledgements), proposed next steps+ (steps still pending),
  the sign-off block (reporting unit, signer, contact person and telephone:
  the settings), anything else, items needing the regulator's coordination.
- progress (第二十七條; grade I every 2 h): what changed+ since the last issued
  report (new faults, faults cleared, grade changes), affected business+,
  measures+, plans that failed+ (第三十條), the situation+, next steps+,
  coordination; the deadlines still due.
- summary (第三十四條): assessment (symptoms+, scope+, handling time and
  process+, losses), review of the handling+ (failed steps, missed or late
  deadlines: was the plan usable), root cause, recommendations; only once the
  incident has ended (第三十三條).
The facts themselves (check ids, raw errors, rule ids, the timeline) are kept
beside the text and laid out in the annex (附件：技术细节), not in the body.
Every kind names the reporter (報告責任人, 第二十六條) and each change of them.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from ..incident_codec import from_dict
from ..incidents import Incident
from . import facts as F
from .language import localise
from .facts import Scope
from .prefill import prefill
from .settings import ReportSettings
from .texts import text_of
from .timeline import timeline

# The sign-off block and the contact details (第二十八條: reporting unit, contact
# person and details), from the settings; a person may change them on a draft.
CONTACT = ("unit", "signer", "contact", "phone")
# Every section a person may write, per kind, in the report's order (第二十八條,
# 第二十七條, 第三十四條); all text. Sections the incident's record can start are
# prefilled (PREFILLED) in the report's language; the facts behind them stay in
# the annex (附件：技术细节).
SECTIONS = {
    "written": ("time_text", "place_text", "symptoms_text", "business_text",
                "cause_analysis", "consequences", "measures_text", "next_steps", "other",
                "coordination"),
    "progress": ("changes_text", "business_text", "measures_text", "plan_failures_text",
                 "situation", "next_steps", "coordination"),
    "summary": ("symptoms_text", "scope_text", "handling_text", "losses", "plan_review",
                "root_cause", "recommendations"),
}
PREFILLED = frozenset({"time_text", "place_text", "symptoms_text", "business_text",
                       "cause_analysis", "measures_text", "next_steps", "changes_text",
                       "plan_failures_text", "scope_text", "handling_text", "plan_review",
                       "situation"})
EDITABLE = {kind: CONTACT + names for kind, names in SECTIONS.items()}
MAX_TEXT = 20_000            # characters in one edited field


class NotYet(Exception):
    """A report the incident's state does not allow yet (-> 409)."""


def plain(data):
    """JSON-ready data: datetimes as RFC 3339 text, tuples as lists."""
    return msgspec.json.decode(msgspec.json.encode(data))


def _incident(inc: Incident, language: str) -> dict:
    return {"id": inc.id, "title": text_of(inc, "title", language), "branch": inc.branch,
            "status": inc.status, "started_at": inc.started_at, "resolved_at": inc.resolved_at,
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
    fields = facts_of(kind, incident, scope, settings, language, now, since, since_report,
                      progress_since)
    return with_sections(fields, kind, language, carried)


def with_sections(fields: dict, kind: str, language: str, carried: dict | None = None
                  ) -> dict:
    """The facts with every section a person edits: the record's own words for each
    section it can start (prefill.py); a person's text from the previous draft of
    this kind wins (carried_text keeps only what they wrote)."""
    fields["prefilled"] = prefill(fields, [n for n in SECTIONS[kind] if n in PREFILLED],
                                  language)
    for name in SECTIONS[kind]:
        fields[name] = (carried or {}).get(name) or fields["prefilled"].get(name, "")
    return fields


def facts_of(kind: str, incident: dict, scope: Scope, settings: ReportSettings, language: str,
             now: datetime, since: datetime | None = None, since_report: str | None = None,
             progress_since: datetime | None = None) -> dict:
    """The machine facts of a new draft of `kind` (build), as plain data."""
    inc = from_dict(incident)
    if kind == "summary" and inc.status == "open":
        # 第三十三條: the incident ends when service is back; the summary follows.
        raise NotYet(f"{inc.id} is still open: the closing summary (第三十四條) follows the "
                     "end of the incident; draft a written or progress report instead")
    fields: dict = {"kind": kind, "language": language, "timezone": scope.timezone,
                    "as_of": now, "incident": _incident(inc, language),
                    **{name: getattr(settings, name) for name in CONTACT}}
    fields.update(_SECTIONS[kind](inc, scope, now, since or inc.started_at, language))
    if kind == "progress":
        after = progress_since or inc.started_at
        fields["plan_failures"] = [s for s in F.failed_steps(inc, language) if s["at"] > after]
    fields["reporters"] = F.reporters(inc)          # 第二十六條, every kind
    if kind == "progress":
        fields["since_report"] = since_report
    return plain(localise(fields, inc, language))


def _written(inc: Incident, scope: Scope, now: datetime, since: datetime, lang: str) -> dict:
    return {"grades": F.grades(inc), "grade_history": F.grade_history(inc),
            "place": F.place(inc, scope), "symptoms": F.symptoms(inc),
            "business": F.business(inc, scope, now), "cause_facts": F.cause_facts(inc, lang),
            "measures": F.measures(inc, language=lang), "pending": F.pending(inc, lang)}


def _progress(inc: Incident, scope: Scope, now: datetime, since: datetime, lang: str) -> dict:
    return {"since": since, "grades": F.grades(inc),
            "grade_changes": [g for g in F.grade_history(inc) if g["at"] > since],
            "new_faults": F.symptoms(inc, since), "cleared": F.cleared(inc, since),
            "business": [b for b in F.business(inc, scope, now)
                         if b["end"] is None or b["end"] > since],
            "measures": F.measures(inc, since, lang), "pending": F.pending(inc, lang),
            "deadlines": F.deadlines(inc, lambda d: d.status != "met")}


def _summary(inc: Incident, scope: Scope, now: datetime, since: datetime, lang: str) -> dict:
    return {"grades": F.grades(inc), "grade_history": F.grade_history(inc),
            "place": F.place(inc, scope), "symptoms": F.symptoms(inc),
            "business": F.business(inc, scope, now), "handling": F.handling(inc, now),
            "runbooks": F.runbooks(inc, lang), "failed_steps": F.failed_steps(inc, lang),
            "measures": F.measures(inc, language=lang),
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
    """The person's text a new draft of the same kind keeps: what they wrote or changed,
    not the record's prefilled words (a new draft draws those afresh, with what happened
    since) nor the contact details (from the settings afresh)."""
    before = fields.get("prefilled") or {}
    return {k: fields[k] for k in SECTIONS[fields["kind"]]
            if fields.get(k) and fields[k] != before.get(k)}


def with_defaults(fields: dict) -> dict:
    """Fields as the templates read them: a report drafted before a section or the
    sign-off block existed reads them as empty."""
    names = ("prefilled",) + CONTACT + SECTIONS[fields["kind"]]
    return {**{n: {} if n == "prefilled" else "" for n in names}, **fields}
