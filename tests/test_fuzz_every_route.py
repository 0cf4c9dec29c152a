"""Every route of the collector, fuzzed with hypothesis:
agents', operators', the console's, reports, drills, ack links, the
Alertmanager webhook. The routes are read from the app's router, so a
route added later is fuzzed without editing this file.

Each request has a generated method-matching path (the route's variables
filled with known values and junk), credentials (none, an agent's, an
operator's, a logged-in console session with or without its CSRF token,
junk), headers (content types, `Origin: null`, another site) and a body
(JSON from nothing to nested thousands deep, huge numbers, forms,
multipart cut short, bytes). Asserted for every one: no 5xx. Afterwards
the collector still answers and is correct: a heartbeat and a batch are
accepted and the batch stored, the right person logs in to the console,
and the audit chain verifies.

Volume runs in-process (the app on a real socket in a thread of this
process); a smaller run goes to a real collector process. The counts of
requests and of each status are printed (run with -s).
"""

from __future__ import annotations

import asyncio
import collections
import http.client
import json
import os
import re
import tempfile
import threading
import urllib.parse
from datetime import datetime, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.wire import Batch, Event, Heartbeat, encode, new_event_id
from collector.api import build_app, token_hash
from collector.config import load
from collector.store import SqliteStore

from .support.collector import CollectorProcess
from .support.console import USERS, console_yaml
from .support.paths import free_port
from .test_console_login import login

AGENT_TOKEN = "fuzz-routes-agent-token-eeeeeeee"
OPERATOR_TOKEN = "fuzz-routes-operator-token-ffffff"
AGENTS = {"a1": ("BR-1", "east", AGENT_TOKEN)}
EXTRA = (f"operators:\n  - {{name: olga, token_sha256: {token_hash(OPERATOR_TOKEN)}}}\n"
         + console_yaml(USERS))
# The hospital's routes answer for real (domain.md §2.3: collector/hospital/http.py).
HOSPITAL = ("grading: {tables: [cbrc, hospital]}\n"
            "hospital: {branch: BR-1, core: {members: [{branch: BR-1, check: tcp/his}]}}\n")
FUZZ_EXAMPLES = int(os.environ.get("BRANCHWATCH_FUZZ_EXAMPLES", "1500"))
KNOWN = ["INC-1", "a1", "BR-1", "ack", "note", "resolve", "close", "grade", "confirm", "skip",
         "fail", "start", "edit", "issue", "md", "html", "pdf", "json", "zh", "en", "R-1",
         "D-1", "s1", "x" * 300, "..", "%00", "null", "0", "-1", "9" * 40]


class InProcess:
    """The collector's app (build_app) on a real loopback socket, served by an
    event loop in a thread of the test process."""

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = folder / "collector.yaml"
        self.config.write_text(
            f"listen: {{address: 127.0.0.1, port: {self.port}}}\n"
            f"storage: {{data_dir: {folder / 'data'}}}\nlimits: {{max_body: 65536}}\n"
            f"agents:\n  - {{id: a1, branch: BR-1, region: east, "
            f"token_sha256: {token_hash(AGENT_TOKEN)}}}\n" + EXTRA + HOSPITAL)
        self._ready, self._stop = threading.Event(), None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        from aiohttp import web
        config = load(self.config)
        self.store = SqliteStore(config.db_path())
        runner = web.AppRunner(build_app(config, self.store), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._ready.set()
        await self._stop.wait()
        await runner.cleanup()

    def __enter__(self) -> "InProcess":
        self._thread.start()
        assert self._ready.wait(30), "the in-process collector did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.store.close()


def routes() -> list[tuple[str, str]]:
    """(method, path pattern) of every route the collector's app has."""
    from collector.api_base import STATE
    with tempfile.TemporaryDirectory(prefix="fuzz-routes-") as tmp:
        path = Path(tmp) / "collector.yaml"
        path.write_text(f"storage: {{data_dir: {Path(tmp) / 'data'}}}\n" + EXTRA)
        store = SqliteStore(load(path).db_path())
        app = build_app(load(path), store)
        app[STATE].writer.stop()
        store.close()
    out = set()
    for r in app.router.routes():
        info = r.resource.get_info() if r.resource is not None else {}
        pattern = info.get("formatter") or info.get("path") or info.get("prefix")
        if pattern and r.method in ("GET", "POST"):
            out.add((r.method, pattern))
    return sorted(out)


ROUTES = routes()

# --- generated requests ----------------------------------------------------------------
segments = st.one_of(st.sampled_from(KNOWN), st.text(min_size=1, max_size=12).filter(
    lambda s: "/" not in s))


def fill(pattern: str, draw) -> str:
    return re.sub(r"\{[^}]+\}", lambda _: urllib.parse.quote(draw(segments), safe=""), pattern)


leaf = st.one_of(st.none(), st.booleans(), st.integers(-2 ** 80, 2 ** 80),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=30),
                 st.sampled_from(["I", "II", "III", "cbrc", "power_cut", "0001-01-01T00:00:00Z",
                                  "9999-12-31T23:59:59Z", "\n", "a" * 5000]))
