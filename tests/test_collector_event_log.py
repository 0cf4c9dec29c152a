"""The event log and the engine's cursor over a real store (SQLite and PostgreSQL): dedupe by id
alone, exact even when two ids share a hash, the old events table migrated,
and a step that dies half-way replayed whole."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Event, new_event_id
from collector.engine.log_engine import LogEngine
from collector.incident_desk import IncidentDesk
from collector.storage import event_log
from collector.store import SqliteStore
from tests.support.schema import schema_before
from tests.support.store_backend import backend, pg_backend, pg_server  # noqa: F401

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
RX = T0.timestamp() + 60


def ev(check: str = "ups/rack/on_battery", t: float = 0, **kw) -> Event:
    return Event(id=kw.pop("id", new_event_id()), kind="state", agent="a1", branch="B1",
                 check=check, old_state="ok", new_state=kw.pop("state", "critical"),
                 reason="on battery", observed_at=T0 + timedelta(seconds=t), **kw)


@pytest.fixture
def store(backend):
    return backend.open()


def test_an_id_sent_again_with_another_time_is_a_duplicate(store):
    e = ev()
    assert store.add_events("a1", "B1", [e], RX) == ([e.id], [])
    again = ev(id=e.id, t=5)                 # same id, different observation time
    assert store.add_events("a1", "B1", [again], RX + 1) == ([], [e.id])
    assert [s.event for s in store.events()] == [e]


def test_the_log_keeps_acknowledged_order_in_seq(store):
    first, second = [ev(t=i) for i in range(3)], [ev(t=-i) for i in range(2)]
    store.add_events("a1", "B1", first, RX)
    store.add_events("a1", "B1", second, RX + 1)
    assert [x.event.id for x in store.log_after(0, 100)] == [e.id for e in first + second]
    assert [x.seq for x in store.log_after(2, 100)] == [3, 4, 5] and store.log_head() == 5


def test_ids_sharing_a_hash_are_still_told_apart_exactly(store, monkeypatch):
    monkeypatch.setattr(event_log, "id_key", lambda eid: 42)      # every id collides
    a, b, c = ev(), ev(), ev()
    assert store.add_events("a1", "B1", [a, b], RX) == ([a.id, b.id], [])
    assert store.add_events("a1", "B1", [b, c, a], RX + 1) == ([c.id], [b.id, a.id])
    assert sorted(s.event.id for s in store.events()) == sorted([a.id, b.id, c.id])


def test_the_old_events_table_moves_into_the_log_applied(tmp_path):
    path = tmp_path / "c.db"
    # A database as the schema before the log left it (the migrations before it): events keyed
    # by (agent, observed_at, id), one id stored twice under two times (the bug).
    conn = schema_before(path, event_log.migrate_events_table)
    conn.executescript("""
        INSERT INTO events VALUES ('a1', 1, 'x', 'B1', 'state', 'c', NULL, 'ok', '', NULL, 10, NULL);
        INSERT INTO events VALUES ('a1', 2, 'x', 'B1', 'state', 'c', NULL, 'ok', '', NULL, 11, NULL);
        INSERT INTO events VALUES ('a1', 3, 'y', 'B1', 'state', 'c', NULL, 'ok', '', NULL, 12, NULL);
    """)
    conn.commit()
    conn.close()
    s = SqliteStore(path)
    try:
        assert [x.event.id for x in s.log_after(0, 10)] == ["x", "y"]
        assert s.cursor("engine") == 2           # they were applied by the old collector
        assert s.add_events("a1", "B1", [ev(id="x")], RX) == ([], ["x"])
        assert [e.event.id for e in s.events()] == ["x", "y"]      # the old name still reads
    finally:
        s.close()


def test_a_step_that_dies_half_way_is_replayed_whole(store):
    desk = IncidentDesk(store, clock=lambda: RX)
    # Acknowledged (in the log) but the collector dies before the engine commits.
    batch = [ev("ups/rack/on_battery"), ev("ups/rack/battery_low", t=1)]
    store.add_events("a1", "B1", batch, RX)
    seen = []

    def dies_after_the_first(agent, branch, events, received_at, sent_at):
        desk.apply_batch(agent, branch, events, received_at, sent_at)
        seen.append(len(store.list_incidents()))       # written inside the step...
        raise SystemExit("killed")                     # ...and the process dies

    with pytest.raises(SystemExit):
        LogEngine(store, dies_after_the_first).step()
    assert seen == [1]
    assert store.list_incidents() == [] and store.cursor("engine") == 0
    assert store.audit.records("events.received") == []
    # A new collector on the same store replays the step: once, everything.
    fresh = IncidentDesk(store, clock=lambda: RX)
    assert fresh.apply_log() == 2 and fresh.apply_log() == 0
    [inc] = store.list_incidents()
    assert sorted(check for _agent, check in inc.faults) == ["ups/rack/battery_low",
                                                          "ups/rack/on_battery"]
    [rec] = store.audit.records("events.received")
    assert [e["id"] for e in rec["data"]["events"]] == [e.id for e in batch]
    assert store.verify_audit() == []


def test_the_engine_reads_what_was_just_appended_from_memory_as_stored(store, backend,
                                                                       monkeypatch):
    first = [ev(t=i) for i in range(3)]
    store.add_events("a1", "B1", first, RX)
    from_store = store.log_after(0, 100)
    reads = []
    real = event_log.after
    monkeypatch.setattr(event_log, "after", lambda *a: reads.append(a) or real(*a))
    assert store.log_after(0, 100) == from_store and reads == []      # the same, from memory
    # A rolled-back append never shows, in memory or in the store.
    with pytest.raises(RuntimeError):
        with store.group():
            store.add_events("a1", "B1", [ev(t=9)], RX)
            raise RuntimeError("rolled back")
    # At the head: nothing to read. Alone on its log (SQLite) the store knows
    # without asking; on a log other collectors append to (PostgreSQL) it asks.
    shared = 1 if backend.name == "postgresql" else 0
    assert store.log_after(3, 100) == [] and len(reads) == shared
    # Asked from a cursor the tail does not start at: read from the store.
    assert store.log_after(1, 100) == from_store[1:] and len(reads) == 1 + shared


def test_an_overflowing_tail_falls_back_to_the_store_and_recovers(store, monkeypatch):
    store._tail.most = 4
    batches = [[ev(t=10 * b + i) for i in range(3)] for b in range(3)]
    for b in batches:
        store.add_events("a1", "B1", b, RX)
    # 9 entries: the tail overflowed and holds only the newest batch (seqs 7-9).
    assert [e.seq for e in store._tail.entries] == [7, 8, 9]
    reads = []
    real = event_log.after
    monkeypatch.setattr(event_log, "after", lambda *a: reads.append(a) or real(*a))
    assert [e.seq for e in store.log_after(0, 6)] == [1, 2, 3, 4, 5, 6] and len(reads) == 1
    assert [e.event.id for e in store.log_after(6, 6)] == [e.id for e in batches[2]]
    assert len(reads) == 1                                            # back on the tail


def test_the_engine_reads_what_another_collector_appended_to_a_shared_log(pg_backend):
    mine, other = pg_backend.open(), pg_backend.open()
    first, theirs, then = [ev(t=i) for i in range(3)], [ev(t=10), ev(t=11)], [ev(t=20)]
    mine.add_events("a1", "B1", first, RX)
    other.add_events("a1", "B1", theirs, RX)
    mine.add_events("a1", "B1", then, RX)
    got, cursor = [], 0
    while batch := mine.log_after(cursor, 100):
        got += batch
        cursor = batch[-1].seq
    assert [e.event.id for e in got] == [e.id for e in first + theirs + then]
    assert [e.seq for e in got] == [1, 2, 3, 4, 5, 6]
