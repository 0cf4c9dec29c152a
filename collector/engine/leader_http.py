"""The engine's leadership in the running collector: the lease ticking beside the
app, the engine, rounds and outbox senders only on the leader, and people's
writes to the book answered by the leader alone.

On a shared store (PostgreSQL) a collector that does not lead answers a write
to the incident book (an incident action, a reported fault, an acknowledgement
link, Alertmanager's webhook, a drill) with 503 and Retry-After, naming the
leader: a load balancer or the person's next try reaches the one that leads.
Ingest, heartbeats, reads, reports, silences and enrolment work everywhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import web

from .lease import SoleLease
from .leadership import Leadership, take_over

LEADER_ONLY = ("/api/v1/incidents", "/api/v1/faults", "/api/v1/ack/", "/api/v1/alertmanager",
               "/api/v1/drills", "/console/incidents", "/console/faults", "/console/drills")
LEADERSHIP = web.AppKey("leadership", Leadership)


@web.middleware
async def leader_only(request: web.Request, handler):
    """Book writes on a collector that does not lead are 503 with Retry-After."""
    lead = request.app.get(LEADERSHIP)
    if (lead is not None and lead.shared and request.method == "POST"
            and request.path.startswith(LEADER_ONLY) and not lead.leading()):
        headers = {"Retry-After": "1"}
        if request.path.startswith("/console/"):
            # A person reads this one: in both languages, theirs first.
            from ..web.console import lang_of
            from ..web.i18n import WORDS
            first = lang_of(request)
            words = WORDS["not_leader"]
            text = "\n".join([words[first]] + [w for k, w in words.items() if k != first])
            return web.Response(status=503, text=text + "\n", headers=headers,
                                content_type="text/plain", charset="utf-8")
        return web.json_response(
            {"error": "this collector does not lead the engine now; another one does "
                      "(try again, or see: branchwatch collector status)"},
            status=503, headers=headers)
    return await handler(request)


def wire_leadership(app: web.Application, st, store, lease=None) -> Leadership:
    """Build the app's Leadership over `lease` (SoleLease: SQLite) and hook the
    engine's fence; `start_leading` (on startup) begins ticking."""
    lease = lease or SoleLease()

    async def on_lead() -> None:
        await st.writer.run(lead.fenced(take_over), st.desk)
        lead.ready = True
        st.engine.wake()
        st.hand_off()

    async def on_follow() -> None:
        st.desk.mail.clear()            # the new leader sends what is pending

    lead = Leadership(lease, store, on_lead, on_follow)
    app[LEADERSHIP] = lead
    st.lead = lead
    st.desk.engine.fence = lead.fence
    if lead.shared:
        st.desk.mail.clear()            # until this node leads, it sends nothing
    return lead


FOLLOW_EVERY = 0.1        # seconds between looks at a shared log (others' ingest)
STATUS_EVERY = 1.0        # seconds between reads of the cursor lag and outbox depth
BACKGROUND = web.AppKey("leadership_tasks", list)


async def _follow_log(st) -> None:
    """On a shared store other collectors append too, and their wake-ups do not
    reach this engine: the leader looks at the log this often (a cheap step)."""
    while True:
        if st.lead.leading() and st.engine is not None:
            st.engine.wake()
        await asyncio.sleep(FOLLOW_EVERY)


async def _refresh_status(app: web.Application, metrics) -> None:
    """The lag and outbox figures /metrics shows, read on a reader connection."""
    from ..api_people import READERS
    log = logging.getLogger("branchwatch.collector")
    while True:
        try:
            await app[READERS].run(metrics.refresh)
        except Exception as e:       # the store away: the last figures stay
            log.debug("status not read: %s", e)
        await asyncio.sleep(STATUS_EVERY)


def start_leading(app: web.Application, st, metrics) -> None:
    """On startup, after the engine: tick the lease (shared store), follow the
    shared log, refresh the status figures."""
    lead = app[LEADERSHIP]
    tasks = [asyncio.create_task(_refresh_status(app, metrics))]
    if lead.shared:
        lead.start()
        tasks.append(asyncio.create_task(_follow_log(st)))
    app[BACKGROUND] = tasks


async def stop_leading(app: web.Application) -> None:
    """On cleanup: stop those and let the lease go (a standby takes over at once)."""
    for task in app.get(BACKGROUND, []):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lead = app[LEADERSHIP]
    if lead.shared:
        await lead.stop()
