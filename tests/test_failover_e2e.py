"""Uplink failover for real: an agent process, a switch in snmpsim, lines on loopback.

The switch is snmpsim serving the system and IF-MIB rows of a real
recording (Cisco SG350-10): gi1 is the primary uplink, gi9 the backup,
whose ifAdminStatus is writable (snmpsim writecache) and starts down.
SETs go to snmpsim only, never to net-snmp's snmpd (realstack.md).
Each line's far side is a TCP listener on 127.0.0.1 the test controls; to
cut the primary its listener turns silent (a full accept queue: SYNs get no
answer), since a refused connection would still prove the line works.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request

import pytest

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.paths import data_dir, free_port, need_binary
from .support.snmpsim import SnmpSim, render, subset
from .test_delivery_e2e import wait_for

ADMIN = "1.3.6.1.2.1.2.2.1.7."
GI9 = 9          # the backup uplink port in the recording (gi1 is the primary)
TOKEN = "failover-e2e-token-a1"
OPERATOR = "failover-e2e-operator-token-xxxxxx"


class Far:
    """A line's far side on 127.0.0.1: answers TCP connects, or (cut) answers nothing."""

    def __init__(self):
        self.port = free_port()
        self._server: socket.socket | None = None
        self._fillers: list[socket.socket] = []
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.restore()

    def restore(self) -> None:
        """Listen and accept: the line works."""
        self._close()
        self._server = self._listen(64)
        self._server.settimeout(0.05)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._accept, args=(self._server, self._done),
                                        daemon=True)
        self._thread.start()

    def cut(self) -> None:
        """Listen without accepting, the queue full: new connects time out."""
        self._close()
        self._server = self._listen(0)
        for _ in range(2):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(s)
        time.sleep(0.05)

    def close(self) -> None:
        self._close()

    def _listen(self, backlog: int) -> socket.socket:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(backlog)
        return s

    @staticmethod
    def _accept(server: socket.socket, done: threading.Event) -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    def _close(self) -> None:
        if self._thread is not None:
            self._done.set()
            self._thread.join()
            self._thread = None
        for s in self._fillers:
            s.close()
        self._fillers = []
        if self._server is not None:
            self._server.close()
            self._server = None


@pytest.fixture()
def far():
    primary, backup = Far(), Far()
    yield primary, backup
    primary.close()
    backup.close()


def start_sim(tmp_path, writable: bool = True) -> SnmpSim:
    records = subset(data_dir("snmprec", "cisco-sb-sg350-10.snmprec"))
    # The backup port starts administratively down; writable unless the switch refuses.
    records[f"{ADMIN}{GI9}"] = "2:writecache|value=2" if writable else "2|2"
    sim = SnmpSim(tmp_path / "sim")
    sim.write("branch-sw", render(records))
    return sim.start()


@pytest.fixture()
def sim(tmp_path):
    s = start_sim(tmp_path)
    yield s
    s.stop()


def snmpget(sim: SnmpSim, oid: str) -> str:
    """Read back from snmpsim itself, not through the agent."""
    done = subprocess.run([need_binary("snmpget"), "-v2c", "-c", "branch-sw", "-Oqv", "-t", "1",
                           f"127.0.0.1:{sim.port}", oid], capture_output=True, text=True)
    return done.stdout.strip()


def agent_dir(tmp_path):
    (tmp_path / "a").mkdir(exist_ok=True)
    return tmp_path / "a"


def config(sim: SnmpSim, primary: Far, backup: Far, **failover) -> dict:
    def line(name: str, far: Far) -> dict:
        return {"name": name, "uplink": {"switch": "funds", "interface": name},
                "source": "127.0.0.1", "method": "tcp", "interval": 0.3, "count": 1,
                "timeout": 0.2, "targets": [{"name": "gw", "host": "127.0.0.1", "port": far.port}]}
    return {
        "agent": {"id": "a1", "branch": "BR-1"},
        "state": {"debounce": 1},
        "switches": [{
            "name": "funds", "host": "127.0.0.1", "port": sim.port,
            "snmp": {"version": "2c", "community": "branch-sw"},
            "interval": 2, "timeout": 1, "retries": 0,
            "interfaces": [{"name": "gi1", "id": "primary", "role": "uplink-primary"},
                           {"name": "gi9", "id": "backup", "role": "uplink-backup"}],
            "actions": {"ports": ["backup"]}}],
        "lines": [line("primary", primary), line("backup", backup)],
        "failover": {"primary": "primary", "backup": "backup", "hold": 1, "return_after": 3,
                     "max_swaps_per_hour": 2, "verify_timeout": 3, **failover},
    }


