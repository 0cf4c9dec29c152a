"""Scope units end to end (domain.md §2.1 "How branchwatch reads the table"):
a real collector and real agents, each probing its own core system over TCP
on 127.0.0.1; the collector's clock is moved (the drill clock) instead of
sleeping for hours.

1. A share of one province's branches: four branches enrolled in 福建 (one
   unit: no agent has a region), one out is a fault without scope, two out
   (half) grade III 30 min later, with the reason in a person's words.
2. After hours: one branch, Monday evening: provisional III at 30 min of
   unrepaired wall-clock time, provisional II at 3 h, deadlines from the
   provisional grade.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.collector import DrillClock as Drill
from .test_collector_api import metric
from .test_delivery_e2e import wait_for
from .test_grading_e2e import OPERATOR, CoreSystem, incidents, the_incident, when

TOKENS = {f"a{n}": f"token-unit-{n}-xxxxxxxxxxxxxxxxxx" for n in range(1, 5)}
# Monday 7 December 2026 in Shanghai (UTC+8): 09:00 and 21:00.
MONDAY_0900 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
MONDAY_2100 = datetime(2026, 12, 7, 13, 0, tzinfo=timezone.utc)
EXTRA = ("operators:\n"
         f"  - {{name: alice, token_sha256: {token_hash(OPERATOR)}}}\n"
         # A drill jumps the clock, and two enrolled branches never report: none may look silent.
         "incidents: {window: 120, deadman_grace: 86400}\n"
         "grading:\n  tables: [cbrc]\n  scope: {unit: 福建}\n")


def agent_config(folder, agent: str, url: str, core_port: int) -> dict:
    return {"agent": {"id": agent, "branch": f"B{agent[1:]}"},
            "state": {"debounce": 1},
            "host": {"tcp": [{"name": "core", "host": "127.0.0.1", "port": core_port,
                              "timeout": 0.5, "interval": 0.3}]},
            "collector": {"url": url, "token": TOKENS[agent], "heartbeat_interval": 0.5,
                          "timeout": 0.4, "spool": {"path": str(folder / "spool.db")}}}


def start(tmp_path, drill: Drill, enrolled: int, running: list[str]):
    """The collector with `enrolled` branches in one unit, and agents for `running`."""
    c = CollectorProcess(tmp_path / "collector",
                         {f"a{n}": (f"B{n}", "", TOKENS[f"a{n}"]) for n in range(1, enrolled + 1)},
                         extra=EXTRA, env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(drill.path)})
    c.start()
    cores, agents = {}, []
    for a in running:
        cores[a] = CoreSystem()
        folder = tmp_path / a
        folder.mkdir()
        agents.append(AgentProcess(folder, agent_config(folder, a, c.url, cores[a].port)).start())
    return c, cores, agents


def follow(c, drill: Drill, running: list[str]) -> None:
    """Wait until the collector's clock-offset estimate of each agent follows the drill clock."""
    want = (drill.now() - datetime.now(timezone.utc)).total_seconds()
    wait_for(lambda: all(abs((metric(c, "branchwatch_collector_agent_clock_offset_seconds",
                                     agent=a) or 0) - want) < 5 for a in running),
             timeout=30, what="the clock offsets to follow the drill clock")


def cbrc(c) -> dict:
    return the_incident(c)["grades"]["cbrc"]


def stop(c, cores, agents) -> None:
    for a in agents:
        a.stop()
    if c.proc.poll() is None:
        assert c.stop() == 0
    for core in cores.values():
        core.down()


def test_two_of_four_branches_of_one_province_grade_iii(tmp_path):
    drill = Drill(tmp_path / "clock-offset")
    drill.set(MONDAY_0900 - timedelta(seconds=30))
    running = ["a1", "a2"]
    c, cores, agents = start(tmp_path, drill, 4, running)
    try:
        follow(c, drill, running)
        cores["a1"].down()                                     # 1 of 4: a fault, no scope
        inc = wait_for(lambda: [i for i in incidents(c) if "cbrc" in i["grades"]],
                       what="the incident, graded")[0]
        t1 = when(inc["started_at"])
        drill.set(t1 + timedelta(minutes=40))
        follow(c, drill, running)
        assert cbrc(c)["grade"] is None          # (reached_at below proves it never counted)
        cores["a2"].down()                                     # 2 of 4: half, the unit is out
        inc = wait_for(lambda: (lambda i: i if len(i["faults"]) == 2 else None)(the_incident(c)),
                       what="the second branch joining")
        t2 = max(when(f["spans"][0][0]) for f in inc["faults"])
        drill.set(t2 + timedelta(minutes=30, seconds=5))
        g = wait_for(lambda: (lambda g: g if g["grade"] == "III" else None)(cbrc(c)),
                     what="grade III")
        assert when(g["reached_at"]) == t2 + timedelta(minutes=30) and not g["provisional"]
        local = t2.astimezone(timezone(timedelta(hours=8)))
        since = local.strftime("%H:%M:%S" if local.second else "%H:%M")
        # The business time so far, as a person writes it (the clock is 5 s past 30 min).
        assert re.fullmatch(f"2 of 4 branches in 福建 cannot do business since {since} "
                            r"\(business time 30 min(,? \d+ sec| 0\d s)?\)", g["reasons"][0]), g["reasons"]
        assert re.fullmatch(f"福建 4 个网点中 2 个自 {since} 起无法正常营业"
                            r"\(营业时间 30分(钟|\d秒|钟\d+秒)\)", g["reasons_zh"][0]), g["reasons_zh"]
    finally:
        stop(c, cores, agents)


def test_after_hours_one_province_provisional_iii_then_ii_with_deadlines(tmp_path):
    drill = Drill(tmp_path / "clock-offset")
    drill.set(MONDAY_2100 - timedelta(seconds=30))
    running = ["a1"]
    c, cores, agents = start(tmp_path, drill, 1, running)
    try:
        follow(c, drill, running)
        # 2026 is inside the holiday package's data: no warning on /metrics.
        assert metric(c, "branchwatch_collector_grading_holidays_stale") == 0
        cores["a1"].down()
        inc = wait_for(lambda: [i for i in incidents(c) if "cbrc" in i["grades"]],
                       what="the incident, graded")[0]
        t = when(inc["started_at"])
        drill.set(t + timedelta(minutes=29))
        follow(c, drill, running)
        assert cbrc(c)["grade"] is None          # (reached_at below says when it was reached)
        drill.set(t + timedelta(minutes=30, seconds=5))
        g = wait_for(lambda: (lambda g: g if g["grade"] == "III" else None)(cbrc(c)),
                     what="provisional III")
        assert g["provisional"] and when(g["reached_at"]) == t + timedelta(minutes=30)
        assert "(provisional)" in g["reasons"][0] and "暂定" in g["reasons_zh"][0]
        due = {d["key"]: d for d in the_incident(c)["deadlines"]}
        # domain.md §2.1: a provisional grade is a grade, deadlines run from it (§3).
        assert when(due["regulator-notice"]["due_at"]) == t + timedelta(minutes=60)
        drill.set(t + timedelta(hours=3, seconds=5))
        g = wait_for(lambda: (lambda g: g if g["grade"] == "II" else None)(cbrc(c)),
                     what="provisional II")
        assert g["provisional"] and when(g["reached_at"]) == t + timedelta(hours=3)
        assert g["rule"] == "after-hours-1-region-3h"
    finally:
        stop(c, cores, agents)
