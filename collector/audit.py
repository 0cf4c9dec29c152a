"""The audit trail (domain.md §3, 第二十九條): an append-only hash chain.

Each record carries seq, at, kind, actor, data (canonical JSON) and the
hash of the record before it; its own hash is sha256 over a canonical
encoding of all of those. Changing a record breaks its hash; removing or
reordering records breaks the chain (a gap in seq, a prev_hash that does
not match). Cutting records off the END leaves a valid shorter chain: only
a head hash kept elsewhere (`verify` prints it) can show that.

The log lives in the collector's SQLite database, table `audit`. `append`
writes within the caller's transaction, so an event and its audit record
are committed together or not at all.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sqlite3
from datetime import datetime, timezone

import msgspec

GENESIS = "0" * 64

SCHEMA = """
CREATE TABLE audit (
    seq       INTEGER PRIMARY KEY,
    at        TEXT NOT NULL,
    kind      TEXT NOT NULL,
    actor     TEXT NOT NULL,
    data      TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
)
"""


_canonical = msgspec.json.Encoder(order="sorted")


def canonical_json(data) -> str:
    """One fixed text for a value: sorted keys, no spaces, UTF-8 kept (msgspec: fast,
    and datetimes become RFC 3339 text)."""
    return _canonical.encode(data).decode("utf-8")


@functools.lru_cache(maxsize=256)
def timestamp(at: float) -> str:
    """Epoch seconds as the fixed-width UTC text stored in `at` (the records of one
    save share one time: remembered)."""
    return datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_hash(seq: int, at: str, kind: str, actor: str, data: str, prev_hash: str) -> str:
    """sha256 of a record's canonical encoding (everything but its own hash)."""
    text = canonical_json([seq, at, kind, actor, data, prev_hash])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class AuditLog:
    """The hash-chained audit table on one SQLite connection."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn

    def head(self) -> tuple[int, str]:
        """The last record's (seq, hash); (0, GENESIS) for an empty log."""
        row = self._conn.execute(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def append(self, at: float, kind: str, actor: str, data: dict) -> int:
        """Add one record in the caller's transaction; returns its seq."""
        return self.append_many([(at, kind, actor, data)])[-1]

    def append_many(self, records: list[tuple[float, str, str, dict]]) -> list[int]:
        """Add records in order, in the caller's transaction; returns their seqs."""
        seq, prev = self.head()
        rows, seqs = [], []
        for at, kind, actor, data in records:
            seq += 1
            at_text, data_text = timestamp(at), canonical_json(data)
            h = record_hash(seq, at_text, kind, actor, data_text, prev)
            rows.append((seq, at_text, kind, actor, data_text, prev, h))
            seqs.append(seq)
            prev = h
        self._conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
        return seqs

    def records(self, kind: str | None = None) -> list[dict]:
        """Every record in seq order (optionally of one kind), data decoded."""
        sql = "SELECT seq, at, kind, actor, data, prev_hash, hash FROM audit"
        args: tuple = ()
        if kind is not None:
            sql, args = sql + " WHERE kind = ?", (kind,)
        cols = ("seq", "at", "kind", "actor", "data", "prev_hash", "hash")
        out = []
        for row in self._conn.execute(sql + " ORDER BY seq", args):
            rec = dict(zip(cols, row))
            rec["data"] = json.loads(rec["data"])
            out.append(rec)
        return out

    def verify(self) -> list[str]:
        """Problems found walking the chain; empty when it is intact."""
        problems = []
        expected_seq, prev = 1, GENESIS
        rows = self._conn.execute(
            "SELECT seq, at, kind, actor, data, prev_hash, hash FROM audit ORDER BY seq")
        for seq, at, kind, actor, data, prev_hash, stored in rows:
            if seq != expected_seq:
                missing = (f"record {expected_seq}" if seq == expected_seq + 1
                           else f"records {expected_seq}..{seq - 1}")
                problems.append(f"record {seq}: follows record {expected_seq - 1}: "
                                f"{missing} removed or reordered")
            if prev_hash != prev:
                problems.append(f"record {seq}: prev_hash does not match the hash of the "
                                f"record before it (a record was changed, removed or reordered)")
            if record_hash(seq, at, kind, actor, data, prev_hash) != stored:
                problems.append(f"record {seq}: hash does not match its contents (changed)")
            expected_seq, prev = seq + 1, stored
        return problems

    def count(self) -> int:
        """How many records the log holds."""
        return self._conn.execute("SELECT count(*) FROM audit").fetchone()[0]
