"""The append-only event log: what ingest writes and the engine reads.

Every event an agent sends is appended once, with a sequence number
(`seq`, ascending in commit order). Ingest does nothing else: it appends,
and the acknowledgement means "in the log, fsync'd". The engine
(collector/engine/) reads the log in `seq` order from a stored cursor.

Dedupe is by event id alone. A uuid4 id as a B-tree key scatters every
insert over the whole index (design.md "what makes durable ingest fast":
the key decides everything), so the log itself is keyed by `seq` (a
batch lands together at the end of the B-tree) and a compact index maps a
64-bit hash of the id to the seq holding it: 8-byte integer keys, several
hundred to a page, where the text ids would be a few dozen. A hash that
is already taken by another id (about once in 10^10 events at 10^5 per
day-years) is caught by comparing the full id, and that id goes to a
small spill table, so the dedupe stays exact.

Plain SQL (INSERT ... ON CONFLICT DO NOTHING, IN lists, explicit seq
under the write lock): the same statements serve PostgreSQL, where seq
would come from a sequence.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone

import msgspec

from agent.wire import Event

SCHEMA = [
    """CREATE TABLE event_log (
        seq INTEGER PRIMARY KEY, id TEXT NOT NULL,
        agent TEXT NOT NULL, branch TEXT NOT NULL, kind TEXT NOT NULL,
        check_name TEXT NOT NULL, old_state TEXT, new_state TEXT NOT NULL,
        reason TEXT NOT NULL, observed_at INTEGER NOT NULL, diagnosis TEXT,
        received_at INTEGER NOT NULL, sent_at INTEGER)""",
    # id hash -> the seq of the event holding it (see the module docstring).
    "CREATE TABLE event_ids (id_key INTEGER PRIMARY KEY, seq INTEGER NOT NULL)",
    # Ids whose hash an earlier, different id already holds.
    "CREATE TABLE event_id_spill (id TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
    # Where each consumer of the log has got to (the engine: "engine").
    "CREATE TABLE log_cursors (name TEXT PRIMARY KEY, seq INTEGER NOT NULL)",
]

CHUNK = 400          # rows per statement (13 values each; SQLite allows 32766 variables)


class LoggedEvent(msgspec.Struct, kw_only=True):
    """One log entry: the wire event, its seq, when it came and when it was sent."""

    seq: int
    event: Event
    received_at: float            # collector's clock, epoch seconds
    sent_at: datetime | None      # the agent's clock, from its batch


def id_key(event_id: str) -> int:
    """The compact, signed 64-bit dedupe key of an event id."""
    return int.from_bytes(hashlib.blake2b(event_id.encode(), digest_size=8).digest(),
                          "big", signed=True)


def us(t: float | datetime | None) -> int | None:
    """Epoch microseconds (the stored form of every time)."""
    if t is None:
        return None
    if isinstance(t, datetime):
        return round(t.timestamp() * 1_000_000)
    return round(t * 1_000_000)


def from_us(value: int | None) -> datetime | None:
    """A stored time back as an aware UTC datetime."""
    return None if value is None else datetime.fromtimestamp(value / 1_000_000,
                                                             tz=timezone.utc)


def _marks(n: int, width: int) -> str:
    one = "(" + ",".join("?" * width) + ")"
    return ",".join([one] * n)


def append(conn, events: list[Event], received_at: float,
           sent_at: datetime | None) -> tuple[list[str], list[str], list[LoggedEvent]]:
    """Append the events not seen before (by id); returns (accepted ids, duplicate
    ids) in the batch's order, and the entries written. Runs inside the caller's
    transaction."""
    fresh: dict[str, Event] = {}
    for e in events:                     # the same id twice in one batch: once
        fresh.setdefault(e.id, e)
    keys = {eid: id_key(eid) for eid in fresh}
    seen = _stored_ids(conn, keys)
    new = [e for eid, e in fresh.items() if eid not in seen]
    logged = _insert(conn, new, keys, received_at, sent_at) if new else []
    accepted, duplicates, taken = [], [], set(seen)
    for e in events:
        if e.id in taken:
            duplicates.append(e.id)
        else:
            taken.add(e.id)
            accepted.append(e.id)
    return accepted, duplicates, logged


def _stored_ids(conn, keys: dict[str, int]) -> set[str]:
    """The ids among these already in the log (exact: full ids are compared).

    One query per chunk for the index and the spill table together: on
    PostgreSQL each query is a round trip under the writer's lock, and the
    spill table (almost always empty) is one primary-key probe per id."""
    seen: set[str] = set()
    wanted = list(keys.items())
    for i in range(0, len(wanted), CHUNK):
        chunk = wanted[i:i + CHUNK]
        marks = ",".join("?" * len(chunk))
        hits = conn.execute(
            f"SELECT l.id FROM event_ids k JOIN event_log l ON l.seq = k.seq "
            f"WHERE k.id_key IN ({marks}) "
            f"UNION ALL SELECT id FROM event_id_spill WHERE id IN ({marks})",
            [k for _, k in chunk] + [eid for eid, _ in chunk]).fetchall()
        seen.update(eid for (eid,) in hits)
    return seen & keys.keys()


def _insert(conn, new: list[Event], keys: dict[str, int], received_at: float,
            sent_at: datetime | None) -> list[LoggedEvent]:
    rx, tx = us(received_at), us(sent_at)
    # seq explicitly: we hold the write lock (BEGIN IMMEDIATE), so max+1 is ours.
    first = (conn.execute("SELECT max(seq) FROM event_log").fetchone()[0] or 0) + 1
    for i in range(0, len(new), CHUNK):
        chunk, base = new[i:i + CHUNK], first + i
        conn.execute(
            "INSERT INTO event_log VALUES " + _marks(len(chunk), 13),
            [v for n, e in enumerate(chunk) for v in (
                base + n, e.id, e.agent, e.branch, e.kind, e.check, e.old_state,
                e.new_state, e.reason, us(e.observed_at), e.diagnosis, rx, tx)])
        indexed = {seq for (seq,) in conn.execute(
            "INSERT INTO event_ids VALUES " + _marks(len(chunk), 2)
            + " ON CONFLICT DO NOTHING RETURNING seq",
            [v for n, e in enumerate(chunk) for v in (keys[e.id], base + n)])}
        spilled = [(e.id, base + n) for n, e in enumerate(chunk) if base + n not in indexed]
        if spilled:                     # another id holds the hash: keep this one exactly
            conn.executemany("INSERT INTO event_id_spill VALUES (?, ?)", spilled)
    # As `after` would read them back: times at the stored (microsecond) precision.
    at, sent = rx / 1_000_000, from_us(tx)
    return [LoggedEvent(seq=first + n, event=e, received_at=at, sent_at=sent)
            for n, e in enumerate(new)]


def after(conn, cursor: int, limit: int) -> list[LoggedEvent]:
    """Up to `limit` log entries after seq `cursor`, in seq order."""
    out = []
    for (seq, id_, agent, branch, kind, check, old, new, reason, obs, diag, rx, tx) in \
            conn.execute("SELECT * FROM event_log WHERE seq > ? ORDER BY seq LIMIT ?",
                         (cursor, limit)):
        ev = Event(id=id_, kind=kind, agent=agent, branch=branch, check=check,
                   old_state=old, new_state=new, reason=reason, observed_at=from_us(obs),
                   diagnosis=diag)
        out.append(LoggedEvent(seq=seq, event=ev, received_at=rx / 1_000_000,
                               sent_at=from_us(tx)))
    return out


def head(conn) -> int:
    """The newest seq in the log (0 when empty)."""
    return conn.execute("SELECT max(seq) FROM event_log").fetchone()[0] or 0


def cursor(conn, name: str) -> int:
    """Where a consumer has got to (0: nothing applied yet)."""
    row = conn.execute("SELECT seq FROM log_cursors WHERE name = ?", (name,)).fetchone()
    return row[0] if row else 0


def set_cursor(conn, name: str, seq: int) -> None:
    """Move a consumer's cursor (in the transaction that applied up to seq)."""
    conn.execute("INSERT INTO log_cursors VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET "
                 "seq = excluded.seq", (name, seq))


