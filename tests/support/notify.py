"""Real receivers for notification tests, on 127.0.0.1: an SMTP server (aiosmtpd),
an HTTP receiver that can be stopped and brought back on the same port, and
Prometheus Alertmanager."""

from __future__ import annotations

import email
import json
import threading
import time
import urllib.parse
import urllib.request
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

from .paths import free_port, need_binary, start_ready, terminate


class SmtpSink:
    """aiosmtpd on a free port; `mails` are email.message.EmailMessage (with .at)."""

    def __init__(self):
        from aiosmtpd.controller import Controller
        self.mails: list = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                msg = email.message_from_bytes(envelope.content, policy=policy.default)
                msg.at, msg.rcpt = time.monotonic(), list(envelope.rcpt_tos)
                sink.mails.append(msg)
                return "250 OK"
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def url(self) -> str:
        """The Apprise URL of this server (notify.email)."""
        return f"mailto://127.0.0.1:{self.port}?from=branchwatch@example.com"

    def to(self, address: str) -> list:
        """Mails for one recipient."""
        return [m for m in self.mails if address in m.rcpt]

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


class HttpSink:
    """Collects JSON POSTs; `status` is what it answers; `down()`/`up()` on one port."""

    def __init__(self, status: int = 200):
        self.port, self.status = free_port(), status
        self.bodies: list = []
        self.keys: list = []             # each accepted POST's Idempotency-Key header
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def up(self) -> "HttpSink":
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if sink.status < 300:
                    sink.bodies.append((time.monotonic(), self.path, json.loads(body)))
                    sink.keys.append(self.headers.get("Idempotency-Key"))
                self.send_response(sink.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        self.down()


class Alertmanager:
    """prometheus-alertmanager on loopback (no cluster port); `webhook` receives
    every alert but branchwatch's own (group_wait 0s) when given."""

    def __init__(self, folder: Path, webhook: str | None = None, token: str | None = None):
        self.binary = need_binary("prometheus-alertmanager")
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        receiver = {"name": "branchwatch"}
        if webhook:
            hook = {"url": webhook, "send_resolved": True}
            if token:
                hook["http_config"] = {"authorization": {"credentials": token}}
            receiver["webhook_configs"] = [hook]
        # branchwatch's own forwarded incidents are not sent back to it.
        (self.dir / "am.yml").write_text(yaml.safe_dump({
            "route": {"receiver": "branchwatch", "group_by": ["..."], "group_wait": "0s",
                      "group_interval": "1s", "repeat_interval": "1h",
                      "routes": [{"matchers": ['alertname="BranchwatchIncident"'],
                                  "receiver": "keep"}]},
            "receivers": [receiver, {"name": "keep"}]}))

    def start(self, timeout: float = 20.0) -> "Alertmanager":
        self.proc = start_ready(
            [self.binary, f"--config.file={self.dir / 'am.yml'}",
             f"--storage.path={self.dir / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}",
             "--cluster.listen-address="], self.dir / "am.log", f"{self.url}/-/ready", timeout)
        return self

    def alerts(self, **labels) -> list[dict]:
        """GET /api/v2/alerts filtered by label equality."""
        q = urllib.parse.urlencode([("filter", f'{k}="{v}"') for k, v in labels.items()]
                                   + [("active", "true"), ("silenced", "true"),
                                      ("inhibited", "true"), ("unprocessed", "true")])
        with urllib.request.urlopen(f"{self.url}/api/v2/alerts?{q}", timeout=5) as r:
            return json.load(r)

    def post(self, alerts: list[dict]) -> None:
        """POST /api/v2/alerts, as Prometheus would."""
        req = urllib.request.Request(f"{self.url}/api/v2/alerts", json.dumps(alerts).encode(),
                                     {"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()

    def stop(self) -> None:
        terminate(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def notify_yaml(hook: str) -> str:
    """The on-duty person's webhook; leadership after 15 minutes unacknowledged."""
    return ("notify:\n  people:\n"
            f"    - {{name: 李娜, roles: [execution], webhook: '{hook}'}}\n"
            f"    - {{name: 张伟, roles: [leadership], webhook: '{hook}'}}\n"
            "  routes:\n    - name: all\n      notify: [execution]\n"
            "      escalate: [{after: 15, roles: [leadership]}]\n")
