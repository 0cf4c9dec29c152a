"""The agent's spool: durable, oldest first, capped loudly, survives kill -9."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from hypothesis import given, settings, strategies as st

from agent import wire
from agent.spool import Spool
from tests.support.paths import REPO


def event(n: int, check: str = "ups/main/on_battery") -> wire.Event:
    return wire.Event(id=f"ev{n}", kind="state", agent="a1", branch="b1", check=check,
                      old_state="ok", new_state="critical", reason=f"reading {n}",
                      observed_at=wire.utc(1_700_000_000 + n))


def test_put_peek_delete_oldest_first_and_reopen(tmp_path):
    path = tmp_path / "state" / "spool.db"          # the state directory is created
    s = Spool(path, max_events=100)
    for i in range(5):
        s.put(event(i))
    s.put(event(2))                                  # a known id is ignored
    assert s.depth() == 5
    assert [e.id for e in s.peek(3)] == ["ev0", "ev1", "ev2"]
    assert s.peek(1)[0] == event(0)                  # the event comes back whole
    assert s.delete(["ev0", "ev2", "unknown"]) == 2
    assert [e.id for e in s.peek(10)] == ["ev1", "ev3", "ev4"]
    s.close()
    again = Spool(path, max_events=100)
    assert again.depth() == 3 and [e.id for e in again.peek(10)] == ["ev1", "ev3", "ev4"]
    assert again._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert again._db.execute("PRAGMA synchronous").fetchone()[0] == 2   # FULL


def test_cap_drops_the_oldest_counts_and_logs_once_per_interval(tmp_path, caplog):
    now = [0.0]
    s = Spool(tmp_path / "spool.db", max_events=3, clock=lambda: now[0], log_every=60)
    with caplog.at_level(logging.WARNING, logger="branchwatch.spool"):
        for i in range(3):
            assert s.put(event(i)) == 0
        assert s.put(event(3)) == 1
        assert s.put(event(4)) == 1
        now[0] = 61.0
        assert s.put(event(5)) == 1
    assert [e.id for e in s.peek(10)] == ["ev3", "ev4", "ev5"]
    assert s.depth() == 3 and s.dropped == 3
    drops = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(drops) == 2, drops                    # at once, then again after log_every
    assert "dropped the 1 oldest" in drops[0] and "(1 in all)" in drops[0]
    assert "dropped the 2 oldest" in drops[1] and "(3 in all)" in drops[1]
    s.close()
    # The count survives a restart, and a smaller cap on restart drops at the next put.
    smaller = Spool(tmp_path / "spool.db", max_events=2)
    assert smaller.dropped == 3
    assert smaller.put(event(6)) == 2
    assert [e.id for e in smaller.peek(10)] == ["ev5", "ev6"] and smaller.dropped == 5


_WRITER = textwrap.dedent("""
    import sys
    from agent import wire
    from agent.spool import Spool
    spool = Spool(sys.argv[1], max_events=10**6)
    i = 0
    while True:
        e = wire.Event(id=f"k{i}", kind="state", agent="a", branch="b", check="c",
                       old_state=None, new_state="ok", reason="x" * 200,
                       observed_at=wire.utc(1.7e9 + i))
        spool.put(e)
        sys.stdout.write(e.id + "\\n")   # only after put() returned
        sys.stdout.flush()
        i += 1
""")


def test_kill_9_loses_nothing_put_returned_for(tmp_path):
    path = tmp_path / "spool.db"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    confirmed = []
    try:
        while len(confirmed) < 300:
            line = proc.stdout.readline()
            assert line, "the writer died before it was killed"
            confirmed.append(line.strip())
    finally:
        os.kill(proc.pid, signal.SIGKILL)            # in the middle of the next put
        proc.wait()
    confirmed += [line.strip() for line in proc.stdout.read().splitlines() if line.strip()]
    spool = Spool(path, max_events=10**6)
    held = {e.id for e in spool.peek(10**6)}
    assert set(confirmed) <= held
    assert spool.depth() == len(held) >= len(confirmed)
    assert spool.depth() - len(confirmed) <= 1       # at most the put it was killed in


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("put"), st.integers(0, 30)),
                          st.tuples(st.just("delete"), st.integers(0, 5))), max_size=40),
       st.integers(1, 8))
def test_behaves_like_a_capped_fifo(ops, cap):
    """Property: the spool matches a list model (dedupe by id, oldest dropped over cap)."""
    with tempfile.TemporaryDirectory() as d:
        s = Spool(Path(d) / "spool.db", max_events=cap)
        model: list[str] = []
        dropped = 0
        for op, n in ops:
            if op == "put":
                if f"ev{n}" not in model:
                    model.append(f"ev{n}")
                    while len(model) > cap:
                        model.pop(0)
                        dropped += 1
                s.put(event(n))
            else:
                gone = model[:n]
                model = model[n:]
                assert s.delete([e.id for e in s.peek(n)]) == len(gone)
            assert [e.id for e in s.peek(100)] == model
            assert s.depth() == len(model) and s.dropped == dropped
        s.close()
