"""The collector's ingest API, through a real collector process over real HTTP.

`python -m collector.cli collector --config FILE` runs on 127.0.0.1 on a
free port; requests go through urllib exactly as an agent's would.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.wire import Batch, CheckStatus, Event, Heartbeat, encode, new_event_id
from collector.config import load

from .support.collector import CollectorProcess as SupportCollector
from .support.paths import REPO

TOKENS = {"a1": "token-of-a1-xxxxxxxxxxxxxxxx", "a2": "token-of-a2-yyyyyyyyyyyyyyyy"}
BRANCH = {"a1": "B1", "a2": "B2"}
MAX_BODY = 65536


class CollectorProcess(SupportCollector):
    """The API tests' collector: agents a1 (B1) and a2 (B2), a 64 KiB body limit."""

    def __init__(self, folder: Path):
        super().__init__(folder, {a: (BRANCH[a], t) for a, t in TOKENS.items()},
                         max_body=MAX_BODY)


def request(url: str, body: bytes | None = None, token: str | None = None,
            method: str | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method)
    if token is not None:
        req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def get(url: str) -> tuple[int, bytes]:
    return request(url)


def events(agent: str = "a1", n: int = 3, start: datetime | None = None) -> list[Event]:
    t0 = start or datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)
    return [Event(id=new_event_id(), kind="state", agent=agent, branch=BRANCH[agent],
                  check=f"ups/rack/on_battery/{i}", old_state="ok", new_state="critical",
                  reason="mains lost", observed_at=t0 + timedelta(seconds=i)) for i in range(n)]


def batch(evs: list[Event], agent: str = "a1") -> bytes:
    return encode(Batch(agent=agent, branch=BRANCH[agent],
                        sent_at=datetime.now(timezone.utc), events=evs))


def post_batch(c: CollectorProcess, body: bytes, token: str = TOKENS["a1"]):
    status, data = request(c.url + "/api/v1/events", body, token)
    return status, json.loads(data) if data else None


def heartbeat(agent: str = "a1") -> bytes:
    return encode(Heartbeat(agent=agent, branch=BRANCH[agent], region="north",
                            sent_at=datetime.now(timezone.utc), interval=15.0, spool_depth=2,
                            checks=[CheckStatus(check="ups/rack/comm", state="ok", reason="")]))


def metric(c: CollectorProcess, name: str, **labels) -> float | None:
    from prometheus_client.parser import text_string_to_metric_families
    text = get(c.url + "/metrics")[1].decode()
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return None


def db_count(c: CollectorProcess, sql: str) -> int:
    conn = sqlite3.connect(c.config.parent / "data" / "collector.db")
    try:
        return conn.execute(sql).fetchone()[0]
    finally:
        conn.close()


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    c = CollectorProcess(tmp_path_factory.mktemp("collector")).start()
    yield c
    assert c.stop() == 0


def test_ingest_then_resend_is_all_duplicates(collector):
    evs = events(n=5)
    body = batch(evs)
    status, ack = post_batch(collector, body)
    assert status == 200
    assert ack == {"accepted": [e.id for e in evs], "duplicates": []}
    status, ack = post_batch(collector, body)
    assert status == 200
    assert ack == {"accepted": [], "duplicates": [e.id for e in evs]}
    ids = ",".join(f"'{e.id}'" for e in evs)
    assert db_count(collector, f"SELECT count(*) FROM events WHERE id IN ({ids})") == 5
    # One audit record for the batch, holding all five; none for the resend.
    assert db_count(collector, "SELECT count(*) FROM audit, json_each(audit.data, '$.events') "
                               "WHERE kind = 'events.received' "
                               f"AND json_extract(value, '$.id') IN ({ids})") == 5


def test_heartbeat_is_stored_and_first_is_audited(collector):
    status, _ = request(collector.url + "/api/v1/heartbeat", heartbeat(), TOKENS["a1"])
    assert status == 204
    status, _ = request(collector.url + "/api/v1/heartbeat", heartbeat(), TOKENS["a1"])
    assert status == 204
    assert db_count(collector, "SELECT count(*) FROM audit WHERE kind = 'agent.seen' "
                               "AND actor = 'a1'") == 1
    assert db_count(collector, "SELECT spool_depth FROM agents WHERE agent = 'a1'") == 2


@pytest.mark.parametrize("token", ["wrong-token", "", None])
def test_bad_or_missing_token_is_401(collector, token):
    status, body = post_batch(collector, batch(events()), token=token)
    assert status == 401 and body["error"]


def test_another_agents_id_or_branch_is_403(collector):
    # a2's token writing as a1 (a1's id and branch)
    status, body = post_batch(collector, batch(events("a1")), token=TOKENS["a2"])
    assert status == 403 and "a2" in body["error"]
    # a1 writing branch B2
    b = Batch(agent="a1", branch="B2", sent_at=datetime.now(timezone.utc), events=[])
    status, body = post_batch(collector, encode(b))
    assert status == 403 and body["error"].startswith("branch:")


def test_event_of_another_branch_inside_a_batch_is_400(collector):
    evs = events(n=2)
    evs[1].branch = "B2"
    status, body = post_batch(collector, batch(evs))
    assert status == 400 and body["error"].startswith("events[1].branch:")
    assert db_count(collector, f"SELECT count(*) FROM events WHERE id = '{evs[0].id}'") == 0


