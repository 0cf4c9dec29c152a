"""The collector's storage: one small interface, SQLite or PostgreSQL behind it.

`Store` is what the API and the incident engine use. `SqlStore` holds the
row code both backends share (its mixins: collector/storage/*, reports,
drills, fleet, silences, sessions), written once in SQLite's spelling and
run on PostgreSQL through collector/storage/dialect.py. `SqliteStore` is
the embedded default, one file in the data directory, WAL with
synchronous=FULL so an acknowledged batch survives a power cut;
`PostgresStore` (collector/storage/postgres.py) is chosen by
`storage: {postgresql: {dsn_file: ...}}` (`open_store`).

Times are kept as integer microseconds since the epoch (UTC), both the
agent's observation time and the collector's receive time (design.md:
branch clocks drift, order on corrected observation time).
"""

from __future__ import annotations

import contextlib
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import msgspec

from agent.wire import CheckStatus, Event, Heartbeat

from .audit import SCHEMA as AUDIT_SCHEMA
from .audit import MAC_MIGRATION, ROWS_WRITTEN, AuditLog, row_digest
from .drills.model import DrillRun
from .drills.storage import SCHEMA as DRILLS_SCHEMA
from .drills.storage import DrillRows
from .fleet.storage import SCHEMA as FLEET_SCHEMA
from .fleet.storage import FleetRows
from .fleet.enrolment import SCHEMA as ENROLMENT_SCHEMA
from .fleet.enrolment import EnrolmentRows
from .notify.silences import SCHEMA as SILENCES_SCHEMA
from .notify.silences import SilenceRows
from .incident_reads import StoreReaders
from .incidents import Incident
from .reports.storage import SCHEMA as REPORTS_SCHEMA
from .reports.storage import ReportRows, StoredReport
from .storage import event_log, incident_rows, outbox
from .storage.dialect import SQLITE, Both, SqliteConnection
from .storage.incident_rows import IncidentRows
from .storage.log_rows import LogRows
from .storage.log_tail import LogTail
from .storage.event_log import LoggedEvent
from .storage.outbox import Entry as OutboxEntry
from .storage.outbox import OutboxRows
from .storage.sessions import SCHEMA as SESSIONS_SCHEMA
from .storage.sessions import SessionRows

# Versioned migrations: append, never edit a shipped one.
MIGRATIONS: list[tuple[int, list[str]]] = [
    (1, [
        # design.md "what makes durable ingest fast": a key that keeps one
        # agent's batch together in the B-tree; a resend carries the same
        # (agent, observed_at, id) and is caught by it.
        """CREATE TABLE events (
            agent TEXT NOT NULL, observed_at INTEGER NOT NULL, id TEXT NOT NULL,
            branch TEXT NOT NULL, kind TEXT NOT NULL, check_name TEXT NOT NULL,
            old_state TEXT, new_state TEXT NOT NULL, reason TEXT NOT NULL,
            diagnosis TEXT, received_at INTEGER NOT NULL, sent_at INTEGER,
            PRIMARY KEY (agent, observed_at, id)) WITHOUT ROWID""",
        """CREATE TABLE agents (
            agent TEXT PRIMARY KEY, branch TEXT NOT NULL, region TEXT NOT NULL DEFAULT '',
            first_seen_at INTEGER NOT NULL, last_event_at INTEGER,
            heartbeat_at INTEGER, heartbeat_sent_at INTEGER, interval REAL,
            spool_depth INTEGER, checks TEXT)""",
        AUDIT_SCHEMA,
    ]),
    (2, [
        # issue 4: the incident book's state; `body` is incident_codec.to_dict.
        """CREATE TABLE incidents (
            id TEXT PRIMARY KEY, branch TEXT NOT NULL, status TEXT NOT NULL,
            opened_at TEXT NOT NULL, updated_at REAL NOT NULL, body TEXT NOT NULL)""",
        "CREATE INDEX incidents_status ON incidents (status)",
    ]),
    # issue 7: drafts and issued (frozen) reports (collector/reports/storage.py).
    (3, REPORTS_SCHEMA),
    # issue 7: drill runs, archived (domain.md §5; collector/drills/storage.py).
    (4, DRILLS_SCHEMA),
    # The append-only event log, deduped by id alone, and the engine's cursor
    # (collector/storage/event_log.py); the old events table moves into it.
    (5, [*event_log.SCHEMA, event_log.migrate_events_table]),
    # The stored outbox: agent commands, executions, rehearsals (collector/storage/outbox.py).
    (6, outbox.SCHEMA),
    # Incident faults as rows of their own (collector/storage/incident_rows.py).
    (7, [*incident_rows.SCHEMA, incident_rows.migrate_fault_rows]),
    # Reads filtered and paged in SQL (collector/incident_reads.py): drill or not
    # (domain.md §5) as a column computed from the body, so the write path stays as it is.
    (8, [
        Both(sqlite="ALTER TABLE incidents ADD COLUMN drill INTEGER NOT NULL "
             "GENERATED ALWAYS AS (coalesce(json_extract(body, '$.drill'), 0)) VIRTUAL",
             # PostgreSQL has no VIRTUAL generated columns before 18: STORED.
             postgresql="ALTER TABLE incidents ADD COLUMN drill BIGINT NOT NULL "
             "GENERATED ALWAYS AS (coalesce(((body::jsonb) ->> 'drill')::boolean::int, 0)) "
             "STORED"),
        "CREATE INDEX incidents_list ON incidents (status, drill, opened_at, id)",
    ]),
    # What each agent says about itself (collector/fleet/storage.py).
    (9, FLEET_SCHEMA),
    # Agents enrolled at the collector with one-time codes (collector/fleet/enrolment.py).
    (10, ENROLMENT_SCHEMA),
    # Silences set by people (collector/notify/silences.py).
    (11, SILENCES_SCHEMA),
    # The keyed audit chain (mac), and each incident row names the audit
    # record that wrote it (collector/audit.py, audit_verify.py).
    (12, MAC_MIGRATION),
    # Console sessions survive a restart (collector/storage/sessions.py).
    (13, SESSIONS_SCHEMA),
]


