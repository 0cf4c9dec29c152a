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
import hmac
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
from agent.wire import decode as wire_decode

from .book_metrics import BookCollector
from .api_base import (DEADMAN, STATE, STORE, Rejected, _bearer_hash, _body, _json,
                       answer_failures, start_executions)
from .api_base import token_hash
from .config import AgentEntry, Config
from .engine.wakeup import EngineWakeup
from .engine.leader_http import leader_only, start_leading, stop_leading, wire_leadership
from .engine.lease import SoleLease
from .engine.leadership import absorb_heartbeats, offered_commands
from .engine.status import LeaderMetrics
from .api_reports import add_report_routes
from .drills.http import add_drill_routes
from .fleet import http as fleet_http
from .fleet.enrol_http import add_enrol_routes
from .fleet.reload import add_reload_route, with_enrolled
from .notify.silences_http import add_silence_routes, refresh as refresh_silences
from .hospital.http import add_hospital_routes
from .web.routes import add_console_routes
from .api_people import (READERS, act_on_incident, act_on_step, get_incident, list_incidents,
                         list_runbooks, report_fault, start_runbook)
from .grader import Grader
from .grading.deadlines import regulator_table
from .engine.actions import command_id
from .incident_desk import IncidentDesk
from .incident_rules import drill_of
from .incident_runbooks import Runbooks
from .notify import http as notify_http
from .audit import head_line
from .notify.notifier import Notifier
from .store import Store
from .writer import Writer

__all__ = ["build_app", "token_hash", "wire_problem"]   # token_hash: tools import it here

