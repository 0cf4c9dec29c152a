"""The hospital's side of the collector's API (domain.md §2.3). Operators only; who
acted is the token's operator, never the body; refusals are 4xx with one line.

    GET  /api/v1/hospital                      the outage now, the core, restore tests
    POST /api/v1/hospital/outage/declare {why} IT declares a whole-network outage
    POST /api/v1/hospital/outage/over {why}    IT says the declared outage is over
    POST /api/v1/hospital/notices {kind: manual|resume, text[, incident][, departments]}
    GET  /api/v1/hospital/restore-tests        the monthly restore tests, next due
    POST /api/v1/hospital/restore-tests {restored, result: passed|failed[, at][, note]}  201

404 when the collector has no `hospital:` section; 409 when the state refuses
(an outage declared twice, a notice with no outage).
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web
from prometheus_client.core import GaugeMetricFamily

from ..api_base import STATE, Rejected, _json, authorised, read_json
from ..incidents import Refused
from .notices import ANNOUNCEMENTS
from .outage import DECLARER, OBSERVER
from .restore_tests import RestoreTest, problems


def add_hospital_routes(app: web.Application) -> None:
    """Register the hospital routes (and its /metrics) on a collector app."""
    st = app[STATE]
    app.router.add_get("/api/v1/hospital", hospital_status)
    app.router.add_post("/api/v1/hospital/outage/{action}", outage)
    app.router.add_post("/api/v1/hospital/notices", notice)
    app.router.add_get("/api/v1/hospital/restore-tests", list_tests)
    app.router.add_post("/api/v1/hospital/restore-tests", record_test)
    if st.desk.hospital is not None and st.desk.hospital.register is not None:
        st.metrics.registry.register(RestoreTestMetrics(st.desk.hospital, st.clock))


def _hospital(st):
    if st.desk.hospital is None:
        raise Rejected(404, "this collector watches no hospital (no hospital: section)")
    return st.desk.hospital


async def _run(st, fn, *args):
    try:
        return await st.run(fn, *args)
    except KeyError as e:
        raise Rejected(404, f"no incident {e.args[0]!r}")
    except Refused as e:
        raise Rejected(409, str(e))


def _text(body: dict, field: str, required: bool = True) -> str:
    v = body.get(field)
    if v is not None and not isinstance(v, str):
        raise Rejected(400, f"{field}: expected text, got {type(v).__name__} {v!r}")
    if required and (v is None or not v.strip()):
        raise Rejected(400, f"{field}: missing, and it is required")
    return (v or "").strip()


async def hospital_status(request: web.Request) -> web.Response:
    """GET /api/v1/hospital: is the whole network out (declared, observed), and the
    restore tests' status."""
    st = request.app[STATE]
    authorised(st, request, "read")
    h = _hospital(st)

    def read():
        out = {"branch": h.branch, "core": {"members": [m.label() for m in h.core.members],
                                            "needed": h.core.needed() if h.core.members else 0},
               "outage": None}
        held = h.outage(st.desk.book)
        if held is not None:
            inc, f = held
            out["outage"] = {"incident": inc.id, "since": f.spans[-1][0].isoformat(),
                             "declared": inc.faults.get((DECLARER, f.check)) is not None
                             and inc.faults[(DECLARER, f.check)].active,
                             "observed": inc.faults.get((OBSERVER, f.check)) is not None
                             and inc.faults[(OBSERVER, f.check)].active, "reason": f.reason}
        if h.register is not None:
            out["restore_tests"] = {k: v for k, v in h.tests_dict().items() if k != "tests"}
        return out
    return _json(await _run(st, read))


async def outage(request: web.Request) -> web.Response:
    """POST /api/v1/hospital/outage/{declare|over} {why}."""
    st = request.app[STATE]
    action = request.match_info["action"]
    who = authorised(st, request, "declare")
    if action not in ("declare", "over"):
        raise Rejected(404, f"no action {action!r}; expected declare or over")
    h = _hospital(st)
    why = _text(await read_json(st, request), "why")
    return _json(await _run(st, h.declare if action == "declare" else h.over, who, why))


async def notice(request: web.Request) -> web.Response:
    """POST /api/v1/hospital/notices {kind, text[, incident][, departments]}: IT's notice."""
    st = request.app[STATE]
    who = authorised(st, request, "announce")
    h = _hospital(st)
    body = await read_json(st, request)
    kind = _text(body, "kind")
    if kind not in ANNOUNCEMENTS:
        raise Rejected(400, f"kind: expected one of {', '.join(ANNOUNCEMENTS)}, got {kind!r}")
    text = _text(body, "text")
    incident = _text(body, "incident", required=False) or None
    departments = body.get("departments")
    if departments is not None and not (isinstance(departments, list) and departments and all(
            isinstance(d, str) and d.strip() for d in departments)):
        raise Rejected(400, "departments: expected a list of department names (notify roles)")
    return _json(await _run(st, h.announce, kind, incident, who, text, departments))


async def list_tests(request: web.Request) -> web.Response:
    """GET /api/v1/hospital/restore-tests: every test recorded, and when the next is due."""
    st = request.app[STATE]
    authorised(st, request, "read")
    return _json(await _run(st, _hospital(st).tests_dict))


async def record_test(request: web.Request) -> web.Response:
    """POST /api/v1/hospital/restore-tests {at, restored, result[, note]}: 201."""
    st = request.app[STATE]
    who = authorised(st, request, "restore_test")
    h = _hospital(st)
    body = await read_json(st, request)
    raw = _text(body, "at", required=False)
    now = datetime.fromtimestamp(st.clock(), timezone.utc)
    try:
        at = datetime.fromisoformat(raw) if raw else now      # default: done just now
    except ValueError:
        at = None
    restored, result = _text(body, "restored"), _text(body, "result")
    note = _text(body, "note", required=False)
    bad = problems(at, restored, result, note, now)
    if bad:
        raise Rejected(400, f"{bad[0][0]}: {bad[0][1]}" + (f" (got {raw!r})" if bad[0][0] == "at"
                                                          and at is None else ""))
    test = RestoreTest(who, at, restored, result, note, now)
    answer = _json(await _run(st, h.record_test, test))
    answer.set_status(201)
    return answer


class RestoreTestMetrics:
    """/metrics: when the next restore test is due, and whether it is overdue (the
    alert itself is the collector's incident: restore_tests.py)."""

    def __init__(self, hospital, clock):
        self.hospital, self.clock = hospital, clock

    def collect(self):
        now = datetime.fromtimestamp(self.clock(), timezone.utc)
        s = self.hospital.register.status(now)
        overdue = GaugeMetricFamily("branchwatch_collector_restore_test_overdue",
                                    "1 when a month passed without a passed restore test "
                                    "(hospital §5.5)")
        overdue.add_metric([], 1 if s.overdue else 0)
        due = GaugeMetricFamily("branchwatch_collector_restore_test_due_timestamp_seconds",
                                "When the next monthly restore test is due (hospital §5.5)")
        due.add_metric([], s.due_at.timestamp())
        return [overdue, due]
