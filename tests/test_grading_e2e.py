"""Issue 5 end to end: a real collector and two real agents at branches in two
regions lose the core system; the collector's clock is moved forward (the
drill clock, BRANCHWATCH_CLOCK_OFFSET_FILE) instead of sleeping for hours.

The incident grades III -> II -> I at the moments domain.md §2.1 gives,
computed from when each region went out (not from when we looked); the
deadlines of §3 appear with their due times; a collector restart in the
middle loses none of it; a missed deadline is raised once.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.collector import DrillClock as Drill
from .support.paths import REPO
from .test_collector_api import metric, request
from .test_delivery_e2e import wait_for

OPERATOR = "operator-grading-token-xxxxxxxxxxxx"
TOKENS = {"a1": "token-north-xxxxxxxxxxxxxxxx", "a2": "token-south-xxxxxxxxxxxxxxxx"}
# Monday 7 December 2026, 09:00 in Shanghai: inside business hours (08:30-17:00).
MONDAY_0900 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)


class CoreSystem:
    """The core system as a branch reaches it: a TCP server that answers every
    connection until it is taken away."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def down(self):
        self.sock.close()




def agent_config(folder, agent, branch, region, url, core_port) -> dict:
    return {"agent": {"id": agent, "branch": branch, "region": region},
            "state": {"debounce": 1},
            "host": {"tcp": [{"name": "core", "host": "127.0.0.1", "port": core_port,
                              "timeout": 0.5, "interval": 0.3}]},
            "collector": {"url": url, "token": TOKENS[agent], "heartbeat_interval": 0.5,
                          "timeout": 0.4, "spool": {"path": str(folder / "spool.db")}}}


def incidents(c) -> list[dict]:
    status, data = request(c.url + "/api/v1/incidents", None, OPERATOR)
    assert status == 200, data
    return json.loads(data)["incidents"]


def the_incident(c) -> dict:
    [inc] = incidents(c)
    return inc


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def offsets_follow(c, drill: Drill) -> None:
    """Wait until the collector's estimate of both agents' clock offsets caught up
    with a clock change (it keeps the smallest of the recent samples)."""
    want = (drill.now() - datetime.now(timezone.utc)).total_seconds()
    wait_for(lambda: all(abs((metric(c, "branchwatch_collector_agent_clock_offset_seconds",
                                     agent=a) or 0) - want) < 5 for a in TOKENS),
             timeout=30, what="the clock offsets to follow the drill clock")


def grade_is(c, grade: str) -> dict:
    return wait_for(lambda: (lambda i: i if i["grades"]["cbrc"]["grade"] == grade else None)(
        the_incident(c)), timeout=15, what=f"grade {grade}")


