"""A NUT instant command run as a runbook step (issue 6): a real collector, a
real agent, and a real upsd with NUT's nutdrv_qx driver over a pty to a
Megatec responder (dummy-ups has no instant commands; realstack.md). A person
confirms the step; the agent sends the command; the UPS receives `T`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.megatec_pty import MegatecUpsd
from .support.paths import REPO, free_port
from .test_collector_api import request
from .test_delivery_e2e import wait_for

OPERATOR = "operator-ups-step-token-xxxxxxxxxxx"
TOKEN = "agent-ups-step-token-xxxxxxxxxxxxxx"
RUNBOOK = """\
id: battery-test
title: Test the UPS battery (a person decides)
source: test
applies_to: {categories: [service], priority: 50}
steps:
  - id: quick-test
    kind: action
    title: Start a quick battery test
    action: {type: nut_command, ups: "{ups}", command: test.battery.start.quick}
    timeout: 60
    on_fail: by-hand
  - {id: read-result, kind: manual, title: Read the result, text: read the UPS panel, next: end}
  - {id: by-hand, kind: manual, title: By hand, text: press the test button, next: end}
"""


def test_a_confirmed_nut_command_step_reaches_the_ups(tmp_path):
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "battery-test.yaml").write_text(RUNBOOK)
    with MegatecUpsd(tmp_path / "qx") as ups, CollectorProcess(
            tmp_path / "collector", {"a1": ("BR-1", "north", TOKEN)},
            extra=f"operators:\n  - {{name: wang, token_sha256: {token_hash(OPERATOR)}}}\n"
                  f"grading: {{tables: []}}\nrunbooks: {{folder: {books}}}\n") as c:
        config = {
            "agent": {"id": "a1", "branch": "BR-1"},
            "state": {"debounce": 1},
            "ups": [{"name": "main", "nut": {
                "ups": "qx", "host": "127.0.0.1", "port": ups.port, "user": "admin",
                "password": "adminpass",
                "actions": {"commands": ["test.battery.start.quick"]}}}],
            "host": {"tcp": [{"name": "teller", "host": "127.0.0.1", "port": free_port(),
                              "timeout": 0.3, "interval": 0.5}]},
            "collector": {"url": c.url, "token": TOKEN, "heartbeat_interval": 0.5,
                          "timeout": 0.4, "spool": {"path": str(tmp_path / "spool.db")}},
        }
        (tmp_path / "a").mkdir()
        with AgentProcess(tmp_path / "a", config) as agent:
            def incident():
                status, data = request(c.url + "/api/v1/incidents", None, OPERATOR)
                incs = json.loads(data)["incidents"]
                return incs[0] if incs and incs[0]["runbooks"] else None
            inc = wait_for(incident, what="the runbook")
            before = ups.commands()
            assert inc["runbooks"][0]["current"] == "quick-test"
            done = subprocess.run(
                [sys.executable, "-m", "collector.cli", "runbook", "confirm", inc["id"],
                 "quick-test", "--note", "vendor asked for a test", "--url", c.url],
                cwd=REPO, capture_output=True, text=True, timeout=30,
                env={**os.environ, "BRANCHWATCH_TOKEN": OPERATOR})
            assert done.returncode == 0, done.stderr
            event = agent.wait_event(check=f"action/runbook/{inc['id']}/R1/quick-test",
                                     timeout=20)
            assert event["new_state"] == "ok" and event["reason"].startswith("done"), event
            assert ups.commands() == before + ["T"]
            run = wait_for(lambda: (lambda i: i["runbooks"][0] if i["runbooks"][0]["current"]
                                    == "read-result" else None)(incident()),
                           what="the step done at the collector")
            rec = next(r for r in run["records"] if r["step"] == "quick-test")
            assert rec["status"] == "done" and rec["who"] == "wang"
