"""The collector on PostgreSQL end to end: a real collector process whose store is
a real PostgreSQL (started by the test), a real agent posting events.

An incident opens and is graded (domain.md §2.1, the regulator's table) over
the API and in the console; the collector restarts and carries on from the
cursor stored in the database (nothing applied twice, nothing lost while it
was down: the agent's spool); `collector audit verify` finds the chain intact.
Two collectors on one database share a console session (login on one, seen
on the other; logout on one, ended on both).
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess, audit_records
from .support.collector import DrillClock as Drill
from .support.console import USERS, console_yaml
from .support.paths import REPO
from .support.store_backend import pg_server  # noqa: F401
from .test_console_http import Visitor
from .test_delivery_e2e import wait_for
from .test_grading_e2e import MONDAY_0900, OPERATOR, TOKENS, agent_config, incidents, when


class Core:
    """The core system as the branch reaches it: a TCP port that answers, taken
    away and brought back on the same port."""

    def __init__(self):
        self.port, self.sock = 0, None
        self.up()

    def up(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, args=(self.sock,), daemon=True).start()

    @staticmethod
    def _serve(sock) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.close()

    def down(self) -> None:
        self.sock.close()


def engine_cursor(dsn: str) -> int:
    import psycopg
    with psycopg.connect(dsn, autocommit=True) as pg:
        row = pg.execute("SELECT seq FROM log_cursors WHERE name = 'engine'").fetchone()
        return row[0] if row else 0


def audited_event_ids(c: CollectorProcess) -> Counter:
    """How many times each event id is in an events.received record."""
    return Counter(e["id"] for _, data in audit_records(c, "events.received")
                   for e in data["events"])


def test_a_collector_on_postgresql_grades_restarts_from_its_cursor_and_verifies(
        tmp_path, pg_server):
    dsn = pg_server.create_database()
    drill = Drill(tmp_path / "clock-offset")
    drill.set(MONDAY_0900 - timedelta(seconds=30))
    core = Core()
    extra = ("operators:\n"
             f"  - {{name: alice, roles: [leadership], token_sha256: {token_hash(OPERATOR)}}}\n"
             "incidents: {window: 120, deadman_grace: 86400}\n"
             "grading:\n  tables: [cbrc]\n"
             "  calendar: {timezone: Asia/Shanghai, weekdays: [0, 1, 2, 3, 4], "
             "hours: ['08:30-17:00']}\n" + console_yaml(USERS))
    c = CollectorProcess(tmp_path / "collector", {"a1": ("B1", "north", TOKENS["a1"])},
                         extra=extra, env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(drill.path)},
                         dsn=dsn)
    c.start()
    folder = tmp_path / "a1"
    folder.mkdir()
    agent = AgentProcess(folder, agent_config(folder, "a1", "B1", "north", c.url,
                                              core.port)).start()
    try:
        assert not (tmp_path / "collector" / "data" / "collector.db").exists()   # no SQLite
        core.down()
        inc = wait_for(lambda: [i for i in incidents(c) if "cbrc" in i["grades"]],
                       what="the incident, graded")[0]
        t0 = when(inc["started_at"])
        drill.set(t0 + timedelta(minutes=30, seconds=5))       # one region 30 min: III
        inc = wait_for(lambda: (lambda i: i if i["grades"]["cbrc"]["grade"] == "III"
                                else None)(incidents(c)[0]), timeout=15, what="grade III")
        assert when(inc["grades"]["cbrc"]["reached_at"]) == t0 + timedelta(minutes=30)

        # The console shows it, from the same database.
        v = Visitor(c.url)
        status, _, _ = v.go("/console/login", {"user": "alice", "password": USERS["alice"][1],
                                                "next": "/console/incidents"})
        assert status == 303
        status, _, page = v.go("/console/incidents")
        assert status == 200 and f'data-incident="{inc["id"]}"' in page

        # Restart: the engine goes on from the cursor stored in PostgreSQL.
        before, cursor = incidents(c)[0], engine_cursor(dsn)
        assert cursor > 0
        assert c.stop() == 0
        c.start()
        after = incidents(c)[0]
        for key in ("id", "grades", "deadlines", "started_at", "title", "status"):
            assert after[key] == before[key], key
        assert engine_cursor(dsn) >= cursor
        # Down again, and the core comes back meanwhile: the agent spools what it saw;
        # delivered after the start, it is applied after the stored cursor.
        assert c.stop() == 0
        core.up()
        back = agent.wait_event(timeout=15, check="tcp/core", new_state="ok")
        c.start()
        wait_for(lambda: engine_cursor(dsn) > cursor, timeout=30,
                 what="the spooled event applied after the stored cursor")
        assert incidents(c)[0]["status"] == "resolved"
        assert back["id"] in audited_event_ids(c)
    finally:
        agent.stop()
        if c.proc.poll() is None:
            assert c.stop() == 0
        core.down()
    # Every event applied once, whatever the restart (dedupe by id, cursor in the store).
    counts = audited_event_ids(c)
    assert counts and set(counts.values()) == {1}
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(c.config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("audit: intact: ")


def test_two_collectors_on_one_database_share_a_console_session(tmp_path, pg_server):
    dsn = pg_server.create_database()
    one = CollectorProcess(tmp_path / "one", {}, extra=console_yaml(USERS), dsn=dsn).start()
    two = CollectorProcess(tmp_path / "two", {}, extra=console_yaml(USERS), dsn=dsn).start()
    try:
        v = Visitor(one.url)           # one browser: the cookie goes to both (same host)
        status, headers, _ = v.go("/console/login", {"user": "alice",
                                                     "password": USERS["alice"][1],
                                                     "next": "/console/incidents"})
        assert status == 303 and headers["Location"] == "/console/incidents"
        v.base = two.url               # the load balancer sends the next request elsewhere
        status, _, page = v.go("/console/incidents")
        assert status == 200 and "alice" in page
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        v.base = one.url
        status, _, _ = v.go("/console/logout", {"csrf": csrf})
        assert status == 303
        v.base = two.url               # logged out on one: out on the other at once
        status, headers, _ = v.go("/console/incidents")
        assert status == 303 and headers["Location"].startswith("/console/login")
    finally:
        one.stop()
        two.stop()


def test_a_database_of_a_newer_collector_is_refused_in_one_line(tmp_path, pg_server):
    import psycopg

    from collector.store import MIGRATIONS
    dsn = pg_server.create_database()
    c = CollectorProcess(tmp_path / "c", {}, dsn=dsn)
    c.start()
    assert c.stop() == 0
    with psycopg.connect(dsn, autocommit=True) as pg:
        pg.execute("INSERT INTO schema_version VALUES (999, 'later')")
    done = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "--config",
                           str(c.config)], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line == (f"branchwatch: collector: storage.postgresql: "
                    f"postgresql://127.0.0.1:{pg_server.port}/{dsn.split('dbname=')[1]}: "
                    f"database schema version 999 is newer than this collector knows "
                    f"({MIGRATIONS[-1][0]}); upgrade branchwatch")
