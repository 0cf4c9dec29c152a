"""A runbook action that is not pre-authorised (issue 6): it waits for a person
at the collector, then the branch's agent carries it out. A real collector, a
real agent and a switch in snmpsim (writable ifAdminStatus; SETs go only to
snmpsim): confirm from the CLI -> the command rides back on a heartbeat
answer -> the agent SETs the port and reads it back -> its action event
completes the step; a switch that refuses -> step failed, plan failed, the
manual fallback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.paths import REPO, data_dir, free_port
from .test_failover_e2e import ADMIN, GI9, snmpget, start_sim, wait_for
from .test_collector_api import request

OPERATOR = "operator-commands-token-xxxxxxxxxxx"
TOKEN = "agent-commands-token-xxxxxxxxxxxxxx"
RUNBOOK = """\
id: backup-port
title: Bring up the backup port (a person decides)
source: test
applies_to: {categories: [service], priority: 50}
steps:
  - id: up-backup
    kind: action
    title: Bring up the backup port
    action: {type: snmp_port, switch: funds, port: backup, state: up}
    timeout: 60
    on_fail: by-hand
  - {id: check, kind: manual, title: Check, text: check the branch is back, next: end}
  - {id: by-hand, kind: manual, title: By hand, text: move the cable by hand, next: end}
"""


@pytest.fixture(params=[True, False], ids=["switch-takes-it", "switch-refuses"])
def rig(request, tmp_path):
    data_dir("snmprec", "cisco-sb-sg350-10.snmprec")       # skips without the recordings
    sim = start_sim(tmp_path, writable=request.param)
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "backup-port.yaml").write_text(RUNBOOK)
    c = CollectorProcess(tmp_path / "collector", {"a1": ("BR-1", "north", TOKEN)},
                         extra=f"operators:\n  - {{name: wang, token_sha256: "
                               f"{token_hash(OPERATOR)}}}\n"
                               f"grading: {{tables: []}}\nrunbooks: {{folder: {books}}}\n").start()
    config = {
        "agent": {"id": "a1", "branch": "BR-1", "region": "north"},
        "state": {"debounce": 1},
        "switches": [{"name": "funds", "host": "127.0.0.1", "port": sim.port,
                      "snmp": {"version": "2c", "community": "branch-sw"},
                      "interval": 5, "timeout": 1, "retries": 0,
                      "interfaces": [{"name": "gi9", "id": "backup", "role": "uplink-backup"}],
                      "actions": {"ports": ["backup"]}}],
        # A teller service that is down: the incident that starts the runbook.
        "host": {"tcp": [{"name": "teller", "host": "127.0.0.1", "port": free_port(),
                          "timeout": 0.3, "interval": 0.5}]},
        "collector": {"url": c.url, "token": TOKEN, "heartbeat_interval": 0.5, "timeout": 0.4,
                      "spool": {"path": str(tmp_path / "spool.db")}},
    }
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    yield c, agent, sim, request.param
    agent.stop()
    c.stop()
    sim.stop()


def the_run(c) -> dict:
    status, data = request(c.url + "/api/v1/incidents", None, OPERATOR)
    assert status == 200
    incs = json.loads(data)["incidents"]
    return incs[0]["runbooks"][0] if incs and incs[0]["runbooks"] else None


def test_a_confirmed_port_action_is_carried_out_by_the_agent(rig):
    c, agent, sim, writable = rig
    run = wait_for(lambda: the_run(c), what="the runbook")
    assert run["current"] == "up-backup"
    status, data = request(c.url + "/api/v1/incidents", None, OPERATOR)
    inc_id = json.loads(data)["incidents"][0]["id"]
    # Not pre-authorised: nothing happens until a person confirms.
    assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
    assert not [e for e in agent.events if e["kind"] == "action"]

    done = subprocess.run([sys.executable, "-m", "collector.cli", "runbook", "confirm", inc_id,
                           "up-backup", "--note", "carrier confirmed the cut", "--url", c.url],
                          cwd=REPO, capture_output=True, text=True, timeout=30,
                          env={**os.environ, "BRANCHWATCH_TOKEN": OPERATOR})
    assert done.returncode == 0, done.stderr
    event = agent.wait_event(check=f"action/runbook/{inc_id}/R1/up-backup", timeout=15)
    if writable:
        assert event["new_state"] == "ok" and event["reason"].startswith("done:"), event
        assert snmpget(sim, f"{ADMIN}{GI9}") == "1"
        run = wait_for(lambda: (lambda r: r if r["current"] == "check" else None)(the_run(c)),
                       what="the step to complete")
        rec = next(r for r in run["records"] if r["step"] == "up-backup")
        assert rec["status"] == "done" and rec["who"] == "wang"
        assert "administratively up" in rec["note"]
    else:
        assert event["new_state"] == "critical", event
        assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
        run = wait_for(lambda: (lambda r: r if r["current"] == "by-hand" else None)(the_run(c)),
                       what="the manual fallback")
        rec = next(r for r in run["records"] if r["step"] == "up-backup")
        assert rec["status"] == "failed" and rec["note"].split(":")[0] in ("refused", "failed", "unconfirmed")
    # Carried out once, even though the agent kept sending heartbeats.
    # (the collector may offer it again until the result is in: answered with the same event)
    assert len({e["id"] for e in agent.events if e["kind"] == "action"}) == 1
