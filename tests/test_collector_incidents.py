"""Incidents in the running collector (issue 4): a real collector process on
127.0.0.1, events and heartbeats over HTTP, operators through the API and
the `branchwatch incidents` CLI, the audit trail checked with `audit verify`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Batch, CheckStatus, Event, Heartbeat, encode, new_event_id
from collector.api import token_hash

from .support.paths import REPO
from .test_delivery_e2e import wait_for
from .test_collector_api import TOKENS, CollectorProcess, db_count, metric, request

OPERATOR = "operator-alice-token-zzzzzzzzzzzz"
# Recent: the collector applies events observed within a month of their arrival.
T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=2)


class IncidentCollector(CollectorProcess):
    """The API tests' collector plus an operator and an incidents section."""

    def __init__(self, folder, grace: float | None = None):
        super().__init__(folder)
        with self.config.open("a") as f:
            f.write(f"operators:\n  - {{name: alice, token_sha256: {token_hash(OPERATOR)}}}\n")
            if grace is not None:
                f.write(f"incidents: {{window: 120, deadman_grace: {grace}}}\n")
            # These tests count audit records: no grading or runbook records on the
            # side (tests/test_grading_*.py and test_runbooks*.py cover those).
            f.write("grading: {tables: []}\nrunbooks: {auto_start: false}\n")


def ev(t: float, check: str, state: str, diagnosis: str | None = None) -> Event:
    return Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=check,
                 old_state=None, new_state=state, reason=f"{check} {state}",
                 observed_at=T0 + timedelta(seconds=t), diagnosis=diagnosis)


def send(c, evs: list[Event]) -> dict:
    body = encode(Batch(agent="a1", branch="B1", sent_at=datetime.now(timezone.utc),
                        events=evs))
    status, data = request(c.url + "/api/v1/events", body, TOKENS["a1"])
    assert status == 200, data
    return json.loads(data)


def api(c, method: str, path: str, body: dict | None = None, token: str = OPERATOR):
    status, data = request(c.url + path, None if body is None else json.dumps(body).encode(),
                           token, method=method)
    return status, json.loads(data) if data else None


def incidents(c, status: str | None = None) -> list[dict]:
    code, data = api(c, "GET", "/api/v1/incidents" + (f"?status={status}" if status else ""))
    assert code == 200, data
    return data["incidents"]


def cli(c, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BRANCHWATCH_TOKEN=OPERATOR)
    return subprocess.run([sys.executable, "-m", "collector.cli", "incidents", *args,
                           "--url", c.url], cwd=REPO, capture_output=True, text=True, env=env)


def audit(c, kind: str) -> list[tuple]:
    import sqlite3
    conn = sqlite3.connect(c.config.parent / "data" / "collector.db")
    try:
        return [(a, json.loads(d)) for a, d in conn.execute(
            "SELECT actor, data FROM audit WHERE kind = ? ORDER BY seq", (kind,))]
    finally:
        conn.close()


