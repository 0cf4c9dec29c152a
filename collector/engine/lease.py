"""Which collector's engine leads: a lease, with a fencing token every engine write checks.

Every collector ingests and serves reads; exactly one runs the engine (the
book, grading, deadlines, the dead-man, runbooks, the outbox senders).

On PostgreSQL (`PgLease`) leading takes two things:
- a session advisory lock (`LEASE_KEY`) held on a connection of its own, so
  two collectors can never both think they took it; the server drops it
  when that connection dies (a killed collector, a cut line);
- the row `engine_lease` (one row): the holder, its backend pid, when it
  last renewed (the server's clock) and an `epoch`, raised by one at every
  takeover. The epoch is the fencing token: every engine write transaction
  first runs `check(conn)` on its own connection, which reads the row FOR
  SHARE and raises `Fenced` unless the epoch is still this node's. The new
  leader's raise waits for that share lock, so every write of the old epoch
  commits before the new epoch exists and none after it.

A leader that hangs (SIGSTOP, a stuck disk) keeps its connection and its
advisory lock, but stops renewing: once the row is older than `ttl` (the
server's clock, never a collector's), a standby ends the holder's session
(`pg_terminate_backend`) and any session still holding the row's share
lock (a paused engine transaction: it would hold the raise forever), takes
the lock and raises the epoch. When the old leader wakes, its lease
connection is gone and its next engine write meets a newer epoch: it
cannot write, and it steps down. A leader that cannot renew (the database
lost) steps down by itself once `ttl` has passed since its last renewal,
before any standby may take over.

A collector paused inside an ingest commit would hold the store's writer
lock (and every collector's ingest) for ever: every node's tick ends
collector sessions idle inside a transaction for longer than `ttl` (the
server's `idle_in_transaction_session_timeout` does the same, when set).

On SQLite (`SoleLease`) the one collector on the data directory (its file
lock, collector/storage/data_lock.py) always leads.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable

log = logging.getLogger("branchwatch.collector.lease")

LEASE_KEY = 0x62775F6C65616465      # pg_advisory_lock key ("bw_leade" as bytes)
NAME = "engine"
TTL = 5.0            # seconds without a renewal before a standby may take over
RENEW_EVERY = 1.0    # seconds between renewals (leader) and looks (standby)

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS engine_lease (
        name TEXT PRIMARY KEY, epoch BIGINT NOT NULL, holder TEXT NOT NULL,
        holder_pid INTEGER NOT NULL, acquired_at TIMESTAMPTZ NOT NULL,
        renewed_at TIMESTAMPTZ NOT NULL)""",
    # Every collector says it is alive here, leader or not (`collector status`).
    """CREATE TABLE IF NOT EXISTS collector_nodes (
        node TEXT PRIMARY KEY, seen_at TIMESTAMPTZ NOT NULL, leads BOOLEAN NOT NULL,
        epoch BIGINT)""",
]

FENCE_SQL = f"SELECT epoch FROM engine_lease WHERE name = '{NAME}' FOR SHARE"


class Fenced(Exception):
    """This node's epoch is not the lease's: its engine must not write."""


def node_name() -> str:
    """This collector's name in the lease: host and pid (unique while it runs)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class SoleLease:
    """SQLite: the only collector on the data directory leads, always."""

    epoch = 1

    def __init__(self, node: str | None = None):
        self.node = node or node_name()

    def leading(self) -> bool:
        """Always."""
        return True

    def tick(self) -> bool:
        """Nothing to renew."""
        return True

    def check(self, conn) -> None:
        """Nothing can fence the sole collector."""

    def close(self) -> None:
        """Nothing held beyond the data directory's lock."""


