"""Regulator deadlines fire once whichever collector leads: three real
collectors on one real PostgreSQL share the drill clock (moved forward instead
of sleeping for hours); a real agent (collector.urls: all three) loses the core
system at 09:00 on a business day. Grade III at 09:30 plans the notice (due
10:00) and the written report (due 21:00). The leader is SIGKILLed and the
clock moved past 10:00: the next leader raises the missed notice, once. That
leader is SIGSTOPped and the clock moved past 21:00: the third raises the
missed report; the paused one wakes with a book that still says "due" and a
clock that says "missed", and writes nothing (fencing). Each missed deadline
is in the audit trail exactly once; the chain verifies."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import timedelta

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import DrillClock
from .support.paths import REPO
from .test_collector_api import metric, request
from .test_collector_leader_e2e import Node, pg  # noqa: F401 - the module's server
from .test_delivery_e2e import wait_for
from .test_grading_e2e import MONDAY_0900, OPERATOR, TOKENS, CoreSystem, when


def test_each_deadline_is_missed_once_across_a_kill_and_a_pause(tmp_path, pg):  # noqa: F811
    import psycopg
    drill = DrillClock(tmp_path / "clock-offset")
    drill.set(MONDAY_0900 - timedelta(seconds=30))
    core = CoreSystem()
    dsn = pg.create_database()
    dbname = dsn.rsplit("=", 1)[1]
    extra = ("operators:\n"
             f"  - {{name: alice, roles: [leadership], token_sha256: {token_hash(OPERATOR)}}}\n"
             "incidents: {window: 120, deadman_grace: 86400}\n"
             "grading:\n  tables: [cbrc]\n"
             "  calendar: {timezone: Asia/Shanghai, weekdays: [0, 1, 2, 3, 4], "
             "hours: ['08:30-17:00']}\n")
    env = {"BRANCHWATCH_CLOCK_OFFSET_FILE": str(drill.path)}
    nodes = [Node(tmp_path / f"c{i}", pg, dbname, extra=extra, env=env,
                  agents={"a1": ("B1", "north", TOKENS["a1"])}) for i in range(3)]
    db = psycopg.connect(dsn, autocommit=True)
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", {
        "agent": {"id": "a1", "branch": "B1", "region": "north"}, "state": {"debounce": 1},
        "host": {"tcp": [{"name": "core", "host": "127.0.0.1", "port": core.port,
                          "timeout": 0.5, "interval": 0.3}]},
        "collector": {"urls": [n.c.url for n in nodes], "token": TOKENS["a1"],
                      "heartbeat_interval": 0.5, "timeout": 0.4,
                      "spool": {"path": str(tmp_path / "spool.db")}}}).start()

    def leader() -> Node:
        holder = wait_for(lambda: db.execute(
            "SELECT holder FROM engine_lease WHERE clock_timestamp() - renewed_at "
            "< interval '3 s'").fetchone(), what="a leader")[0]
        return next(n for n in nodes if n.c.port == int(holder.rsplit(":", 1)[1]))

    def incident(url: str):
        status, data = request(url + "/api/v1/incidents", None, OPERATOR)
        incs = json.loads(data)["incidents"] if status == 200 else []
        return incs[0] if incs else None

    def status_of(url: str, key: str):
        inc = incident(url)
        return {d["key"]: d["status"] for d in inc["deadlines"]}.get(key) if inc else None

    def missed(key: str) -> int:
        return db.execute("SELECT count(*) FROM audit WHERE kind = 'incident.deadline_missed' "
                          "AND data LIKE %s", (f'%{key}%',)).fetchone()[0]

    def offsets_follow() -> None:
        want = drill.now().timestamp() - time.time()
        wait_for(lambda: abs((metric(leader().c, "branchwatch_collector_agent_clock_offset_"
                                     "seconds", agent="a1") or 0) - want) < 5,
                 timeout=30, what="the clock offset to follow the drill clock")

    try:
        offsets_follow()
        core.down()                                          # 09:00 the core is lost
        inc = wait_for(lambda: (lambda i: i if i and "cbrc" in i["grades"] else None)(
            incident(nodes[0].c.url)), what="the incident, graded")
        t0 = when(inc["started_at"])
        drill.set(t0 + timedelta(minutes=30, seconds=5))     # grade III, deadlines planned
        inc = wait_for(lambda: (lambda i: i if i["grades"]["cbrc"]["grade"] == "III" else None)(
            incident(nodes[0].c.url)), what="grade III")
        due = {d["key"]: d for d in inc["deadlines"]}
        assert when(due["regulator-notice"]["due_at"]) == t0 + timedelta(minutes=60)
        assert when(due["written-report"]["due_at"]) == t0 + timedelta(hours=12)

        first = leader()
        first.c.proc.send_signal(signal.SIGKILL)             # the leader dies
        first.c.proc.wait(10)
        drill.set(t0 + timedelta(minutes=61))                # the notice is missed
        alive = [n for n in nodes if n is not first]
        wait_for(lambda: status_of(alive[0].c.url, "regulator-notice") == "missed", 30,
                 "the next leader to raise the missed notice")
        second = leader()
        assert second is not first

        second.c.proc.send_signal(signal.SIGSTOP)            # that one hangs
        drill.set(t0 + timedelta(hours=12, minutes=1))       # the report is missed
        third = next(n for n in alive if n is not second)
        wait_for(lambda: status_of(third.c.url, "written-report") == "missed", 30,
                 "the third leader to raise the missed report")
        assert leader() is third
        second.c.proc.send_signal(signal.SIGCONT)            # it wakes: a stale book
        wait_for(lambda: db.execute(
            "SELECT 1 FROM collector_nodes WHERE node LIKE %s AND NOT leads AND "
            "clock_timestamp() - seen_at < interval '2 s'", (f"%:{second.c.port}",)).fetchone(),
            30, "the woken one back as a standby")
        # Its rounds could have raised both again: fencing let none through.
        counts = {k: missed(k) for k in ("regulator-notice", "written-report")}
        verified = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                                   "--config", str(third.c.config)], cwd=REPO,
                                  capture_output=True, text=True, timeout=120)
    finally:
        agent.stop()
        for n in nodes:
            n.close()
        core.down()
        db.close()
    assert counts == {"regulator-notice": 1, "written-report": 1}, counts
    assert verified.returncode == 0, verified.stdout + verified.stderr
