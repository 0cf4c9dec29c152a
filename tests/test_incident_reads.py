"""Reads of stored incidents (collector/incident_reads.py): filtered and paged
in SQL on connections of their own, so the API, the console and /metrics
answer while the writer is busy. The store is a real SQLite file; the API
is the real app served on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from agent.wire import Event, new_event_id
from collector.api import build_app, token_hash
from collector.api_base import STATE
from collector.book_metrics import BookCollector, BookSnapshot, fresh_offsets
from collector.config import parse
from collector.deadman import AgentLast
from collector.incident_reads import IncidentQuery, QueryError, incident, list_incidents
from collector.incidents import IncidentBook
from collector.store import SqliteStore
from tests.support.store_backend import pg_server  # noqa: F401

from .support.report_server import AppThread
from .test_collector_api import request

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)
OPERATOR = "operator-incident-reads-token-xxxxxxxxx"


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def event(t: float, check: str, state: str, branch: str, agent: str | None = None) -> Event:
    return Event(id=new_event_id(), kind="state", agent=agent or f"a-{branch}", branch=branch,
                 check=check, old_state=None, new_state=state, reason=f"raw {state}",
                 observed_at=at(t))


def stored_book(store: SqliteStore) -> dict[str, str]:
    """Incidents of every kind, saved; name -> incident id."""
    book = IncidentBook(window=120, cause_of=lambda c: "core" if c == "tcp/core" else None)
    names = {}

    def fault(name, t, check, branch, agent=None, clear=None):
        changes = book.apply_event(event(t, check, "critical", branch, agent), at(t))
        names.setdefault(name, changes[0].incident_id)
        if clear is not None:
            book.apply_event(event(clear, check, "ok", branch, agent), at(clear))
    fault("n1-open", 0, "ups/rack/on_battery", "N1")
    fault("n2-resolved", 3600, "ups/rack/on_battery", "N2", clear=3700)
    fault("n1-closed", 7200, "backup/db", "N1", clear=7300)
    book.close(names["n1-closed"], "wang", "done", at(7500))
    # One cause at a southern branch, then at a northern one: one incident, at both.
    fault("core", 10_800, "tcp/core", "S1")
    fault("core", 10_801, "tcp/core", "N2")
    fault("drill", 14_400, "ups/rack/on_battery", "N1", agent="drill:r1:N1")
    for n in range(7):                          # a page's worth at S2, an hour apart
        fault(f"s2-{n}", 20_000 + 3600 * n, "backup/db", "S2", clear=20_010 + 3600 * n)
    store.save_incidents(book.incidents(), time.time())
    return names


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stored(request, tmp_path_factory):
    if request.param == "sqlite":
        store = SqliteStore(tmp_path_factory.mktemp("reads") / "collector.db")
    else:                      # the same reads, paged and filtered in PostgreSQL's SQL
        from collector.storage.postgres import PostgresStore
        store = PostgresStore(request.getfixturevalue("pg_server").create_database())
    names = stored_book(store)
    readers = store.readers()
    try:
        yield names, (lambda **q: readers.call(list_incidents, IncidentQuery(**q)))
    finally:
        readers.close()
        store.close()


def ids(page) -> list[str]:
    return [i["id"] for i in page[0]]


def test_lists_filter_by_status_drill_branch_and_since_in_sql(stored):
    names, ls = stored
    assert ids(ls(status="open")) == [names["n1-open"], names["core"]]
    assert ids(ls(status="closed")) == [names["n1-closed"]]
    assert ids(ls(status="open", drill="only")) == [names["drill"]]
    assert set(ids(ls(status="open", drill="yes"))) == {names["n1-open"], names["core"],
                                                        names["drill"]}
    # At N2: its own incident and the one whose cause reached it from S1.
    assert ids(ls(branches=frozenset({"N2"}))) == [names["n2-resolved"], names["core"]]
    assert ids(ls(since=at(7200), status="open")) == [names["core"]]
    assert ids(ls(since=at(7200), branches=frozenset({"N1"}))) == [names["n1-closed"]]


def test_pages_follow_each_other_without_gaps_or_repeats_both_ways(stored):
    names, ls = stored
    want = [names[f"s2-{n}"] for n in range(7)]
    for newest, order in ((False, want), (True, want[::-1])):
        got, after = [], None
        while True:
            page = ls(branches=frozenset({"S2"}), limit=3, after=after, newest_first=newest)
            got += ids(page)
            after = page[1]
            if after is None:
                break
        assert got == order
    assert ls(branches=frozenset({"S2"}), limit=7)[1] is None


@pytest.mark.parametrize("query,message", [
    ({"status": "gone"}, "status: expected open, resolved or closed, got 'gone'"),
    ({"drill": "maybe"}, "drill: expected no, yes or only, got 'maybe'"),
    ({"limit": 0}, "limit: expected 1 to 5000, got 0"),
    ({"after": "x"}, "after: expected the `next` cursor of a previous page, got 'x'"),
])
def test_a_query_that_cannot_be_answered_says_which_part(query, message):
    with pytest.raises(QueryError) as e:
        IncidentQuery(**query)
    assert str(e.value) == message


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reads-api")
    config = parse(
        f"storage: {{data_dir: {folder}}}\n"
        "agents:\n"
        f"  - {{id: a-N1, branch: N1, region: north, token_sha256: {token_hash('t' * 32)}}}\n"
        f"  - {{id: a-N2, branch: N2, region: north, token_sha256: {token_hash('u' * 32)}}}\n"
        f"  - {{id: a-S1, branch: S1, region: south, token_sha256: {token_hash('v' * 32)}}}\n"
        f"operators:\n  - {{name: alice, token_sha256: {token_hash(OPERATOR)}}}\n"
        "incidents: {window: 120, deadman_grace: 86400}\n")
    store = SqliteStore(config.db_path())
    names = stored_book(store)
    app = build_app(config, store)
    s = AppThread(app).start()
    s.names = names
    try:
        yield s
    finally:
        s.stop()
        store.close()


def get(s, path: str) -> tuple[int, dict | str]:
    status, body = request(s.url + path, token=OPERATOR)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode()


def test_the_api_lists_by_region_and_pages_with_a_next_cursor(server):
    status, data = get(server, "/api/v1/incidents?region=south&status=open")
    assert status == 200 and [i["id"] for i in data["incidents"]] == [server.names["core"]]
    status, data = get(server, "/api/v1/incidents?branch=S2&limit=4&order=newest")
    assert status == 200 and len(data["incidents"]) == 4
    status, rest = get(server, f"/api/v1/incidents?branch=S2&limit=4&order=newest"
                               f"&after={data['next']}")
    assert [i["id"] for i in data["incidents"] + rest["incidents"]] == \
        [server.names[f"s2-{n}"] for n in reversed(range(7))]
    assert "next" not in rest


@pytest.mark.parametrize("query,message", [
    ("limit=lots", "limit: expected a whole number, got 'lots'"),
    ("limit=99999", "limit: expected 1 to 5000, got 99999"),
    ("since=yesterday", "since: expected an ISO 8601 time, got 'yesterday'"),
    ("since=2024-05-06T09:00:00", "since: expected a time with its UTC offset"),
    ("order=random", "order: expected oldest or newest, got 'random'"),
])
def test_a_bad_list_query_is_a_400_naming_the_parameter(server, query, message):
    status, data = get(server, "/api/v1/incidents?" + query)
    assert status == 400 and data["error"].startswith(message)


def test_reads_answer_while_the_writer_is_held(server):
    """A writer job that does not end: lists, one incident, the console and
    /metrics still answer from their own connections and the snapshot."""
    st = server.app[STATE]
    entered, release = threading.Event(), threading.Event()

    def hold():
        entered.set()
        release.wait(60)
    held = asyncio.run_coroutine_threadsafe(st.writer.run(hold), server._loop)
    try:
        assert entered.wait(30)
        status, data = get(server, "/api/v1/incidents?status=open")
        assert status == 200 and len(data["incidents"]) == 2
        status, one = get(server, f"/api/v1/incidents/{server.names['core']}")
        assert status == 200 and one["title"] == "core: 2 branches"
        status, text = get(server, "/metrics")
        assert status == 200 and "branchwatch_collector_incidents" in text
        assert not held.done()              # the writer was held all along
    finally:
        release.set()
    held.result(30)


def test_offset_series_of_agents_not_heard_lately_go_away():
    now = at(100_000)
    lasts = [AgentLast(agent="a1", branch="N1", region="north", last_heard=now - timedelta(
                 seconds=20), interval=15.0),
             AgentLast(agent="a2", branch="N2", region="north", last_heard=now - timedelta(
                 hours=1), interval=15.0)]
    offsets = fresh_offsets({"a1": 1.25, "a2": 2.0, "gone": 3.0}, lasts, now)
    assert offsets == {"a1": 1.25}
    registry = CollectorRegistry()
    snap = BookSnapshot(incidents={"open": 3}, drill_incidents={"resolved": 1}, silent=2,
                        offsets=offsets)
    registry.register(BookCollector(lambda: snap))
    text = generate_latest(registry).decode()
    assert 'branchwatch_collector_agent_clock_offset_seconds{agent="a1"} 1.25' in text
    assert 'agent="a2"' not in text and 'agent="gone"' not in text
    assert 'branchwatch_collector_incidents{status="open"} 3.0' in text
    assert 'branchwatch_collector_incidents{status="resolved"} 0.0' in text
    assert 'branchwatch_collector_drill_incidents{status="resolved"} 1.0' in text
    assert "branchwatch_collector_agents_silent 2.0" in text


def test_an_incident_is_decoded_once_per_stored_version(tmp_path):
    store = SqliteStore(tmp_path / "collector.db")
    book = IncidentBook(window=120)
    [opened] = book.apply_event(event(0, "tcp/core", "critical", "N1"), at(0))
    store.save_incidents(book.incidents(), 1.0)
    readers = store.readers()
    try:
        first = readers.call(incident, opened.incident_id)
        assert readers.call(incident, opened.incident_id) is first     # unchanged: reused
        book.ack(opened.incident_id, "wang", "on it", at(5))
        store.save_incidents(book.incidents(), 2.0)
        again = readers.call(incident, opened.incident_id)
        assert again is not first and again["acks"][0]["who"] == "wang" and not first["acks"]
    finally:
        readers.close()
        store.close()


def test_a_database_from_before_the_list_columns_is_upgraded_in_place(tmp_path, monkeypatch):
    import collector.store as store_module
    full = store_module.MIGRATIONS
    ours = next(v for v, sql in full if any("incidents_list" in str(q) for q in sql))
    monkeypatch.setattr(store_module, "MIGRATIONS", [m for m in full if m[0] < ours])
    old = SqliteStore(tmp_path / "collector.db")
    book = IncidentBook(window=120)
    book.apply_event(event(0, "tcp/core", "critical", "N1"), at(0))
    book.apply_event(event(0, "tcp/core", "critical", "N1", agent="drill:r1:N1"), at(0))
    # The rows as that schema held them (the audit's digests came later still).
    with old.group() as conn:
        old.write_incidents(conn, book.incidents(), 1.0)
    assert old.schema_version() == ours - 1
    old.close()
    monkeypatch.setattr(store_module, "MIGRATIONS", full)
    store = SqliteStore(tmp_path / "collector.db")
    readers = store.readers()
    try:
        assert store.schema_version() == full[-1][0]
        drills, _ = readers.call(list_incidents, IncidentQuery(drill="only"))
        real, _ = readers.call(list_incidents, IncidentQuery())
        assert [i["drill"] for i in drills] == [True] and [i["drill"] for i in real] == [False]
    finally:
        readers.close()
        store.close()
