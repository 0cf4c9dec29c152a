"""The fleet's routes: Prometheus HTTP service discovery and the fleet list
(operator tokens), and the heartbeat hook that keeps what agents say about
themselves."""

from __future__ import annotations

from aiohttp import web

from ..api_base import STATE, STORE, _json, _operator
from ..api_people import read
from .storage import AgentAboutRow, read_about
from .view import fleet_lines, metrics_target, sd_groups

# What each agent said last, to write a row only when it changes.
SEEN = web.AppKey("fleet_seen", dict)


def add_fleet_routes(app: web.Application) -> None:
    """GET /api/v1/prometheus/targets (http_sd_configs) and GET /api/v1/fleet."""
    app[SEEN] = {}
    app.router.add_get("/api/v1/prometheus/targets", sd_targets)
    app.router.add_get("/api/v1/fleet", fleet)


async def heartbeat_seen(request: web.Request, hb) -> None:
    """Keep the agent's version, template hash and /metrics target if they changed."""
    if hb.about is None:
        return
    st = request.app[STATE]
    m = hb.about.metrics
    target = metrics_target(request.remote, m.port, m.advertise) if m is not None else None
    key = (hb.branch, hb.about.version, hb.about.config_sha256,
           m.scheme if m is not None else None, target)
    seen = request.app[SEEN]
    if seen.get(hb.agent) == key:
        return
    row = AgentAboutRow(agent=hb.agent, branch=hb.branch, version=hb.about.version,
                        config_sha256=hb.about.config_sha256, metrics_scheme=key[3],
                        metrics_target=target, reported_at=st.clock())
    await st.run(request.app[STORE].put_about, row)
    seen[hb.agent] = key


def _regions(st) -> dict[str, str]:
    # The enrolled region is the collector's word (config), never the agent's.
    return {a.id: a.region for a in st.config.agents}


async def sd_targets(request: web.Request) -> web.Response:
    """GET /api/v1/prometheus/targets: every agent's /metrics as HTTP SD target groups."""
    st = request.app[STATE]
    _operator(st, request)
    rows = await read(request, read_about)
    return _json(sd_groups(rows, _regions(st)))


async def fleet(request: web.Request) -> web.Response:
    """GET /api/v1/fleet: each agent's version, template hash and drift."""
    st = request.app[STATE]
    _operator(st, request)
    rows = await read(request, read_about)
    declared = st.config.fleet.template_sha256
    return _json({"template_sha256": declared,
                  "agents": fleet_lines(rows, _regions(st), declared)})
