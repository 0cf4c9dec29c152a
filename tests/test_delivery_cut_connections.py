"""Agent to collector through a line that is cut mid-upload and mid-answer.

A real agent sends to a real collector through `CuttingProxy`, which cycles
through its modes while the agent's TCP check is flipped to make events:
uploads cut mid-body (the collector must store nothing of them), answers cut
after the collector stored the batch (the ack is lost: the agent must resend
and the collector must recognise the resend), connections refused, and
passes. The agent is killed with SIGKILL once, while answers are being cut,
and restarted on the same spool. At the end, with the line passing, the spool
drains, and it is proven that:

- every event the agent emitted is stored at the collector exactly once
  (no id missing, none extra, none twice) and sits in exactly one audit record;
- the collector did see lost acks (it counted duplicates) and the proxy
  really cut uploads and answers of event batches: the scenario happened;
- `audit verify` finds the audit chain intact.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from collections import Counter
from contextlib import closing

from .support.agent import AgentProcess
from .support.cutting_proxy import CuttingProxy, Mode
from .support.paths import REPO
from .test_collector_api import BRANCH, TOKENS, CollectorProcess, metric
from .test_delivery_e2e import Service as E2EService
from .test_delivery_e2e import wait_for

CYCLES = 3
FAILING = (Mode.CUT_REQUEST, Mode.CUT_RESPONSE, Mode.REFUSE)
KILL_IN = (1, Mode.CUT_RESPONSE)          # (cycle, mode) in which the agent is killed


def agent_config(tmp_path, url: str, service_port: int) -> dict:
    return {
        "agent": {"id": "a1", "branch": BRANCH["a1"], "region": "north"},
        # No flapping: every flip of the service is one state event.
        "state": {"debounce": 1, "flap_threshold": 1000},
        "host": {"tcp": [{"name": "core", "host": "127.0.0.1", "port": service_port,
                          "timeout": 0.5, "interval": 0.2}]},
        "collector": {"url": url, "token": TOKENS["a1"], "heartbeat_interval": 2,
                      "timeout": 1, "spool": {"path": str(tmp_path / "spool.db")}},
    }


class Service(E2EService):
    """The watched service, with room for every probe's connection: nothing accepts
    them, and a full accept queue makes connects time out (a false "down")."""

    def up(self):
        super().up()
        self.sock.listen(4096)


class Branch:
    """The agent process (restartable on its spool) and the service it watches."""

    def __init__(self, tmp_path, url: str):
        self.service = Service()
        self.folder = tmp_path / "agent"
        self.folder.mkdir()
        self.config = agent_config(tmp_path, url, self.service.port)
        self.emitted: list[dict] = []       # events of agents that are gone
        self.agent = AgentProcess(self.folder, self.config).start()
        self.agent.wait_event(check="tcp/core")
        self.is_up = True

    def all_emitted(self) -> list[dict]:
        return self.emitted + self.agent.events

    def flip(self) -> None:
        """Take the service down or bring it back; wait for the agent's event."""
        before = len(self.agent.events)
        (self.service.down if self.is_up else self.service.up)()
        self.is_up = not self.is_up
        self.agent.wait_event(after=before, check="tcp/core",
                              new_state="ok" if self.is_up else "critical")

    def failures(self) -> float:
        return self.agent.metric("branchwatch_delivery_failures_total", endpoint="events") or 0

    def spool_depth(self) -> float | None:
        return self.agent.metric("branchwatch_spool_depth")

    def crash_and_restart(self) -> None:
        """SIGKILL (power lost), then a new agent on the same spool."""
        self.agent.proc.send_signal(signal.SIGKILL)
        self.agent.proc.wait(10)
        self.emitted += self.agent.events
        self.agent = AgentProcess(self.folder, self.config).start()
        self.agent.wait_event(check="tcp/core")

    def stop(self) -> None:
        self.agent.stop()
        self.service.down()


def run_phase(branch: Branch, proxy: CuttingProxy, mode: Mode, crash: bool) -> None:
    """One mode of the line, with one new event; a failing mode lasts until the
    agent has failed to deliver at least once, PASS until its spool is empty."""
    proxy.set_mode(mode)
    failures = branch.failures()
    branch.flip()
    if mode is Mode.PASS:
        wait_for(lambda: branch.spool_depth() == 0, what="the spool drained")
        return
    wait_for(lambda: branch.failures() > failures, what=f"a failed delivery ({mode.value})")
    if crash:
        branch.flip()              # one more event spooled, then the power goes
        branch.crash_and_restart()
        failures = branch.failures()
        wait_for(lambda: branch.failures() > failures, what="a failed delivery after restart")


def ids(c: CollectorProcess, sql: str) -> Counter:
    """How often each id (the query's one column) is in the collector's database."""
    with closing(sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro",
                                 uri=True)) as db:
        return Counter(row[0] for row in db.execute(sql))


STORED = "SELECT id FROM events WHERE agent = 'a1'"
AUDITED = ("SELECT json_extract(value, '$.id') FROM audit, json_each(audit.data, '$.events') "
           "WHERE kind = 'events.received'")


def test_every_event_is_stored_once_through_a_line_cut_mid_upload_and_mid_ack(tmp_path):
    collector = CollectorProcess(tmp_path / "collector").start()
    proxy = CuttingProxy(collector.port, seed=4).start()
    branch = Branch(tmp_path, proxy.url)
    try:
        for cycle in range(CYCLES):
            for mode in (*FAILING, Mode.PASS):
                run_phase(branch, proxy, mode, crash=(cycle, mode) == KILL_IN)
        emitted = [e["id"] for e in branch.all_emitted()]
        duplicates = metric(collector, "branchwatch_collector_events_ingested_total",
                            result="duplicate")
    finally:
        branch.stop()
        proxy.stop()
        collector.stop()

    assert len(emitted) == len(set(emitted)) >= CYCLES * 4
    stored = ids(collector, STORED)
    assert [i for i, n in stored.items() if n > 1] == [], "stored twice"
    assert set(emitted) - set(stored) == set(), "emitted, spool empty, but not stored"
    assert set(stored) - set(emitted) == set(), "stored, but never emitted"
    assert ids(collector, AUDITED) == Counter(emitted), "not in exactly one audit record"
    # The scenario happened: uploads and answers of event batches were cut, and
    # the collector recognised resends of batches whose ack was lost.
    cut = Counter(mode for mode, line in proxy.cuts if line.startswith("POST /api/v1/events"))
    assert cut[Mode.CUT_REQUEST] >= 1 and cut[Mode.CUT_RESPONSE] >= 1, proxy.cuts
    assert duplicates and duplicates > 0
    done = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify", "--config",
                           str(collector.config)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
