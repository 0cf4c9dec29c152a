"""The operators' side of the collector's API: incidents, grading actions,
runbooks (issues 4-6). Every handler needs an operator token; who acted is
the token's operator, never the body; the token's roles decide what it may do
(collector/roles.py, 403 with the reason); refusals are 4xx with one line.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from aiohttp import web

from . import incident_reads as reads

from .api_base import STATE, Rejected, _json, authorised, read_json, start_executions
from .grader import GRADING_ACTIONS
from .incident_desk import ACTIONS
from .incident_reads import DEFAULT_LIMIT, IncidentQuery, QueryError, StoreReaders
from .incident_runbooks import PERSON_ACTIONS
from .incident_codec import encode as encode_incidents
from .incidents import Refused
from .person_reports import PersonReport, problems
from .runbooks.schema import Grant

_State = object   # collector.api._State (typing only: avoids an import cycle)


READERS = web.AppKey("readers", StoreReaders)


async def read(request: web.Request, fn, *args):
    """fn(connection, *args) on the store's reader connections: never the writer's
    thread, so a read waits on no ingest and no ingest on a read. It first lets
    the engine apply what was acknowledged before it (at most a second), so an
    operator reads what the agents were told is stored."""
    engine = request.app[STATE].engine
    if engine is not None:
        await engine.caught_up()
    return await request.app[READERS].run(fn, *args)


def region_branches(st: _State, region: str) -> frozenset[str]:
    """The branches of a region, as the config enrols them (never as an agent says)."""
    return frozenset(a.branch for a in st.config.agents if a.region == region)


def incident_query(st: _State, q, zone=None, limit: int | None = None) -> IncidentQuery:
    """A list query from URL parameters: status, drill, branch, region, since, until,
    grade, q (words in the title or id), limit, after, order; Rejected(400) naming
    the parameter that is wrong. `zone`: times without an offset are in it (the
    console's forms); without a zone they must carry their offset (the API)."""
    drill = DRILL_QUERY.get(q.get("drill", "0"))
    if drill is None:
        raise Rejected(400, f"drill: expected 0, 1 (drills too) or only, got {q['drill']!r}")
    branches = None
    if q.get("branch"):
        branches = frozenset(b for b in q.getall("branch") if b)
    if q.get("region"):
        known = sorted({a.region for a in st.config.agents} - {""})
        if q["region"] not in known:
            raise Rejected(400, f"region: expected one of {', '.join(known) or '(none enrolled)'}"
                                f", got {q['region']!r}")
        mine = region_branches(st, q["region"])
        branches = mine if branches is None else branches & mine
    since, until = _time(q, "since", zone), _time(q, "until", zone)
    grade = q.get("grade") or None
    if grade is not None:
        tables = st.desk.grader.tables if st.desk.grader else {}
        known = {g for t in tables.values() for g in t.grades}
        if grade != "none" and grade not in known:
            raise Rejected(400, f"grade: expected none or one of "
                                f"{', '.join(sorted(known)) or '(no grading tables)'}, "
                                f"got {grade!r}")
    try:
        limit = int(q.get("limit", limit or DEFAULT_LIMIT))
    except ValueError:
        raise Rejected(400, f"limit: expected a whole number, got {q['limit']!r}")
    order = q.get("order", "oldest")
    if order not in ("oldest", "newest"):
        raise Rejected(400, f"order: expected oldest or newest, got {order!r}")
    try:
        return IncidentQuery(status=q.get("status") or None, drill=drill, branches=branches,
                             since=since, until=until, grade=grade,
                             text=q.get("q", "").strip() or None, limit=limit,
                             after=q.get("after") or None, newest_first=order == "newest")
    except QueryError as e:
        raise Rejected(400, str(e))


def _time(q, name: str, zone) -> datetime | None:
    """An ISO 8601 time parameter (a date alone is its midnight), or None."""
    raw = q.get(name)
    if not raw:
        return None
    try:
        t = datetime.fromisoformat(raw)
    except ValueError:
        raise Rejected(400, f"{name}: expected an ISO 8601 time, got {raw[:60]!r}")
    if t.tzinfo is None:
        if zone is None:
            raise Rejected(400, f"{name}: expected a time with its UTC offset, got {raw!r}")
        t = t.replace(tzinfo=zone)
    return t


async def list_incidents(request: web.Request) -> web.Response:
    """GET /api/v1/incidents[?status=open|resolved|closed][&drill=1|only][&branch=B]
    [&region=R][&since=T][&until=T][&grade=G|none][&q=WORDS][&limit=N][&after=CURSOR]
    [&order=newest] (operators).
    Drill incidents are left out unless asked for (domain.md §5). A page holds at
    most `limit` (default 500); `next`, when there are more, is the cursor of the next page."""
    st: _State = request.app[STATE]
    authorised(st, request, "read")
    page, cursor = await read(request, reads.list_incidents, incident_query(st, request.query))
    return _json({"incidents": page, **({"next": cursor} if cursor else {})})

DRILL_QUERY = {"0": "no", "false": "no", "1": "yes", "true": "yes", "only": "only"}

async def get_incident(request: web.Request) -> web.Response:
    """GET /api/v1/incidents/{id} (operators); 404 when unknown."""
    st: _State = request.app[STATE]
    authorised(st, request, "read")
    inc = await read(request, reads.incident, request.match_info["id"])
    if inc is None:
        raise Rejected(404, f"no incident {request.match_info['id']!r}")
    return _json(inc)

# What each action needs in its body besides who (the token): the text field,
# and for grading actions the value field (grader.GRADING_ACTIONS).
TEXT_FIELD = {"note": "text", "deadline": "what"}
VALUE_FIELD = {**GRADING_ACTIONS, "reporter": "name", "clear": "check"}

async def act_on_incident(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/{action}.

    ack|resolve|close {why}; note {text}; deadline {key, what} (met, with what
    was sent); criterion|withdraw {criterion, why}; grade {grade, why[, table]};
    reporter {name, why} (報告責任人, 第二十六條: leadership); clear {check, why}
    (a fault a person reported is over).
    Who acted is the token's operator, never the body; 409 when the
    incident's state refuses it (with the reason), 404 when unknown.
    """
    st: _State = request.app[STATE]
    action, incident_id = request.match_info["action"], request.match_info["id"]
    if action not in ACTIONS:
        authorised(st, request, "read")
        raise Rejected(404, f"no action {action!r}; expected one of {', '.join(ACTIONS)}")
    # domain.md §4 (第四條): grading by hand, ending the response and closing are
    # leadership's, here as on the console (collector/roles.py).
    who = authorised(st, request, action)
    body = await _json_body(st, request)
    field = TEXT_FIELD.get(action, "why")
    text = _required_text(body, field)
    value = _required_text(body, VALUE_FIELD[action]) if action in VALUE_FIELD else None
    table = body.get("table")
    if table is not None and not isinstance(table, str):
        raise Rejected(400, "table: expected a table name (text)")
    force = body.get("force", False) is True
    try:
        inc = await st.run(st.desk.act, action, incident_id, who, text, force, value, table)
    except KeyError:
        raise Rejected(404, f"no incident {incident_id!r}")
    except Refused as e:
        raise Rejected(409, str(e))
    return _json(inc)

def _required_text(body: dict, field: str) -> str:
    text = body.get(field)
    if text is not None and not isinstance(text, str):
        raise Rejected(400, f"{field}: expected text, got {type(text).__name__} {text!r}")
    if text is None or not text.strip():
        raise Rejected(400, f"{field}: missing, and it is required")
    return text


async def report_fault(request: web.Request) -> web.Response:
    """POST /api/v1/faults {branch, kind, where, sees[, contact][, cause]}: a person
    reports a fault (person_reports.py); 201 with the incident it opened or joined.
    Who reported it is the token's operator, never the body."""
    st: _State = request.app[STATE]
    who = authorised(st, request, "report")
    body = await _json_body(st, request)
    report = PersonReport(
        branch=_required_text(body, "branch"), kind=_required_text(body, "kind"),
        where=_required_text(body, "where"), sees=_required_text(body, "sees"), who=who,
        contact=_optional_text(body, "contact") or "", cause=_optional_text(body, "cause"))
    bad = problems(report, {a.branch for a in st.config.agents})
    if bad:
        raise Rejected(400, f"{bad[0][0]}: {bad[0][1]}")
    try:
        inc = await st.run(st.desk.report_fault, report)
    except Refused as e:
        raise Rejected(409, str(e))
    finally:
        start_executions(st)
    return web.Response(status=201, body=encode_incidents(inc), content_type="application/json")


def _optional_text(body: dict, field: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise Rejected(400, f"{field}: expected text, got {type(value).__name__} {value!r}")
    return value.strip() if value and value.strip() else None


async def start_runbook(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/runbooks {runbook, why}: start one by hand."""
    st: _State = request.app[STATE]
    who = authorised(st, request, "start")
    body = await _json_body(st, request)
    runbook, why = _required_text(body, "runbook"), _required_text(body, "why")
    return _json(await _person(st, request, st.desk.runbook_act, "start", runbook, who, why))

async def act_on_step(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/steps/{step}/{confirm|skip|fail}
    {note (confirm) | why, choice (a decision), run (default: the run at that step)}."""
    st: _State = request.app[STATE]
    action, step = request.match_info["action"], request.match_info["step"]
    who = authorised(st, request, action if action in PERSON_ACTIONS else "read")
    if action not in PERSON_ACTIONS:
        raise Rejected(404, f"no action {action!r}; expected one of {', '.join(PERSON_ACTIONS)}")
    body = await _json_body(st, request)
    text = _required_text(body, "note" if action == "confirm" else "why")
    extra = {k: body.get(k) for k in ("run", "choice")}
    for k, v in extra.items():
        if v is not None and not isinstance(v, str):
            raise Rejected(400, f"{k}: expected text")
    return _json(await _person(st, request, st.desk.runbook_act, action, step, who, text,
                               extra["run"], extra["choice"]))

async def list_runbooks(request: web.Request) -> web.Response:
    """GET /api/v1/runbooks: the runbooks this collector knows (operators)."""
    st: _State = request.app[STATE]
    authorised(st, request, "read")
    books = st.desk.runbooks.runbooks if st.desk.runbooks else {}
    return _json({"runbooks": [{"id": rb.id, "title": rb.title, "source": rb.source,
                                "steps": [s.id for s in rb.steps],
                                # domain.md §4: each pre-authorisation, who granted it, when
                                "preauthorised": [{"step": s.id, **msgspec.structs.asdict(
                                    s.preauthorised)} for s in rb.steps
                                    if isinstance(s.preauthorised, Grant)]}
                               for rb in sorted(books.values(), key=lambda rb: rb.id)]})

async def _json_body(st: _State, request: web.Request) -> dict:
    return await read_json(st, request)      # bounded depth (api_base.py)


async def _person(st: _State, request: web.Request, fn, *args):
    """Run a person's action on the writer; 404 unknown incident, 409 refused."""
    incident_id = request.match_info["id"]
    try:
        return await st.run(fn, incident_id, *args)
    except KeyError:
        raise Rejected(404, f"no incident {incident_id!r}")
    except Refused as e:
        raise Rejected(409, str(e))
    finally:
        start_executions(st)
