"""Agent to collector, both real processes: nothing lost, nothing counted twice.

The agent watches a TCP service on 127.0.0.1 that the test opens and
closes; its events go through the spool to a real collector, which the
test stops while the agent keeps changing state, and the agent is killed
with SIGKILL before the collector comes back.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import yaml

from .support.agent import AgentProcess
from .support.paths import REPO, free_port
from .test_collector_api import BRANCH, TOKENS, CollectorProcess


def agent_config(tmp_path, collector: CollectorProcess, service_port: int) -> dict:
    return {
        "agent": {"id": "a1", "branch": BRANCH["a1"], "region": "north"},
        "state": {"debounce": 1},
        "host": {"tcp": [{"name": "core", "host": "127.0.0.1", "port": service_port,
                          "timeout": 0.5, "interval": 0.3}]},
        "collector": {"url": collector.url, "token": TOKENS["a1"], "heartbeat_interval": 1,
                      "timeout": 0.5, "spool": {"path": str(tmp_path / "spool.db")}},
    }


def stored_ids(collector: CollectorProcess) -> list[str]:
    with sqlite3.connect(f"file:{collector.config.parent / 'data'}/collector.db?mode=ro",
                         uri=True) as db:
        return [r[0] for r in db.execute("SELECT id FROM events WHERE agent = 'a1'")]


def wait_for(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Service:
    """A TCP listener the test can take down and bring back on the same port."""

    def __init__(self):
        self.port = free_port()
        self.sock = None
        self.up()

    def up(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(4096)     # never accepts: a small backlog fills and times out

    def down(self):
        self.sock.close()


def test_events_survive_a_collector_outage_and_an_agent_crash(tmp_path):
    (tmp_path / "collector").mkdir()
    collector = CollectorProcess(tmp_path / "collector").start()
    service = Service()
    config = agent_config(tmp_path, collector, service.port)
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    try:
        agent.wait_event(check="tcp/core", new_state="ok")
        wait_for(lambda: len(stored_ids(collector)) >= 1, what="the first event at the collector")

        # The line to the collector is cut (the collector is down) while the
        # branch keeps changing: the agent spools.
        assert collector.stop() == 0
        service.down()
        agent.wait_event(check="tcp/core", new_state="critical")
        service.up()
        agent.wait_event(check="tcp/core", new_state="ok", old_state="critical")
        wait_for(lambda: (agent.metric("branchwatch_spool_depth") or 0) >= 2,
                 what="events waiting in the spool")
        # The agent crashes (power lost) before the collector is back.
        agent.proc.send_signal(signal.SIGKILL)
        agent.proc.wait(10)
        sent_by_agent = {e["id"] for e in agent.events}

        collector.start()
        agent = AgentProcess(tmp_path / "a", config).start()
        agent.wait_event(check="tcp/core", new_state="ok")
        sent_by_agent |= {e["id"] for e in agent.events}
        wait_for(lambda: set(stored_ids(collector)) >= sent_by_agent, what="every event delivered")
        ids = stored_ids(collector)
        assert len(ids) == len(set(ids)), "an event was stored twice"
        assert set(ids) == sent_by_agent
        wait_for(lambda: agent.metric("branchwatch_spool_depth") == 0, what="an empty spool")
    finally:
        agent.stop()
        collector.stop()
        service.down()
    # Every event received is in the audit trail, and the chain is intact.
    done = subprocess.run([sys.executable, "-m", "agent.cli", "audit", "verify", "--config",
                           str(collector.config)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_unreadable_token_file_is_a_one_line_config_error(tmp_path):
    config = {"agent": {"id": "a1", "branch": "B1"}, "metrics": {"port": 0},
              "collector": {"url": "http://127.0.0.1:9", "token_file": str(tmp_path / "nope"),
                            "spool": {"path": str(tmp_path / "spool.db")}}}
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config", str(path)],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1] == \
        (f"branchwatch: {path}: collector.token_file: expected a readable file, "
         f"{tmp_path / 'nope'}: No such file or directory")
