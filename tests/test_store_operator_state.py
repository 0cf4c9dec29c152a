"""What people set in the collector lives in its store, the same on both backends
(SQLite and PostgreSQL): enrolments by one-time code, silences, what agents say
about themselves. Each change is audited in the same transaction, and a second
store on the same database (a restart, or another collector on PostgreSQL)
sees it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from collector.fleet.enrolment import BadCode, active_entries
from collector.fleet.storage import AgentAboutRow
from collector.incidents import Refused
from collector.notify.settings import Silence
from collector.storage.dialect import pg_placeholders
from tests.support.store_backend import backend, pg_server  # noqa: F401

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
AT = T0.timestamp()


def test_an_enrolment_is_exchanged_once_and_revoked_for_every_reader(backend):
    store = backend.open()
    code = store.enrol("br-1-srv", "BR-1", "福建", "boss", AT, known=set())
    with pytest.raises(Refused, match="already enrolled"):
        store.enrol("br-1-srv", "BR-1", "福建", "boss", AT, known=set())
    enrolment, token = store.exchange_code("br-1-srv", code, AT + 60)
    assert enrolment.state == "enrolled" and token
    with pytest.raises(BadCode):
        store.exchange_code("br-1-srv", code, AT + 61)            # spent
    other = backend.open()                  # a restart, or a second collector
    [entry] = active_entries(other.enrolments())
    assert (entry.id, entry.branch, entry.region) == ("br-1-srv", "BR-1", "福建")
    other.revoke("br-1-srv", "boss", "machine stolen", AT + 120)
    assert store.enrolment("br-1-srv").state == "revoked"
    assert active_entries(store.enrolments()) == []
    kinds = [r["kind"] for r in store.audit.records()]
    assert kinds == ["agent.enrolment", "agent.enrolled", "agent.revoked"]
    assert store.verify_audit() == []


def test_a_silence_is_kept_expired_early_and_seen_by_another_store(backend):
    store = backend.open()
    s = Silence(branches=["BR-*"], starts=T0, ends=T0 + timedelta(hours=2),
                why="供电局计划停电")
    kept = store.add_silence(s, "alice", AT)
    store.note_am_silences(kept.id, ["am-1", "am-2"])
    other = backend.open()
    [seen] = other.silences()
    assert (seen.id, seen.silence, seen.am_ids) == (kept.id, s, ["am-1", "am-2"])
    assert seen.active(T0 + timedelta(minutes=5))
    assert other.expire_silence(kept.id, "bob", "work done", AT + 600).expired_by == "bob"
    assert store.expire_silence(kept.id, "bob", "again", AT + 700) is None
    assert not store.silence(kept.id).active(T0 + timedelta(minutes=15))
    assert [r["kind"] for r in store.audit.records()] == ["silence.set", "silence.expired"]


def test_what_an_agent_says_about_itself_is_replaced_not_added(backend):
    store = backend.open()
    row = AgentAboutRow(agent="a1", branch="B1", version="1.4", config_sha256="ab" * 32,
                        metrics_scheme="https", metrics_target="10.0.0.5:9813",
                        reported_at=AT)
    store.put_about(row)
    newer = msgspec.structs.replace(row, version="1.5", reported_at=AT + 15.5)
    store.put_about(newer)
    assert backend.open().about_rows() == [newer]


@pytest.mark.parametrize("sql,want", [
    ("SELECT ? , ?", "SELECT $1 , $2"),
    ("SELECT '?' || \"a?b\" FROM t WHERE x = ? AND y LIKE '%?%'",
     "SELECT '?' || \"a?b\" FROM t WHERE x = $1 AND y LIKE '%?%'"),
    ("SELECT 'it''s ?' , ?", "SELECT 'it''s ?' , $1"),
])
def test_postgresql_placeholders_are_numbered_outside_quotes(sql, want):
    assert pg_placeholders(sql) == want
