"""The dead-man (collector/deadman.py): who is silent, and what the UPS last said.

Timelines with an explicit clock: heard at 0 with a 15 s interval, the
grace is max(2 × 15, 60) = 60 s, so the deadline is 75 s: silent strictly after.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import CheckStatus, Heartbeat
from collector.deadman import (EXHAUSTED, NOT_ON_BATTERY, ON_BATTERY, AgentLast, grace_for,
                               power_verdict, silence_changes, silent_agents)

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def agent(name="a1", heard=0.0, interval=15.0, **checks) -> AgentLast:
    return AgentLast(name, "b1", "r1", at(heard), interval,
                     {k.replace("__", "/"): v for k, v in checks.items()})


@pytest.mark.parametrize("now,silent", [
    (10, False), (74.9, False), (75, False), (75.1, True), (3600, True)])
def test_timeline_deadline_is_interval_plus_grace(now, silent):
    got = silent_agents([agent()], at(now))
    assert bool(got) is silent
    if silent:
        assert got[0].deadline == at(75) and got[0].silent_for == pytest.approx(now)


def test_grace_default_and_configured():
    assert grace_for(5) == 60 and grace_for(60) == 120 and grace_for(60, grace=10) == 10
    # configured grace 10 s: heard at 0, interval 60 -> silent after 70
    assert silent_agents([agent(interval=60)], at(70.5), grace=10)
    assert not silent_agents([agent(interval=60)], at(70), grace=10)


def test_only_the_silent_agents_sorted():
    agents = [agent("a2", heard=0), agent("a1", heard=0), agent("a3", heard=50)]
    assert [s.agent for s in silent_agents(agents, at(100))] == ["a1", "a2"]


U = "ups/main/"


@pytest.mark.parametrize("checks,power", [
    # on battery with low battery flag -> exhausted
    ({U + "on_battery": "critical", U + "battery_low": "critical"}, EXHAUSTED),
    # on battery with runtime threshold warning -> exhausted
    ({U + "on_battery": "critical", U + "battery_runtime": "warning"}, EXHAUSTED),
    ({U + "on_battery": "warning", U + "battery_charge": "critical"}, EXHAUSTED),
    # on battery, battery fine -> on battery when last heard
    ({U + "on_battery": "critical", U + "battery_low": "ok", U + "battery_runtime": "ok"},
     ON_BATTERY),
    # battery low but on mains (recharging) -> not a power story
    ({U + "on_battery": "ok", U + "battery_low": "critical"}, NOT_ON_BATTERY),
    ({}, NOT_ON_BATTERY),
    ({U + "comm": "unknown"}, NOT_ON_BATTERY),
    # low battery on another UPS does not count against this one
    ({U + "on_battery": "critical", "ups/other/battery_low": "critical"}, ON_BATTERY),
    # the worst of two UPSes wins
    ({"ups/a/on_battery": "critical", "ups/b/on_battery": "critical",
      "ups/b/battery_runtime": "critical"}, EXHAUSTED),
])
def test_power_verdict_each_ups_case(checks, power):
    assert power_verdict(checks)[0] == power


def test_silence_reason_names_the_evidence():
    last = AgentLast("a1", "b1", "r1", at(0), 15.0,
                     {U + "on_battery": "critical", U + "battery_runtime": "critical"})
    [s] = silent_agents([last], at(120))
    assert s.power == EXHAUSTED
    assert s.reason == ("likely power exhausted at the branch "
                        "(ups/main/on_battery, ups/main/battery_runtime)")
    [s] = silent_agents([agent(**{"ups__main__on_battery": "critical"})], at(120))
    assert s.reason == "on battery when last heard (ups/main/on_battery)"
    [s] = silent_agents([agent()], at(120))
    assert s.reason == "line or agent down"


def test_from_heartbeat():
    hb = Heartbeat(agent="a1", branch="b1", region="r1", sent_at=at(0), interval=15.0,
                   checks=[CheckStatus(check=U + "on_battery", state="critical", reason="OB")])
    last = AgentLast.from_heartbeat(hb, heard_at=at(2))
    assert last.last_heard == at(2) and last.checks == {U + "on_battery": "critical"}
    assert silent_agents([last], at(78))[0].power == ON_BATTERY


def test_timeline_silence_starts_and_ends_once():
    previously: set[str] = set()
    log = []
    heard = {"a1": 0.0, "a2": 0.0}
    for t in range(0, 400, 15):
        if t <= 30 or t >= 300:           # a1 goes quiet between 30 and 300
            heard["a1"] = t
        heard["a2"] = t
        silences = silent_agents([agent(a, h) for a, h in heard.items()], at(t))
        started, ended = silence_changes(previously, silences)
        log += [(t, "silent", s.agent) for s in started] + [(t, "back", a) for a in ended]
        previously = {s.agent for s in silences}
    # last heard 30, deadline 105: first round after it is 120
    assert log == [(120, "silent", "a1"), (300, "back", "a1")]
