"""The PostgreSQL the tests start themselves: a real server, durable settings."""

from __future__ import annotations

import pytest

from tests.support.postgres import PostgresServer


@pytest.fixture(scope="module")
def postgres(tmp_path_factory):
    with PostgresServer(tmp_path_factory.mktemp("pg")) as server:
        yield server


def test_server_answers_with_durable_settings(postgres):
    import psycopg
    dsn = postgres.create_database()
    with psycopg.connect(dsn) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("show fsync").fetchone() == ("on",)
        assert conn.execute("show synchronous_commit").fetchone() == ("on",)
        assert conn.execute("show listen_addresses").fetchone() == ("127.0.0.1",)


def test_each_database_is_its_own(postgres):
    import psycopg
    a, b = postgres.create_database(), postgres.create_database()
    with psycopg.connect(a) as conn:
        conn.execute("create table t (x int)")
    with psycopg.connect(b) as conn:
        assert conn.execute("select to_regclass('t')").fetchone() == (None,)


def test_advisory_lock_is_held_by_one_session(postgres):
    import psycopg
    dsn = postgres.create_database()
    with psycopg.connect(dsn, autocommit=True) as one, psycopg.connect(dsn, autocommit=True) as two:
        assert one.execute("select pg_try_advisory_lock(42)").fetchone() == (True,)
        assert two.execute("select pg_try_advisory_lock(42)").fetchone() == (False,)
        pid = one.info.backend_pid
        one.close()
        # the server lets go when that session's backend has ended: wait for that
        for _ in range(1000):
            if two.execute("select count(*) from pg_stat_activity where pid = %s", (pid,)).fetchone() == (0,):
                break
        assert two.execute("select pg_try_advisory_lock(42)").fetchone() == (True,)
