"""The collector's writer thread over a real SQLite store: group commit, a
failing request rolled back alone, an ingest stored with its incident
change or not at all."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Event, new_event_id
from collector.clock_offset import ClockOffsets
from collector.engine.log_engine import LogEngine
from collector.engine.wakeup import EngineWakeup
from collector.incident_desk import IncidentDesk
from tests.support.store_backend import backend, pg_server  # noqa: F401
from collector.writer import Writer

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def ev(check: str, state: str = "critical", t: float = 0) -> Event:
    return Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=check,
                 old_state=None, new_state=state, reason=f"{check} {state}",
                 observed_at=T0 + timedelta(seconds=t))


@pytest.fixture
def store(backend):
    """The writer over a real store: the SQLite file, and a real PostgreSQL."""
    return backend.open()


class Gate:
    """A writer job that holds the writer until released: others queue behind it."""

    def __init__(self):
        self.started, self.released = threading.Event(), threading.Event()

    def hold(self):
        self.started.set()
        assert self.released.wait(10), "the test never released the writer"
        return "first"

    async def running(self):
        assert await asyncio.to_thread(self.started.wait, 10), "the job never started"


async def queued(writer, jobs):
    """Start the jobs; once each has put itself on the writer's queue (their first
    step runs in one pass of the loop), check that and return their tasks."""
    tasks = [asyncio.ensure_future(j) for j in jobs]
    await asyncio.sleep(0)
    assert writer.waiting() == len(tasks)
    return tasks


def test_waiting_requests_share_one_commit(store):
    writer = Writer(store)
    gate = Gate()

    async def main():
        first = asyncio.ensure_future(writer.run(gate.hold))
        await gate.running()
        rest = await queued(writer, [writer.run(store.add_events, "a1", "B1",
                                                [ev(f"tcp/s{i}")], 1.0) for i in range(50)])
        gate.released.set()
        return await first, await asyncio.gather(*rest)

    first, acks = asyncio.run(main())
    writer.stop()
    assert first == "first" and all(len(a[0]) == 1 for a in acks)
    assert len(store.events()) == 50
    assert writer.jobs_done == 51 and writer.groups == 2     # 51 requests, two fsyncs


def test_a_job_alone_commits_after_the_jobs_before_it_and_before_those_after(store):
    writer = Writer(store)
    gate, order = Gate(), []

    def job(name):
        order.append((name, writer.groups))

    async def main():
        first = asyncio.ensure_future(writer.run(gate.hold))
        await gate.running()
        rest = await queued(writer, [writer.run(job, "a"), writer.run(job, "b"),
                                     writer.run_alone(job, "engine"), writer.run(job, "c")])
        gate.released.set()
        await first
        await asyncio.gather(*rest)

    asyncio.run(main())
    writer.stop()
    # a and b share a commit; the engine step has its own; c comes after it.
    assert order == [("a", 1), ("b", 1), ("engine", 2), ("c", 3)]


def test_a_failing_request_is_rolled_back_alone(store):
    calls = []
    writer = Writer(store, on_failure=lambda: calls.append("rebuilt"))

    def store_then_fail():
        store.add_events("a1", "B1", [ev("tcp/bad")], 1.0)
        raise RuntimeError("boom")

    async def main():
        return await asyncio.gather(
            writer.run(store.add_events, "a1", "B1", [ev("tcp/good1")], 1.0),
            writer.run(store_then_fail),
            writer.run(store.add_events, "a1", "B1", [ev("tcp/good2")], 1.0),
            return_exceptions=True)

    good1, bad, good2 = asyncio.run(main())
    writer.stop()
    assert isinstance(bad, RuntimeError) and str(bad) == "boom"
    assert sorted(e.event.check for e in store.events()) == ["tcp/good1", "tcp/good2"]
    assert calls == ["rebuilt"]
    assert store.verify_audit() == []


def test_a_batch_the_engine_cannot_apply_is_recorded_and_the_next_one_applies(store,
                                                                              monkeypatch):
    desk = IncidentDesk(store, clock=lambda: T0.timestamp() + 60)
    writer = Writer(store, on_failure=desk.reload)

    def broken(*a, **k):
        raise RuntimeError("incident engine bug")

    async def ingest(events):
        return await writer.run(desk.ingest, "a1", "B1", events, T0.timestamp() + 60, None)

    monkeypatch.setattr(desk.book, "apply_event", broken)
    bad = ev("ups/rack/on_battery")
    assert asyncio.run(ingest([bad]))[0] == [bad.id]      # acknowledged: it is in the log
    # Its half-made incident change was rolled back, the failure is on the audit
    # trail with the event's id, the book was rebuilt (the broken one is gone) and
    # the cursor moved past it: one bad batch does not stop every later one.
    assert store.list_incidents() == []
    [rec] = store.audit.records("events.not_applied")
    assert rec["data"]["ids"] == [bad.id] and "incident engine bug" in rec["data"]["error"]
    assert desk.book.apply_event is not broken and desk.engine.lag() == 0
    accepted, _ = asyncio.run(ingest([ev("ups/rack/on_battery")]))
    writer.stop()
    assert len(accepted) == 1 and len(store.list_incidents()) == 1
    assert store.verify_audit() == []


def test_a_failed_commit_fails_every_request_in_it_and_the_next_group_works(store):
    calls = []
    writer = Writer(store, on_failure=lambda: calls.append("rebuilt"))
    # A deferred foreign key is only checked at COMMIT: a real commit failure.
    if store.dialect.name == "sqlite":
        store._conn.execute("PRAGMA foreign_keys=ON")
    store._conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    store._conn.execute("CREATE TABLE child (p INTEGER REFERENCES parent (id) "
                        "DEFERRABLE INITIALLY DEFERRED)")
    gate = Gate()

    def orphan():
        store._conn.execute("INSERT INTO child VALUES (99)")

    async def main():
        # The first job holds the writer while the next two queue: they share a group.
        hold = asyncio.ensure_future(writer.run(gate.hold))
        await gate.running()
        bad, good = await queued(writer, [
            writer.run(orphan), writer.run(store.add_events, "a1", "B1", [ev("tcp/good")], 1.0)])
        gate.released.set()
        await hold
        return await asyncio.gather(bad, good, return_exceptions=True)

    results = asyncio.run(main())
    assert all(isinstance(r, Exception) for r in results), results
    assert store.events() == [] and calls
    # The store is usable again: the failed transaction was ended.
    again = asyncio.run(_run(writer, store.add_events, "a1", "B1", [ev("tcp/after")], 1.0))
    writer.stop()
    assert len(again[0]) == 1 and [e.event.check for e in store.events()] == ["tcp/after"]


async def _run(writer, fn, *args):
    return await writer.run(fn, *args)


def test_clock_offset_is_the_smallest_recent_sample_outside_the_dead_band():
    off = ClockOffsets(window=3)
    sent = T0
    assert off.offset("a") == 0.0 and off.estimate("a") is None
    off.observe("a", sent, T0.timestamp() + 3600.4)      # slow network
    off.observe("a", sent, T0.timestamp() + 3600.05)
    assert off.estimate("a") == pytest.approx(3600.05)
    assert off.correct("a", T0) == T0 + timedelta(seconds=3600.05)
    for _ in range(3):                                    # clock stepped: old samples age out
        off.observe("a", sent, T0.timestamp() + 10)
    assert off.offset("a") == pytest.approx(10)
    off.observe("b", sent, T0.timestamp() + 1.5)          # network delay, NTP-level: no change
    assert off.offset("b") == 0.0 and off.correct("b", T0) == T0
    off.observe("c", sent, T0.timestamp() - 30)           # agent clock ahead
    assert off.correct("c", T0) == T0 - timedelta(seconds=30)


def test_a_grown_offset_is_followed_after_three_samples_not_the_whole_window():
    off = ClockOffsets(window=8)
    for delay in (0.2, 0.1, 0.3, 0.2):
        off.observe("a", T0, T0.timestamp() + delay)
    assert off.offset("a") == 0.0
    # The collector's clock moved 30 min forward (a drill): two samples are not enough
    # (a slow network), the third is.
    off.observe("a", T0, T0.timestamp() + 1800.3)
    off.observe("a", T0, T0.timestamp() + 1800.2)
    assert off.offset("a") == 0.0
    off.observe("a", T0, T0.timestamp() + 1800.4)
    assert off.offset("a") == pytest.approx(1800.2)
    # One slow answer among fast ones is only network delay: no step.
    off.observe("b", T0, T0.timestamp() + 0.1)
    off.observe("b", T0, T0.timestamp() + 0.1)
    off.observe("b", T0, T0.timestamp() + 0.1)
    off.observe("b", T0, T0.timestamp() + 30)
    off.observe("b", T0, T0.timestamp() + 0.2)
    off.observe("b", T0, T0.timestamp() + 40)
    assert off.offset("b") == 0.0


def test_an_engine_step_commits_without_its_own_fsync_and_acks_keep_theirs(store):
    writer = Writer(store)

    def sync_level():
        if store.dialect.name == "postgresql":
            return store._conn.execute("SELECT current_setting('synchronous_commit')"
                                       ).fetchone()[0]
        return store._conn.execute("PRAGMA synchronous").fetchone()[0]

    async def main():
        return (await writer.run_alone(sync_level, durable=False), await writer.run(sync_level),
                await writer.run_alone(sync_level))

    step, ack, alone = asyncio.run(main())
    writer.stop()
    # NORMAL (off) for the step, FULL (on) otherwise
    want = (1, 2, 2) if store.dialect.name == "sqlite" else ("off", "on", "on")
    assert (step, ack, alone) == want


def test_the_engine_applies_what_was_appended_when_woken_and_retries_a_failed_step(store):
    writer = Writer(store)
    applied = []
    engine = LogEngine(store, lambda agent, branch, events, rx, tx: applied.extend(events))
    failures = [sqlite3.OperationalError("database is locked")]

    def step():
        if failures:
            raise failures.pop()         # the store failed once: the cursor did not move
        return engine.step()

    async def main():
        wake = EngineWakeup(writer, step, engine.chunk, retry_after=0)
        wake.start()
        await asyncio.wait_for(wake.idle.wait(), 10)      # the failed step, then caught up
        batch = [ev(f"tcp/s{i}") for i in range(3)]
        await writer.run(store.add_events, "a1", "B1", batch, 1.0)
        wake.wake()
        await asyncio.wait_for(wake.idle.wait(), 10)
        await wake.stop()
        return batch, wake.applied

    batch, count = asyncio.run(main())
    writer.stop()
    assert applied == batch and count == 3 and failures == []
    assert store.cursor("engine") == store.log_head() == 3
