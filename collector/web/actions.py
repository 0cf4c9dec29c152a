"""The console's actions (POST forms): the same desk calls as the API
(collector/api_people.py), with who acted taken from the session. Each one
answers with a redirect back to the page (post/redirect/get), carrying a
message shown once: done, or the collector's reason for refusing (a 409)."""

from __future__ import annotations

from aiohttp import web

from ..api_base import STATE, STORE, Rejected, start_executions
from ..incidents import Refused
from ..person_reports import PersonReport, problems
from ..api_people import VALUE_FIELD, _person
from ..api_reports import REPORTS, _run
from ..incident_desk import ACTIONS
from ..incident_runbooks import PERSON_ACTIONS
from ..reports.model import EDITABLE
from .console import CONSOLE, COOKIE, HEADERS, action, back, lang_of, save_sessions, who

# What an ack says when the person wrote nothing (the API requires a why).
DEFAULT_ACK = {"zh": "已在运维台确认收到", "en": "acknowledged in the console"}


def _text(request: web.Request, field: str, required: bool = True) -> str | None:
    value = (request["form"].get(field) or "").strip()
    if required and not value:
        raise Rejected(400, f"{field}: missing, and it is required")
    return value or None


async def _done(request: web.Request, default: str, call) -> web.Response:
    """Run a desk call; a refusal (409) goes back to the page as a message."""
    try:
        await call
    except Rejected as r:
        if r.status != 409:
            raise
        return back(request, default, "error", str(r))
    return back(request, default, "ok", None)


@action("logout")
async def logout(request: web.Request) -> web.Response:
    """POST /console/logout: the session ends at once."""
    con, st = request.app[CONSOLE], request.app[STATE]
    s = con.sessions.end(request.cookies.get(COOKIE))
    await save_sessions(request)
    if s is not None:
        await st.run(request.app[STORE].record, st.clock(), "console.logout", s.user, {})
    response = web.HTTPSeeOther("/console/login", headers=HEADERS)
    response.del_cookie(COOKIE, path="/console")
    raise response


@action(None)
async def on_incident(request: web.Request) -> web.Response:
    """POST /console/incidents/{id}/{action}: ack, note, resolve, close, deadline (met),
    grade, criterion, withdraw; the form's fields as the API's body."""
    st = request.app[STATE]
    name, iid = request.match_info["action"], request.match_info["id"]
    if name not in ACTIONS:
        raise Rejected(404, f"no action {name!r}")
    field = {"note": "text", "deadline": "what"}.get(name, "why")
    text = _text(request, field, required=name != "ack") or DEFAULT_ACK[lang_of(request)]
    value = _text(request, VALUE_FIELD[name]) if name in VALUE_FIELD else None
    table = _text(request, "table", required=False)
    def act(incident_id, *args):          # desk.act takes the action first
        return st.desk.act(name, incident_id, *args)
    return await _done(request, f"/console/incidents/{iid}", _person(
        st, request, act, who(request), text, False, value, table))


@action(None)
async def on_step(request: web.Request) -> web.Response:
    """POST /console/incidents/{id}/steps/{step}/{confirm|skip|fail}."""
    st = request.app[STATE]
    name, iid, step = (request.match_info[k] for k in ("action", "id", "step"))
    if name not in PERSON_ACTIONS:
        raise Rejected(404, f"no action {name!r}")
    text = _text(request, "note" if name == "confirm" else "why", required=name != "confirm")
    text = text or {"zh": "已完成", "en": "done"}[lang_of(request)]
    return await _done(request, f"/console/incidents/{iid}", _person(
        st, request, st.desk.runbook_act, name, step, who(request), text,
        _text(request, "run", False), _text(request, "choice", False)))


@action("report")
async def report_fault(request: web.Request) -> web.Response:
    """POST /console/faults {branch, kind, where, sees, contact, cause}: a person
    reports a fault (collector/person_reports.py); to the incident it opened or joined."""
    st = request.app[STATE]
    report = PersonReport(branch=_text(request, "branch"), kind=_text(request, "kind"),
                          where=_text(request, "where"), sees=_text(request, "sees"),
                          who=who(request), contact=_text(request, "contact", False) or "",
                          cause=_text(request, "cause", False))
    bad = problems(report, {a.branch for a in st.config.agents})
    if bad:
        raise Rejected(400, f"{bad[0][0]}: {bad[0][1]}")
    try:
        inc = await st.run(st.desk.report_fault, report)
    except Refused as e:
        return back(request, "/console/incidents", "error", str(e))
    finally:
        start_executions(st)
    raise web.HTTPSeeOther(f"/console/incidents/{inc['id']}")


@action("draft")
async def draft_report(request: web.Request) -> web.Response:
    """POST /console/incidents/{id}/reports {kind}: a draft in the visitor's language."""
    iid = request.match_info["id"]
    kind = _text(request, "kind", False) or "written"
    return await _done(request, f"/console/incidents/{iid}", _run(
        request, "incident", request.app[REPORTS].draft, iid, kind, lang_of(request),
        who(request)))


@action("draft")
async def edit_report(request: web.Request) -> web.Response:
    """POST /console/reports/{rid}/edit: the fields a person fills (a draft only);
    only the ones changed are sent, so an edit records what it changed."""
    rid = request.match_info["rid"]
    desk = request.app[REPORTS]
    found = await request.app[STATE].run(desk.get, rid)
    if found is None:
        raise Rejected(404, f"no such report {rid!r}")
    form = request["form"]
    changes = {k: form[k].replace("\r\n", "\n") for k in EDITABLE[found.kind]
               if k in form and form[k].replace("\r\n", "\n") != found.fields.get(k, "")}
    if not changes:
        return back(request, f"/console/reports/{rid}", "ok", None)
    return await _done(request, f"/console/reports/{rid}", _run(
        request, "report", desk.edit, rid, changes, who(request)))


@action("issue")
async def issue_report(request: web.Request) -> web.Response:
    """POST /console/reports/{rid}/issue {why}: freeze it (leadership)."""
    rid = request.match_info["rid"]
    return await _done(request, f"/console/reports/{rid}", _run(
        request, "report", request.app[REPORTS].issue, rid, who(request), _text(request, "why")))