def test_power_outage_lifecycle_survives_restart(tmp_path):
    c = IncidentCollector(tmp_path).start()
    try:
        outage = [ev(0, "ups/rack/on_battery", "critical"),
                  ev(20, "line/primary/gw", "critical", diagnosis="line"),
                  ev(40, "tcp/core-banking", "critical")]
        assert len(send(c, outage)["accepted"]) == 3
        [inc] = incidents(c)
        assert inc["title"] == "power outage" and inc["status"] == "open"
        tcp = next(f for f in inc["faults"] if f["check"] == "tcp/core-banking")
        assert tcp["suppressed"]
        [(actor, data)] = audit(c, "incident.suppressed")
        assert actor == "collector" and data["incident"] == inc["id"] and not data["alert"]
        assert len(audit(c, "incident.opened")) == 1
        assert metric(c, "branchwatch_collector_incidents", status="open") == 1

        # A resend changes nothing: no new incident, no new audit record.
        records = db_count(c, "SELECT count(*) FROM audit")
        assert send(c, outage)["accepted"] == []
        assert incidents(c) == [inc]
        assert db_count(c, "SELECT count(*) FROM audit") == records

        # People: agents may not; close while open is refused with the reason.
        assert api(c, "GET", "/api/v1/incidents", token=TOKENS["a1"])[0] == 403
        assert api(c, "POST", f"/api/v1/incidents/{inc['id']}/ack", {"why": "x"},
                   token=TOKENS["a1"])[0] == 403
        assert api(c, "GET", "/api/v1/incidents", token="nobody")[0] == 401
        code, err = api(c, "POST", f"/api/v1/incidents/{inc['id']}/close", {"why": "done"})
        assert code == 409 and "faults still active" in err["error"]
        assert api(c, "POST", "/api/v1/incidents/INC-nope/ack", {"why": "x"})[0] == 404
        assert api(c, "POST", f"/api/v1/incidents/{inc['id']}/ack", {})[0] == 400
        out = cli(c, "ack", inc["id"], "--why", "on it, calling the branch")
        assert out.returncode == 0, out.stderr
        [(actor, data)] = audit(c, "incident.acknowledged")
        assert actor == "alice" and "on it, calling the branch" in data["detail"]

        # Restart with the incident open: it is kept, and clears resolve it.
        assert c.stop() == 0
        c.start()
        assert [i["id"] for i in incidents(c, "open")] == [inc["id"]]
        send(c, [ev(600, "ups/rack/on_battery", "ok"), ev(610, "line/primary/gw", "ok"),
                 ev(620, "tcp/core-banking", "ok")])
        [res] = incidents(c)
        assert res["id"] == inc["id"] and res["status"] == "resolved"
        assert len(audit(c, "incident.resolved")) == 1

        out = cli(c, "close", inc["id"], "--why", "mains back, post-mortem filed")
        assert out.returncode == 0, out.stderr
        assert "closed" in out.stdout
        [(actor, data)] = audit(c, "incident.closed")
        assert actor == "alice" and "mains back, post-mortem filed" in data["detail"]
        out = cli(c, "close", inc["id"], "--why", "again")
        assert out.returncode == 1 and "409" in out.stderr
        listed = cli(c, "list", "--status", "closed")
        assert inc["id"] in listed.stdout and "power outage" in listed.stdout
    finally:
        assert c.stop() == 0
    c.start()          # closed incidents survive a restart too
    try:
        code, shown = api(c, "GET", f"/api/v1/incidents/{inc['id']}")
        assert code == 200 and shown["status"] == "closed"
        assert shown["closed"]["who"] == "alice"
    finally:
        assert c.stop() == 0
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(c.config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and "intact" in out.stdout, out.stdout + out.stderr


def test_silent_agent_opens_branch_unreachable_with_ups_state(tmp_path):
    c = IncidentCollector(tmp_path, grace=1).start()
    try:
        hb = Heartbeat(agent="a1", branch="B1", region="north",
                       sent_at=datetime.now(timezone.utc), interval=1.0, checks=[
                           CheckStatus(check="ups/rack/on_battery", state="critical",
                                       reason="on battery"),
                           CheckStatus(check="ups/rack/battery_low", state="warning",
                                       reason="runtime 4 min")])
        assert request(c.url + "/api/v1/heartbeat", encode(hb), TOKENS["a1"])[0] == 204
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            found = [i for i in incidents(c) if i["title"].startswith("branch unreachable")]
            if found:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"no branch unreachable incident: {incidents(c)}")
        [inc] = found
        assert "likely power exhausted" in inc["title"]
        assert "ups/rack/battery_low" in inc["title"]
        assert any(f["category"] == "silent" and f["active"] for f in inc["faults"])
        assert metric(c, "branchwatch_collector_agents_silent") == 1
        assert len(audit(c, "incident.opened")) + len(audit(c, "incident.joined")) >= 2
        # Heard again: the silence clears (the UPS fault stays until it clears).
        hb2 = Heartbeat(agent="a1", branch="B1", sent_at=datetime.now(timezone.utc),
                        interval=30.0, checks=[])
        assert request(c.url + "/api/v1/heartbeat", encode(hb2), TOKENS["a1"])[0] == 204
        [inc] = incidents(c)
        assert not any(f["category"] == "silent" and f["active"] for f in inc["faults"])
        assert metric(c, "branchwatch_collector_agents_silent") == 0
    finally:
        assert c.stop() == 0


