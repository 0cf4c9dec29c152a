"""A pre-authorisation holds up to its grade (domain.md §4; 第三條(二)), end to
end: a real collector, a real agent and a switch in snmpsim (SETs go only to
snmpsim). The runbook's port action is granted up to grade II. Ungraded, it
runs by itself once the first step is done; at grade I (a leadership's data
criterion) the switch is not touched until a person confirms, and then the
agent carries it out.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.paths import data_dir, free_port
from .test_collector_api import request
from .test_failover_e2e import ADMIN, GI9, snmpget, start_sim, wait_for

LEADER = "operator-grant-e2e-token-xxxxxxxxxxx"
TOKEN = "agent-grant-e2e-token-xxxxxxxxxxxxxx"
RUNBOOK = """\
id: backup-port
title: Bring up the backup port (granted up to grade II)
source: test
applies_to: {categories: [service], priority: 50}
steps:
  - {id: assess, kind: manual, title: Assess, text: look at the branch}
  - id: up-backup
    kind: action
    title: Bring up the backup port
    action: {type: snmp_port, switch: funds, port: backup, state: up}
    preauthorised: {granted_by: leadership group, granted_at: "2026-11-30", up_to_grade: II}
    timeout: 60
    on_fail: by-hand
  - {id: check, kind: manual, title: Check, text: check the branch is back, next: end}
  - {id: by-hand, kind: manual, title: By hand, text: move the cable by hand, next: end}
"""


@pytest.fixture
def rig(tmp_path):
    data_dir("snmprec", "cisco-sb-sg350-10.snmprec")       # skips without the recordings
    sim = start_sim(tmp_path, writable=True)
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "backup-port.yaml").write_text(RUNBOOK)
    c = CollectorProcess(tmp_path / "collector", {"a1": ("BR-1", "north", TOKEN)},
                         extra=f"operators:\n  - {{name: lina, roles: [leadership], "
                               f"token_sha256: {token_hash(LEADER)}}}\n"
                               "incidents: {window: 120, deadman_grace: 86400}\n"
                               f"grading: {{tables: [cbrc]}}\nrunbooks: {{folder: {books}}}\n"
                         ).start()
    config = {
        "agent": {"id": "a1", "branch": "BR-1", "region": "north"},
        "state": {"debounce": 1},
        "switches": [{"name": "funds", "host": "127.0.0.1", "port": sim.port,
                      "snmp": {"version": "2c", "community": "branch-sw"},
                      "interval": 5, "timeout": 1, "retries": 0,
                      "interfaces": [{"name": "gi9", "id": "backup", "role": "uplink-backup"}],
                      "actions": {"ports": ["backup"]}}],
        "host": {"tcp": [{"name": "teller", "host": "127.0.0.1", "port": free_port(),
                          "timeout": 0.3, "interval": 0.5}]},
        "collector": {"url": c.url, "token": TOKEN, "heartbeat_interval": 0.5, "timeout": 0.4,
                      "spool": {"path": str(tmp_path / "spool.db")}},
    }
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    yield c, agent, sim
    agent.stop()
    c.stop()
    sim.stop()


def post(c, path: str, body: dict) -> dict:
    status, data = request(c.url + path, json.dumps(body).encode(), LEADER, method="POST")
    assert status == 200, data
    return json.loads(data)


def incident(c) -> dict | None:
    status, data = request(c.url + "/api/v1/incidents", None, LEADER)
    assert status == 200
    incs = json.loads(data)["incidents"]
    return incs[0] if incs and incs[0]["runbooks"] else None


def heard(c) -> int:
    """When the collector last heard the agent's heartbeat (read-only; 0: not yet)."""
    db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT heartbeat_at FROM agents WHERE agent = 'a1'").fetchone()
        return (row and row[0]) or 0
    finally:
        db.close()


def step(c, inc_id: str, name: str) -> dict | None:
    status, data = request(f"{c.url}/api/v1/incidents/{inc_id}", None, LEADER)
    run = json.loads(data)["runbooks"][0]
    return next((r for r in run["records"] if r["step"] == name), None)


@pytest.mark.parametrize("grade_i", [False, True], ids=["within-the-grant", "above-it"])
def test_a_grant_runs_the_port_action_up_to_its_grade_and_waits_above(rig, grade_i):
    c, agent, sim = rig
    inc = wait_for(lambda: incident(c), what="the runbook")
    iid = inc["id"]
    assert inc["runbooks"][0]["current"] == "assess"
    if grade_i:
        got = post(c, f"/api/v1/incidents/{iid}/criterion",
                   {"criterion": "data_major", "why": "customer records lost"})
        assert got["grades"]["cbrc"]["grade"] == "I"
    post(c, f"/api/v1/incidents/{iid}/steps/assess/confirm", {"note": "teller down"})
    if grade_i:
        rec = step(c, iid, "up-backup")
        assert rec["status"] == "waiting" and rec["held"] is True
        # Two heartbeats later (their answers carry an agent's commands): nothing
        # was handed out, the switch is untouched.
        for _ in range(2):
            seen = heard(c)
            wait_for(lambda: heard(c) > seen, what="the agent's next heartbeat")
        assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
        assert not [e for e in agent.events if e["kind"] == "action"]
        post(c, f"/api/v1/incidents/{iid}/steps/up-backup/confirm",
             {"note": "leadership orders the backup port"})
    event = agent.wait_event(check=f"action/runbook/{iid}/R1/up-backup", timeout=20)
    assert event["new_state"] == "ok", event
    assert snmpget(sim, f"{ADMIN}{GI9}") == "1"
    rec = wait_for(lambda: (lambda r: r if r and r["status"] == "done" else None)(
        step(c, iid, "up-backup")), what="the step done")
    assert rec["who"] == ("lina" if grade_i else None)
