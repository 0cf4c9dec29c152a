"""The audit trail (domain.md §3, 第二十九條: every step is recorded and
archived): an append-only chain, hashed and keyed.

Each record carries seq, at, kind, actor, data (canonical JSON) and the
hash of the record before it; its own hash is sha256 over a canonical
encoding of all of those. Changing a record breaks its hash; removing or
reordering records breaks the chain (a gap in seq, a prev_hash that does
not match).

A hash chain alone can be recomputed by anyone who can write the file. So
each record also carries `mac`: HMAC-SHA256, under a key kept OUTSIDE the
database (audit.key_file), over the record's hash and the MAC before it.
Without the key nobody can forge a record or recompute the chain after an
edit. Cutting records off the END still leaves a valid shorter chain: the
head (seq, mac) published elsewhere (checkpoint file, /metrics,
notifications) shows it (collector/audit_verify.py checks both).

Records written before a key was configured have no MAC (NULL): verify
reports them as such, not as tampering.

The log lives in the collector's database (SQLite or PostgreSQL), table `audit`. `append`
writes within the caller's transaction, so an event and its audit record
are committed together or not at all.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import sqlite3
from datetime import datetime, timezone

import msgspec

from .storage.dialect import dialect_of

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


def record_mac(key: bytes, prev_mac: str, record_hash_hex: str) -> str:
    """HMAC-SHA256 under the audit key over the MAC before and this record's hash:
    a chain nobody without the key can recompute."""
    msg = f"{prev_mac}:{record_hash_hex}".encode("ascii")
    return hmac.new(key, msg, hashlib.sha256).hexdigest()


def link_problems(seq: int, expected_seq: int, prev_hash: str, prev: str, computed: str,
                  stored: str) -> list[str]:
    """What is wrong with one link of the chain: a gap, a broken back-link, a changed record."""
    out = []
    if seq != expected_seq:
        missing = (f"record {expected_seq}" if seq == expected_seq + 1
                   else f"records {expected_seq}..{seq - 1}")
        out.append(f"record {seq}: follows record {expected_seq - 1}: {missing} removed or reordered")
    if prev_hash != prev:
        out.append(f"record {seq}: prev_hash does not match the hash of the record before it "
                   f"(a record was changed, removed or reordered)")
    if computed != stored:
        out.append(f"record {seq}: hash does not match its contents (changed)")
    return out


def row_digest(values: list) -> str:
    """sha256 of a stored row's canonical encoding: what an audit record says it wrote."""
    return hashlib.sha256(canonical_json(values).encode("utf-8")).hexdigest()


# The migration that keys the chain and makes incident rows point at the audit
# record that wrote them (store.py MIGRATIONS). Events need no pointer: the
# "events.received" record holds them whole.
MAC_MIGRATION = [
    "ALTER TABLE audit ADD COLUMN mac TEXT",
    # Beside the incidents table, not in it: its writer (storage/incident_rows.py)
    # stays as it is.
    "CREATE TABLE incident_audit (id TEXT PRIMARY KEY, audit_seq INTEGER NOT NULL)",
]

ROWS_WRITTEN = "rows.written"     # the kind of the record that lists row digests


def head_line(head: tuple[int, str, str]) -> str:
    """The audit head as the one footer line notifications and reports carry."""
    seq, hash_hex, mac = head
    return f"audit: record {seq} mac {mac}" if mac != "-" else f"audit: record {seq} hash {hash_hex}"


class AuditLog:
    """The hash-chained audit table on one store connection."""

    def __init__(self, conn: sqlite3.Connection, key: bytes | None = None):
        self._conn = conn
        self.key = key
        self._has_mac: bool | None = None
        # (seq, hash, mac or "-") of the last commit: /metrics and checkpoints read it.
        self.committed_head: tuple[int, str, str] = (0, GENESIS, "-")

    def head(self) -> tuple[int, str]:
        """The last record's (seq, hash); (0, GENESIS) for an empty log."""
        row = self._conn.execute(
            "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, GENESIS)

    def has_mac_column(self) -> bool:
        """Whether this database has the `mac` column (older ones do not)."""
        if self._has_mac is None:
            cols = dialect_of(self._conn).columns(self._conn, "audit")
            self._has_mac = "mac" in cols
        return self._has_mac

    def head_mac(self) -> tuple[int, str | None]:
        """The last record's (seq, mac): what checkpoints publish; mac None when the
        record has none (no key configured)."""
        if not self.has_mac_column():
            return self.head()[0], None
        row = self._conn.execute(
            "SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1]) if row else (0, None)

    def live_head(self) -> tuple[int, str, str]:
        """(seq, hash, mac or "-") of the last record, in the caller's transaction
        (what a message written in it can name: it commits with them or not at all)."""
        seq, h, mac = self._head_with_mac()
        return seq, h, mac or "-"

    def note_committed(self) -> None:
        """Remember the head just committed (read by /metrics without a query)."""
        self.committed_head = self.live_head()

    def append(self, at: float, kind: str, actor: str, data: dict) -> int:
        """Add one record in the caller's transaction; returns its seq."""
        return self.append_many([(at, kind, actor, data)])[-1]

    def _head_with_mac(self) -> tuple[int, str, str | None]:
        """(seq, hash, mac) of the last record in one query (a round trip each on
        PostgreSQL); mac None without the column or the key's record."""
        if not self.has_mac_column():
            return (*self.head(), None)
        row = self._conn.execute(
            "SELECT seq, hash, mac FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (row[0], row[1], row[2]) if row else (0, GENESIS, None)

    def append_many(self, records: list[tuple[float, str, str, dict]]) -> list[int]:
        """Add records in order, in the caller's transaction; returns their seqs."""
        seq, prev, last_mac = self._head_with_mac()
        prev_mac = (last_mac or GENESIS) if self.key is not None else None
        rows, seqs = [], []
        for at, kind, actor, data in records:
            seq += 1
            at_text, data_text = timestamp(at), canonical_json(data)
            h = record_hash(seq, at_text, kind, actor, data_text, prev)
            mac = None
            if self.key is not None:
                mac = prev_mac = record_mac(self.key, prev_mac, h)
            rows.append((seq, at_text, kind, actor, data_text, prev, h, mac))
            seqs.append(seq)
            prev = h
        if self.has_mac_column():
            self._conn.executemany("INSERT INTO audit (seq, at, kind, actor, data, prev_hash, "
                                   "hash, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        else:
            self._conn.executemany("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?)",
                                   [r[:7] for r in rows])
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
            problems += link_problems(seq, expected_seq, prev_hash, prev,
                                      record_hash(seq, at, kind, actor, data, prev_hash), stored)
            expected_seq, prev = seq + 1, stored
        return problems

    def count(self) -> int:
        """How many records the log holds."""
        return self._conn.execute("SELECT count(*) FROM audit").fetchone()[0]
