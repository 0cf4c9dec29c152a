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
from ..texts import incident_title
from ..web.i18n import translate
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


# The page a notification's link opens: the person has no console session and no
# language cookie, so it says everything in Chinese first, then in English.
_SAID = {
    "no_links": ("不支持确认链接", "No acknowledgement links",
                 "本采集中心未启用签名链接。", "This collector signs no links."),
    "bad_link": ("链接无效", "Link not valid",
                 "此链接对该事件和人员无效。", "This link is not valid for this incident and person."),
    "unknown": ("未知事件", "Unknown incident", "没有事件 {incident}。", "No incident {incident}."),
    "ask": ("{incident} {title_zh}", "{incident} {title}",
            "以 {person} 的身份确认收到？确认后停止升级通知，并记入审计记录。"
            "状态：{status_zh}，已确认 {acks} 次。",
            "Acknowledge as {person}? Escalation stops; it is recorded in the audit trail. "
            "Status: {status}, acknowledged {acks} times."),
    "refused": ("未确认", "Not acknowledged", "{why}", "{why}"),
    "done": ("{incident} 已确认收到", "{incident} acknowledged",
             "{person} 已确认收到。", "Acknowledged by {person}."),
}


def _page(code: int, key: str, form: bool = False, **fields) -> web.Response:
    zh_title, en_title, zh_text, en_text = (x.format(**fields) for x in _SAID[key])
    button = ('<form method="post"><button type="submit">确认收到 / Acknowledge</button></form>'
              if form else "")
    esc = html.escape
    body = (f"<!doctype html><html lang='zh-CN'><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(zh_title)}</title><h1>{esc(zh_title)}</h1><p>{esc(zh_text)}</p>"
            f"{button}<hr><div lang='en'><h2>{esc(en_title)}</h2><p>{esc(en_text)}</p></div>")
    return web.Response(status=code, text=body, content_type="text/html", charset="utf-8")


def _check_link(st, request: web.Request) -> tuple[str, str] | web.Response:
    incident, sig = request.match_info["incident"], request.match_info["signature"]
    person = request.query.get("by", "")
    notifier = st.desk.notifier
    if notifier is None or notifier.secret is None:
        return _page(404, "no_links")
    if not person or notifier.rules.person(person) is None or not valid(
            notifier.secret, incident, person, sig):
        return _page(403, "bad_link")
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
        return _page(404, "unknown", incident=incident)
    return _page(200, "ask", form=True, incident=incident, person=person,
                 title=inc["title"], title_zh=incident_title(inc["title"], "zh"),
                 status=inc["status"], status_zh=translate("zh")("status_" + inc["status"]),
                 acks=len(inc["acks"]))


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
        return _page(404, "unknown", incident=incident)
    except Refused as e:
        return _page(409, "refused", why=str(e))
    return _page(200, "done", incident=incident, person=person)


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