class StoreError(Exception):
    """The database cannot be used (newer schema, unreadable file)."""


class StoredEvent(msgspec.Struct, kw_only=True):
    """An event as held by the collector: the wire event plus when it came."""

    event: Event
    received_at: datetime
    sent_at: datetime | None


class AgentRecord(msgspec.Struct, kw_only=True):
    """What the collector knows of one agent: first seen, last heartbeat."""

    agent: str
    branch: str
    region: str
    first_seen_at: datetime
    last_event_at: datetime | None
    heartbeat_at: datetime | None          # collector's receive time
    heartbeat_sent_at: datetime | None     # the agent's clock
    interval: float | None
    spool_depth: int | None
    checks: list[CheckStatus]


class Store(Protocol):
    """The storage interface the collector needs."""

    def add_events(self, agent: str, branch: str, events: list[Event], received_at: float,
                   sent_at: datetime | None = None) -> tuple[list[str], list[str]]:
        """Append new events to the log; returns (accepted ids, duplicate ids)."""

    def log_after(self, cursor: int, limit: int) -> list[LoggedEvent]:
        """Log entries after seq `cursor`, oldest first."""

    def log_head(self) -> int:
        """The newest seq in the event log."""

    def cursor(self, name: str) -> int:
        """A log consumer's stored cursor."""

    def set_cursor(self, name: str, seq: int) -> None:
        """Move a log consumer's cursor (inside the transaction that applied it)."""

    def events_seen(self, agent: str, branch: str, at: float) -> None:
        """Note when an agent's events were last applied."""

    def put_outbox(self, key: str, kind: str, target: str, body: str, at: float) -> bool:
        """Add an outbox entry (False: its key is there already)."""

    def outbox_waiting(self, kind: str, target: str | None = None) -> list[OutboxEntry]:
        """Outbox entries of a kind not done yet."""

    def claim_outbox(self, kind: str, at: float, limit: int = 100) -> list[OutboxEntry]:
        """Claim pending entries of a kind to carry out."""

    def outbox_done(self, key: str, at: float, result: str) -> bool:
        """Mark an entry done with its outcome."""

    def release_outbox(self) -> int:
        """Claims left by a process that died go back to pending."""

    def put_heartbeat(self, hb: Heartbeat, received_at: float) -> bool:
        """Record an agent's heartbeat; True if it is that agent's first."""

    def events(self, agent: str | None = None, branch: str | None = None,
               limit: int | None = None) -> list[StoredEvent]:
        """Stored events, ordered by observation time."""

    def agents(self) -> list[AgentRecord]:
        """Every agent seen, with its last heartbeat."""

    def record(self, at: float, kind: str, actor: str, data: dict) -> int:
        """Append one audit record on its own; returns its seq."""

    def verify_audit(self) -> list[str]:
        """Problems in the audit chain; empty when intact."""

    def save_incidents(self, incidents: list[Incident], at: float,
                       audit: list[tuple[float, str, str, dict]] = ()) -> None:
        """Upsert incidents and append their audit records, in one commit."""

    def load_open_incidents(self) -> list[Incident]:
        """Incidents not closed (what the book starts from)."""

    def incident(self, incident_id: str) -> Incident | None:
        """One incident, or None."""

    def list_incidents(self, status: str | None = None) -> list[Incident]:
        """Incidents (optionally of one status), oldest first."""

    # issue 7: reports (collector/reports/storage.py ReportRows).
    def add_report(self, report: StoredReport, at: float) -> None:
        """Keep a new draft (audited)."""

    def edit_report(self, report_id: str, fields: dict, changed: dict, at: float,
                    who: str) -> None:
        """Replace a draft's fields (audited); ReportFrozen once issued."""

    def issue_report(self, report_id: str, markdown: str, html: str, at: float, who: str,
                     why: str) -> None:
        """Freeze a draft with its rendered text (audited)."""

    def report(self, report_id: str) -> StoredReport | None:
        """One report, or None."""

    def reports(self, incident: str | None = None) -> list[StoredReport]:
        """Reports (of one incident), oldest first."""

    # issue 7: drills (collector/drills/storage.py DrillRows).
    def put_drill(self, run: DrillRun, at: float,
                  audit: list[tuple[float, str, str, dict]] = ()) -> None:
        """Insert or update a drill run with its audit records; an archived one is frozen."""

    def drill(self, drill_id: str) -> DrillRun | None:
        """One drill run, or None."""

    def drills(self, status: str | None = None) -> list[DrillRun]:
        """Drill runs (of one status), oldest first."""

    def close(self) -> None:
        """Release the database."""


