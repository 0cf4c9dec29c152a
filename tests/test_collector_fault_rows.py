"""Incidents stored with their faults as rows: a save writes what changed, a
rolled-back save is written again, old bodies with faults inside are moved."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Event, new_event_id
from collector.incident_codec import encode, to_dict
from collector.incidents import IncidentBook
from collector.storage.incident_rows import migrate_fault_rows
from tests.support.schema import schema_before
from tests.support.store_backend import backend, pg_server  # noqa: F401
from collector.store import MIGRATIONS, SqliteStore

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)


def ev(k: int, state: str = "critical", t: float = 0) -> Event:
    return Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=f"tcp/svc{k}",
                 old_state=None, new_state=state, reason="refused",
                 observed_at=T0 + timedelta(seconds=t))


@pytest.fixture
def store(backend):
    return backend.open()


def big_incident(faults: int = 50):
    book = IncidentBook(window=3600)
    for k in range(faults):
        book.apply_event(ev(k, t=k), T0 + timedelta(seconds=k))
    [inc] = book.incidents()
    return book, inc


class _Counting:
    """The store's connection, counting the rows its writes change (as SQLite's
    total_changes does, on either backend)."""

    def __init__(self, conn):
        self.inner, self.changes = conn, 0

    def _count(self, sql: str, cur):
        if sql.lstrip().split(None, 1)[0].upper() in ("INSERT", "UPDATE", "DELETE"):
            self.changes += max(cur.rowcount, 0)
        return cur

    def execute(self, sql, params=()):
        return self._count(sql, self.inner.execute(sql, params))

    def executemany(self, sql, rows):
        return self._count(sql, self.inner.executemany(sql, rows))

    def __getattr__(self, name):
        return getattr(self.inner, name)


def written(store, fn) -> int:
    """Rows inserted, updated or deleted by fn."""
    counting = _Counting(store._conn)
    store._conn = store.audit._conn = counting
    try:
        fn()
    finally:
        store._conn = store.audit._conn = counting.inner
    return counting.changes


# Every save that changes rows also appends the audit record digesting them
# (collector/audit_verify.py) and, when the incident's own row changed, points
# the row at that record (incident_audit): AUDIT rows more.
AUDIT = 1


def test_one_fault_changed_writes_one_fault_row(store):
    book, inc = big_incident()
    assert written(store, lambda: store.save_incidents([inc], 1.0)) == 1 + 50 + AUDIT + 1
    assert written(store, lambda: store.save_incidents([inc], 2.0)) == 0   # nothing changed
    book.apply_event(ev(7, "ok", t=100), T0 + timedelta(seconds=100))
    assert written(store, lambda: store.save_incidents([inc], 3.0)) == 1 + AUDIT
    assert store.incident(inc.id) == inc


def test_faults_come_back_in_the_order_they_joined(store, backend):
    _, inc = big_incident(12)
    store.save_incidents([inc], 1.0)
    again = backend.open()
    [back] = again.load_open_incidents()
    assert list(back.faults) == list(inc.faults) and back == inc


def test_a_rolled_back_save_is_written_again(store):
    book, inc = big_incident(3)
    store.save_incidents([inc], 1.0)
    book.apply_event(ev(1, "ok", t=100), T0 + timedelta(seconds=100))
    with pytest.raises(RuntimeError):
        with store.group():
            with store.savepoint():
                store.save_incidents([inc], 2.0)
            raise RuntimeError("the commit never happens")
    assert store.incident(inc.id) != inc              # the change is not stored...
    assert written(store, lambda: store.save_incidents([inc], 3.0)) == 1 + AUDIT   # ...so it is now
    assert store.incident(inc.id) == inc


def test_a_savepoint_rolled_back_alone_forgets_only_its_own_writes(store):
    book, inc = big_incident(3)
    store.save_incidents([inc], 1.0)
    book.apply_event(ev(2, "ok", t=100), T0 + timedelta(seconds=100))
    with store.group():
        with pytest.raises(RuntimeError):
            with store.savepoint():
                store.save_incidents([inc], 2.0)
                raise RuntimeError("this job fails")
    assert written(store, lambda: store.save_incidents([inc], 3.0)) == 1 + AUDIT
    assert store.incident(inc.id) == inc


def test_bodies_with_faults_inside_are_moved_into_rows(tmp_path):
    path = tmp_path / "c.db"
    _, inc = big_incident(4)
    conn = schema_before(path, migrate_fault_rows)
    conn.execute("INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?)",
                 (inc.id, inc.branch, inc.status, inc.started_at.isoformat(), 1.0,
                  encode(to_dict(inc, stored=True)).decode()))
    conn.commit()
    conn.close()
    s = SqliteStore(path)
    try:
        assert s.schema_version() == MIGRATIONS[-1][0]
        assert s.incident(inc.id) == inc
        [(moved,)] = s._conn.execute("SELECT body FROM incidents").fetchall()
        assert json.loads(moved)["faults"] == []
    finally:
        s.close()
