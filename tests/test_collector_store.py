"""The store on both backends (SQLite, PostgreSQL): idempotent ingest, heartbeats,
migrations, durability settings."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import CheckStatus, Event, Heartbeat, new_event_id
from collector.engine.log_engine import LogEngine
from collector.store import MIGRATIONS, SqliteStore, StoreError
from tests.support.store_backend import backend, pg_backend, pg_server  # noqa: F401

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)
RX = T0.timestamp() + 7.25   # the collector received them a little later


def ev(i: int, agent: str = "a1", branch: str = "B1", **kw) -> Event:
    return Event(id=kw.pop("id", new_event_id()), kind="state", agent=agent, branch=branch,
                 check=f"line/primary/gw{i}", old_state="ok", new_state="critical",
                 reason="no answer", observed_at=T0 + timedelta(seconds=i),
                 diagnosis="line", **kw)


def hb(agent="a1", branch="B1", depth=0, state="ok") -> Heartbeat:
    return Heartbeat(agent=agent, branch=branch, region="north", sent_at=T0, interval=15.0,
                     spool_depth=depth, checks=[CheckStatus(check="ups/rack/on_battery",
                                                            state=state, reason="", since=T0)])


@pytest.fixture
def store(backend):
    return backend.open()


def test_add_events_is_idempotent_by_id(store):
    evs = [ev(i) for i in range(3)]
    assert store.add_events("a1", "B1", evs, RX) == ([e.id for e in evs], [])
    more = [ev(9)]
    assert store.add_events("a1", "B1", evs + more, RX + 1) == ([more[0].id],
                                                                [e.id for e in evs])
    assert len(store.events()) == 4


def test_same_id_twice_in_one_batch_is_stored_once(store):
    e = ev(1)
    assert store.add_events("a1", "B1", [e, e], RX) == ([e.id], [e.id])
    assert len(store.events()) == 1


def test_events_keep_observation_and_receive_times(store):
    sent = T0 + timedelta(seconds=5)
    evs = [ev(2), ev(0), ev(1)]
    store.add_events("a1", "B1", evs, RX, sent)
    got = store.events(agent="a1")
    assert [s.event.observed_at for s in got] == [T0 + timedelta(seconds=i) for i in range(3)]
    assert got[0].event == evs[1]   # every wire field comes back as sent
    assert got[0].received_at.timestamp() == pytest.approx(RX)
    assert got[0].sent_at == sent
    assert store.events(branch="B2") == []
    assert len(store.events(limit=2)) == 2


def test_each_accepted_event_is_audited_once_by_the_engine(store):
    evs = [ev(i) for i in range(3)]
    store.add_events("a1", "B1", evs, RX)
    store.add_events("a1", "B1", evs, RX)            # resend: nothing new to audit
    assert store.audit.records("events.received") == []     # the ack path only appends
    applied = []
    assert LogEngine(store, lambda *a: applied.append(a)).catch_up() == 3
    [rec] = store.audit.records("events.received")
    assert [e["id"] for e in rec["data"]["events"]] == [e.id for e in evs]
    recs = [rec]
    assert {r["actor"] for r in recs} == {"a1"}
    assert store.verify_audit() == []


def test_heartbeat_keeps_the_last_and_audits_the_first(store):
    assert store.put_heartbeat(hb(depth=3), RX) is True
    assert store.put_heartbeat(hb(depth=1, state="critical"), RX + 15) is False
    [a] = store.agents()
    assert (a.agent, a.branch, a.region, a.spool_depth, a.interval) == ("a1", "B1", "north", 1, 15.0)
    assert a.heartbeat_at.timestamp() == pytest.approx(RX + 15)
    assert a.heartbeat_sent_at == T0
    assert a.first_seen_at.timestamp() == pytest.approx(RX)
    assert a.checks == [CheckStatus(check="ups/rack/on_battery", state="critical", reason="",
                                    since=T0)]
    assert len(store.audit.records("agent.seen")) == 1


def test_an_agent_seen_by_events_first_still_gets_agent_seen(store):
    store.add_events("a1", "B1", [ev(0)], RX)
    LogEngine(store, lambda *a: None).catch_up()
    [a] = store.agents()
    assert a.heartbeat_at is None and a.last_event_at is not None
    assert store.put_heartbeat(hb(), RX + 1) is True


def test_data_survives_reopening(backend):
    s = backend.open()
    evs = [ev(i) for i in range(5)]
    s.add_events("a1", "B1", evs, RX)
    s.put_heartbeat(hb(), RX)
    s.close()
    s = backend.open()
    assert s.add_events("a1", "B1", evs, RX) == ([], [e.id for e in evs])
    assert len(s.agents()) == 1 and s.verify_audit() == []
    assert s.schema_version() == MIGRATIONS[-1][0]


def test_wal_and_full_sync(tmp_path):
    store = SqliteStore(tmp_path / "collector.db")
    conn = sqlite3.connect(store.path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2   # FULL
    finally:
        conn.close()
        store.close()


def test_postgresql_commits_synchronously_and_only_its_engine_steps_do_not(pg_backend):
    backend = pg_backend
    with backend.raw() as admin:            # a server that defaults to off changes nothing
        admin.execute(f"ALTER DATABASE {backend.dsn.split('dbname=')[1]} "
                      "SET synchronous_commit = off")
    store = backend.open()
    show = "SELECT current_setting('synchronous_commit')"
    assert store._conn.execute(show).fetchone()[0] == "on"
    with store.group(durable=False) as c:
        assert c.execute(show).fetchone()[0] == "off"
    with store.group() as c:
        assert c.execute(show).fetchone()[0] == "on"
    assert store._conn.execute(show).fetchone()[0] == "on"


def test_migrations_are_recorded_once(backend):
    backend.open().close()
    backend.open().close()
    with backend.raw() as conn:
        versions = [r[0] for r in conn.execute(
            "SELECT version FROM schema_version ORDER BY version")]
    assert versions == [v for v, _ in MIGRATIONS]


def test_two_stores_migrating_one_database_at_once_migrate_it_once(pg_backend):
    import threading
    backend = pg_backend
    errors, stores = [], []

    def open_one():
        try:
            stores.append(backend.open())
        except Exception as e:        # noqa: BLE001 - the test reports it
            errors.append(e)
    threads = [threading.Thread(target=open_one) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(stores) == 3
    assert {s.schema_version() for s in stores} == {MIGRATIONS[-1][0]}


def test_a_newer_schema_is_refused(backend):
    backend.open().close()
    with backend.raw() as conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'later')")
    with pytest.raises(StoreError, match="schema version 999 is newer"):
        backend.open()


def test_a_failed_batch_leaves_nothing(store, backend):
    good, bad = ev(0), ev(1)
    bad.new_state = None   # violates NOT NULL: the whole batch must roll back
    with pytest.raises(backend.integrity_error):
        store.add_events("a1", "B1", [good, bad], RX)
    assert store.events() == [] and store.audit.count() == 0


def test_a_cut_database_session_fails_one_write_and_the_next_reconnects(pg_backend):
    backend = pg_backend
    import psycopg

    from collector.api_base import store_unavailable
    store = backend.open()
    first = [ev(0)]
    store.add_events("a1", "B1", first, RX)
    with backend.raw() as admin:            # the server ends the writer's session
        admin.execute("SELECT pg_terminate_backend(?)", (store._conn.raw.info.backend_pid,))
    lost = [ev(1)]
    with pytest.raises(psycopg.OperationalError) as e:
        store.add_events("a1", "B1", lost, RX)
    assert store_unavailable(e.value)       # the API answers 503: the agent resends
    assert store.add_events("a1", "B1", lost, RX) == ([lost[0].id], [])   # a new session
    assert [s.event.id for s in store.events()] == [first[0].id, lost[0].id]
    LogEngine(store, lambda *a: None).catch_up()
    assert store.verify_audit() == []
