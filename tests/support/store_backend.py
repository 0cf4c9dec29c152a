"""The store's contract tests on both backends: `backend` is parametrised over
SQLite (a file in tmp_path) and PostgreSQL (one real server per test module,
a database per test).

A test module imports the fixtures it uses:

    from tests.support.store_backend import backend, pg_server  # noqa: F401

and `pg_backend` for what only PostgreSQL has (several collectors on one
database, a session the server cuts).
and opens stores with `backend.open()` (the same database each time: a
reopen is a restart). `backend.raw()` is a plain connection of the store's
dialect, for a test that writes behind the collector.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from collector.storage.dialect import PgConnection, SqliteConnection

from .postgres import PostgresServer


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory):
    """One PostgreSQL server for the module (started only when a test asks)."""
    with PostgresServer(tmp_path_factory.mktemp("pg")) as server:
        yield server


class Backend:
    """One test's database on one backend."""

    def __init__(self, name: str, folder: Path, server: PostgresServer | None):
        self.name, self.folder, self.server = name, folder, server
        self.path = folder / "data" / "collector.db"
        self.dsn = server.create_database() if server is not None else None
        self._opened: list = []

    @property
    def integrity_error(self) -> type[Exception]:
        """What a constraint or trigger refusal raises on this backend."""
        if self.name == "sqlite":
            return sqlite3.IntegrityError
        import psycopg
        return psycopg.errors.IntegrityError

    def open(self, **kw):
        """A store on this test's database (closed at the end of the test)."""
        if self.name == "sqlite":
            from collector.store import SqliteStore
            store = SqliteStore(self.path, **kw)
        else:
            from collector.storage.postgres import PostgresStore
            store = PostgresStore(self.dsn, **kw)
        self._opened.append(store)
        return store

    def raw(self):
        """A connection of the store's dialect, autocommit (for writing behind it)."""
        if self.name == "sqlite":
            return contextlib.closing(sqlite3.connect(self.path, isolation_level=None,
                                                      factory=SqliteConnection))
        return PgConnection.connect(self.dsn)

    def storage_config(self, dsn_file: Path | None = None) -> dict:
        """The `storage:` section of a collector config for this database."""
        storage = {"data_dir": str(self.path.parent)}
        if self.name == "postgresql":
            dsn_file = dsn_file or self.folder / "dsn"
            dsn_file.write_text(self.dsn + "\n")
            storage["postgresql"] = {"dsn_file": str(dsn_file)}
        return storage

    def close_all(self) -> None:
        for store in self._opened:
            try:
                store.close()
            except Exception:
                pass


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request, tmp_path):
    """This test's database, on SQLite and on PostgreSQL."""
    server = request.getfixturevalue("pg_server") if request.param == "postgresql" else None
    b = Backend(request.param, tmp_path, server)
    yield b
    b.close_all()


@pytest.fixture
def pg_backend(pg_server, tmp_path):
    """This test's database on PostgreSQL only (what SQLite has no counterpart of:
    several collectors on one database, a session the server cuts)."""
    b = Backend("postgresql", tmp_path, pg_server)
    yield b
    b.close_all()
