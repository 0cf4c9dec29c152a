"""The stored outbox: what the engine decided must be done outside the store.

The engine writes an entry in the transaction that decided it (with the
incident change and its audit record); a sender claims it, does it and
marks it done in the transaction that records the outcome. Each entry has
an idempotency key, fixed when it is decided (the runbook step it carries
out, the delivery it sends), which goes to the receiver with the request
(an `Idempotency-Key` header, a field, an agent's command id): after a
crash between "done" at the receiver and "done" here, the entry is sent
again with the same key, and a receiver that honours it does it once.
Nothing is dropped: an entry leaves the outbox only marked done.

Kinds:
- `agent`: a runbook action for a branch's agent, offered on every
  heartbeat until the agent's `action` result event is applied.
- `execute`: a webhook or allowed command, carried out by the collector.
- `rehearsal`: a drill's action, answered by the drill desk and never
  carried out (domain.md §5: a drill touches no switch or UPS).

Plain SQL, the same on PostgreSQL.
"""

from __future__ import annotations

import msgspec

SCHEMA = [
    """CREATE TABLE outbox (
        key TEXT PRIMARY KEY, kind TEXT NOT NULL, target TEXT NOT NULL,
        body TEXT NOT NULL, status TEXT NOT NULL, created_at INTEGER NOT NULL,
        claimed_at INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
        done_at INTEGER, result TEXT)""",
    "CREATE INDEX outbox_waiting ON outbox (kind, status, target)",
]

PENDING, CLAIMED, DONE = "pending", "claimed", "done"


class Entry(msgspec.Struct, kw_only=True):
    """One outbox entry: its key, what it is for, and its body (JSON text)."""

    key: str
    kind: str
    target: str
    body: str
    status: str
    attempts: int


def _us(t: float) -> int:
    return round(t * 1_000_000)


def put(conn, key: str, kind: str, target: str, body: str, at: float) -> bool:
    """Add an entry; False if its key is already there (decided before: kept as is)."""
    return conn.execute(
        "INSERT INTO outbox (key, kind, target, body, status, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING RETURNING key",
        (key, kind, target, body, PENDING, _us(at))).fetchone() is not None


def waiting(conn, kind: str, target: str | None = None) -> list[Entry]:
    """Entries of a kind not done yet (claimed ones too), oldest first."""
    sql = ("SELECT key, kind, target, body, status, attempts FROM outbox "
           "WHERE kind = ? AND status != ?")
    args: list = [kind, DONE]
    if target is not None:
        sql += " AND target = ?"
        args.append(target)
    return [Entry(key=k, kind=kd, target=t, body=b, status=s, attempts=a)
            for k, kd, t, b, s, a in conn.execute(sql + " ORDER BY created_at, key", args)]


def claim(conn, kind: str, at: float, limit: int = 100) -> list[Entry]:
    """Take pending entries of a kind to do now (claimed: nobody else takes them)."""
    found = [e for e in waiting(conn, kind) if e.status == PENDING][:limit]
    conn.executemany("UPDATE outbox SET status = ?, claimed_at = ?, attempts = attempts + 1 "
                     "WHERE key = ?", [(CLAIMED, _us(at), e.key) for e in found])
    for e in found:
        e.status, e.attempts = CLAIMED, e.attempts + 1
    return found


def done(conn, key: str, at: float, result: str) -> bool:
    """Mark an entry done with its outcome; False if it was not waiting."""
    return conn.execute("UPDATE outbox SET status = ?, done_at = ?, result = ? "
                        "WHERE key = ? AND status != ? RETURNING key",
                        (DONE, _us(at), result, key, DONE)).fetchone() is not None


def release(conn) -> int:
    """Claimed entries back to pending (at start: their sender died with the process)."""
    return conn.execute("UPDATE outbox SET status = ? WHERE status = ?",
                        (PENDING, CLAIMED)).rowcount


def entry(conn, key: str) -> Entry | None:
    """One entry by key, or None."""
    row = conn.execute("SELECT key, kind, target, body, status, attempts FROM outbox "
                       "WHERE key = ?", (key,)).fetchone()
    if row is None:
        return None
    k, kd, t, b, s, a = row
    return Entry(key=k, kind=kd, target=t, body=b, status=s, attempts=a)


class OutboxRows:
    """The outbox methods of SqliteStore (a mixin: it uses the store's connection and
    `_transaction`)."""

    def put_outbox(self, key: str, kind: str, target: str, body: str, at: float) -> bool:
        """Add an outbox entry (False: its key is there already)."""
        with self._transaction() as c:
            return put(c, key, kind, target, body, at)

    def outbox_waiting(self, kind: str, target: str | None = None) -> list[Entry]:
        """Outbox entries of a kind not done yet (of one target)."""
        return waiting(self._conn, kind, target)

    def outbox_entry(self, key: str) -> Entry | None:
        """One outbox entry, or None."""
        return entry(self._conn, key)

    def claim_outbox(self, kind: str, at: float, limit: int = 100) -> list[Entry]:
        """Claim pending entries of a kind to carry out."""
        with self._transaction() as c:
            return claim(c, kind, at, limit)

    def outbox_done(self, key: str, at: float, result: str) -> bool:
        """Mark an entry done with its outcome."""
        with self._transaction() as c:
            return done(c, key, at, result)

    def release_outbox(self) -> int:
        """Claims left by a process that died go back to pending."""
        with self._transaction() as c:
            return release(c)
