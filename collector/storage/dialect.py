"""The two SQL dialects the store speaks: SQLite (the embedded default) and
PostgreSQL. One set of row code serves both (collector/storage/*, the
mixins of collector/store.py); what differs is kept here, small:

- placeholders: the row code writes `?`; on PostgreSQL a connection of this
  module rewrites them to `$1`, `$2`, ... once per statement text, and runs
  them on psycopg's RawCursor (no parsing of its own);
- types in a migration's CREATE/ALTER: SQLite's INTEGER (64-bit) is BIGINT,
  REAL (64-bit) is DOUBLE PRECISION, TEXT compares bytewise as in SQLite
  (COLLATE "C", so ORDER BY and the `(opened_at, id) > (?, ?)` page cursor
  agree with SQLite whatever the cluster's locale), no WITHOUT ROWID;
- a statement that cannot be rewritten that way (a trigger, a generated
  column from JSON, a reserved word) is written out for each backend, side
  by side, as `Both(sqlite=..., postgresql=...)` where the migration lives;
- JSON: `json_text(column, key)`; the catalogue: `tables`, `columns`.

Every connection the store hands to row code has a `dialect` attribute
(`dialect_of` falls back to SQLite for a plain sqlite3 connection).
"""

from __future__ import annotations

import functools
import re
import sqlite3
from typing import NamedTuple


class Both(NamedTuple):
    """One migration statement spelled for each backend."""

    sqlite: str
    postgresql: str


class SqliteDialect:
    """SQLite: the row code's own spelling."""

    name = "sqlite"

    def ddl(self, step):
        """A migration statement as this backend runs it."""
        return step.sqlite if isinstance(step, Both) else step

    def json_text(self, column: str, key: str) -> str:
        """An expression: the top-level `key` of the JSON text in `column`."""
        return f"json_extract({column}, '$.{key}')"

    def tables(self, conn) -> set[str]:
        """The names of the tables in this database."""
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def columns(self, conn, table: str) -> list[str]:
        """The column names of one table, in order."""
        return [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]


_TYPES = [(re.compile(r"\bINTEGER\b"), "BIGINT"),
          (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
          (re.compile(r"\bTEXT\b"), 'TEXT COLLATE "C"'),
          (re.compile(r"\)\s*WITHOUT ROWID\s*$"), ")")]


class PostgresDialect:
    """PostgreSQL 13+ (Debian's `postgresql`)."""

    name = "postgresql"

    def ddl(self, step):
        """A migration statement as PostgreSQL runs it (types rewritten, see above)."""
        if isinstance(step, Both):
            return step.postgresql
        if not isinstance(step, str):
            return step
        for pattern, replacement in _TYPES:
            step = pattern.sub(replacement, step)
        return step

    def json_text(self, column: str, key: str) -> str:
        """An expression: the top-level `key` of the JSON text in `column`."""
        return f"(({column})::jsonb ->> '{key}')"

    def tables(self, conn) -> set[str]:
        """The names of the tables in this database (its current schema)."""
        return {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")}

    def columns(self, conn, table: str) -> list[str]:
        """The column names of one table, in order."""
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "current_schema() AND table_name = ? ORDER BY ordinal_position", (table,))]


SQLITE, POSTGRES = SqliteDialect(), PostgresDialect()


def dialect_of(conn) -> SqliteDialect | PostgresDialect:
    """The dialect of a connection the store handed out (a bare sqlite3 one: SQLite)."""
    return getattr(conn, "dialect", SQLITE)


class SqliteConnection(sqlite3.Connection):
    """sqlite3's connection, naming its dialect (sqlite3.connect(factory=...))."""

    dialect = SQLITE

    def control(self, sql: str, now: bool = False) -> None:
        """A transaction-control statement (SAVEPOINT, RELEASE, COMMIT...): at once
        (in-process, it costs nothing to send)."""
        self.execute(sql)


@functools.lru_cache(maxsize=8192)
def pg_placeholders(sql: str) -> str:
    """`?` as PostgreSQL's own `$1`, `$2`, ... outside quoted text and identifiers.

    Run on a psycopg RawCursor, which sends the statement as it is: psycopg's own
    `%s` parsing is not cached for long statements (the event log's multi-row
    INSERTs) and cost half the ingest time."""
    out, quote, n = [], None, 0
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


class PgConnection:
    """A psycopg connection with the sqlite3 calls the row code makes: execute and
    executemany with `?` placeholders, returning a cursor (fetchone, fetchall,
    iteration, rowcount), and `in_transaction`. Autocommit: transactions are the
    store's explicit BEGIN ... COMMIT, as on SQLite. `raw` is opened with
    `cursor_factory=psycopg.RawCursor` (see `connect`)."""

    dialect = POSTGRES

    def __init__(self, raw):
        self.raw = raw
        self.pending: list[str] = []      # control statements not sent yet

    def control(self, sql: str, now: bool = False) -> None:
        """A transaction-control statement (BEGIN, SAVEPOINT, RELEASE, COMMIT...),
        whose result nobody reads: held and sent with the next one, in one round
        trip (the writer's every job is a SAVEPOINT and a RELEASE: one trip to
        the server each, not two). `now`: send it, and what is held, at once (a
        COMMIT, a ROLLBACK TO: their errors belong to them)."""
        self.pending.append(sql)
        if now:
            self.flush()

    def flush(self) -> None:
        """Send the held control statements (one simple-protocol query)."""
        if self.pending:
            sql, self.pending = "; ".join(self.pending), []
            self.raw.execute(sql)

    def forget(self) -> None:
        """Drop what is held (the session is gone, or the transaction rolls back)."""
        self.pending = []

    def execute(self, sql: str, params=()):
        """Run one statement (what is held goes first); its cursor."""
        if self.pending:
            self.flush()
        if params:
            return self.raw.execute(pg_placeholders(sql), tuple(params))
        return self.raw.execute(sql)

    def executemany(self, sql: str, rows):
        """Run one statement for each row of parameters."""
        if self.pending:
            self.flush()
        rows = [tuple(r) for r in rows]
        cur = self.raw.cursor()
        if rows:
            cur.executemany(pg_placeholders(sql), rows)
        return cur

    @classmethod
    def connect(cls, dsn: str, **kw) -> "PgConnection":
        """A new autocommit session to `dsn` (psycopg.connect keywords in kw)."""
        import psycopg
        return cls(psycopg.connect(dsn, autocommit=True, cursor_factory=psycopg.RawCursor,
                                   **kw))

    @property
    def in_transaction(self) -> bool:
        """Inside a transaction not yet committed or rolled back."""
        from psycopg.pq import TransactionStatus
        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        """Close the connection."""
        self.raw.close()

    def __enter__(self) -> "PgConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
