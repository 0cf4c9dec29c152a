"""Garbage from upsd reaches no one unbounded: a real agent polls a socket
stand-in for upsd that answers a 400 KB "ERR" line for a while, and a real
collector (64 KiB body limit) receives every event, each reason within the
wire's bound and the cut one marked with its original length; nothing is
stuck in the spool, nothing lost, nothing stored twice."""

from __future__ import annotations

import os
import subprocess
import sys

from agent import wire

from .support.agent import AgentProcess
from .support.collector import CollectorProcess as SupportCollector
from .support.paths import REPO
from .support.upsd_standin import UpsdStandIn
from .test_collector_api import BRANCH, TOKENS, CollectorProcess
from .test_delivery_e2e import stored_ids, wait_for
from .test_nut_agent import ONLINE

GARBAGE = b"ERR " + b"x" * 409_596          # 409600 characters in all


def test_a_400_kb_reply_is_cut_at_the_probe_and_delivery_keeps_flowing(tmp_path):
    upsd = UpsdStandIn("main", dict(line.split(": ", 1) for line in ONLINE.splitlines()))
    (tmp_path / "collector").mkdir()
    collector = CollectorProcess(tmp_path / "collector").start()
    config = {
        "agent": {"id": "a1", "branch": BRANCH["a1"], "region": "north"},
        "state": {"debounce": 1},
        "ups": [{"name": "main", "interval": 0.2,
                 "nut": {"ups": "main", "port": upsd.port}}],
        "collector": {"url": collector.url, "token": TOKENS["a1"], "heartbeat_interval": 1,
                      "timeout": 0.8, "spool": {"path": str(tmp_path / "spool.db")}},
    }
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    try:
        agent.wait_event(check="ups/main/on_battery", new_state="ok")
        upsd.garbage = GARBAGE
        cut = agent.wait_event(check="ups/main/on_battery", new_state="unknown")
        # Garbage for a while longer: several polls, all answered with it (nut2
        # reads a 400 KB line 50 bytes at a time: each poll takes a while).
        wait_for(lambda: upsd.answered_garbage >= 5, timeout=90,
                 what="5 polls answered with garbage")
        upsd.garbage = None
        agent.wait_event(check="ups/main/on_battery", new_state="ok", old_state="unknown")

        assert cut["reason"].endswith("… [cut, 409600 chars]"), cut["reason"][-60:]
        assert all(len(e["reason"]) <= wire.REASON_MAX for e in agent.events)
        printed = {e["id"] for e in agent.events}
        wait_for(lambda: set(stored_ids(collector)) >= printed, what="every event delivered")
        wait_for(lambda: agent.metric("branchwatch_spool_depth") == 0, what="an empty spool")
        ids = stored_ids(collector)
        lost, duplicated = printed - set(ids), len(ids) - len(set(ids))
        print(f"fault garbage-upsd: {len(printed)} events, lost {len(lost)}, duplicated "
              f"{duplicated}, stuck {agent.metric('branchwatch_spool_depth'):.0f}")
        assert (len(lost), duplicated) == (0, 0)
        assert agent.metric("branchwatch_spool_dead_letter_events") == 0
    finally:
        agent.stop()
        collector.stop()
        upsd.close()


def test_an_event_too_big_for_the_collector_is_set_aside_reported_and_listed(tmp_path):
    """Cut to 512 characters of four bytes each, upsd's garbage still makes an
    event over this collector's 2200-byte body limit: the agent sets it aside,
    reports each once as agent/delivery, lists them with `branchwatch spool
    dead-letters`, and every later event flows."""
    upsd = UpsdStandIn("main", dict(line.split(": ", 1) for line in ONLINE.splitlines()))
    (tmp_path / "collector").mkdir()
    collector = SupportCollector(tmp_path / "collector",
                                 {"a1": (BRANCH["a1"], TOKENS["a1"])}, max_body=2200).start()
    config = {
        "agent": {"id": "a1", "branch": BRANCH["a1"], "region": "north"},
        "state": {"debounce": 1},
        "ups": [{"name": "main", "interval": 0.3, "nut": {"ups": "main", "port": upsd.port}}],
        "collector": {"url": collector.url, "token": TOKENS["a1"], "heartbeat_interval": 1,
                      "timeout": 0.8, "spool": {"path": str(tmp_path / "spool.db")}},
    }
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    try:
        agent.wait_event(check="ups/main/on_battery", new_state="ok")
        upsd.garbage = ("ERR " + "𝄞" * 100_000).encode()
        agent.wait_event(check="ups/main/on_battery", new_state="unknown")
        upsd.garbage = None
        back = agent.wait_event(check="ups/main/on_battery", new_state="ok", old_state="unknown")
        big = {e["id"]: e for e in agent.events if "𝄞" in e["reason"]}   # each check's
        assert len(big) >= 1
        reports = wait_for(lambda: (lambda r: r if len(r) == len(big) else None)(
            agent.events_for("agent/delivery")), what="one agent/delivery report per refusal")
        assert all(r["new_state"] == "warning" for r in reports)
        assert all(": collector answered 413: body of " in r["reason"] for r in reports)
        wait_for(lambda: {back["id"]} | {r["id"] for r in reports} <= set(stored_ids(collector)),
                 what="the events after the refused ones delivered")
        wait_for(lambda: agent.metric("branchwatch_spool_depth") == 0, what="an empty spool")
        assert agent.metric("branchwatch_spool_dead_letter_events") == len(big)
        printed = {e["id"] for e in agent.events}
        ids = stored_ids(collector)
        lost = printed - set(ids) - set(big)
        print(f"fault too-big-for-collector: {len(printed)} events, lost {len(lost)}, "
              f"duplicated {len(ids) - len(set(ids))}, stuck 0, set aside {len(big)}")
        assert (len(lost), len(ids) - len(set(ids))) == (0, 0)
        assert not set(big) & set(ids)

        done = subprocess.run([sys.executable, "-m", "agent.cli", "spool", "dead-letters",
                               "--config", str(agent.config_path)], capture_output=True,
                              text=True, timeout=30, env={**os.environ, "PYTHONPATH": str(REPO)})
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert len(lines) == len(big)
        for line in lines:
            at, id_, check, refusal = line.split("  ", 3)
            assert check == big[id_]["check"] and refusal.startswith("collector answered 413: ")
    finally:
        agent.stop()
        collector.stop()
        upsd.close()