def actions(agent: AgentProcess) -> list[tuple[str, str]]:
    return [(e["check"].rsplit("/", 1)[1], e["new_state"]) for e in agent.events
            if e["kind"] == "action"]


def test_cut_fails_over_restore_swaps_back_and_flapping_is_limited(sim, far, tmp_path):
    primary, backup = far
    with AgentProcess(agent_dir(tmp_path), config(sim, primary, backup)) as agent:
        agent.wait_event(check="line/primary/gw", new_state="ok")
        agent.wait_event(check="line/backup/gw", new_state="ok")
        assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
        assert agent.metric("branchwatch_failover_active") == 0

        # The primary line is cut: after `hold`, the backup port comes up by SET.
        cut = time.monotonic()
        primary.cut()
        e = agent.wait_event(check="action/failover/fail_over", timeout=10)
        assert time.monotonic() - cut >= 1.0, "failed over before the hold (1 s) had passed"
        assert (e["kind"], e["new_state"], e["old_state"]) == ("action", "ok", None)
        assert "switch funds port backup admin up: done: funds/backup (ifIndex 9) is " \
               "administratively up" in e["reason"]
        assert snmpget(sim, f"{ADMIN}{GI9}") == "1"
        v = agent.wait_event(check="action/failover/verify_backup", timeout=10)
        assert v["new_state"] == "ok" and "every target answered: gw answered" in v["reason"], v
        assert agent.metric("branchwatch_failover_active") == 1

        # The primary is back: after `return_after` healthy, swap back.
        restored = time.monotonic()
        primary.restore()
        e = agent.wait_event(check="action/failover/swap_back", timeout=15)
        assert time.monotonic() - restored >= 3.0, "swapped back before return_after (3 s)"
        assert e["new_state"] == "ok" and "admin down: done" in e["reason"], e
        assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
        v = agent.wait_event(check="action/failover/verify_primary", timeout=10)
        assert v["new_state"] == "ok", v
        assert actions(agent) == [("fail_over", "ok"), ("verify_backup", "ok"),
                                  ("swap_back", "ok"), ("verify_primary", "ok")]

        # The primary flaps: two swaps in the hour already, so no more, and said so.
        for _ in range(4):
            primary.cut()
            time.sleep(2.0)
            primary.restore()
            time.sleep(0.7)
        wait_for(lambda: (agent.metric("branchwatch_failover_blocked_total") or 0) >= 1,
                 timeout=5, what="a swap held back by the limit")
        swaps = {d: agent.metric("branchwatch_failover_swaps_total", direction=d)
                 for d in ("fail_over", "swap_back")}
        assert swaps == {"fail_over": 1, "swap_back": 1}
        blocked = [s for s in actions(agent) if s[0] == "blocked"]
        assert 1 <= len(blocked) <= 4 and set(blocked) == {("blocked", "warning")}
        assert agent.metric("branchwatch_failover_blocked_total") == len(blocked)
        assert [s for s in actions(agent) if s[0] == "fail_over"] == [("fail_over", "ok")]
        assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
        reason = agent.events_for("action/failover/blocked")[0]["reason"]
        assert "2 swaps in the last hour already (limit 2)" in reason, reason


