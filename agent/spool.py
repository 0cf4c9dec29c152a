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

Dead letters: an event the collector refuses on its own (too large, a field
out of the wire's bounds) would block every event behind it, so the sender
moves it aside with `set_aside` into the `dead_letters` table, with the
refusal; `dead_letters()` lists them (`branchwatch spool dead-letters`).
They are pruned with `prune` after `KEEP_SECONDS`.

Errors: every failing read or write raises `SpoolError` with a sentence a
person can act on ("cannot write the spool: No space left on device"), and
`on_health(error or None)` is told each time that changes, so the agent can
raise and clear its `agent/spool` check. A failed transaction is rolled back
whole, so the connection works again once the disk has room.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
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
CREATE TABLE IF NOT EXISTS dead_letters (
    seq     INTEGER PRIMARY KEY AUTOINCREMENT,
    id      TEXT NOT NULL UNIQUE,
    body    BLOB NOT NULL,                     -- the event as it was spooled
    refusal TEXT NOT NULL,                     -- why it cannot be delivered
    at      REAL NOT NULL                      -- when it was set aside (epoch s)
);
"""

KEEP_SECONDS = 7 * 86_400   # dead letters (and stored command results) kept a week


class SpoolError(Exception):
    """The spool file cannot be read or written; the message says why."""


@dataclass(frozen=True)
class DeadLetter:
    """An event set aside because the collector refused it on its own."""

    id: str
    body: bytes
    refusal: str
    at: float

    @property
    def check(self) -> str:
        """The event's check, read leniently (the body may be beyond the bounds)."""
        try:
            return str(msgspec.json.decode(self.body).get("check", "?"))[:wire.CHECK_MAX]
        except (msgspec.MsgspecError, AttributeError):
            return "?"

_decode = msgspec.json.Decoder(wire.Event).decode


class Spool:
    """Durable FIFO of wire events in one SQLite file (safe to share between threads)."""

    def __init__(self, path: str | Path, max_events: int = 100_000, *,
                 clock: Callable[[], float] = time.monotonic, log_every: float = 60.0,
                 wall_clock: Callable[[], float] = time.time,
                 on_health: Callable[[str | None], None] = lambda error: None,
                 on_set_aside: Callable[[DeadLetter], None] = lambda letter: None):
        if max_events < 1:
            raise ValueError("max_events must be at least 1")
        self.path = Path(path)
        self.max_events = max_events
        self._clock = clock
        self.wall_clock = wall_clock
        self.on_health = on_health     # told the error (or None) each time it changes
        self.error: str | None = None  # why the last read or write failed; None: it worked
        self.on_set_aside = on_set_aside   # told of every event moved to the dead letters
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
        self._dead = self._db.execute("SELECT count(*) FROM dead_letters").fetchone()[0]

    def put(self, event: wire.Event) -> int:
        """Store one event durably (a known id is ignored); return how many old ones it dropped."""
        body = wire.encode(event)
        with self._failing("write"), self._lock:
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
        """The `n` oldest events, oldest first; they stay until `delete`.

        A row that is no valid wire event (written by an older agent, or
        beyond the wire's bounds) is set aside, never handed to the sender.
        """
        with self._failing("read"), self._lock:
            rows = self._db.execute("SELECT id, body FROM events ORDER BY seq LIMIT ?",
                                    (n,)).fetchall()
        out = []
        for id_, body in rows:
            try:
                out.append(_decode(body))
            except msgspec.MsgspecError as e:
                self.set_aside(id_, f"not a valid wire event: {e}")
        return out

    def set_aside(self, event_id: str, refusal: str) -> bool:
        """Move one event from the queue to the dead letters, with why; False if unknown."""
        at, refusal = self.wall_clock(), wire.cut(refusal)
        with self._failing("write"), self._lock:
            with self._transaction():
                row = self._db.execute("SELECT body FROM events WHERE id = ?",
                                       (event_id,)).fetchone()
                if row is None:
                    return False
                cur = self._db.execute("INSERT OR IGNORE INTO dead_letters (id, body, refusal, at)"
                                       " VALUES (?, ?, ?, ?)", (event_id, row[0], refusal, at))
                self._db.execute("DELETE FROM events WHERE id = ?", (event_id,))
            self._depth -= 1
            self._dead += cur.rowcount
        log.error("event %s set aside as a dead letter: %s", event_id, refusal)
        self.on_set_aside(DeadLetter(event_id, row[0], refusal, at))
        return True

    def dead_letters(self) -> list[DeadLetter]:
        """Every event set aside, oldest first."""
        with self._failing("read"), self._lock:
            rows = self._db.execute(
                "SELECT id, body, refusal, at FROM dead_letters ORDER BY seq").fetchall()
        return [DeadLetter(*r) for r in rows]

    def dead_letter_count(self) -> int:
        """How many events are set aside."""
        return self._dead

    def prune(self, older_than: float = KEEP_SECONDS) -> int:
        """Forget dead letters set aside more than `older_than` seconds ago."""
        cutoff = self.wall_clock() - older_than
        with self._failing("write"), self._lock:
            with self._transaction():
                n = self._db.execute("DELETE FROM dead_letters WHERE at < ?", (cutoff,)).rowcount
            self._dead -= n
        return n

    @contextlib.contextmanager
    def transaction(self):
        """One durable write transaction on the spool's file, for the tables other
        modules keep in it (agent/command_log.py); yields the connection."""
        with self._failing("write"), self._lock:
            with self._transaction():
                yield self._db

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        """Rows of one read on the spool's file."""
        with self._failing("read"), self._lock:
            return self._db.execute(sql, args).fetchall()

    def delete(self, ids: Iterable[str]) -> int:
        """Remove acknowledged events by id (unknown ids are ignored); return how many went."""
        ids = list(ids)
        if not ids:
            return 0
        with self._failing("write"), self._lock:
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

    @contextlib.contextmanager
    def _failing(self, what: str):
        """Turn SQLite's and the OS's errors into SpoolError; track health."""
        try:
            yield
        except (sqlite3.Error, OSError) as e:
            self._health(f"cannot {what} the spool: {_why(e)}")
            raise SpoolError(self.error) from e
        else:
            if what == "write":   # a read that works says little about writes
                self._health(None)

    def _health(self, error: str | None) -> None:
        if error == self.error:
            return
        self.error = error
        if error is not None:
            log.error("%s (%s)", error, self.path)
        else:
            log.info("the spool writes again (%s)", self.path)
        self.on_health(error)   # outside the lock: the receiver may spool its news

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
        if kind is None:
            try:
                self.db.execute("COMMIT")
                return False
            except sqlite3.Error:
                self._rollback()
                raise
        self._rollback()
        return False

    def _rollback(self):
        # SQLite may have rolled back by itself (SQLITE_FULL does); a
        # transaction left open would make every later BEGIN fail.
        if self.db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")


def _why(e: Exception) -> str:
    """The cause a person can act on: a full disk is named as the OS names it."""
    if isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorname", "") == "SQLITE_FULL":
        return os.strerror(errno.ENOSPC)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    return str(e) or type(e).__name__