DEADMAN_EVERY = 1.0       # seconds between dead-man rounds (cheap: one SELECT)

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
        self.engine_delay = Histogram(
            "branchwatch_collector_engine_delay_seconds", "From an event's acknowledgement "
            "to its incident change committed: the oldest entry of each engine step",
            registry=r, buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self.deadman_rounds = Counter("branchwatch_collector_deadman_rounds",
                                      "Rounds of the once-a-second work done (dead-man, "
                                      "grades, runbooks, notifications)", registry=r)
        r.register(_WriterCounts(self))
        # Incidents, silent agents, clock offsets: the book's snapshot, read without
        # the writer (book_metrics.py).
        self.desk: IncidentDesk | None = None
        r.register(BookCollector(lambda: self.desk.snapshot() if self.desk else None))
        self.writer: Writer | None = None
        self.engine: EngineWakeup | None = None
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
        engine = self.metrics.engine
        yield CounterMetricFamily("branchwatch_collector_engine_applied",
                                  "Logged events the engine has applied to the incident book "
                                  "(committed with its cursor)",
                                  value=engine.applied if engine else 0)


class _State:
    def __init__(self, config: Config, clock: Callable[[], float]):
        self.config = config
        self.clock = clock
        self.by_hash: dict[str, AgentEntry] = {a.token_sha256: a for a in config.agents}
        self.operators: dict[str, str] = {o.token_sha256: o.name for o in config.operators}
        self.operator_roles = {o.name: tuple(o.roles) for o in config.operators}
        self.desk: IncidentDesk | None = None
        self.metrics = Metrics()
        self.seen: set[str] = set()
        self.writer: Writer | None = None
        self.engine: EngineWakeup | None = None
        self.tasks: set[asyncio.Task] = set()     # runbook executions in flight

    async def run(self, fn, *args):
        """Run a store call on the writer thread (committed when it returns); then
        hand what it queued for people to the notification dispatcher (issue 7)."""
        try:
            return await self.writer.run(fn, *args)
        finally:
            notify_http.send_mail(self)


def _authenticate(st: _State, request: web.Request) -> AgentEntry:
    digest = _bearer_hash(request)
    # Looking the digest up leaks at most timing about a sha256 of the
    # token, not the token; the final compare is constant-time anyway.
    entry = st.by_hash.get(digest)
    if entry is None or not hmac.compare_digest(entry.token_sha256, digest):
        raise Rejected(401, "unknown agent token")
    return entry


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
        return wire_decode(body, type_)   # the wire's bounds, times included
    except msgspec.MsgspecError as e:
        raise Rejected(400, wire_problem(e))
    except RecursionError:          # a free-form field nested thousands deep
        raise Rejected(400, "(body): JSON nested too deep")


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
    # The ack path only appends to the log (fsync'd); the engine applies it.
    accepted, duplicates = await st.writer.run(st.desk.store.add_events, batch.agent,
                                               batch.branch, batch.events, st.clock(),
                                               batch.sent_at)
    if accepted:
        st.engine.wake()
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
    # The enrolled region is the collector's word (its config), never the agent's.
    hb = msgspec.structs.replace(hb, region=entry.region)
    if st.lead.shared:
        # Stored here; the leader's round hands it to the book (engine/leadership.py).
        await st.writer.run(st.desk.store.put_heartbeat, hb, st.clock())
    else:
        await st.run(st.desk.heartbeat, hb, st.clock())
    _seen(st, hb.agent)
    await fleet_http.heartbeat_seen(request, hb)
    # Runbook actions for this branch's agent ride back on the answer, on every
    # heartbeat until the agent's result event is in (the agent answers an id it
    # has seen with its stored result: re-offering is safe).
    commands = await st.run(offered_commands, st.desk, hb.branch, st.lead.leading())
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
    # Never waits on the writer: every collector renders a snapshot.
    body = generate_latest(st.metrics.registry)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _deadman_loop(st: _State) -> None:
    log = logging.getLogger("branchwatch.collector")
    while True:
        if not st.lead.leading():          # a standby: the leader does the rounds
            await asyncio.sleep(DEADMAN_EVERY)
            continue
        # Separate jobs: a grading bug must not stop the dead-man, nor the reverse.
        jobs = (st.desk.deadman, st.desk.grade_all, st.desk.advance_runbooks,
                st.desk.hospital_tick, st.desk.notify_tick, st.desk.publish)
        if st.lead.shared:                 # heartbeats other collectors stored
            jobs = (lambda: absorb_heartbeats(st.desk), *jobs)
        for job in jobs:
            try:
                await st.run(st.lead.fenced(job))
            except Exception:      # a bad round must not end the loop for good
                log.exception("%s round failed", getattr(job, "__name__", "round"))
        st.metrics.deadman_rounds.inc()
        start_executions(st)
        await asyncio.sleep(DEADMAN_EVERY)


def command_for_agent(x) -> dict:
    """A runbook action as the agent receives it; its result comes back as an
    `action` event with check action/runbook/INCIDENT/RUN/STEP."""
    return {"id": command_id(x),
            "check": f"action/runbook/{x.incident}/{x.run}/{x.step}",
            "action": msgspec.to_builtins(x.action)}


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
        return web.json_response({"error": str(r)}, status=r.status, headers=r.headers)
    finally:
        if ingest:
            st.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


ZONE_HEADER = "X-Branchwatch-Timezone"


def collector_zone(st) -> str:
    """The zone people here read times in: the reports', else the business calendar's."""
    grader = st.desk.grader
    return (st.config.reports.timezone
            or (grader.calendar.timezone if grader is not None else None) or "UTC")


@web.middleware
async def _zone_header(request: web.Request, handler):
    # The CLI prints times in the collector's zone, saying which (timewords.when).
    response = await handler(request)
    if request.path.startswith("/api/"):
        response.headers[ZONE_HEADER] = collector_zone(request.app[STATE])
    return response


def build_app(config: Config, store: Store, *, clock: Callable[[], float] = time.time,
              lease=None) -> web.Application:
    """The aiohttp application over a store; `clock` gives receive times; `lease`
    says whether this collector runs the engine (engine/lease.py; None: SQLite's sole
    collector, always)."""
    # client_max_size also stops a chunked body (no Content-Length) at the limit.
    app = web.Application(client_max_size=config.limits.max_body,
                          middlewares=[answer_failures, _zone_header, _timing_and_refusals,
                                       leader_only])
    file_config = config
    config = with_enrolled(config, store)     # agents enrolled by code count as the config's
    st = _State(config, clock)
    st.file_config = file_config              # as the file says (reload and enrolment start here)
    st.seen.update(a.agent for a in store.agents() if drill_of(a.agent) is None)
    st.metrics.agents_seen.set(len(st.seen))
    app[STATE], app[STORE] = st, store
    app[READERS] = store.readers()    # reads never wait on the writer (incident_reads.py)
    app.router.add_post("/api/v1/events", post_events)
    app.router.add_post("/api/v1/heartbeat", post_heartbeat)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/incidents", list_incidents)
    app.router.add_get("/api/v1/incidents/{id}", get_incident)
    app.router.add_post("/api/v1/incidents/{id}/runbooks", start_runbook)
    app.router.add_post("/api/v1/faults", report_fault)      # a person reports one
    app.router.add_post("/api/v1/incidents/{id}/steps/{step}/{action}", act_on_step)
    app.router.add_get("/api/v1/runbooks", list_runbooks)
    app.router.add_post("/api/v1/incidents/{id}/{action}", act_on_incident)
    grader = Grader.from_config(config)
    grader.warn_if_stale(clock(), logging.getLogger("branchwatch.collector"))   # domain.md §2.1
    st.metrics.registry.register(grader.calendar_metrics(clock))
    st.desk = IncidentDesk(store, clock, window=config.incidents.window,
                           deadman_grace=config.incidents.deadman_grace, grader=grader,
                           runbooks=Runbooks.from_folder(
                               config.runbooks.folder, config.runbooks.auto_start,
                               {n: list(t.grades) for n, t in grader.tables.items()},
                               tuple(config.runbooks.no_backup_port),
                               regulator_table(grader.tables) is not None),
                           reporter=config.reports.reporter,
                           notifier=Notifier.from_config(config, grader.tables),
                           shared=lease is not None and not isinstance(lease, SoleLease),
                           hospital=config.hospital)
    if st.desk.notifier is not None and hasattr(store, "audit"):   # audit head
        st.desk.notifier.footer = lambda: head_line(store.audit.live_head())
    st.metrics.desk = st.desk
    notify_http.setup(app, st)        # ack links, Alertmanager's webhook, the dispatcher
    add_report_routes(app)            # the regulator's reports (issue 7)
    add_drill_routes(app)             # drills (issue 7; domain.md §5)
    fleet_http.add_fleet_routes(app)  # versions, drift, Prometheus service discovery
    add_enrol_routes(app)             # enrolment by one-time code, revocation
    add_reload_route(app)             # POST /api/v1/reload: as SIGHUP
    add_silence_routes(app)           # silences set by people (and at Alertmanager)
    add_hospital_routes(app)          # whole-network outage, notices, restore tests (§2.3)
    if config.console.enabled:
        add_console_routes(app)       # the operators' web console (issue 8)
    st.writer = st.metrics.writer = Writer(store, on_failure=st.desk.reload)
    lead = wire_leadership(app, st, store, lease)
    leader_metrics = LeaderMetrics(lead)
    st.metrics.registry.register(leader_metrics)

    def _hand_off():
        if not lead.leading():
            return
        notify_http.send_mail(st)
        start_executions(st)
    st.hand_off = _hand_off

    async def _start_deadman(app):
        await refresh_silences(app)       # silences set by people before a restart hold

        def _applied(n: int) -> None:
            if st.desk.engine.oldest is not None:
                st.metrics.engine_delay.observe(max(0.0, st.clock() - st.desk.engine.oldest))

        def _step() -> int:
            return st.desk.engine.step() if lead.leading() else 0

        st.engine = st.metrics.engine = EngineWakeup(st.writer, _step,
                                                     st.desk.engine.chunk, after=_hand_off,
                                                     applied=_applied)
        st.engine.start()
        app[DEADMAN] = asyncio.create_task(_deadman_loop(st))
        start_leading(app, st, leader_metrics)

    async def _stop_writer(app):
        app[DEADMAN].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await app[DEADMAN]
        await stop_leading(app)
        await st.engine.stop()
        st.writer.stop()
        app[READERS].close()
    app.on_startup.append(_start_deadman)
    app.on_cleanup.append(_stop_writer)
    return app
