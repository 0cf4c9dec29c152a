"""The engine's lease on a real PostgreSQL: one leader, a fencing token every
engine write checks, takeover when the leader dies, hangs or loses the database.

Three stand-in engines (tests/support/lease_holder.py: the real PgLease, a
fenced write every 20 ms) each reach the server through a proxy of their own;
the leader is SIGKILLed, SIGSTOPped and cut from the database, in turn, 12
times. Writes are counted by epoch: every epoch is one node's, epochs only
grow in commit order (a paused old leader that wakes writes nothing), and the
time from the fault to the new leader's first write is printed (p50/max)."""

from __future__ import annotations

import json
import signal
import statistics
import subprocess
import sys
import threading
import time

import pytest

from collector.engine.lease import Fenced, PgLease, lease_status

from .support.paths import REPO
from .support.postgres import PostgresServer
from .support.tcp_cut import TcpCut

TTL = 5.0          # the default lease: takeover well within 15 s


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer(settings={"idle_in_transaction_session_timeout": "5s"})
    with server:
        yield server


def until(cond, timeout: float, what: str, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := cond():
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def test_one_leader_and_an_old_epoch_cannot_write(pg):
    import psycopg
    dsn = pg.create_database()
    a, b = PgLease(dsn, node="a", ttl=2.0), PgLease(dsn, node="b", ttl=2.0)
    assert a.tick() and not b.tick()
    assert a.epoch == 1 and b.epoch is None
    with psycopg.connect(dsn, autocommit=True) as w:
        with w.transaction():
            a.check(w)                              # the leader writes
        with pytest.raises(Fenced), w.transaction():
            b.check(w)                              # a standby cannot
        # a hangs (no more ticks): b takes over once the row is older than the
        # ttl on the server's clock, ending a's lease session.
        until(b.tick, 15, "b to take over", every=0.2)
        assert b.epoch == 2 and a.epoch == 1        # a has not noticed yet
        with pytest.raises(Fenced), w.transaction():
            a.check(w)                              # a wakes: its epoch is old
        assert a.fenced == 1
        assert not a.tick() and a.epoch is None     # its session was ended: it steps down
        assert not a.tick()                         # and says so, as a standby
        status = lease_status(w)
    assert (status["leader"], status["epoch"]) == ("b", 2)
    assert {n["node"]: n["leading"] for n in status["nodes"]} == {"a": False, "b": True}
    b.close()                                       # a clean stop: the next one at once
    assert a.tick() and a.epoch == 3


def test_a_leader_that_cannot_renew_steps_down_by_its_own_clock(pg):
    dsn = pg.create_database()
    now = [100.0]
    a = PgLease(dsn, node="a", ttl=5.0, clock=lambda: now[0])
    assert a.tick() and a.leading()
    now[0] += 4.9
    assert a.leading()
    now[0] += 0.1                                   # ttl since its last renewal
    assert not a.leading() and a.epoch is None
    a.close()


class Holder:
    """One stand-in engine process behind a proxy of its own."""

    def __init__(self, pg: PostgresServer, dbname: str, node: str):
        self.node, self.pg, self.dbname = node, pg, dbname
        self.proxy = TcpCut(pg.port)
        self.lines: list[dict] = []
        self.start()

    def start(self) -> None:
        dsn = f"host=127.0.0.1 port={self.proxy.port} user=postgres dbname={self.dbname}"
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.support.lease_holder", dsn,
                                      self.node, str(TTL)], cwd=REPO, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()

    def _read(self, proc) -> None:
        for line in proc.stdout:
            self.lines.append(json.loads(line))

    def said(self, event: str, since: float) -> bool:
        return any(x["event"] == event and x["t"] >= since for x in self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait(10)
        self.proxy.close()


def test_takeover_after_kill_pause_and_cut(pg):
    import psycopg
    dsn = pg.create_database()
    dbname = dsn.rsplit("=", 1)[1]
    holders = {n: Holder(pg, dbname, n) for n in ("n1", "n2", "n3")}
    db = psycopg.connect(dsn, autocommit=True)

    def lease():
        if not db.execute("SELECT to_regclass('engine_lease') IS NOT NULL").fetchone()[0]:
            return None
        row = db.execute("SELECT holder, epoch FROM engine_lease").fetchone()
        return row if row else None

    def first_write_of(epoch: int):
        return db.execute("SELECT node, extract(epoch FROM at) FROM fenced_writes "
                          "WHERE epoch = %s ORDER BY id LIMIT 1", (epoch,)).fetchone()

    times: dict[str, list[float]] = {"kill": [], "stop": [], "cut": []}
    try:
        until(lambda: lease() and db.execute(
            "SELECT to_regclass('fenced_writes') IS NOT NULL").fetchone()[0]
            and first_write_of(lease()[1]), 30, "a first leader writing")
        for round_ in range(12):
            fault = ("kill", "stop", "cut")[round_ % 3]
            node, epoch = lease()
            h = holders[node]
            t0 = time.time()
            if fault == "kill":
                h.proc.send_signal(signal.SIGKILL)
            elif fault == "stop":
                h.proc.send_signal(signal.SIGSTOP)
            else:
                h.proxy.cut()
            new = until(lambda: (lambda r: r if r and r[1] > epoch else None)(lease()), 30,
                        f"a takeover after {fault} of {node}")
            first = until(lambda: first_write_of(new[1]), 30, "the new leader's first write")
            assert new[0] != node and first[0] == new[0]
            times[fault].append(float(first[1]) - t0)
            # The old leader comes back as a standby.
            back = time.time()
            if fault == "kill":
                h.proc.wait(10)
                h.start()
            elif fault == "stop":
                h.proc.send_signal(signal.SIGCONT)
                until(lambda: h.said("standby", back) or h.said("fenced", back), 30,
                      f"{node} to see it no longer leads")
            else:
                h.proxy.restore()
            until(lambda: db.execute("SELECT 1 FROM collector_nodes WHERE node = %s AND "
                                     "clock_timestamp() - seen_at < interval '2 s' AND NOT leads",
                                     (node,)).fetchone(), 40, f"{node} back as a standby")
        rows = db.execute("SELECT epoch, node FROM fenced_writes ORDER BY id").fetchall()
    finally:
        for h in holders.values():
            h.stop()
        db.close()
    epochs = [e for e, _ in rows]
    assert epochs == sorted(epochs), "a write of an older epoch committed after a newer one"
    owners: dict[int, set[str]] = {}
    for e, n in rows:
        owners.setdefault(e, set()).add(n)
    assert all(len(v) == 1 for v in owners.values()), owners
    assert len(owners) >= 13                        # the first leader and 12 takeovers
    every = [t for ts in times.values() for t in ts]
    report = ", ".join(f"{k} p50 {statistics.median(v):.2f} s max {max(v):.2f} s"
                       for k, v in times.items())
    print(f"\nfailover, fault to the new leader's first fenced write over {len(every)} faults: "
          f"p50 {statistics.median(every):.2f} s, max {max(every):.2f} s ({report})")
    assert max(every) < 15.0


def test_a_session_paused_inside_a_transaction_is_ended(pg):
    """A collector paused inside a commit holds the writer lock: any node's tick ends it
    once it has been idle in its transaction for longer than the ttl."""
    import psycopg
    from collector.storage.postgres import WRITER_LOCK
    dsn = pg.create_database()
    stuck = psycopg.connect(dsn, autocommit=True, application_name="branchwatch-collector")
    stuck.execute("BEGIN")
    stuck.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))
    a = PgLease(dsn, node="a", ttl=1.0)
    with psycopg.connect(dsn, autocommit=True) as other:
        a.tick()
        assert other.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name "
                             "= 'branchwatch-collector'").fetchone()[0] == 1   # not yet
        until(lambda: (a.tick(), other.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = "
            "'branchwatch-collector'").fetchone()[0] == 0)[1], 10, "the stuck session ended",
            every=0.2)
        other.execute("SELECT pg_advisory_xact_lock(%s)", (WRITER_LOCK,))   # free again
    assert stuck.closed or stuck.broken or _gone(stuck)
    a.close()


def _gone(conn) -> bool:
    import psycopg
    try:
        conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return True
    return False
