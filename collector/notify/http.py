"""The collector's notification endpoints, and the dispatcher's place in the app.

- GET /api/v1/ack/{incident}/{signature}?by=PERSON: a page with one button.
  POST to the same address acknowledges as that person (mail scanners fetch
  links with GET: a GET alone never acknowledges). 403 for a signature that
  is not this incident's and person's, 404 unknown incident, 409 closed.
- POST /api/v1/alertmanager: Alertmanager's webhook, with the bearer token
  whose sha256 is notify.alertmanager.receive.token_sha256 (intake.py).
"""

from __future__ import annotations

import hmac
import html

import msgspec
from aiohttp import web

from ..api_base import STATE, Rejected, _bearer_hash, _body
from ..incidents import Refused
from . import intake
from .channels import Channels
from .dispatch import DispatchMetrics, Dispatcher
from .signing import valid

ACK_WHY = "acknowledged by the link in the notification"


def setup(app: web.Application, st) -> None:
    """Routes, and a dispatcher started and stopped with the app."""
    app.router.add_get("/api/v1/ack/{incident}/{signature}", ack_page)
    app.router.add_post("/api/v1/ack/{incident}/{signature}", ack_post)
    app.router.add_post("/api/v1/alertmanager", alertmanager_webhook)
    notifier = st.desk.notifier
    if notifier is None:
        return
    settings = notifier.rules.settings

    async def _start(app):
        channels = Channels(settings.email, settings.retry.timeout)

        async def on_result(item, ok, error, attempts, final):
            await st.run(st.desk.delivered, item, ok, error, attempts, final)

        st.dispatcher = Dispatcher(channels.send, on_result, settings.retry.first,
                                   settings.retry.max, DispatchMetrics(st.metrics.registry))
        st.channels = channels
        send_mail(st)                  # deliveries still queued before a restart

    async def _stop(app):
        await st.dispatcher.close()
        await st.channels.close()
    app.on_startup.append(_start)
    app.on_cleanup.insert(0, _stop)


def send_mail(st) -> None:
    """Hand what the desk queued to the dispatcher (after every writer job)."""
    dispatcher = getattr(st, "dispatcher", None)
    if dispatcher is None or st.desk is None:
        return
    while st.desk.mail:
        dispatcher.submit(st.desk.mail.pop(0))


def _page(status: int, title: str, text: str, form: bool = False) -> web.Response:
    button = ('<form method="post"><button type="submit">Acknowledge / 确认</button></form>'
              if form else "")
    body = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p>{button}")
    return web.Response(status=status, text=body, content_type="text/html")


def _check_link(st, request: web.Request) -> tuple[str, str] | web.Response:
    incident, sig = request.match_info["incident"], request.match_info["signature"]
    person = request.query.get("by", "")
    notifier = st.desk.notifier
    if notifier is None or notifier.secret is None:
        return _page(404, "No acknowledgement links", "This collector signs no links.")
    if not person or notifier.rules.person(person) is None or not valid(
            notifier.secret, incident, person, sig):
        return _page(403, "Link not valid",
                     "This link is not valid for this incident and person.")
    return incident, person


async def ack_page(request: web.Request) -> web.Response:
    """GET: what the link acknowledges, and the button that does it."""
    st = request.app[STATE]
    checked = _check_link(st, request)
    if isinstance(checked, web.Response):
        return checked
    incident, person = checked
    inc = await st.run(st.desk.get, incident)
    if inc is None:
        return _page(404, "Unknown incident", f"No incident {incident}.")
    return _page(200, f"{incident} {inc['title']}",
                 f"Acknowledge as {person}? Escalation stops; it is recorded in the audit "
                 f"trail. Status: {inc['status']}, acknowledged {len(inc['acks'])} times.",
                 form=True)


async def ack_post(request: web.Request) -> web.Response:
    """POST: acknowledge as the link's person (recorded as who acted)."""
    st = request.app[STATE]
    checked = _check_link(st, request)
    if isinstance(checked, web.Response):
        return checked
    incident, person = checked
    try:
        await st.run(st.desk.act, "ack", incident, person, ACK_WHY)
    except KeyError:
        return _page(404, "Unknown incident", f"No incident {incident}.")
    except Refused as e:
        return _page(409, "Not acknowledged", str(e))
    return _page(200, f"{incident} acknowledged", f"Acknowledged by {person}.")


async def alertmanager_webhook(request: web.Request) -> web.Response:
    """POST /api/v1/alertmanager: each alert opens or clears a fault (intake.py)."""
    st = request.app[STATE]
    receive = st.config.notify.alertmanager.receive
    if receive is None:
        raise Rejected(404, "this collector does not accept Alertmanager's webhook "
                            "(notify.alertmanager.receive)")
    digest = _bearer_hash(request)
    if not hmac.compare_digest(digest, receive.token_sha256):
        raise Rejected(401, "unknown Alertmanager token")
    try:
        hook = intake.decode(await _body(st, request))
    except msgspec.MsgspecError as e:
        from ..api import wire_problem
        raise Rejected(400, wire_problem(e))
    except RecursionError:
        raise Rejected(400, "(body): JSON nested too deep")
    by_branch, ignored = intake.events_from(hook, receive)
    accepted = duplicates = 0
    for branch, events in by_branch.items():
        new, dup = await st.run(st.desk.ingest, "alertmanager", branch, events, st.clock())
        accepted, duplicates = accepted + len(new), duplicates + len(dup)
    return web.json_response({"accepted": accepted, "duplicates": duplicates,
                              "ignored": ignored})