class PgLease:
    """The engine's lease on PostgreSQL; `tick` once every RENEW_EVERY seconds,
    from one thread (it blocks on the network)."""

    def __init__(self, dsn: str, node: str | None = None, ttl: float = TTL,
                 clock: Callable[[], float] = time.monotonic, connect_timeout: float = 5.0):
        self.dsn, self.node, self.ttl, self.clock = dsn, node or node_name(), ttl, clock
        self.connect_timeout = connect_timeout
        self.epoch: int | None = None        # this node's epoch while it leads
        self._renewed: float | None = None    # `clock` time of the last renewal
        self._conn = None
        self.takeovers = 0                    # epochs this node raised (for /metrics)
        self.fenced = 0                       # engine writes refused here (for /metrics)

    # -- the lease connection ----------------------------------------------------
    def _connection(self):
        import psycopg
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        self._drop()
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=int(self.connect_timeout),
                               application_name=f"branchwatch-lease {self.node}"[:63],
                               # a cut line is noticed by the kernel, not after hours
                               keepalives=1, keepalives_idle=2, keepalives_interval=1,
                               keepalives_count=2)
        # a statement that hangs (a lock, a dead server) must not outlive the lease
        conn.execute(f"SET statement_timeout = {int(self.ttl * 1000 // 2)}")
        for ddl in SCHEMA:
            conn.execute(ddl)
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:       # noqa: BLE001 - already broken: nothing to close
                pass
            self._conn = None

    # -- leading -------------------------------------------------------------------
    def leading(self) -> bool:
        """True while this node holds the lease and renewed it within `ttl`."""
        if self.epoch is None:
            return False
        if self._renewed is None or self.clock() - self._renewed >= self.ttl:
            # Not renewed in time (the database lost, a hang): a standby may take
            # over now, so stop before it can.
            self._step_down("not renewed for %.1f s" % (self.clock() - (self._renewed or 0)))
            return False
        return True

    def tick(self) -> bool:
        """Renew (leader) or try to take over (standby); whether this node leads."""
        import psycopg
        try:
            conn = self._connection()
            if self.epoch is not None:
                self._renew(conn)
            else:
                self._try_take(conn)
            self._seen(conn)
            self._end_stuck(conn)
        except psycopg.Error as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            log.warning("lease: database not reachable: %s", first)
            self._drop()
            if self.epoch is not None:
                # The advisory lock went with the connection (or will): stepping
                # down now is never wrong; fencing covers the writes meanwhile.
                self._step_down(f"the lease connection failed: {first}")
        return self.leading()

    def _renew(self, conn) -> None:
        # Counted from before the request: this node's view of its lease ends
        # no later than the server's (renewed_at + ttl), where standbys look.
        sent = self.clock()
        cur = conn.execute(
            "UPDATE engine_lease SET renewed_at = clock_timestamp() "
            "WHERE name = %s AND epoch = %s AND holder_pid = pg_backend_pid()",
            (NAME, self.epoch))
        if cur.rowcount == 1:
            self._renewed = sent
        else:
            self._step_down("the lease row names another epoch")

    def _try_take(self, conn) -> None:
        sent = self.clock()
        if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LEASE_KEY,)).fetchone()[0]:
            self._end_stale(conn)
            if not conn.execute("SELECT pg_try_advisory_lock(%s)", (LEASE_KEY,)).fetchone()[0]:
                return
        # The lock is ours; raise the epoch. Writes of the old epoch holding the
        # row's share lock commit (or are ended) before this can.
        self._end_share_holders(conn)
        epoch = conn.execute(
            "INSERT INTO engine_lease AS l (name, epoch, holder, holder_pid, acquired_at, "
            "renewed_at) VALUES (%s, 1, %s, pg_backend_pid(), clock_timestamp(), "
            "clock_timestamp()) ON CONFLICT (name) DO UPDATE SET epoch = l.epoch + 1, "
            "holder = excluded.holder, holder_pid = excluded.holder_pid, "
            "acquired_at = excluded.acquired_at, renewed_at = excluded.renewed_at "
            "RETURNING epoch", (NAME, self.node)).fetchone()[0]
        self.epoch, self._renewed = epoch, sent
        self.takeovers += 1
        log.warning("lease: %s leads the engine now (epoch %d)", self.node, epoch)

    def _end_stale(self, conn) -> None:
        """The lock is held: end the holder's session if it stopped renewing."""
        row = conn.execute(
            "SELECT holder, holder_pid, epoch, "
            "extract(epoch FROM clock_timestamp() - renewed_at) FROM engine_lease "
            "WHERE name = %s", (NAME,)).fetchone()
        if row is None or row[3] < self.ttl:
            return
        holder, pid, epoch, age = row
        log.warning("lease: %s (epoch %d) has not renewed for %.1f s: ending its session",
                    holder, epoch, age)
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # Its lock is released once the backend has exited: wait for that, briefly.
        deadline = time.monotonic() + self.ttl / 2
        while time.monotonic() < deadline:
            if not conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                                (pid,)).fetchone():
                break
            time.sleep(0.02)

    def _end_share_holders(self, conn) -> None:
        """End sessions of other nodes still inside an engine write (holding the
        row's share lock) whose node no longer renews: a paused old leader."""
        pids = [r[0] for r in conn.execute(
            "SELECT DISTINCT l.pid FROM pg_locks l WHERE l.relation = 'engine_lease'::regclass "
            "AND l.mode = 'RowShareLock' AND l.granted AND l.pid <> pg_backend_pid()")]
        for pid in pids:
            log.warning("lease: ending session %d, inside a write of an older epoch", pid)
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def _end_stuck(self, conn) -> None:
        """End collector sessions left idle inside a transaction for longer than the
        ttl: a paused process (its transactions take milliseconds), which would hold
        the store's writer lock, and every collector's ingest with it, for ever.
        (The server's idle_in_transaction_session_timeout does the same, when set.)"""
        for (pid,) in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND application_name LIKE 'branchwatch-%%' AND state = 'idle in transaction' "
                "AND clock_timestamp() - state_change > make_interval(secs => %s) "
                "AND pid <> pg_backend_pid()", (self.ttl,)).fetchall():
            log.warning("lease: ending session %d, idle inside a transaction for over %.0f s",
                        pid, self.ttl)
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

    def _seen(self, conn) -> None:
        conn.execute(
            "INSERT INTO collector_nodes (node, seen_at, leads, epoch) VALUES "
            "(%s, clock_timestamp(), %s, %s) ON CONFLICT (node) DO UPDATE SET "
            "seen_at = excluded.seen_at, leads = excluded.leads, epoch = excluded.epoch",
            (self.node, self.epoch is not None, self.epoch))

    def _step_down(self, why: str) -> None:
        if self.epoch is not None:
            log.warning("lease: %s no longer leads (epoch %d): %s", self.node, self.epoch, why)
        self.epoch, self._renewed = None, None
        # Let the advisory lock go with the session (it may be held still).
        self._drop()

    # -- fencing -------------------------------------------------------------------
    def check(self, conn) -> None:
        """Inside an engine write transaction, on its connection: raise Fenced
        unless this node's epoch is the lease's (the row stays share-locked to
        the commit, so no takeover completes in between)."""
        mine = self.epoch
        # A paused process must not sit inside this transaction for ever.
        conn.execute(f"SET LOCAL idle_in_transaction_session_timeout = {int(self.ttl * 1000)}")
        row = conn.execute(FENCE_SQL).fetchone()
        if mine is None or row is None or row[0] != mine:
            self.fenced += 1
            raise Fenced(f"{self.node}: epoch {mine} is not the lease's "
                         f"({row[0] if row else 'none'}): not writing")

    def close(self) -> None:
        """Let the lease go (a clean stop: a standby takes over at once)."""
        if self._conn is not None and self.epoch is not None:
            try:
                self._conn.execute("UPDATE engine_lease SET renewed_at = 'epoch' WHERE name = %s "
                                   "AND epoch = %s", (NAME, self.epoch))
            except Exception:       # noqa: BLE001 - stopping: the lock goes with the session
                pass
        self.epoch = None
        self._drop()


def lease_status(conn) -> dict:
    """The lease row and every node's last word, for `collector status` (any connection
    with `?`-free SQL: psycopg or the store's)."""
    lease = conn.execute(
        "SELECT holder, epoch, extract(epoch FROM clock_timestamp() - renewed_at) "
        f"FROM engine_lease WHERE name = '{NAME}'").fetchone()
    nodes = conn.execute(
        "SELECT node, leads, epoch, extract(epoch FROM clock_timestamp() - seen_at) "
        "FROM collector_nodes ORDER BY node").fetchall()
    return {"leader": lease[0] if lease else None, "epoch": lease[1] if lease else None,
            "renewed_ago": float(lease[2]) if lease else None,
            # A node leads only as the lease's holder: a row a killed leader left says
            # "leads" until it is seen again.
            "nodes": [{"node": n, "leading": bool(lead) and lease is not None and n == lease[0],
                       "epoch": e, "seen_ago": float(ago)} for n, lead, e, ago in nodes]}
