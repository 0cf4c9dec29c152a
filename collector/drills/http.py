"""The drills side of the collector's API (issue 7; domain.md §5). Operators
only; who acted is the token's operator, never the body.

    GET  /api/v1/drills                        runs, oldest first (no timeline)
    GET  /api/v1/drills/scenarios              the scenarios this collector knows
    POST /api/v1/drills {scenario | scenario_yaml, branch, region, plan_yaml | plan_file, speed}  201
    GET  /api/v1/drills/{id}                   one run: timeline, incidents, text
    POST /api/v1/drills/{id}/end {why}         (default "drill over")
    POST /api/v1/drills/{id}/edit {set: {followups|assessment: text}}
    POST /api/v1/drills/{id}/archive {why}
    POST /api/v1/drills/{id}/plan {plan_yaml | plan_file}   attach or replace its plan
    GET  /api/v1/drills/{id}/report?lang=zh|en&format=md|html|pdf|json

400 a wrong parameter or file (naming it), 404 an unknown drill, 409 a drill
that has ended (end) or is archived (edit, archive), 501 a PDF where WeasyPrint
or the CJK font is missing. `add_drill_routes(app)`
registers them on the app `collector.api.build_app` made, and the loop that
injects each drill's events when they are due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import msgspec
from aiohttp import web

from agent.config import ConfigError

from ..api_base import STATE, STORE, Rejected, _json, _operator, authorised
from ..api_reports import _object, _run, _text, pdf_response
from ..engine.actions import REHEARSAL
from .desk import DRILL_OVER, DrillDesk
from .plan import parse_plan
from .scenario import load_scenarios, parse_scenario

DRILLS = web.AppKey("drills", DrillDesk)
LOOP = web.AppKey("drill_loop", asyncio.Task)
DRILL_EVERY = 0.25          # seconds between injection rounds while a drill runs
TYPES = {"md": "text/markdown", "html": "text/html"}
log = logging.getLogger("branchwatch.collector")


def add_drill_routes(app: web.Application) -> None:
    """Register the drill routes and the injection loop on a collector app."""
    st = app[STATE]
    config = st.config
    branches: dict[str, str] = {}
    for a in config.agents:
        branches.setdefault(a.branch, a.region)
    grader = st.desk.grader
    tz = config.reports.timezone or (grader.calendar.timezone if grader else "UTC")
    app[DRILLS] = DrillDesk(app[STORE], st.desk, load_scenarios(config.drills.folder), branches,
                            st.clock, tz, config.reports.language, config.drills.folder)
    app.router.add_get("/api/v1/drills", list_drills)
    app.router.add_get("/api/v1/drills/scenarios", list_scenarios)
    app.router.add_post("/api/v1/drills", start_drill)
    app.router.add_get("/api/v1/drills/{did}", get_drill)
    app.router.add_get("/api/v1/drills/{did}/report", drill_report)
    app.router.add_post("/api/v1/drills/{did}/{action}", act_on_drill)

    async def _start(app):
        app[LOOP] = asyncio.create_task(_loop(st, app[DRILLS]))

    async def _stop(app):
        app[LOOP].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[LOOP]
    app.on_startup.append(_start)
    app.on_cleanup.insert(0, _stop)       # before the writer stops


async def _loop(st, drills: DrillDesk) -> None:
    while True:
        # Only while there is something to do: the writer is the ingest path.
        if drills.running or st.desk.waiting[REHEARSAL]:
            try:
                await st.run(drills.tick)
            except Exception:             # a bad round must not end the loop for good
                log.exception("drill round failed")
        await asyncio.sleep(DRILL_EVERY)


def whole(drills: DrillDesk, drill_id: str) -> dict:
    """A run as the API shows it (on the writer thread: it reads incidents)."""
    run = drills.get(drill_id)
    incs = [drills.store.incident(i) for i in run.incidents]
    return {**run.summary(),
            "incidents": [{"id": i.id, "title": i.title, "status": i.status}
                          for i in incs if i is not None],
            "scenario_spec": run.scenario, "plan": run.plan, "fields": run.fields,
            "injections": run.injections, "archived_why": run.archived_why}


async def list_drills(request: web.Request) -> web.Response:
    """GET /api/v1/drills: every run, oldest first, without its timeline."""
    st = request.app[STATE]
    _operator(st, request)
    runs = await st.run(request.app[DRILLS].list)
    return _json({"drills": [r.summary() for r in runs]})


async def list_scenarios(request: web.Request) -> web.Response:
    """GET /api/v1/drills/scenarios: the scenarios of drills.folder."""
    _operator(request.app[STATE], request)
    return _json({"scenarios": [
        {"id": s.id, "title": s.title, "title_zh": s.title_zh, "scope": s.scope,
         "source": s.source, "runbook": s.runbook, "events": len(s.events)}
        for s in sorted(request.app[DRILLS].scenarios.values(), key=lambda s: s.id)]})


def plan_of(drills: DrillDesk, text, file_name) -> tuple[object, str]:
    """The plan a request gives: its YAML text, or the name of a file of plans/
    (nothing else: a name is never a path); (None, "") when it gives none."""
    if text is not None and file_name is not None:
        raise Rejected(400, "plan_yaml, plan_file: give one of them, not both")
    if file_name is not None:
        if not isinstance(file_name, str):
            raise Rejected(400, f"plan_file: expected text, got {type(file_name).__name__}")
        files = drills.plans()
        if file_name not in files:
            raise Rejected(400, f"plan_file: no plan {file_name!r}; known: "
                                f"{', '.join(files) or 'none'}")
        return _parsed(parse_plan, files[file_name].read_text(encoding="utf-8"),
                       f"plans/{file_name}"), f"plans/{file_name}"
    if text is not None:
        if not isinstance(text, str):
            raise Rejected(400, f"plan_yaml: expected text, got {type(text).__name__}")
        return _parsed(parse_plan, text, "plan"), "uploaded"
    return None, ""


def _parsed(parse, text: str, what: str):
    try:
        return parse(text, what)
    except ConfigError as e:
        raise Rejected(400, str(e))


async def start_drill(request: web.Request) -> web.Response:
    """POST /api/v1/drills: start a drill (201 with the run)."""
    st = request.app[STATE]
    who = authorised(st, request, "drill")      # collector/roles.py: not a viewer's act
    body = await _object(request)
    if (body.get("scenario") is None) == (body.get("scenario_yaml") is None):
        raise Rejected(400, "scenario: give a scenario id, or scenario_yaml (a file's text)")
    scenario = (_text(body, "scenario") if body.get("scenario") is not None
                else _parsed(parse_scenario, _text(body, "scenario_yaml"), "scenario"))
    drills = request.app[DRILLS]
    plan, _ = plan_of(drills, body.get("plan_yaml"), body.get("plan_file"))
    speed = body.get("speed", 1)
    if isinstance(speed, bool) or not isinstance(speed, (int, float)):
        raise Rejected(400, f"speed: expected a number, got {speed!r}")
    run = await _run(request, "drill", drills.start, scenario, _text(body, "branch", False),
                     _text(body, "region", False), plan, float(speed), who)
    data = await _run(request, "drill", whole, drills, run.id)
    return web.Response(status=201, body=msgspec.json.encode(data),
                        content_type="application/json")


async def get_drill(request: web.Request) -> web.Response:
    """GET /api/v1/drills/{id}."""
    _operator(request.app[STATE], request)
    return _json(await _run(request, "drill", whole, request.app[DRILLS],
                            request.match_info["did"]))


async def drill_report(request: web.Request) -> web.Response:
    """GET /api/v1/drills/{id}/report?lang=zh|en&format=md|html|pdf|json."""
    _operator(request.app[STATE], request)
    drills, did = request.app[DRILLS], request.match_info["did"]
    fmt, lang = request.query.get("format", "md"), request.query.get("lang")
    if fmt == "json":
        run = await _run(request, "drill", drills.get, did)
        return _json(await _run(request, "drill", drills.data, run, lang))
    if fmt == "pdf":       # the HTML as the incident reports print it (same renderer)
        html = await _run(request, "drill", drills.report, did, lang, "html")
        return await pdf_response(html, f"{did}.pdf")
    text = await _run(request, "drill", drills.report, did, lang, fmt)
    return web.Response(text=text, content_type=TYPES[fmt], charset="utf-8")


async def act_on_drill(request: web.Request) -> web.Response:
    """POST /api/v1/drills/{id}/end {why} | /edit {set: {...}} | /archive {why}
    | /plan {plan_yaml | plan_file}."""
    st = request.app[STATE]
    who = authorised(st, request, "drill")
    action, did = request.match_info["action"], request.match_info["did"]
    if action not in ("end", "edit", "archive", "plan"):
        raise Rejected(404, f"no action {action!r}; expected end, edit, archive or plan")
    body = await _object(request)
    drills = request.app[DRILLS]
    if action == "plan":
        plan, source = plan_of(drills, body.get("plan_yaml"), body.get("plan_file"))
        if plan is None:
            raise Rejected(400, "plan_yaml: give a plan's text, or plan_file (a file of "
                                "plans/ beside the scenarios)")
        await _run(request, "drill", drills.attach_plan, did, plan, who, source)
    elif action == "end":
        await _run(request, "drill", drills.end, did, who,
                   _text(body, "why", False) or DRILL_OVER)
    elif action == "archive":
        await _run(request, "drill", drills.archive, did, who, _text(body, "why"))
    else:
        changes = body.get("set")
        if not isinstance(changes, dict) or not changes:
            raise Rejected(400, "set: expected an object of field: text, at least one")
        await _run(request, "drill", drills.edit, did, changes, who)
    return _json(await _run(request, "drill", whole, drills, did))
