"""Login throttles in the store: two real collector processes on one real
PostgreSQL count a guesser's failures together, whichever one answers, and
the person still logs in from elsewhere at once."""

from __future__ import annotations

import pytest

from collector.web.throttle import FREE_FAILURES

from .support.console import USERS, console_yaml
from .support.postgres import PostgresServer
from .test_collector_leader_e2e import AGENTS, Node
from .test_console_login import get, login, post


@pytest.fixture(scope="module")
def pg():
    with PostgresServer(settings={"idle_in_transaction_session_timeout": "5s"}) as server:
        yield server


def test_a_guesser_is_counted_once_across_collectors(tmp_path, pg):
    import psycopg
    dsn = pg.create_database()
    dbname = dsn.rsplit("=", 1)[1]
    nodes = [Node(tmp_path / f"c{i}", pg, dbname, extra=console_yaml(USERS)) for i in range(2)]
    try:
        statuses = []
        for i in range(12):              # alternating: the counts are one, not two
            status, headers, _ = login(nodes[i % 2].c.url, "boss", "wrong", source="127.0.0.3")
            statuses.append(status)
            if status == 429:
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {401}, statuses
        # The right password from a new source, at the other collector: at once.
        other = nodes[len(statuses) % 2]
        status, _, cookie = login(other.c.url, "boss", USERS["boss"][1], source="127.0.0.4")
        assert status == 303 and cookie
        assert get(nodes[0].c.url, "/console/incidents", cookie)[0] == 200   # shared session
        with psycopg.connect(dsn) as db:
            holder = db.execute("SELECT holder FROM engine_lease").fetchone()[0]
            standby = next(n for n in nodes if not holder.endswith(f":{n.c.port}"))
            # A write to the book on the standby: 503, said in both languages.
            status, headers, text = post(standby.c.url, "/console/incidents/INC-x/ack",
                                         {"why": "seen"}, cookie=cookie)
            assert status == 503 and headers["Retry-After"] == "1"
            assert "不负责事件处理" in text and "does not run the incident engine" in text
            status, headers, text = post(standby.c.url, "/api/v1/incidents/INC-x/ack", {})
            assert status == 503 and "does not lead the engine" in text
            failed = db.execute("SELECT count(*) FROM audit WHERE kind = "
                                "'console.login_failed'").fetchone()[0]
            throttled = sorted(r[0] for r in db.execute(
                "SELECT data FROM audit WHERE kind = 'console.login_throttled'"))
    finally:
        for n in nodes:
            n.close()
    # One count: the quiet failures once in all (not once per collector), then
    # one record per throttled key.
    assert failed == FREE_FAILURES
    assert len(throttled) == 2 and {'"by":"name"' in t or '"by": "name"' in t
                                    for t in throttled} == {True, False}