def migrate_events_table(conn) -> None:
    """Move the old `events` table (keyed by agent, observed_at, id) into the log,
    each id once; the engine's cursor starts after them (they were applied)."""
    rows = conn.execute(
        "SELECT id, agent, branch, kind, check_name, old_state, new_state, reason, "
        "observed_at, diagnosis, received_at, sent_at FROM events "
        "ORDER BY received_at, observed_at, agent, id").fetchall()
    seq, keys, spill = 0, set(), []
    seen: set[str] = set()
    for row in rows:
        if row[0] in seen:
            continue
        seen.add(row[0])
        seq += 1
        conn.execute("INSERT INTO event_log VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                     (seq, *row))
        k = id_key(row[0])
        if k in keys:
            spill.append((row[0], seq))
        else:
            keys.add(k)
            conn.execute("INSERT INTO event_ids VALUES (?, ?)", (k, seq))
    conn.executemany("INSERT INTO event_id_spill VALUES (?, ?)", spill)
    set_cursor(conn, "engine", seq)
    conn.execute("DROP TABLE events")
    # The old table's name and columns, read-only, for tools and queries that know it.
    conn.execute("CREATE VIEW events AS SELECT agent, observed_at, id, branch, kind, "
                 "check_name, old_state, new_state, reason, diagnosis, received_at, sent_at "
                 "FROM event_log")