def test_core_lost_in_two_regions_grades_iii_ii_i_with_deadlines(tmp_path):
    drill = Drill(tmp_path / "clock-offset")
    drill.set(MONDAY_0900 - timedelta(seconds=30))
    north, south = CoreSystem(), CoreSystem()
    extra = ("operators:\n"
             f"  - {{name: alice, roles: [leadership], token_sha256: {token_hash(OPERATOR)}}}\n"
             # A drill jumps the clock: no agent may look silent for it.
             "incidents: {window: 120, deadman_grace: 86400}\n"
             "grading:\n  tables: [cbrc]\n"
             "  calendar: {timezone: Asia/Shanghai, weekdays: [0, 1, 2, 3, 4], "
             "hours: ['08:30-17:00']}\n")
    c = CollectorProcess(tmp_path / "collector",
                         {"a1": ("B1", "north", TOKENS["a1"]), "a2": ("B2", "south", TOKENS["a2"])},
                         extra=extra, env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(drill.path)})
    c.start()
    agents = []
    try:
        for agent, branch, region, svc in (("a1", "B1", "north", north),
                                           ("a2", "B2", "south", south)):
            folder = tmp_path / agent
            folder.mkdir()
            agents.append(AgentProcess(folder, agent_config(folder, agent, branch, region,
                                                            c.url, svc.port)).start())
        offsets_follow(c, drill)

        # 09:00 the core system is lost from the north region.
        north.down()
        inc = wait_for(lambda: [i for i in incidents(c) if "cbrc" in i["grades"]],
                       what="the incident, graded")[0]
        t_north = when(inc["started_at"])
        assert abs((t_north - MONDAY_0900).total_seconds()) < 60
        assert inc["grades"]["cbrc"]["grade"] is None        # below grade III so far

        # 09:20 the south loses it too: the same incident, now two regions.
        drill.set(t_north + timedelta(minutes=20))
        offsets_follow(c, drill)
        south.down()
        inc = wait_for(lambda: (lambda i: i if len({f["branch"] for f in i["faults"]}) == 2
                                else None)(the_incident(c)), what="the south joining")
        t_south = max(when(f["spans"][0][0]) for f in inc["faults"])
        assert abs((t_south - t_north - timedelta(minutes=20)).total_seconds()) < 30
        assert inc["title"] == "core system unreachable: 2 branches"
        assert inc["grades"]["cbrc"]["grade"] is None

        # 30 min after the north went out: grade III, at that exact moment.
        drill.set(t_north + timedelta(minutes=30, seconds=5))
        inc = grade_is(c, "III")
        g = inc["grades"]["cbrc"]
        assert g["rule"] == "iii-1-region-30m" and not g["provisional"]
        assert when(g["reached_at"]) == t_north + timedelta(minutes=30)
        due = {d["key"]: d for d in inc["deadlines"]}
        # domain.md §3: notice within 60 min of the start, written report within 12 h.
        assert when(due["regulator-notice"]["due_at"]) == t_north + timedelta(minutes=60)
        assert when(due["written-report"]["due_at"]) == t_north + timedelta(hours=12)
        assert {d["status"] for d in due.values()} == {"due"}

        # 30 min after the south went out: two regions for 30 min -> grade II.
        drill.set(t_south + timedelta(minutes=30, seconds=5))
        inc = grade_is(c, "II")
        assert inc["grades"]["cbrc"]["rule"] == "ii-2-regions-30m"
        assert when(inc["grades"]["cbrc"]["reached_at"]) == t_south + timedelta(minutes=30)
        before_restart = the_incident(c)

        # The collector restarts in the middle: nothing is lost.
        assert c.stop() == 0
        c.start()
        after = the_incident(c)
        for key in ("id", "grades", "deadlines", "started_at", "title"):
            assert after[key] == before_restart[key], key

        # The notice was due at 10:00 and nobody sent it: missed, raised once.
        drill.set(t_north + timedelta(minutes=61))
        wait_for(lambda: {d["key"]: d["status"] for d in the_incident(c)["deadlines"]}
                 ["regulator-notice"] == "missed", what="the notice to be missed")

        # 3 h with both regions out (12:20): grade I; progress every 2 h from then.
        drill.set(t_south + timedelta(hours=3, seconds=5))
        inc = grade_is(c, "I")
        g = inc["grades"]["cbrc"]
        assert g["rule"] == "i-2-regions-3h"
        reached_i = when(g["reached_at"])
        assert reached_i == t_south + timedelta(hours=3)
        due = {d["key"]: d for d in inc["deadlines"]}
        assert when(due["progress-1"]["due_at"]) == reached_i + timedelta(hours=2)
        # Upgrading re-plans from the original start: these did not move.
        assert when(due["written-report"]["due_at"]) == t_north + timedelta(hours=12)
        assert [h["grade"] for h in g["history"]] == [None, "III", "II", "I"]

        # A person records the written report as sent.
        env = {**os.environ, "BRANCHWATCH_TOKEN": OPERATOR}
        done = subprocess.run([sys.executable, "-m", "collector.cli", "incidents", "deadline",
                               inc["id"], "written-report", "--what", "report no. 7 faxed",
                               "--url", c.url], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        assert "deadline written-report met" in done.stdout
    finally:
        for a in agents:
            a.stop()
        if c.proc.poll() is None:
            assert c.stop() == 0
        north.down()
        south.down()
    # Every grade change and the one missed deadline are in the audit trail, once.
    import sqlite3
    db = sqlite3.connect(c.folder / "data" / "collector.db")
    kinds = [k for (k,) in db.execute("SELECT kind FROM audit WHERE kind LIKE 'incident.%'")]
    db.close()
    assert kinds.count("incident.graded") == 4      # first look (ungraded), III, II, I
    assert kinds.count("incident.deadline_missed") == 1
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(c.config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