@pytest.mark.parametrize("body, field", [
    (b"{not json", "not valid JSON"),
    (b'{"agent": "a1", "branch": "B1", "sent_at": "2024-01-01T00:00:00Z", '
     b'"events": [{"id": 5}]}', "events[0].id:"),
    (b'{"agent": "a1", "branch": "B1", "sent_at": "2024-01-01T00:00:00Z"}', "events: missing"),
    (b'{"agent": "a1", "branch": "B1", "sent_at": "2024-01-01T00:00:00Z", "events": [], '
     b'"extra": 1}', "extra: unknown field"),
])
def test_garbage_is_400_naming_the_field(collector, body, field):
    status, answer = post_batch(collector, body)
    assert status == 400
    assert field in answer["error"] and "\n" not in answer["error"]


def test_wrong_kind_names_the_field(collector):
    evs = events(n=1)
    raw = json.loads(batch(evs))
    raw["events"][0]["new_state"] = "on fire"
    status, answer = post_batch(collector, json.dumps(raw).encode())
    assert status == 400 and answer["error"].startswith("events[0].new_state:")


def test_oversized_body_is_413(collector):
    big = batch(events(n=400))
    assert len(big) > MAX_BODY
    status, answer = post_batch(collector, big)
    assert status == 413 and "limit" in answer["error"]


def test_healthz_and_metrics(collector):
    status, body = get(collector.url + "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}
    before = metric(collector, "branchwatch_collector_events_ingested_total", result="accepted")
    dup_before = metric(collector, "branchwatch_collector_events_ingested_total",
                        result="duplicate") or 0
    body = batch(events("a2", n=4), "a2")
    assert post_batch(collector, body, TOKENS["a2"])[0] == 200
    assert post_batch(collector, body, TOKENS["a2"])[0] == 200
    assert metric(collector, "branchwatch_collector_events_ingested_total",
                  result="accepted") == (before or 0) + 4
    assert metric(collector, "branchwatch_collector_events_ingested_total",
                  result="duplicate") == dup_before + 4
    assert metric(collector, "branchwatch_collector_agents_seen") == 2
    assert metric(collector, "branchwatch_collector_ingest_latency_seconds_count",
                  endpoint="events") >= 2
    assert metric(collector, "branchwatch_collector_requests_rejected_total",
                  endpoint="events", code="401") >= 1


def test_store_survives_a_restart(tmp_path):
    c = CollectorProcess(tmp_path).start()
    evs = events(n=10)
    body = batch(evs)
    assert post_batch(c, body)[1]["accepted"] == [e.id for e in evs]
    assert c.stop() == 0
    c.start()
    try:
        assert post_batch(c, body)[1] == {"accepted": [], "duplicates": [e.id for e in evs]}
        assert db_count(c, "SELECT count(*) FROM events") == 10
        assert metric(c, "branchwatch_collector_agents_seen") == 1
    finally:
        assert c.stop() == 0
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(c.config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "audit: intact:" in out.stdout
    # every event is in an audit record (one per batch); incident changes are audited too
    assert db_count(c, "SELECT count(*) FROM audit, json_each(audit.data, '$.events') "
                       "WHERE kind = 'events.received'") == 10


def test_shipped_example_config_loads():
    c = load(REPO / "config" / "collector.example.yaml")
    assert c.listen.tls_cert and len(c.agents) == 2 and c.limits.max_body == 1048576


def test_bad_config_is_one_line_and_exit_2(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("agents:\n  - {id: a1, branch: B1, token_sha256: nothex}\n")
    out = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "--config",
                          str(bad)], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "agents[0].token_sha256: expected 64 lowercase hex digits" in out.stderr


def test_tls(tmp_path):
    """With listen.tls_cert/tls_key the API is HTTPS; a client with the CA gets through."""
    import shutil
    import ssl
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed (makes the test certificate)")
    cert, key = tmp_path / "c.crt", tmp_path / "c.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    from collector.api import token_hash
    c = CollectorProcess(tmp_path)
    operator = "operator-token-for-tls-xxxxxxxxxxxx"
    text = c.config.read_text().replace(
        "listen: {", f"listen: {{tls_cert: {cert}, tls_key: {key}, ")
    text += f"operators:\n  - {{name: alice, token_sha256: {token_hash(operator)}}}\n"
    c.config.write_text(text)
    c.url = c.url.replace("http:", "https:")
    ctx = ssl.create_default_context(cafile=str(cert))
    c.proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "collector", "--config",
                               str(c.config)], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(c.url + "/healthz", context=ctx, timeout=5) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert c.proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        req = urllib.request.Request(c.url + "/api/v1/heartbeat", data=heartbeat(),
                                     headers={"Authorization": f"Bearer {TOKENS['a1']}"})
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            assert r.status == 204
        # The operators' CLI over HTTPS: with the CA it lists, without it a clear refusal.
        env = {**os.environ, "BRANCHWATCH_TOKEN": operator}
        cli = [sys.executable, "-m", "collector.cli", "incidents", "list", "--url", c.url]
        ok = subprocess.run([*cli, "--ca-file", str(cert), "--json"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=30)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout) == {"incidents": []}
        bad = subprocess.run(cli, cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr
        assert "certificate" in bad.stderr.lower()
    finally:
        assert c.stop() == 0
