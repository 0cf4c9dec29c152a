"""GET /console/branches/{branch}: one branch, for the person looking after it.

Its UPS charge, runtime and load, its lines and switches (the agents' last
heartbeats), its open and past incidents (incident_reads, in SQL), every
state change its agents reported (the event log, newest first, paged by
`before`), and a link to its Grafana dashboard."""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from .. import incident_reads as reads
from ..api_base import STATE, Rejected
from ..api_people import read
from ..fleet.storage import read_about
from ..fleet.view import fleet_lines
from ..storage.branch_log import branch_changes
from ..store import read_agents
from .branch_view import current_checks, devices, grafana_link, ups_readings
from .console import page, render
from .views import incident_row, incident_rows

CHANGES = 50              # state changes on one page
PAST = 20                 # past incidents shown (the history has the rest)


@page
async def branch(request: web.Request) -> web.Response:
    """GET /console/branches/{branch}[?before=SEQ]; from htmx (a live update) the
    part above the state changes only."""
    st = request.app[STATE]
    name = request.match_info["branch"]
    enrolled = [a for a in st.config.agents if a.branch == name]
    agents = [a for a in await read(request, read_agents)
              if a.branch == name and not a.agent.startswith("drill:")]
    if not enrolled and not agents:
        known = sorted({a.branch for a in st.config.agents})
        raise Rejected(404, f"no branch {name!r}; enrolled: {', '.join(known[:20])}"
                            + (" ..." if len(known) > 20 else ""))
    raw = request.query.get("before")
    try:
        before = int(raw) if raw else None
    except ValueError:
        raise Rejected(400, f"before: expected the number of a later change, got {raw[:30]!r}")
    region = next((a.region for a in enrolled if a.region), "") or \
        next((a.region for a in agents if a.region), "")
    now = datetime.fromtimestamp(st.clock(), timezone.utc)
    tables = st.desk.grader.tables if st.desk.grader else {}
    at = frozenset({name})
    open_, _ = await read(request, reads.list_incidents, reads.IncidentQuery(
        status="open", branches=at, limit=reads.MAX_LIMIT, newest_first=True))
    past = []
    for status in ("resolved", "closed"):
        found, _ = await read(request, reads.list_incidents, reads.IncidentQuery(
            status=status, branches=at, limit=PAST, newest_first=True))
        past += found
    past.sort(key=lambda i: i["started_at"], reverse=True)
    changes, older = await read(request, branch_changes, name, before, CHANGES)
    newest = changes if before is None else (await read(request, branch_changes, name))[0]
    checks = current_checks(agents, newest)
    seen = {a.agent: a for a in agents}
    heard = [{"agent": e.id,
              "ago": (now - seen[e.id].heartbeat_at).total_seconds()
              if e.id in seen and seen[e.id].heartbeat_at else None,
              "silent": e.id in st.desk.silent} for e in enrolled]
    heard += [{"agent": a.agent, "silent": a.agent in st.desk.silent,
               "ago": (now - a.heartbeat_at).total_seconds() if a.heartbeat_at else None}
              for a in agents if a.agent not in {e.id for e in enrolled}]
    about = await read(request, read_about)
    drift = {line["agent"]: line
             for line in fleet_lines(about, {}, st.config.fleet.template_sha256)}
    live = bool(request.headers.get("HX-Request"))
    return render(request, "_branch_live.html" if live else "branch.html", branch=name,
                  region=region, agents=heard, about=drift,
                  heard_ago=min((a["ago"] for a in heard if a["ago"] is not None), default=None),
                  ups=ups_readings(checks), lines=devices(checks, "line"),
                  switches=devices(checks, "switch"),
                  open_rows=incident_rows(open_, tables, now),
                  past_rows=[incident_row(i, tables, now) for i in past[:PAST]],
                  changes=changes, older=older, first=before is not None,
                  grafana=grafana_link(st.config.console.grafana_url, name, region))
