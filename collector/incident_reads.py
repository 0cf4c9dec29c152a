"""Reads of stored incidents that never wait on the writer: the API's and the
console's lists and look-ups run on connections of their own (SQLite WAL
readers see the last commit and never block the writer, nor it them), on a
small pool of threads of their own, filtered and paged in SQL.

A list asks for what it shows: status, drill or not (domain.md §5: drills
are kept apart), branches (a region's), started since, a page of at most
`limit` and a cursor to the next one. The store's incidents table is read
only through the columns and indexes of its migrations (store.py).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from .incident_codec import from_dict, to_dict
from .storage.dialect import SQLITE, SqliteConnection, dialect_of

DEFAULT_LIMIT = 500          # incidents in one page unless asked otherwise
MAX_LIMIT = 5000
STATUSES = ("open", "resolved", "closed")
DRILL = {"no": (0,), "yes": (0, 1), "only": (1,)}

_decode = msgspec.json.decode

# Decoding a stored incident costs a hundred times reading it: keep what was
# decoded while its stored text stays the same (a console viewer reloads the
# same open incidents every few seconds). Shared by the reader threads (dict
# reads and writes are atomic); the data handed out is never changed by its
# readers. Bounded: past DECODED_KEEP entries the oldest half goes.
DECODED_KEEP = 20_000
_decoded: dict[str, tuple[str, dict]] = {}


class QueryError(ValueError):
    """A list query that cannot be answered (→ 400, with this line)."""


@dataclass(frozen=True)
class IncidentQuery:
    """Which incidents a list shows, and which page of them."""

    status: str | None = None              # open | resolved | closed | None (all)
    drill: str = "no"                      # no (real only) | yes (both) | only
    branches: frozenset[str] | None = None  # at any of these branches (a region's)
    since: datetime | None = None          # started at or after
    limit: int = DEFAULT_LIMIT
    after: str | None = None               # the cursor a previous page gave
    newest_first: bool = False

    def __post_init__(self):
        if self.status not in (None, *STATUSES):
            raise QueryError(f"status: expected open, resolved or closed, got {self.status!r}")
        if self.drill not in DRILL:
            raise QueryError(f"drill: expected no, yes or only, got {self.drill!r}")
        if not 1 <= self.limit <= MAX_LIMIT:
            raise QueryError(f"limit: expected 1 to {MAX_LIMIT}, got {self.limit}")
        if self.after is not None and "|" not in self.after:
            raise QueryError(f"after: expected the `next` cursor of a previous page, "
                             f"got {self.after!r}")

    def sql(self, dialect=SQLITE) -> tuple[str, list]:
        """The SELECT for one page (one row more than `limit`, to tell if there is a next)."""
        where = [f"drill IN ({','.join('?' * len(DRILL[self.drill]))})"]
        args: list = list(DRILL[self.drill])
        if self.status is not None:
            where.append("status = ?")
            args.append(self.status)
        if self.since is not None:
            where.append("opened_at >= ?")
            args.append(self.since.astimezone(timezone.utc).isoformat())
        if self.branches is not None and not self.branches:
            where.append("1 = 0")          # no branch at all (PostgreSQL has no IN ())
        elif self.branches is not None:
            marks = ",".join("?" * len(self.branches))
            # An incident of one cause at many branches shows at each of them.
            where.append(f"(branch IN ({marks}) OR EXISTS (SELECT 1 FROM incident_faults f "
                         f"WHERE f.incident = incidents.id "
                         f"AND {dialect.json_text('f.body', 'branch')} IN ({marks})))")
            args += sorted(self.branches) * 2
        order = "DESC" if self.newest_first else "ASC"
        if self.after is not None:
            opened, _, iid = self.after.rpartition("|")
            where.append(f"(opened_at, id) {'<' if self.newest_first else '>'} (?, ?)")
            args += [opened, iid]
        sql = (f"SELECT opened_at, id, body FROM incidents WHERE {' AND '.join(where)} "
               f"ORDER BY opened_at {order}, id {order} LIMIT {self.limit + 1}")
        return sql, args


def list_incidents(conn: sqlite3.Connection, query: IncidentQuery) -> tuple[list[dict], str | None]:
    """One page of incidents as API data, and the cursor of the next page (or None)."""
    sql, args = query.sql(dialect_of(conn))
    rows = conn.execute(sql, args).fetchall()
    more = len(rows) > query.limit
    rows = rows[:query.limit]
    faults = _fault_rows(conn, [iid for _, iid, _ in rows])
    page = [as_data(iid, body, faults.get(iid, ())) for _, iid, body in rows]
    return page, (f"{rows[-1][0]}|{rows[-1][1]}" if more else None)


def incident(conn: sqlite3.Connection, incident_id: str) -> dict | None:
    """One incident as API data, or None."""
    row = conn.execute("SELECT body FROM incidents WHERE id = ?", (incident_id,)).fetchone()
    if row is None:
        return None
    return as_data(incident_id, row[0], _fault_rows(conn, [incident_id]).get(incident_id, ()))


def _fault_rows(conn: sqlite3.Connection, ids: list[str]) -> dict[str, list[str]]:
    """Each incident's fault rows (storage/incident_rows.py), in the incident's order."""
    out: dict[str, list[str]] = {}
    for i in range(0, len(ids), 500):
        chunk = ids[i:i + 500]
        for iid, body in conn.execute(
                f"SELECT incident, body FROM incident_faults WHERE incident IN "
                f"({','.join('?' * len(chunk))}) ORDER BY incident, pos", chunk):
            out.setdefault(iid, []).append(body)
    return out


def as_data(incident_id: str, body: str, faults=()) -> dict:
    """A stored body and its fault rows as API data (incident_codec.to_dict),
    decoded once per stored version."""
    version = body + "\x00" + "\x00".join(faults)
    known = _decoded.get(incident_id)
    if known is not None and known[0] == version:
        return known[1]
    stored = _decode(body)
    stored["faults"] = [_decode(f) for f in faults] + stored.get("faults", [])
    data = to_dict(from_dict(stored))
    if len(_decoded) >= DECODED_KEEP:
        for iid in list(_decoded)[:DECODED_KEEP // 2]:    # oldest first (insertion order)
            _decoded.pop(iid, None)
    _decoded.pop(incident_id, None)
    _decoded[incident_id] = (version, data)
    return data


class StoreReaders:
    """Read-only connections to the store's file, one per reading thread."""

    def __init__(self, path: str | Path, threads: int = 2):
        self.path = Path(path)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="store-reader")
        self._conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                                   factory=SqliteConnection)
            conn.execute("PRAGMA query_only = ON")      # a reader never writes
            conn.execute("PRAGMA busy_timeout = 5000")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
        return conn

    def call(self, fn, *args):
        """fn(connection, *args) on this thread's reader connection."""
        return fn(self._conn(), *args)

    async def run(self, fn, *args):
        """fn(connection, *args) on a reader thread, off the event loop and the writer."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, self.call, fn, *args)

    def close(self) -> None:
        """Stop the threads and close their connections."""
        self._pool.shutdown(wait=True)
        with self._lock:
            for conn in self._conns:
                conn.close()
            self._conns.clear()
