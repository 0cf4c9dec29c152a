"""The collector's HTTP API (aiohttp): ingest, heartbeats, health, metrics.

Every refusal is a 4xx with a JSON body `{"error": "one line"}`:
401 unknown token, 403 writing as another agent or branch, 400 malformed
JSON or a schema violation (naming the field), 413 a body over the limit.
The store is synchronous (SQLite); its calls run on one writer thread
(collector/writer.py, group commit) so the event loop never waits on an
fsync and writes stay serialised.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import re
import time
from typing import Callable

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily

from agent.wire import Ack, Batch, Heartbeat, encode

from .config import AgentEntry, Config
from .incident_codec import encode as encode_incidents
from .grader import GRADING_ACTIONS, Grader
from .incident_desk import ACTIONS, IncidentDesk
from .incident_runbooks import PERSON_ACTIONS, Runbooks
from .runbook_executor import execute
from .incidents import Refused
from .store import Store
from .writer import Writer

DEADMAN_EVERY = 1.0       # seconds between dead-man rounds (cheap: one SELECT)

STORE = web.AppKey("store", object)
STATE = web.AppKey("state", object)
DEADMAN = web.AppKey("deadman", asyncio.Task)


class Rejected(Exception):
    """A request refused with a status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Metrics:
    """The collector's /metrics, on a registry of its own."""

    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("branchwatch_collector_events_ingested", "Events received, "
                              "by result (accepted: new; duplicate: a resend)",
                              ["result"], registry=r)
        self.agents_seen = Gauge("branchwatch_collector_agents_seen",
                                 "Agents that have sent a heartbeat or an event", registry=r)
        self.latency = Histogram("branchwatch_collector_ingest_latency_seconds",
                                 "Time to answer an ingest request, stored and fsync'd",
                                 ["endpoint"], registry=r,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5))
        self.incidents = Gauge("branchwatch_collector_incidents",
                               "Incidents not yet closed, by status (open, resolved)",
                               ["status"], registry=r)
        self.silent = Gauge("branchwatch_collector_agents_silent",
                            "Agents silent past their heartbeat interval plus grace "
                            "(the dead-man's 'branch unreachable')", registry=r)
        self.offset = Gauge("branchwatch_collector_agent_clock_offset_seconds",
                            "Estimated collector clock minus agent clock (min of recent "
                            "heartbeat samples; includes network delay)", ["agent"], registry=r)
        r.register(_WriterCounts(self))
        self.writer: Writer | None = None
        self.rejected = Counter("branchwatch_collector_requests_rejected",
                                "Ingest requests refused, by endpoint and status code",
                                ["endpoint", "code"], registry=r)


class _WriterCounts:
    """The writer's own counters, read at scrape time."""

    def __init__(self, metrics: Metrics):
        self.metrics = metrics

    def collect(self):
        w = self.metrics.writer
        yield CounterMetricFamily("branchwatch_collector_store_commits",
                                  "Store transactions committed; each answers every request "
                                  "waiting (group commit)", value=w.groups if w else 0)
        yield CounterMetricFamily("branchwatch_collector_store_jobs",
                                  "Store jobs (requests) run by the writer",
                                  value=w.jobs_done if w else 0)


class _State:
    def __init__(self, config: Config, clock: Callable[[], float]):
        self.config = config
        self.clock = clock
        self.by_hash: dict[str, AgentEntry] = {a.token_sha256: a for a in config.agents}
        self.operators: dict[str, str] = {o.token_sha256: o.name for o in config.operators}
        self.desk: IncidentDesk | None = None
        self.metrics = Metrics()
        self.seen: set[str] = set()
        self.writer: Writer | None = None
        self.tasks: set[asyncio.Task] = set()     # runbook executions in flight

    async def run(self, fn, *args):
        """Run a store call on the writer thread (committed when it returns)."""
        return await self.writer.run(fn, *args)