def test_a_port_the_switch_refuses_fails_the_plan_and_offers_the_manual_step(far, tmp_path):
    sim = start_sim(tmp_path, writable=False)
    primary, backup = far
    try:
        with AgentProcess(agent_dir(tmp_path), config(sim, primary, backup)) as agent:
            agent.wait_event(check="line/primary/gw", new_state="ok")
            primary.cut()
            e = agent.wait_event(check="action/failover/fail_over", timeout=10)
            assert e["new_state"] == "critical"
            assert "admin up: refused: the switch refused the SET (object not writable)" \
                in e["reason"], e
            p = agent.wait_event(check="action/failover/plan_failed", timeout=5)
            assert p["new_state"] == "critical" and p["kind"] == "action"
            assert p["reason"].endswith(
                "bring up the backup uplink by hand: switch funds port backup"), p
            assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
            assert agent.metric("branchwatch_failover_active") == 0
            time.sleep(1.5)   # still cut: not retried, a person has been told
            assert actions(agent) == [("fail_over", "critical"), ("plan_failed", "critical")]
    finally:
        sim.stop()


def stored_actions(collector: CollectorProcess) -> list[tuple[str, str]]:
    db_path = collector.folder / "data" / "collector.db"
    if not db_path.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT check_name, new_state FROM events "
                          "WHERE agent = 'a1' AND kind = 'action' ORDER BY check_name").fetchall()


def spooled_actions(path) -> list[str]:
    """The action events waiting in the agent's spool (read-only, beside the agent)."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        bodies = [json.loads(body) for (body,) in db.execute("SELECT body FROM events")]
    return sorted(e["check"] for e in bodies if e["kind"] == "action")


def test_fails_over_with_the_collector_unreachable_and_delivers_later(sim, far, tmp_path):
    primary, backup = far
    collector = CollectorProcess(   # not started yet
        tmp_path / "collector", {"a1": ("BR-1", TOKEN)},
        extra=f"operators:\n  - {{name: wang, token_sha256: {token_hash(OPERATOR)}}}\n")
    spool = tmp_path / "spool.db"
    c = config(sim, primary, backup)
    c["collector"] = {"url": collector.url, "token": TOKEN, "heartbeat_interval": 1,
                      "timeout": 0.5, "spool": {"path": str(spool)}}
    with AgentProcess(agent_dir(tmp_path), c) as agent:
        agent.wait_event(check="line/primary/gw", new_state="ok")
        primary.cut()
        agent.wait_event(check="action/failover/fail_over", new_state="ok", timeout=10)
        agent.wait_event(check="action/failover/verify_backup", new_state="ok", timeout=10)
        assert snmpget(sim, f"{ADMIN}{GI9}") == "1"
        # Nothing reached the collector: the steps wait in the spool.
        assert (agent.metric("branchwatch_spool_depth") or 0) > 0
        assert spooled_actions(spool) == ["action/failover/fail_over",
                                          "action/failover/verify_backup"]
        with collector:
            rows = wait_for(lambda: len(got := stored_actions(collector)) >= 2 and got,
                            timeout=40, what="the failover steps at the collector")
            assert rows == [("action/failover/fail_over", "ok"),
                            ("action/failover/verify_backup", "ok")]
            wait_for(lambda: spooled_actions(spool) == [], timeout=10, what="an emptied spool")
            # The incident shows the network-fault runbook with the line path taken
            # and the backup line done by the agent (issue 6: "the incident shows
            # the steps done"), though the collector heard of it only now.
            run = wait_for(lambda: runbook_at(collector, "call-it-line"), timeout=10,
                           what="the runbook past the backup-line step")
            steps = {r["step"]: r for r in run["records"]}
            assert steps["diagnose"]["choice"] == "line"
            assert steps["backup-line"]["status"] == "done"
            assert steps["backup-line"]["note"].startswith("agent: ")


def runbook_at(collector, step: str) -> dict | None:
    req = urllib.request.Request(collector.url + "/api/v1/incidents",
                                 headers={"Authorization": f"Bearer {OPERATOR}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        incs = json.loads(r.read())["incidents"]
    runs = [run for inc in incs for run in inc["runbooks"] if run["runbook"]["id"] == "network-fault"]
    return runs[0] if runs and runs[0]["current"] == step else None
