"""The store on PostgreSQL: the same schema (collector.store.MIGRATIONS, spelled
for PostgreSQL by collector/storage/dialect.py) and the same row code as the
SQLite store, on a database the bank already runs and backs up.

- One writer connection per collector (the store's writer thread), in
  autocommit with explicit BEGIN ... COMMIT as on SQLite; synchronous_commit
  on, so an acknowledgement means the commit is flushed (a durable=False
  group turns it off for its own transaction only: SET LOCAL).
- Every write transaction first takes one transaction-scoped advisory lock
  (`WRITER_LOCK`): what BEGIN IMMEDIATE is on SQLite. Writers on any number
  of collectors take turns, so the event log's seq (max + 1) is taken in
  commit order and the audit chain's links are never raced; readers never
  take it. The writer's group commit (collector/writer.py) is unchanged.
- Reads for the API and the console run on a pool of connections of their
  own (psycopg_pool), read only, never the writer's.

The DSN comes from a file (`storage.postgresql.dsn_file`, or systemd's
LoadCredential copy of it): it may hold a password, so it is never logged;
`describe` names the server and database without it.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import ThreadPoolExecutor

from ..audit import AuditLog
from ..store import SqlStore, StoreError
from .dialect import POSTGRES, PgConnection

# pg_advisory_xact_lock key of the store's one writer ("bw" "writer" as bytes).
WRITER_LOCK = 0x62775F7772697465
CONNECT_TIMEOUT = 10          # seconds to reach the server before StoreError


def describe(dsn: str) -> str:
    """postgresql://host:port/dbname of a DSN, without user or password (for logs)."""
    from psycopg.conninfo import conninfo_to_dict
    try:
        d = conninfo_to_dict(dsn)
    except Exception:
        return "postgresql (DSN not readable)"
    host = d.get("host") or d.get("hostaddr") or "localhost"
    return f"postgresql://{host}:{d.get('port') or 5432}/{d.get('dbname') or d.get('user') or ''}"


def one_line(e: BaseException) -> str:
    """A psycopg error as one line (its first line; the server's detail dropped)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


class PostgresStore(SqlStore):
    """`Store` on a PostgreSQL database: versioned schema, durable commits."""

    dialect = POSTGRES
    shared = True        # any number of collectors on one database

    def __init__(self, dsn: str, audit_key: bytes | None = None, readers: int = 4):
        import psycopg
        self.dsn, self.path, self.reader_threads = dsn, describe(dsn), readers
        self._open_rows()
        self._tail.shared = True     # other collectors may append to the same log
        self._conn = None
        try:
            self._conn = PgConnection(self._connect())
            self._migrate()
        except (psycopg.Error, StoreError) as e:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
            # One line naming the config key and the server (never the DSN: a password).
            raise StoreError(f"storage.postgresql: {self.path}: {one_line(e)}") from None
        self.audit = AuditLog(self._conn, audit_key)
        self.audit.note_committed()

    def _connect(self):
        import psycopg
        raw = psycopg.connect(self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                              cursor_factory=psycopg.RawCursor,
                              application_name="branchwatch-collector")
        raw.execute("SET synchronous_commit = on")     # whatever the server's default
        return raw

    def _begin(self, durable: bool) -> None:
        raw = self._conn.raw
        if raw.closed or raw.broken:
            # The server restarted or the network cut the session: a new one for the
            # next transaction (never inside one: what it wrote is gone, and said so).
            self._conn.forget()
            self._conn.raw = self._connect()
        # Sent with the transaction's first statement (PgConnection.control).
        self._conn.control("BEGIN")
        self._conn.control(f"SELECT pg_advisory_xact_lock({WRITER_LOCK})")
        if not durable:
            self._conn.control("SET LOCAL synchronous_commit = off")

    def _rollback(self) -> None:
        raw = self._conn.raw
        if raw.closed or raw.broken:
            self._conn.forget()
            return                       # the server ended the transaction with the session
        if self._conn.pending and self._conn.pending[0] == "BEGIN":
            self._conn.forget()          # nothing of it reached the server
            return
        self._conn.forget()              # what is held is inside what rolls back
        self._conn.execute("ROLLBACK")

    def readers(self, threads: int | None = None) -> "PostgresReaders":
        """Pooled read-only connections for the API and the console."""
        return PostgresReaders(self.dsn, threads or self.reader_threads)

    def close(self) -> None:
        """Close the writer's connection."""
        self._conn.close()


def _read_only(conn) -> None:
    conn.execute("SET default_transaction_read_only = on")     # a reader never writes


class PostgresReaders:
    """Reads on a pool of read-only connections, on threads of their own (the
    interface of collector.incident_reads.StoreReaders)."""

    def __init__(self, dsn: str, threads: int = 4):
        import psycopg
        from psycopg_pool import ConnectionPool
        self._pool = ConnectionPool(dsn, min_size=1, max_size=threads, open=True, timeout=10,
                                    name="branchwatch-readers", configure=_read_only,
                                    kwargs={"autocommit": True,
                                            "cursor_factory": psycopg.RawCursor,
                                            "connect_timeout": CONNECT_TIMEOUT,
                                            "application_name": "branchwatch-reader"})
        self._threads = ThreadPoolExecutor(max_workers=threads,
                                           thread_name_prefix="store-reader")

    def call(self, fn, *args):
        """fn(connection, *args) on a pooled reader connection, on this thread."""
        with self._pool.connection() as raw:
            return fn(PgConnection(raw), *args)

    async def run(self, fn, *args):
        """fn(connection, *args) on a reader thread, off the event loop and the writer."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, self.call,
                                                                fn, *args)

    def close(self) -> None:
        """Stop the threads and close the pool."""
        self._threads.shutdown(wait=True)
        self._pool.close()