def token_hash(token: str) -> str:
    """The sha256 hex digest the config stores for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _bearer_hash(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected(401, "expected an Authorization: Bearer TOKEN header")
    return token_hash(token.strip())


def _operator(st: _State, request: web.Request) -> str:
    """The operator's name for this request's token; agents get 403."""
    digest = _bearer_hash(request)
    name = st.operators.get(digest)
    if name is not None:
        return name
    if digest in st.by_hash:
        raise Rejected(403, "agent tokens may not read or act on incidents; use an "
                            "operator token")
    raise Rejected(401, "unknown operator token")


def _authenticate(st: _State, request: web.Request) -> AgentEntry:
    digest = _bearer_hash(request)
    # Looking the digest up leaks at most timing about a sha256 of the
    # token, not the token; the final compare is constant-time anyway.
    entry = st.by_hash.get(digest)
    if entry is None or not hmac.compare_digest(entry.token_sha256, digest):
        raise Rejected(401, "unknown agent token")
    return entry


async def _body(st: _State, request: web.Request) -> bytes:
    limit = st.config.limits.max_body
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, f"body of {request.content_length} bytes is over the limit of "
                            f"{limit} bytes; send smaller batches")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, f"body is over the limit of {limit} bytes; send smaller batches")


# DOTALL: a field name may hold a newline (it is named back, flattened).
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def wire_problem(e: msgspec.MsgspecError) -> str:
    """msgspec's error as one line: 'field.path: what was wrong'."""
    return _one_line(_wire_problem(e))


def _one_line(text: str) -> str:
    # Field names come from the request: a line break in one must not make two lines.
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _wire_problem(e: msgspec.MsgspecError) -> str:
    if isinstance(e, msgspec.DecodeError) and not isinstance(e, msgspec.ValidationError):
        return f"body is not valid JSON: {e}"
    m = _AT.match(str(e))
    msg, path = m["msg"], (m["path"] or "").lstrip(".")
    if found := re.match(r"Object missing required field `(.*)`", msg, re.DOTALL):
        return f"{path + '.' if path else ''}{found[1]}: missing, and it is required"
    if found := re.match(r"Object contains unknown field `(.*)`", msg, re.DOTALL):
        return f"{path + '.' if path else ''}{found[1]}: unknown field"
    msg = re.sub(r"`([^`]*)`", r"\1", msg)
    return f"{path or '(body)'}: {msg[0].lower() + msg[1:]}"


def _decode(body: bytes, type_):
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.MsgspecError as e:
        raise Rejected(400, wire_problem(e))


def _json(data) -> web.Response:
    """A 200 JSON response for incident data (datetimes as RFC 3339)."""
    return web.Response(body=encode_incidents(data), content_type="application/json")


def _check_identity(entry: AgentEntry, agent: str, branch: str) -> None:
    if agent != entry.id:
        raise Rejected(403, f"agent: this token belongs to agent {entry.id!r}, not {agent!r}")
    if branch != entry.branch:
        raise Rejected(403, f"branch: agent {entry.id!r} may only write branch "
                            f"{entry.branch!r}, not {branch!r}")


async def post_events(request: web.Request) -> web.Response:
    """POST /api/v1/events: a Batch in, an Ack out."""
    st: _State = request.app[STATE]
    entry = _authenticate(st, request)
    batch = _decode(await _body(st, request), Batch)
    _check_identity(entry, batch.agent, batch.branch)
    for i, e in enumerate(batch.events):
        if e.agent != batch.agent or e.branch != batch.branch:
            field = "agent" if e.agent != batch.agent else "branch"
            raise Rejected(400, f"events[{i}].{field}: expected the batch's "
                                f"{field} {getattr(batch, field)!r}, got {getattr(e, field)!r}")
    accepted, duplicates = await st.run(st.desk.ingest, batch.agent, batch.branch,
                                        batch.events, st.clock(), batch.sent_at)
    st.metrics.events.labels("accepted").inc(len(accepted))
    st.metrics.events.labels("duplicate").inc(len(duplicates))
    _seen(st, batch.agent)
    return web.Response(body=encode(Ack(accepted=accepted, duplicates=duplicates)),
                        content_type="application/json")


async def post_heartbeat(request: web.Request) -> web.Response:
    """POST /api/v1/heartbeat: the agent's current truth; 204."""
    st: _State = request.app[STATE]
    entry = _authenticate(st, request)
    hb = _decode(await _body(st, request), Heartbeat)
    _check_identity(entry, hb.agent, hb.branch)
    await st.run(st.desk.heartbeat, hb, st.clock())
    _seen(st, hb.agent)
    # issue 6: runbook actions for this branch's agent ride back on the answer.
    commands = await st.run(st.desk.take_commands, hb.branch)
    if not commands:
        return web.Response(status=204)
    return _json({"commands": [command_for_agent(x) for x in commands]})