def wait_until(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _wait_silent(c, timeout: float = 15.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [i for i in incidents(c) if i["title"].startswith("branch unreachable")]
        if found:
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no branch unreachable incident: {incidents(c)}")


def test_silence_survives_a_collector_restart_and_clears_after(tmp_path):
    c = IncidentCollector(tmp_path, grace=1).start()
    try:
        hb = Heartbeat(agent="a1", branch="B1", sent_at=datetime.now(timezone.utc),
                       interval=1.0, checks=[])
        assert request(c.url + "/api/v1/heartbeat", encode(hb), TOKENS["a1"])[0] == 204
        opened = _wait_silent(c)
    finally:
        assert c.stop() == 0
    c.start()                   # same data directory
    try:
        # Still silent after the restart: the gauge knows it without waiting for a
        # new dead-man verdict, and rounds of it open no second incident.
        assert metric(c, "branchwatch_collector_agents_silent") == 1
        rounds = metric(c, "branchwatch_collector_deadman_rounds_total")
        wait_until(lambda: metric(c, "branchwatch_collector_deadman_rounds_total") >= rounds + 3,
                   what="three dead-man rounds after the restart")
        assert [i["id"] for i in incidents(c)] == [opened["id"]]
        assert len(audit(c, "incident.opened")) == 1
        hb2 = Heartbeat(agent="a1", branch="B1", sent_at=datetime.now(timezone.utc),
                        interval=30.0, checks=[])
        assert request(c.url + "/api/v1/heartbeat", encode(hb2), TOKENS["a1"])[0] == 204
        [inc] = incidents(c)
        assert inc["status"] == "resolved"
        assert metric(c, "branchwatch_collector_agents_silent") == 0
    finally:
        assert c.stop() == 0


def test_a_skewed_agent_clock_is_corrected_from_its_heartbeats(tmp_path):
    """design.md: order and measure on corrected observation time. a2's clock is
    an hour slow; its on-battery event lands at the right moment on ours."""
    c = IncidentCollector(tmp_path).start()
    try:
        skew = timedelta(hours=1)
        now = datetime.now(timezone.utc)
        hb = Heartbeat(agent="a2", branch="B2", sent_at=now - skew, interval=15.0, checks=[])
        assert request(c.url + "/api/v1/heartbeat", encode(hb), TOKENS["a2"])[0] == 204
        e = Event(id=new_event_id(), kind="state", agent="a2", branch="B2",
                  check="ups/rack/on_battery", old_state="ok", new_state="critical",
                  reason="mains lost", observed_at=now - skew - timedelta(seconds=5))
        body = encode(Batch(agent="a2", branch="B2", sent_at=datetime.now(timezone.utc) - skew,
                            events=[e]))
        assert request(c.url + "/api/v1/events", body, TOKENS["a2"])[0] == 200
        [inc] = incidents(c)
        started = datetime.fromisoformat(inc["started_at"])
        assert abs((started - (now - timedelta(seconds=5))).total_seconds()) < 2.0
        # /metrics shows the offsets the engine publishes once a round.
        offset = wait_for(lambda: metric(
            c, "branchwatch_collector_agent_clock_offset_seconds", agent="a2"),
            what="a2's clock offset on /metrics")
        assert offset == pytest.approx(3600, abs=2)
        # The store keeps what the agent said.
        assert db_count(c, "SELECT observed_at FROM events WHERE agent = 'a2'") == round(
            e.observed_at.timestamp() * 1_000_000)
    finally:
        assert c.stop() == 0


def test_incident_round_trips_through_the_store(tmp_path):
    from collector.incident_codec import encode, from_dict, to_dict
    from collector.incidents import IncidentBook
    from collector.store import SqliteStore
    book = IncidentBook()
    now = T0 + timedelta(hours=1)
    book.apply_event(ev(0, "ups/rack/on_battery", "critical"), now)
    book.apply_event(ev(5, "line/primary/gw", "critical", diagnosis="line"), now)
    book.apply_event(ev(6, "tcp/core-banking", "critical"), now)
    [inc] = book.incidents()
    book.ack(inc.id, "alice", "looking", now)
    book.note(inc.id, "alice", "branch called", now)
    assert from_dict(json.loads(encode(to_dict(inc)))) == inc
    store = SqliteStore(tmp_path / "c.db")
    try:
        store.save_incidents([inc], 1.0, [(1.0, "incident.test", "collector", {})])
        assert store.incident(inc.id) == inc
        assert store.load_open_incidents() == [inc] and store.list_incidents("closed") == []
        assert store.incident("nope") is None and store.verify_audit() == []
        # A book started from the store carries on with it.
        again = IncidentBook(incidents=store.load_open_incidents())
        changes = again.apply_event(ev(7, "ups/rack/on_battery", "ok"), now)
        assert [c.kind for c in changes] == ["cleared"]
    finally:
        store.close()
