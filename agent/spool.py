"""The agent's local spool: every event is on disk before anyone sends it.

A branch whose line is down is exactly when events matter most (issue 4),
so `put` returns only once the event is committed to SQLite in WAL mode
with synchronous=FULL (the WAL is fsync'd at every commit): a crash, a
kill -9 or a power cut after `put` returns loses nothing. The sender reads
the oldest events with `peek` and deletes them only once the collector has
acknowledged them; event ids make a resend harmless.

Cap policy: at most `max_events` wait. When a new event would exceed that,
the OLDEST events are dropped, never silently: they are counted in
`dropped` (kept in the file, exported as branchwatch_spool_dropped) and
logged. Why the oldest: the spool holds only state changes (metrics go to
Prometheus, never here), and the newest transitions are the ones that
describe the branch now. What an old dropped transition said is also
superseded by the heartbeat, which carries every check's current state, so
the collector can rebuild the truth after a gap even when history was lost.
Refusing new events instead would keep stale history and lose the present.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Callable, Iterable

import msgspec

from . import wire

log = logging.getLogger("branchwatch.spool")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,   -- arrival order: peek is oldest first
    id   TEXT NOT NULL UNIQUE,
    body BLOB NOT NULL                        -- the wire.Event as JSON
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_decode = msgspec.json.Decoder(wire.Event).decode


class Spool:
    """Durable FIFO of wire events in one SQLite file (safe to share between threads)."""

    def __init__(self, path: str | Path, max_events: int = 100_000, *,
                 clock: Callable[[], float] = time.monotonic, log_every: float = 60.0):
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.path = Path(path)
        self.max_events = max_events
        self._clock = clock
        self._log_every = log_every
        self._last_drop_log: float | None = None
        self._unlogged_drops = 0
        self._lock = threading.Lock()
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: every transaction below is explicit (BEGIN IMMEDIATE).
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._depth = self._db.execute("SELECT count(*) FROM events").fetchone()[0]
        row = self._db.execute("SELECT value FROM meta WHERE key='dropped'").fetchone()
        self._dropped = row[0] if row else 0

    def put(self, event: wire.Event) -> int:
        """Store one event durably (a known id is ignored); return how many old ones it dropped."""
        body = wire.encode(event)
        with self._lock:
            with self._transaction():
                cur = self._db.execute("INSERT OR IGNORE INTO events (id, body) VALUES (?, ?)",
                                       (event.id, body))
                excess = self._depth + cur.rowcount - self.max_events
                if excess > 0:
                    self._db.execute("DELETE FROM events WHERE seq IN "
                                     "(SELECT seq FROM events ORDER BY seq LIMIT ?)", (excess,))
                    self._db.execute("INSERT INTO meta (key, value) VALUES ('dropped', ?) "
                                     "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                                     (self._dropped + excess,))
            # Counted only once the commit (and its fsync) succeeded.
            excess = max(excess, 0)
            self._depth += cur.rowcount - excess
            self._dropped += excess
        if excess:
            self._log_drop(excess)
        return excess

    def peek(self, n: int) -> list[wire.Event]:
        """The `n` oldest events, oldest first; they stay until `delete`."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM events ORDER BY seq LIMIT ?", (n,)).fetchall()
        return [_decode(body) for (body,) in rows]

    def delete(self, ids: Iterable[str]) -> int:
        """Remove acknowledged events by id (unknown ids are ignored); return how many went."""
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            with self._transaction():
                cur = self._db.executemany("DELETE FROM events WHERE id = ?", [(i,) for i in ids])
            self._depth -= cur.rowcount
        return cur.rowcount

    def depth(self) -> int:
        """How many events wait to be delivered."""
        return self._depth

    @property
    def dropped(self) -> int:
        """Events dropped by the cap since the spool file was created."""
        return self._dropped

    def close(self) -> None:
        """Close the file (every committed event is already on disk)."""
        with self._lock:
            self._db.close()

    def _transaction(self):
        return _Transaction(self._db)

    def _log_drop(self, n: int) -> None:
        """Log drops at once, then at most every `log_every` s (an outage must not flood the log)."""
        self._unlogged_drops += n
        now = self._clock()
        if self._last_drop_log is not None and now - self._last_drop_log < self._log_every:
            return
        log.warning("spool full (%d events): dropped the %d oldest event(s) (%d in all); "
                    "heartbeats still carry every check's current state",
                    self.max_events, self._unlogged_drops, self._dropped)
        self._last_drop_log, self._unlogged_drops = now, 0


class _Transaction:
    """BEGIN IMMEDIATE … COMMIT (fsync'd by synchronous=FULL), ROLLBACK on error."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self):
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind, value, tb):
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")
        return False