def _seen(st: _State, agent: str) -> None:
    st.seen.add(agent)
    st.metrics.agents_seen.set(len(st.seen))


async def healthz(request: web.Request) -> web.Response:
    """GET /healthz: 200 while the store answers."""
    st: _State = request.app[STATE]
    await st.run(request.app[STORE].agents)
    return web.json_response({"status": "ok"})


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics in the Prometheus text format."""
    st: _State = request.app[STATE]
    # Counted on the writer thread: the book is only ever touched there.
    counts = await st.run(st.desk.counts)
    for status, n in counts["incidents"].items():
        st.metrics.incidents.labels(status).set(n)
    st.metrics.silent.set(counts["silent"])
    for agent, offset in counts["offsets"].items():
        st.metrics.offset.labels(agent).set(round(offset, 3))
    body = generate_latest(st.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def list_incidents(request: web.Request) -> web.Response:
    """GET /api/v1/incidents[?status=open|resolved|closed] (operators)."""
    st: _State = request.app[STATE]
    _operator(st, request)
    status = request.query.get("status")
    if status not in (None, "open", "resolved", "closed"):
        raise Rejected(400, f"status: expected open, resolved or closed, got {status!r}")
    return _json({"incidents": await st.run(st.desk.list, status)})


async def get_incident(request: web.Request) -> web.Response:
    """GET /api/v1/incidents/{id} (operators); 404 when unknown."""
    st: _State = request.app[STATE]
    _operator(st, request)
    inc = await st.run(st.desk.get, request.match_info["id"])
    if inc is None:
        raise Rejected(404, f"no incident {request.match_info['id']!r}")
    return _json(inc)


# What each action needs in its body besides who (the token): the text field,
# and for grading actions the value field (grader.GRADING_ACTIONS).
TEXT_FIELD = {"note": "text", "deadline": "what"}


async def act_on_incident(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/{action}.

    ack|resolve|close {why}; note {text}; deadline {key, what} (met, with what
    was sent); criterion|withdraw {criterion, why}; grade {grade, why[, table]}.
    Who acted is the token's operator, never the body; 409 when the
    incident's state refuses it (with the reason), 404 when unknown.
    """
    st: _State = request.app[STATE]
    who = _operator(st, request)
    action, incident_id = request.match_info["action"], request.match_info["id"]
    if action not in ACTIONS:
        raise Rejected(404, f"no action {action!r}; expected one of {', '.join(ACTIONS)}")
    try:
        body = json.loads(await _body(st, request) or b"{}")
    except ValueError as e:
        raise Rejected(400, f"body is not valid JSON: {e}")
    if not isinstance(body, dict):
        raise Rejected(400, "(body): expected a JSON object")
    field = TEXT_FIELD.get(action, "why")
    text = _required_text(body, field)
    value = _required_text(body, GRADING_ACTIONS[action]) if action in GRADING_ACTIONS else None
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


async def _deadman_loop(st: _State) -> None:
    log = logging.getLogger("branchwatch.collector")
    while True:
        # Separate jobs: a grading bug must not stop the dead-man, nor the reverse.
        for job in (st.desk.deadman, st.desk.grade_all, st.desk.advance_runbooks):
            try:
                await st.run(job)
            except Exception:      # a bad round must not end the loop for good
                log.exception("%s round failed", job.__name__)
        _start_executions(st)
        await asyncio.sleep(DEADMAN_EVERY)


def _start_executions(st: _State) -> None:
    """Run the webhooks and commands runbooks asked for, each in a task of its own."""
    while st.desk.outbox:
        x = st.desk.outbox.pop(0)
        task = asyncio.create_task(_execute(st, x))
        st.tasks.add(task)
        task.add_done_callback(st.tasks.discard)


async def _execute(st: _State, x) -> None:
    ok, message = await execute(x, st.config.runbooks)
    await st.run(st.desk.runbook_result, x, ok, message)
    _start_executions(st)


