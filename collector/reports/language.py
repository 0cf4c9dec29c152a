"""A report's facts in the report's language: the facts (facts.py, timeline.py) carry
the texts as the engine and the data files hold them, in English; a zh report must
say its incident title, runbook titles, step titles, roles and grade reasons in
Chinese (collector/texts.py chooses; the runbook frozen on the run has both).

`localise(fields, inc, language)` rewrites those texts in place of a new draft's
fields; everything a person typed, and a device's own words, stay as written.
"""

from __future__ import annotations

from ..incidents import Incident
from ..texts import incident_title, role_name, said


def _step(inc: Incident, run_id: str | None, step_id: str | None):
    run = next((r for r in inc.runbooks if r.id == run_id), None)
    if run is None or step_id is None:
        return None
    try:
        return run.runbook.step(step_id)
    except KeyError:
        return None


def _runbook(inc: Incident, run_id: str | None):
    run = next((r for r in inc.runbooks if r.id == run_id), None)
    return run.runbook if run is not None else None


def localise(fields: dict, inc: Incident, language: str) -> dict:
    """The draft's machine-written texts in `language` (English needs nothing)."""
    if language == "en":
        return fields
    if isinstance(fields.get("incident"), dict):
        fields["incident"]["title"] = incident_title(fields["incident"]["title"], language)
    for key in ("measures", "pending", "failed_steps", "plan_failures"):
        for row in fields.get(key) or []:
            step = _step(inc, row.get("run"), row.get("step"))
            if step is not None:
                row["title"] = said(step, "title", language)
                if step.kind == "decision" and row.get("choice"):
                    row["choice"] = (step.options_zh or {}).get(row["choice"], row["choice"])
            if row.get("role"):
                row["role"] = role_name(row["role"], language)
    for row in fields.get("runbooks") or []:
        rb = _runbook(inc, row.get("id"))
        if rb is not None:
            row["title"] = said(rb, "title", language)
    for row in fields.get("grades") or []:
        g = inc.grades.get(row.get("table"))
        zh = list(getattr(g, "reasons_zh", ()) or ())
        if zh:
            row["reasons"] = zh[:3]
    for row in fields.get("cause_facts") or []:
        if row.get("kind") == "decision":
            run_id, _, rest = row["subject"].partition(" ")
            step = _step(inc, run_id, rest.split(":", 1)[0])
            if step is not None:
                row["subject"] = f"{run_id} {step.id}: {said(step, 'title', language)}"
    for e in fields.get("timeline") or []:
        _timeline_entry(e, inc, language)
    return fields


def timeline_entry(e: dict, inc: Incident, language: str) -> None:
    """One timeline entry (reports/timeline.py) of `inc` in `language`, in place."""
    if language != "en":
        _timeline_entry(e, inc, language)


def _timeline_entry(e: dict, inc: Incident, language: str) -> None:
    kind = e.get("kind")
    if kind == "opened" and e.get("text"):
        e["text"] = incident_title(e["text"], language)
    elif kind == "runbook":
        run_id = (e.get("subject") or "").split(" ", 1)[0]
        rb = _runbook(inc, run_id)
        if rb is not None:
            e["text"] = said(rb, "title", language)
    elif kind == "step":
        run_id, _, rest = (e.get("subject") or "").partition(" ")
        step = _step(inc, run_id, rest.split(":", 1)[0])
        if step is not None:
            e["subject"] = f"{run_id} {step.id}: {said(step, 'title', language)}"