json_values = st.recursive(leaf, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=10), kids, max_size=4)),
    max_leaves=12)
FIELDS = ["why", "text", "what", "key", "grade", "table", "criterion", "runbook", "run",
          "choice", "note", "incident", "kind", "language", "fields", "scenario", "agent",
          "branch", "region", "sent_at", "interval", "spool_depth", "checks", "events",
          "user", "password", "csrf", "next", "force", "alerts"]
# "9999-12-31T23:59:59-14:00" and "0001-01-01T00:00:00+14:00" are years 10000
# and 0 in UTC: stored as given, they broke every read after them (the fuzz
# found it); agent/wire.py's time bounds now refuse them.
EXTREME_TIMES = ["0001-01-01T00:00:00Z", "0001-01-01T00:00:00+14:00",
                 "9999-12-31T23:59:59-14:00", "9999-12-31T23:59:59Z", "1970-01-01T00:00:00Z"]
EXTREME_NUMBERS = [2 ** 70, 2 ** 63, 2 ** 63 - 1, -2 ** 63, -1, 0, 1e308, 5e-324, 15.0]
objects = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)


def deep(n: int) -> bytes:
    return b'{"why": ' + b"[" * n + b"]" * n + b"}"


@st.composite
def bodies(draw, agent_route: bool = False) -> tuple[bytes, str]:
    kind = draw(st.sampled_from(["json", "json", "form", "multipart", "cut", "deep", "bytes",
                                 "none"] + ["wire"] * (8 if agent_route else 1)))
    if kind == "json":
        return json.dumps(draw(st.one_of(objects, json_values))).encode(), "application/json"
    if kind == "form":
        form = draw(st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=40), max_size=6))
        return urllib.parse.urlencode(form).encode(), "application/x-www-form-urlencoded"
    if kind in ("multipart", "cut"):
        parts = draw(st.dictionaries(st.sampled_from(FIELDS), st.text(max_size=30), max_size=4))
        body = b"".join(f'--bnd\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                        .encode() for k, v in parts.items()) + b"--bnd--\r\n"
        if kind == "cut":
            body = body[:draw(st.integers(0, max(0, len(body) - 1)))]
        return body, draw(st.sampled_from(["multipart/form-data; boundary=bnd",
                                           "multipart/form-data", "multipart/mixed; boundary="]))
    if kind == "deep":
        return deep(draw(st.sampled_from([40, 2000, 30000]))), "application/json"
    if kind == "bytes":
        return draw(st.binary(max_size=300)), draw(st.sampled_from(
            ["application/json", "text/plain", "application/x-www-form-urlencoded"]))
    if kind == "wire":      # near-valid agent bodies with values at and past the ends
        now = datetime.now(timezone.utc).isoformat()
        check = {"check": "ups/u/on_battery", "state": "warning", "reason": "r",
                 "since": draw(st.sampled_from(EXTREME_TIMES + [now]))}
        hb = {"agent": "a1", "branch": "BR-1", "sent_at": draw(st.sampled_from(
              EXTREME_TIMES + [now])), "interval": draw(st.sampled_from(EXTREME_NUMBERS)),
              "spool_depth": draw(st.sampled_from(EXTREME_NUMBERS)), "checks": [check]}
        if draw(st.booleans()):
            hb.update(draw(objects))
        return json.dumps(hb).encode(), "application/json"
    return b"", draw(st.sampled_from(["application/json", ""]))


@st.composite
def requests(draw, console_cookie: str, csrf: str):
    method, pattern = draw(st.sampled_from(ROUTES))
    path = fill(pattern, draw)
    if draw(st.booleans()):
        path += "?" + urllib.parse.urlencode(draw(st.dictionaries(
            st.sampled_from(["status", "drill", "lang", "format", "region", "poll", "next",
                             "expired", "incident", "since", "until", "grade", "q", "after",
                             "branch", "before", "problems", "order", "limit"]),
            st.one_of(st.sampled_from(KNOWN), st.text(max_size=10)), max_size=3)))
    headers = {}
    # Mostly the credentials the route wants, so bodies get past the door.
    right = ("agent" if pattern in ("/api/v1/events", "/api/v1/heartbeat") else
             "console" if pattern.startswith("/console") else "operator")
    auth = draw(st.sampled_from([right] * 5 + ["none", "agent", "operator", "console", "junk"]))
    if auth == "agent":
        headers["Authorization"] = f"Bearer {AGENT_TOKEN}"
    elif auth == "operator":
        headers["Authorization"] = f"Bearer {OPERATOR_TOKEN}"
    elif auth == "junk":
        headers["Authorization"] = draw(st.sampled_from(["Bearer", "Basic abc", "Bearer x y"]))
    elif auth == "console":
        headers["Cookie"] = f"bw_session={console_cookie}"
    origin = draw(st.sampled_from([None, None, "null", "http://evil.example"]))
    if origin:
        headers["Origin"] = origin
    body, content_type = (b"", "") if method == "GET" else draw(bodies(right == "agent"))
    if auth == "console" and method == "POST" and content_type.startswith("application/x-www"):
        body += b"&csrf=" + csrf.encode()
    if content_type:
        headers["Content-Type"] = content_type
    return method, path, headers, body


def send(url: str, method: str, path: str, headers: dict, body: bytes) -> tuple[int, bytes]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
    try:
        conn.request(method, path, body=body or None, headers=headers)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


# --- the runs ----------------------------------------------------------------------------
def console_session(url: str) -> tuple[str, str]:
    status, _, cookie = login(url, "boss", USERS["boss"][1], source="127.0.0.6")
    assert status == 303 and cookie
    page = send(url, "GET", "/console/incidents", {"Cookie": f"bw_session={cookie}"}, b"")[1]
    return cookie, re.search(rb'name="csrf" value="([^"]+)"', page)[1].decode()


def still_correct(url: str) -> None:
    """After the fuzz: the collector answers, accepts and stores, and logs people in."""
    assert send(url, "GET", "/healthz", {}, b"")[0] == 200
    agent = {"Authorization": f"Bearer {AGENT_TOKEN}", "Content-Type": "application/json"}
    now = datetime.now(timezone.utc)
    hb = encode(Heartbeat(agent="a1", branch="BR-1", sent_at=now, interval=15.0, checks=[]))
    assert send(url, "POST", "/api/v1/heartbeat", agent, hb)[0] in (200, 204)
    event = Event(id=new_event_id(), kind="state", agent="a1", branch="BR-1",
                  check="ups/after-fuzz/on_battery", old_state="ok", new_state="warning",
                  reason="after the fuzz", observed_at=now)
    status, answer = send(url, "POST", "/api/v1/events", agent,
                          encode(Batch(agent="a1", branch="BR-1", sent_at=now, events=[event])))
    assert status == 200 and json.loads(answer)["accepted"] == [event.id]
    status, _, cookie = login(url, "alice", USERS["alice"][1], source="127.0.0.7")
    assert status == 303 and cookie


def fuzz(url: str, examples: int) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    cookie, csrf = console_session(url)

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests(cookie, csrf))
    def one(req):
        method, path, headers, body = req
        status, answer = send(url, method, path, headers, body)
        counts[status] += 1
        assert status < 500, (status, method, path, headers, body[:300], answer[:300])

    one()
    return counts


def report(where: str, counts: collections.Counter) -> None:
    total = sum(counts.values())
    four = sum(n for s, n in counts.items() if 400 <= s < 500)
    five = sum(n for s, n in counts.items() if s >= 500)
    print(f"\nfuzz ({where}): {total} requests, {four} 4xx, {five} 5xx; "
          f"by status {dict(sorted(counts.items()))}")


def test_every_route_in_process(tmp_path):
    with InProcess(tmp_path / "c") as c:
        counts = fuzz(c.url, FUZZ_EXAMPLES)
        still_correct(c.url)
        assert c.store.verify_audit() == []
    report("in-process", counts)
    assert len({p for _, p in ROUTES}) >= 30       # the router really was read


def test_every_route_against_a_real_collector(tmp_path):
    with CollectorProcess(tmp_path / "c", AGENTS, extra=EXTRA) as c:
        counts = fuzz(c.url, 200)
        still_correct(c.url)
        assert c.proc.poll() is None
    report("real process", counts)