def _us(t: float | datetime | None) -> int | None:
    if t is None:
        return None
    if isinstance(t, datetime):
        return round(t.timestamp() * 1_000_000)
    return round(t * 1_000_000)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


_checks_encoder = msgspec.json.Encoder()
_checks_decoder = msgspec.json.Decoder(list[CheckStatus])


def read_agents(conn: sqlite3.Connection) -> list[AgentRecord]:
    """Every agent seen (by heartbeat or event), by id: on any connection (a reader's too)."""
    out = []
    for (agent, branch, region, first, last_ev, hb_at, hb_sent, interval, depth,
         checks) in conn.execute(
            "SELECT agent, branch, region, first_seen_at, last_event_at, heartbeat_at, "
            "heartbeat_sent_at, interval, spool_depth, checks FROM agents ORDER BY agent"):
        out.append(AgentRecord(
            agent=agent, branch=branch, region=region, first_seen_at=_dt(first),
            last_event_at=_dt(last_ev), heartbeat_at=_dt(hb_at),
            heartbeat_sent_at=_dt(hb_sent), interval=interval, spool_depth=depth,
            checks=_checks_decoder.decode(checks) if checks else []))
    return out


class SqlStore(ReportRows, DrillRows, IncidentRows, LogRows, OutboxRows, FleetRows,
               EnrolmentRows, SilenceRows, SessionRows):
    """What both backends share: transactions (a group of savepoints), the
    versioned schema, and every row method. A backend gives `_conn` (a
    connection with `dialect`), `_begin`, `_end` and `close`."""

    dialect = SQLITE
    shared = False       # True: other collectors may write the same database

    def _open_rows(self) -> None:
        self._in_group, self._depth = False, 0
        self._rows_init()
        self.audit: AuditLog | None = None       # set once migrated
        self._tail = LogTail()      # the newest log entries, for the engine

    def _begin(self, durable: bool) -> None:
        """Start the write transaction (holding the one writer's lock)."""
        raise NotImplementedError

    def _end(self, durable: bool) -> None:
        """After the transaction, committed or not."""

    def _rollback(self) -> None:
        self._conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def group(self, durable: bool = True):
        """One transaction around many calls (the writer's group commit).

        durable=False commits without an fsync of its own (SQLite
        synchronous=NORMAL, PostgreSQL synchronous_commit off): for the
        engine's steps, which replay from the log if a power cut loses them.
        Both keep commit order (the WAL), so a lost step takes nothing
        acknowledged with it: the next durable commit's flush carries every
        step before it."""
        try:
            with self._group(durable):
                yield self._conn
        finally:
            self._end(durable)

    @contextlib.contextmanager
    def _group(self, durable: bool = True):
        self._begin(durable)
        self._in_group = True
        try:
            yield self._conn
        except BaseException:
            try:
                self._rollback()
            finally:
                self._rows_rolled_back()
                self._tail.rolled_back()
            raise
        else:
            try:
                self._conn.control("COMMIT", now=True)
                if self.audit is not None:      # None while migrating
                    self.audit.note_committed()
            except Exception:
                # A failed COMMIT can leave the transaction open: end it, or
                # every later BEGIN would fail too.
                try:
                    if self._conn.in_transaction:
                        self._rollback()
                finally:
                    self._rows_rolled_back()
                    self._tail.rolled_back()
                raise
            self._rows_committed()
            self._tail.committed()
        finally:
            self._in_group = False

    @contextlib.contextmanager
    def savepoint(self):
        """A nested transaction: rolled back alone if its block raises."""
        name = f"sp{self._depth}"
        self._depth += 1
        self._conn.control(f"SAVEPOINT {name}")
        mark, tail_mark = self._rows_mark(), self._tail.mark()
        try:
            yield self._conn
        except BaseException:
            self._rows_back_to(mark)
            self._tail.back_to(tail_mark)
            self._conn.control(f"ROLLBACK TO {name}", now=True)
            self._conn.control(f"RELEASE {name}")
            raise
        else:
            self._conn.control(f"RELEASE {name}")
        finally:
            self._depth -= 1

    def transaction(self):
        """Inside a group: a savepoint, committed with the group. Alone: its own commit."""
        return self.savepoint() if self._in_group else self.group()

    _transaction = transaction

    def schema_version(self) -> int:
        """The highest migration applied to this database."""
        row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return row[0] or 0

    def _migrate(self) -> None:
        # Each step under the writer's lock, and looked at again under it: two
        # collectors starting at once on one PostgreSQL migrate it once.
        with self._transaction() as c:
            c.execute(self.dialect.ddl("CREATE TABLE IF NOT EXISTS schema_version ("
                                       "version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"))
        current, known = self.schema_version(), MIGRATIONS[-1][0]
        if current > known:
            raise StoreError(f"database schema version {current} is newer than this "
                             f"collector knows ({known}); upgrade branchwatch")
        for version, statements in MIGRATIONS:
            if version <= current:
                continue
            with self._transaction() as c:
                if c.execute("SELECT 1 FROM schema_version WHERE version = ?",
                             (version,)).fetchone():
                    continue                # another collector applied it meanwhile
                for sql in statements:
                    # A step that moves data is a function of the connection.
                    sql(c) if callable(sql) else c.execute(self.dialect.ddl(sql))
                c.execute("INSERT INTO schema_version VALUES (?, ?)",
                          (version, datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S")))

    def put_heartbeat(self, hb: Heartbeat, received_at: float) -> bool:
        """Keep the agent's last heartbeat; audit "agent.seen" on its first one."""
        rx = _us(received_at)
        with self._transaction() as c:
            row = c.execute("SELECT heartbeat_at FROM agents WHERE agent = ?",
                            (hb.agent,)).fetchone()
            first = row is None or row[0] is None
            c.execute(
                "INSERT INTO agents (agent, branch, region, first_seen_at, heartbeat_at, "
                "heartbeat_sent_at, interval, spool_depth, checks) VALUES (?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(agent) DO UPDATE SET branch = excluded.branch, "
                "region = excluded.region, heartbeat_at = excluded.heartbeat_at, "
                "heartbeat_sent_at = excluded.heartbeat_sent_at, interval = excluded.interval, "
                "spool_depth = excluded.spool_depth, checks = excluded.checks",
                (hb.agent, hb.branch, hb.region, rx, rx, _us(hb.sent_at), hb.interval,
                 hb.spool_depth, _checks_encoder.encode(hb.checks).decode()))
            if first:
                self.audit.append(received_at, "agent.seen", hb.agent, {
                    "branch": hb.branch, "region": hb.region, "interval": hb.interval,
                    "sent_at": hb.sent_at.isoformat(), "checks": len(hb.checks)})
        return first

    def events(self, agent: str | None = None, branch: str | None = None,
               limit: int | None = None) -> list[StoredEvent]:
        """Stored events, oldest observation first (optionally one agent/branch)."""
        where, args = [], []
        for col, val in (("agent", agent), ("branch", branch)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = ("SELECT id, kind, agent, branch, check_name, old_state, new_state, reason, "
               "observed_at, diagnosis, received_at, sent_at FROM event_log")
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY observed_at, agent, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        out = []
        for (id_, kind, ag, br, check, old, new, reason, obs, diag, rx, tx) in \
                self._conn.execute(sql, args):
            ev = Event(id=id_, kind=kind, agent=ag, branch=br, check=check, old_state=old,
                       new_state=new, reason=reason, observed_at=_dt(obs), diagnosis=diag)
            out.append(StoredEvent(event=ev, received_at=_dt(rx), sent_at=_dt(tx)))
        return out

    def agents(self) -> list[AgentRecord]:
        """Every agent seen (by heartbeat or event), by id."""
        return read_agents(self._conn)

    def record(self, at: float, kind: str, actor: str, data: dict) -> int:
        """Append one audit record in a transaction of its own."""
        with self._transaction():
            return self.audit.append(at, kind, actor, data)

    def verify_audit(self) -> list[str]:
        """Problems in the audit chain; empty when intact."""
        return self.audit.verify()

    def save_incidents(self, incidents: list[Incident], at: float,
                       audit: list[tuple[float, str, str, dict]] = ()) -> None:
        """Write what changed of these incidents (their faults as rows) and append
        their audit records, in one commit."""
        with self._transaction() as c:
            rewritten, faults = self.write_incidents(c, incidents, at)
            records = list(audit)
            ids = list(dict.fromkeys(rewritten))     # a row not rewritten keeps its record
            if ids or faults:
                # One record lists a digest of every incident row as written;
                # each row keeps that record's seq, so a row edited behind the
                # collector shows (collector/audit_verify.py).
                marks = ",".join("?" * len(ids))
                written = {r[0]: row_digest(list(r)) for r in c.execute(
                    "SELECT id, branch, status, opened_at, body FROM incidents "
                    f"WHERE id IN ({marks})", ids)} if ids else {}   # (PostgreSQL: no IN ())
                # The fault rows this write changed (None: deleted), digested the same way.
                fault_digests = {k: None if text is None else row_digest([k, text])
                                 for k, text in faults.items()}
                records.append((at, ROWS_WRITTEN, "collector",
                                {"table": "incidents", "rows": written, "faults": fault_digests}))
            if records:
                seq = self.audit.append_many(records)[-1]
                if ids:
                    c.executemany("INSERT INTO incident_audit VALUES (?, ?) ON CONFLICT(id) "
                                  "DO UPDATE SET audit_seq = excluded.audit_seq",
                                  [(i, seq) for i in ids])

    def _incidents(self, where: str = "", args: tuple = ()) -> list[Incident]:
        return self.read_incidents(self._conn, where, args)

    def load_open_incidents(self) -> list[Incident]:
        """Incidents not closed (what the book starts from)."""
        return self._incidents("WHERE status != 'closed'")

    def incident(self, incident_id: str) -> Incident | None:
        """One incident, or None."""
        found = self._incidents("WHERE id = ?", (incident_id,))
        return found[0] if found else None

    def list_incidents(self, status: str | None = None) -> list[Incident]:
        """Incidents (optionally of one status), oldest first."""
        return self._incidents() if status is None else self._incidents("WHERE status = ?",
                                                                          (status,))


class SqliteStore(SqlStore):
    """`Store` on one SQLite file: WAL, synchronous=FULL, versioned schema."""

    def __init__(self, path: str | Path, audit_key: bytes | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._open_rows()
        try:
            # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE).
            self._conn = sqlite3.connect(self.path, isolation_level=None,
                                         check_same_thread=False, factory=SqliteConnection)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.Error as e:
            raise StoreError(f"{self.path}: {e}") from None
        self.audit = AuditLog(self._conn, audit_key)
        self.audit.note_committed()

    def _begin(self, durable: bool) -> None:
        if not durable:
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("BEGIN IMMEDIATE")

    def _end(self, durable: bool) -> None:
        if not durable:
            self._conn.execute("PRAGMA synchronous=FULL")

    # --- reads on connections of their own, never the writer's -------------------
    def readers(self, threads: int = 2) -> StoreReaders:
        """Read-only connections to this file for the API and the console (WAL readers)."""
        return StoreReaders(self.path, threads)

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed by SQLite)."""
        self._conn.close()


def open_store(config) -> SqlStore:
    """The store a collector config names: PostgreSQL when `storage.postgresql` is
    set, else the SQLite file in `storage.data_dir`. StoreError (one line) when it
    cannot be opened; ConfigError for a key that cannot be used."""
    if config.storage.postgresql is None:
        return SqliteStore(config.db_path(), audit_key=config.audit_key())
    from .storage.postgres import PostgresStore
    # The data directory still holds the audit checkpoints (by default) and the
    # console's files: there as with SQLite.
    Path(config.storage.data_dir).mkdir(parents=True, exist_ok=True)
    return PostgresStore(config.store_dsn(), audit_key=config.audit_key(),
                         readers=config.storage.postgresql.readers)
