"""Requests that used to get a 5xx, against a real collector
process: operator JSON nested 2,000 deep, a collector whose disk is full
(a small tmpfs data directory), a store locked by another process. Each is
a 4xx with a one-line message, or a 503 with Retry-After while the store
cannot write, and the collector answers correctly once it can again. Also:
a heartbeat never changes the region the collector enrolled the agent in."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import urllib.error
import urllib.request
from datetime import datetime, timezone

import pytest

from agent.wire import Batch, Event, Heartbeat, encode, new_event_id
from collector.api import token_hash

from .support.collector import CollectorProcess

TOKEN = "refusals-agent-token-aaaaaaaaaa"
OPERATOR = "refusals-operator-token-bbbbbbbbb"
AGENTS = {"a1": ("BR-1", "east", TOKEN)}
EXTRA = f"operators:\n  - {{name: olga, token_sha256: {token_hash(OPERATOR)}}}\n"


def call(url: str, body: bytes | None = None, token: str | None = None,
         method: str | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, method=method,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def batch(n: int = 50, reason: str = "mains lost") -> bytes:
    now = datetime.now(timezone.utc)
    return encode(Batch(agent="a1", branch="BR-1", sent_at=now, events=[Event(
        id=new_event_id(), kind="state", agent="a1", branch="BR-1", check=f"ups/u{i}/on_battery",
        old_state="ok", new_state="warning", reason=reason + " " + "x" * 200,
        observed_at=now) for i in range(n)]))


def heartbeat(region: str = "") -> bytes:
    return encode(Heartbeat(agent="a1", branch="BR-1", region=region,
                            sent_at=datetime.now(timezone.utc), interval=15.0, checks=[]))


def one_line_error(body: bytes) -> str:
    message = json.loads(body)["error"]
    assert isinstance(message, str) and "\n" not in message.strip()
    return message


@pytest.fixture()
def collector(tmp_path):
    with CollectorProcess(tmp_path / "c", AGENTS, extra=EXTRA) as c:
        yield c


def test_json_nested_2000_deep_is_a_400_everywhere(collector):
    deep = b'{"why": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    deeper = b"[" * 30_000 + b"]" * 30_000            # past any parser's recursion
    for path in ("/api/v1/incidents/INC-x/ack", "/api/v1/incidents/INC-x/runbooks",
                 "/api/v1/incidents/INC-x/steps/s1/confirm", "/api/v1/reports",
                 "/api/v1/drills"):
        for body in (deep, deeper):
            status, _, answer = call(collector.url + path, body, OPERATOR)
            assert status == 400, (path, status, answer[:200])
            assert "nested deeper" in one_line_error(answer)
    for path in ("/api/v1/events", "/api/v1/heartbeat"):
        status, _, answer = call(collector.url + path, deeper[:60000], TOKEN)
        assert status == 400, (path, status, answer[:200])
        one_line_error(answer)
    assert call(collector.url + "/healthz")[0] == 200


NOW = datetime.now(timezone.utc).isoformat()
CHECK = {"check": "ups/u/on_battery", "state": "warning", "reason": "r", "since": NOW}
@pytest.mark.parametrize("change", [
    {"spool_depth": 2 ** 70}, {"spool_depth": -2 ** 64},
    {"checks": [{**CHECK, "since": "0001-01-01T00:00:00+14:00"}]},
    {"checks": [{**CHECK, "since": "0001-01-01T00:00:00Z"}]},
    # Years 10000 and 0 in UTC: stored as given, they broke every read after
    # them; the wire's time bounds refuse them.
    {"sent_at": "9999-12-31T23:59:59-14:00"}, {"sent_at": "0001-01-01T00:00:00+14:00"},
    {"checks": [{**CHECK, "since": "9999-12-31T23:59:59-14:00"}]},
])
def test_numbers_and_times_past_the_ends_are_4xx(collector, change):
    hb = {"agent": "a1", "branch": "BR-1", "sent_at": NOW, "interval": 15.0,
          "checks": [CHECK], **change}
    status, _, answer = call(collector.url + "/api/v1/heartbeat", json.dumps(hb).encode(), TOKEN)
    assert status == 204 or 400 <= status < 500, (change, status, answer)
    if status != 204:
        one_line_error(answer)
    # Whatever was kept, the collector still reads it back and answers.
    assert call(collector.url + "/healthz")[0] == 200
    assert call(collector.url + "/api/v1/heartbeat", heartbeat(), TOKEN)[0] == 204
    assert call(collector.url + "/api/v1/incidents", None, OPERATOR)[0] == 200


def test_a_heartbeat_never_changes_the_enrolled_region(collector):
    assert call(collector.url + "/api/v1/heartbeat", heartbeat("west"), TOKEN)[0] == 204
    assert call(collector.url + "/api/v1/heartbeat", heartbeat(""), TOKEN)[0] == 204
    assert call(collector.url + "/api/v1/heartbeat", heartbeat("north"), TOKEN)[0] == 204
    db = sqlite3.connect(f"file:{collector.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        assert db.execute("SELECT region FROM agents WHERE agent = 'a1'").fetchone() == ("east",)
        seen = db.execute("SELECT data FROM audit WHERE kind = 'agent.seen'").fetchall()
        assert [json.loads(d)["region"] for (d,) in seen] == ["east"]
    finally:
        db.close()


def test_a_store_locked_by_another_process_is_a_503_then_heals(collector):
    db = sqlite3.connect(collector.folder / "data" / "collector.db", isolation_level=None)
    try:
        db.execute("BEGIN EXCLUSIVE")
        # The collector waits its busy timeout (5 s) for the lock, then says so.
        status, headers, answer = call(collector.url + "/api/v1/heartbeat", heartbeat(), TOKEN)
        assert status == 503 and int(headers["Retry-After"]) > 0
        assert "cannot write its store" in one_line_error(answer)
        # /healthz asks the store too: locked, it says so the same way (or, once reads
        # no longer queue behind the writer, answers).
        status, headers, _ = call(collector.url + "/healthz")
        assert status == 200 or (status == 503 and "Retry-After" in headers)
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert call(collector.url + "/api/v1/heartbeat", heartbeat(), TOKEN)[0] == 204


@contextlib.contextmanager
def tmpfs(path, size: str):
    """A small tmpfs at `path` (we are root in CI); skips with the reason if refused."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the full-disk test: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(folder) -> os.PathLike:
    """Fill the file system holding `folder` to the last byte; the filler's path."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (1 << 16, 1):          # big writes, then the last bytes one by one
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * chunk):
                    pass
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_a_503_with_retry_after_and_nothing_is_lost(tmp_path):
    c = CollectorProcess(tmp_path / "c", AGENTS, extra=EXTRA)
    with tmpfs(c.folder / "data", "8m"), c:
        assert call(c.url + "/api/v1/events", batch(), TOKEN)[0] == 200
        filler = fill(c.folder / "data")
        statuses, refused = [], None
        for _ in range(400):          # until SQLite needs a page the disk has not got
            body = batch()
            status, headers, answer = call(c.url + "/api/v1/events", body, TOKEN)
            statuses.append(status)
            if status != 200:
                refused = (body, headers, answer)
                break
        assert statuses[-1] == 503, statuses[-5:]
        body, headers, answer = refused
        assert int(headers["Retry-After"]) > 0 and "full" in one_line_error(answer)
        assert call(c.url + "/healthz")[0] == 200
        status, _, answer = call(c.url + "/api/v1/incidents", None, OPERATOR)
        assert status == 200, answer            # reads still answer while writes cannot
        os.unlink(filler)
        # Space again: the refused batch goes in on its resend, as new, not duplicates.
        status, _, answer = call(c.url + "/api/v1/events", body, TOKEN)
        assert status == 200, answer
        ack = json.loads(answer)
        assert len(ack["accepted"]) == 50 and ack["duplicates"] == []
        assert call(c.url + "/api/v1/heartbeat", heartbeat(), TOKEN)[0] == 204
        accepted = 50 * (statuses.count(200) + 2)
        db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
        try:
            assert db.execute("SELECT count(*) FROM events").fetchone()[0] == accepted
        finally:
            db.close()
        assert c.stop() == 0
