"""A spool on a small tmpfs that fills and frees: nothing is lost, nothing
stops, and the agent says what is wrong while it is wrong.

The tmpfs is mounted for the test (this needs root; the test is skipped,
with the reason, where mount is refused) and unmounted afterwards.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

from agent import wire
from agent.spool_sink import SpoolSink
from agent.spool import Spool, SpoolError

from .support.agent import AgentProcess
from .test_collector_api import BRANCH, TOKENS, CollectorProcess
from .test_delivery_e2e import Service, stored_ids, wait_for

FULL = "cannot write the spool: No space left on device"


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs of the test's own."""
    where = tmp_path / "fs"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    yield Disk(where)
    if subprocess.run(["umount", str(where)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(where)], check=True)


class Disk:
    """A directory on a small file system that the test fills and frees."""

    def __init__(self, path: Path):
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Take every free byte."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            for chunk in (65536, 512):
                try:
                    while True:
                        os.write(fd, b"\0" * chunk)
                except OSError as e:
                    assert e.errno == errno.ENOSPC
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


def event(n: int) -> wire.Event:
    return wire.Event(id=f"ev{n:04d}", kind="state", agent="a1", branch="B1",
                      check="tcp/core", old_state="ok", new_state="critical",
                      reason=f"change {n}", observed_at=wire.utc(1_800_000_000 + n))


def test_a_full_disk_keeps_changes_pending_in_order_until_it_frees(small_disk):
    health: list[str | None] = []
    spool = Spool(small_disk.path / "spool.db", on_health=health.append)
    now = [0.0]
    sink = SpoolSink(spool, clock=lambda: now[0], rand=lambda: 1.0)
    sink.emit(event(0))
    small_disk.fill()
    for n in range(1, 200):        # the WAL has some room left: it runs out soon
        sink.emit(event(n))
        if sink.pending:
            break
    assert sink.pending and spool.error == FULL and health == [FULL]
    with pytest.raises(SpoolError, match=FULL):
        spool.put(event(999))
    first_pending = n
    for n in range(first_pending + 1, first_pending + 5):
        sink.emit(event(n))          # backing off: kept, in order, not tried
    assert [e.id for e in sink.pending] == [f"ev{i:04d}" for i in range(first_pending,
                                                                         first_pending + 5)]
    sink.retry()                       # before the backoff passed: nothing tried
    assert len(sink.pending) == 5
    small_disk.free()
    now[0] += 60
    sink.retry()
    assert not sink.pending and spool.error is None and health == [FULL, None]
    ids = [e.id for e in spool.peek(1000)]
    assert ids == [f"ev{i:04d}" for i in range(first_pending + 5)]
    assert spool.delete(ids) == len(ids)
    spool.close()


def heartbeat_checks(c: CollectorProcess) -> dict[str, dict]:
    db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT checks FROM agents WHERE agent = 'a1'").fetchone()
    finally:
        db.close()
    return {c["check"]: c for c in json.loads(row[0] or "[]")} if row else {}


def test_a_real_agent_on_a_disk_that_fills_and_frees_loses_nothing(small_disk, tmp_path):
    (tmp_path / "collector").mkdir()
    collector = CollectorProcess(tmp_path / "collector").start()
    service = Service()
    config = {
        "agent": {"id": "a1", "branch": BRANCH["a1"], "region": "north"},
        "state": {"debounce": 1},
        "host": {"tcp": [{"name": "core", "host": "127.0.0.1", "port": service.port,
                          "timeout": 0.5, "interval": 0.3}]},
        "collector": {"url": collector.url, "token": TOKENS["a1"], "heartbeat_interval": 1,
                      "timeout": 0.8, "spool": {"path": str(small_disk.path / "spool.db")}},
    }
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    try:
        agent.wait_event(check="tcp/core", new_state="ok")
        wait_for(lambda: stored_ids(collector), what="the first event at the collector")

        small_disk.fill()
        changes = 0
        # The branch keeps changing while nothing can be spooled; the heartbeat
        # still says what is wrong.
        for _ in range(3):
            before = len(agent.events_for("tcp/core"))
            service.down()
            wait_for(lambda: len(agent.events_for("tcp/core")) > before, what="a change")
            before = len(agent.events_for("tcp/core"))
            service.up()
            wait_for(lambda: len(agent.events_for("tcp/core")) > before, what="a change")
            changes += 2
        spool_check = wait_for(lambda: (lambda c: c if c and c["state"] == "critical" else None)(
            heartbeat_checks(collector).get("agent/spool")), what="agent/spool at the collector")
        assert spool_check["reason"] == FULL
        assert agent.proc.poll() is None
        assert (agent.metric("branchwatch_spool_pending_events") or 0) >= 1

        small_disk.free()
        wait_for(lambda: (lambda c: c and c["state"] == "ok")(
            heartbeat_checks(collector).get("agent/spool")), what="agent/spool ok again")
        printed = {e["id"] for e in agent.events}
        wait_for(lambda: set(stored_ids(collector)) >= printed, timeout=30,
                 what="every change delivered")
        wait_for(lambda: agent.metric("branchwatch_spool_depth") == 0, what="an empty spool")
        ids = stored_ids(collector)
        lost, duplicated = printed - set(ids), len(ids) - len(set(ids))
        print(f"fault full-disk: {len(printed)} events, lost {len(lost)}, duplicated "
              f"{duplicated}, stuck {agent.metric('branchwatch_spool_depth'):.0f}")
        assert (len(lost), duplicated) == (0, 0)
        assert agent.metric("branchwatch_spool_pending_events") == 0
        critical = [e for e in agent.events_for("agent/spool") if e["new_state"] == "critical"]
        assert critical and critical[0]["reason"] == FULL
    finally:
        agent.stop()
        collector.stop()
        service.down()
