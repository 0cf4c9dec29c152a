"""SIGHUP reloads the collector's agents and operators without dropping a
connection or an event: a new agent's token works once the file says so, a
broken file leaves the running config in place (one line in the log)."""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timezone

from collector.api import token_hash

from .support.collector import CollectorProcess
from .test_delivery_e2e import wait_for

A_TOKEN, B_TOKEN = "tok-branch-a-0123456789", "tok-branch-b-9876543210"


def _post(url: str, path: str, token: str, body: dict) -> int:
    req = urllib.request.Request(url + path, json.dumps(body).encode(),
                                 {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _heartbeat(url: str, token: str, agent: str, branch: str) -> int:
    now = datetime.now(timezone.utc).isoformat()
    return _post(url, "/api/v1/heartbeat", token, {"agent": agent, "branch": branch, "sent_at": now,
                                                   "interval": 30, "checks": []})


def _batch(n: int) -> dict:
    now = datetime.now(timezone.utc).isoformat()
    events = [{"id": uuid.uuid4().hex, "kind": "state", "agent": "a-srv", "branch": "BR-A",
               "check": f"tcp/svc-{i % 5}", "old_state": None, "new_state": "ok",
               "reason": "answers", "observed_at": now} for i in range(n)]
    return {"agent": "a-srv", "branch": "BR-A", "sent_at": now, "events": events}



def test_sighup_adds_an_agent_while_events_flow(tmp_path):
    c = CollectorProcess(tmp_path / "c", {"a-srv": ("BR-A", "north", A_TOKEN)}).start()
    statuses, sent, stop = [], [0], threading.Event()

    def flow():
        while not stop.is_set():
            statuses.append(_post(c.url, "/api/v1/events", A_TOKEN, _batch(20)))
            sent[0] += 20
    poster = threading.Thread(target=flow)
    try:
        assert _heartbeat(c.url, B_TOKEN, "b-srv", "BR-B") == 401
        poster.start()
        wait_for(lambda: len(statuses) >= 3)
        text = c.config.read_text()
        c.config.write_text(text.replace("agents:\n", "agents:\n  - {id: b-srv, branch: BR-B, region: south, "
                                         f"token_sha256: {token_hash(B_TOKEN)}}}\n", 1))
        c.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _heartbeat(c.url, B_TOKEN, "b-srv", "BR-B") in (200, 204))
        wait_for(lambda: len(statuses) >= 10)
        stop.set()
        poster.join()
        assert set(statuses) == {200}, statuses
        # A is still known, B too; a broken file changes nothing.
        c.config.write_text(c.config.read_text() + "agents: [oops\n")
        c.proc.send_signal(signal.SIGHUP)
        assert _heartbeat(c.url, A_TOKEN, "a-srv", "BR-A") in (200, 204)
        assert _heartbeat(c.url, B_TOKEN, "b-srv", "BR-B") in (200, 204)
    finally:
        stop.set()
        if poster.is_alive():
            poster.join()
        c.stop()
    db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        stored = db.execute("SELECT count(*) FROM event_log WHERE agent = 'a-srv'").fetchone()[0]
    finally:
        db.close()
    assert stored == sent[0]


def test_the_reload_api_answers_what_it_did(tmp_path):
    leader = "leader-reload-token-0123456789"
    c = CollectorProcess(tmp_path / "c", {"a-srv": ("BR-A", "north", A_TOKEN)},
                         extra=f"operators:\n  - {{name: chen, token_sha256: {token_hash(leader)}}}\n")
    with c:
        text = c.config.read_text()
        c.config.write_text(text.replace("agents:\n", "agents:\n  - {id: b-srv, branch: BR-B, "
                                         f"token_sha256: {token_hash(B_TOKEN)}}}\n", 1))
        assert _post(c.url, "/api/v1/reload", leader, {}) == 200
        assert _heartbeat(c.url, B_TOKEN, "b-srv", "BR-B") in (200, 204)
        c.config.write_text("listen: [\n")
        assert _post(c.url, "/api/v1/reload", leader, {}) == 409
        assert _post(c.url, "/api/v1/reload", A_TOKEN, {}) == 403
        assert _heartbeat(c.url, B_TOKEN, "b-srv", "BR-B") in (200, 204)