def command_for_agent(x) -> dict:
    """A runbook action as the agent receives it; its result comes back as an
    `action` event with check action/runbook/INCIDENT/RUN/STEP."""
    return {"id": f"{x.incident}/{x.run}/{x.step}",
            "check": f"action/runbook/{x.incident}/{x.run}/{x.step}",
            "action": msgspec.to_builtins(x.action)}


async def start_runbook(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/runbooks {runbook, why}: start one by hand."""
    st: _State = request.app[STATE]
    who = _operator(st, request)
    body = await _json_body(st, request)
    runbook, why = _required_text(body, "runbook"), _required_text(body, "why")
    return _json(await _person(st, request, st.desk.runbook_act, "start", runbook, who, why))


async def act_on_step(request: web.Request) -> web.Response:
    """POST /api/v1/incidents/{id}/steps/{step}/{confirm|skip|fail}
    {note (confirm) | why, choice (a decision), run (default: the run at that step)}."""
    st: _State = request.app[STATE]
    who = _operator(st, request)
    action, step = request.match_info["action"], request.match_info["step"]
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
    _operator(st, request)
    books = st.desk.runbooks.runbooks if st.desk.runbooks else {}
    return _json({"runbooks": [{"id": rb.id, "title": rb.title, "source": rb.source,
                                "steps": [s.id for s in rb.steps]}
                               for rb in sorted(books.values(), key=lambda rb: rb.id)]})


async def _json_body(st: _State, request: web.Request) -> dict:
    try:
        body = json.loads(await _body(st, request) or b"{}")
    except ValueError as e:
        raise Rejected(400, f"body is not valid JSON: {e}")
    if not isinstance(body, dict):
        raise Rejected(400, "(body): expected a JSON object")
    return body


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
        _start_executions(st)


@web.middleware
async def _timing_and_refusals(request: web.Request, handler):
    st: _State = request.app[STATE]
    # Label by route, never by the raw path: unknown paths must not mint series.
    resource = request.match_info.route.resource
    endpoint = resource.canonical.rsplit("/", 1)[-1] if resource is not None else ""
    ingest = endpoint in ("events", "heartbeat")
    start = time.perf_counter()
    try:
        return await handler(request)
    except Rejected as r:
        if ingest:
            st.metrics.rejected.labels(endpoint, str(r.status)).inc()
        return web.json_response({"error": str(r)}, status=r.status)
    finally:
        if ingest:
            st.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


def build_app(config: Config, store: Store, *, clock: Callable[[], float] = time.time
              ) -> web.Application:
    """The aiohttp application over a store; `clock` gives receive times."""
    # client_max_size also stops a chunked body (no Content-Length) at the limit.
    app = web.Application(client_max_size=config.limits.max_body,
                          middlewares=[_timing_and_refusals])
    st = _State(config, clock)
    st.seen.update(a.agent for a in store.agents())
    st.metrics.agents_seen.set(len(st.seen))
    app[STATE], app[STORE] = st, store
    app.router.add_post("/api/v1/events", post_events)
    app.router.add_post("/api/v1/heartbeat", post_heartbeat)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", get_incident)
    app.router.add_post("/api/v1/incidents/{id}/runbooks", start_runbook)
    app.router.add_post("/api/v1/incidents/{id}/steps/{step}/{action}", act_on_step)
    app.router.add_get("/api/v1/runbooks", list_runbooks)
    app.router.add_post("/api/v1/incidents/{id}/{action}", act_on_incident)
    st.desk = IncidentDesk(store, clock, window=config.incidents.window,
                           deadman_grace=config.incidents.deadman_grace,
                           grader=Grader.from_config(config),
                           runbooks=Runbooks.from_folder(config.runbooks.folder,
                                                         config.runbooks.auto_start))
    st.writer = st.metrics.writer = Writer(store, on_failure=st.desk.reload)

    async def _start_deadman(app):
        app[DEADMAN] = asyncio.create_task(_deadman_loop(st))

    async def _stop_writer(app):
        app[DEADMAN].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[DEADMAN]
        st.writer.stop()
    app.on_startup.append(_start_deadman)
    app.on_cleanup.append(_stop_writer)
    return app
