"""The demo's notification receiver: a webhook inbox on 127.0.0.1 that keeps what
the collector sent each person (docs/notifications.md, branchwatch's own JSON
webhook), and shows it on a console page, /console/demo/inbox.

The collector posts to it as it would to a bank's own hook (`people[].webhook`),
through its real notification pipeline and dispatcher: routes, escalation,
retries, delivery records. The story reads the inbox in the same process to say
what arrived, and follows the acknowledgement link a message carries.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from aiohttp import web

MAX_BODY = 256 * 1024          # one message; the collector's are a few KB


@dataclass
class Message:
    """One webhook POST as it arrived."""

    person: str                 # whose hook it was posted to
    arrived: float              # wall-clock time of arrival
    body: dict                  # the collector's JSON (incident, reason, subject, ack_url...)

    @property
    def incident(self) -> str:
        return str(self.body.get("incident", ""))

    @property
    def reason(self) -> str:
        return str(self.body.get("reason", ""))


@dataclass
class Inbox:
    """A webhook receiver on 127.0.0.1 (any free port), one hook per person."""

    messages: list[Message] = field(default_factory=list)
    refused: int = 0            # posts that were not a JSON object (counted, shown)
    url: str = ""
    _runner: web.AppRunner | None = None

    def hook(self, person: str) -> str:
        """The webhook URL for one person."""
        from urllib.parse import quote
        return f"{self.url}/hook/{quote(person, safe='')}"

    async def start(self) -> "Inbox":
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/hook/{person}", self._receive)
        app.router.add_get("/messages", self._list)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        sock = socket.create_server(("127.0.0.1", 0))
        await web.SockSite(self._runner, sock).start()
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self.refused += 1
            return web.json_response({"error": "expected a JSON object"}, status=400)
        self.messages.append(Message(request.match_info["person"], time.time(), body))
        return web.json_response({"ok": True})

    async def _list(self, request: web.Request) -> web.Response:
        """GET /messages: everything that arrived, as JSON (tests and scripts)."""
        return web.json_response({"refused": self.refused, "messages": [
            {"person": m.person, "arrived": m.arrived, **m.body} for m in self.messages]})

    def find(self, incident: str, reason: str, person: str | None = None) -> list[Message]:
        """The messages about an incident for one reason (opened, escalation...)."""
        return [m for m in self.messages if m.incident == incident and m.reason == reason
                and (person is None or m.person == person)]


def add_inbox_page(app: web.Application, inbox: Inbox) -> None:
    """Mount /console/demo/inbox on the demo's collector: the inbox as a console page
    (logged in, in the visitor's language, the console's layout)."""
    from ..web.console import page, render

    @page
    async def inbox_page(request: web.Request) -> web.Response:
        """GET /console/demo/inbox: every message, newest first."""
        return render(request, "demo_inbox.html", inbox_url=inbox.url, refused=inbox.refused,
                      messages=[{"role": None, "level": None, "subject": "", "text": "",
                                 **m.body, "person": m.person, "sent": _sent(m),
                                 "incident": m.incident, "reason": m.reason}
                                for m in reversed(inbox.messages)])
    app.router.add_get("/console/demo/inbox", inbox_page)


def _sent(m: Message):
    """When the collector sent it, on its clock (the demo moves that clock forward,
    so the console's other times agree); its arrival if the body does not say."""
    from datetime import datetime, timezone
    try:
        return datetime.fromisoformat(str(m.body["at"]))
    except (KeyError, ValueError):
        return datetime.fromtimestamp(m.arrived, tz=timezone.utc)
