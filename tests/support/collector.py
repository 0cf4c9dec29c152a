"""A collector as its own process on a free loopback port (tests and bench)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timezone
import urllib.error
import urllib.request
from pathlib import Path

from collector.api import token_hash

from .paths import REPO, free_port


class CollectorProcess:
    """`python -m collector.cli collector` with enrolled agents, until stopped.

    agents: id -> (branch, token) or (branch, region, token).
    """

    def __init__(self, folder: Path, agents: dict[str, tuple], max_body: int = 65536,
                 extra: str = "", env: dict[str, str] | None = None, dsn: str | None = None):
        """dsn: the store on this PostgreSQL database (its DSN in a file beside the
        config), not the SQLite file in the data directory."""
        folder.mkdir(parents=True, exist_ok=True)
        self.dsn = dsn
        storage = f"storage: {{data_dir: {folder / 'data'}}}\n"
        if dsn is not None:
            (folder / "dsn").write_text(dsn + "\n")
            storage = (f"storage: {{data_dir: {folder / 'data'}, "
                       f"postgresql: {{dsn_file: {folder / 'dsn'}}}}}\n")
        self.port = free_port()
        self.folder = folder
        self.config = folder / "collector.yaml"
        lines = []
        for agent, entry in agents.items():
            branch, region, token = entry if len(entry) == 3 else (entry[0], "", entry[1])
            lines.append(f"  - {{id: {agent}, branch: {branch}, region: '{region}', "
                         f"token_sha256: {token_hash(token)}}}")
        self.config.write_text(f"listen: {{address: 127.0.0.1, port: {self.port}}}\n"
                               + storage +
                               f"limits: {{max_body: {max_body}}}\n"
                               + ("agents:\n" + "\n".join(lines) + "\n" if lines else "")
                               + extra)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "CollectorProcess":
        """Start and wait for /healthz."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "collector.cli", "collector", "--config", str(self.config)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"collector exited: {self.proc.stderr.read().decode()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=5) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("collector did not answer /healthz")

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=15)
        self.proc.stdout.close()
        self.proc.stderr.close()
        return rc

    def __enter__(self) -> "CollectorProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def audit_records(c: CollectorProcess, kind: str) -> list[tuple[str, dict]]:
    """(actor, data) of every audit record of this kind, oldest first (read-only)."""
    if c.dsn is not None:
        import psycopg
        with psycopg.connect(c.dsn, autocommit=True) as pg:
            return [(a, json.loads(d)) for a, d in pg.execute(
                "SELECT actor, data FROM audit WHERE kind = %s ORDER BY seq", (kind,))]
    db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        return [(a, json.loads(d)) for a, d in db.execute(
            "SELECT actor, data FROM audit WHERE kind = ? ORDER BY seq", (kind,))]
    finally:
        db.close()


class DrillClock:
    """A collector's clock, moved by writing its BRANCHWATCH_CLOCK_OFFSET_FILE."""

    def __init__(self, path):
        self.path = path

    def set(self, at: datetime) -> None:
        """Make the collector's `now` be `at` (give or take the time the test takes)."""
        self.path.write_text(repr(at.timestamp() - time.time()))

    def freeze(self, at: datetime) -> None:
        """Stop the collector's clock at `at` exactly (until the next set or freeze)."""
        self.path.write_text("@" + repr(at.timestamp()))

    def now(self) -> datetime:
        text = self.path.read_text()
        if text.startswith("@"):
            return datetime.fromtimestamp(float(text[1:]), tz=timezone.utc)
        return datetime.fromtimestamp(time.time() + float(text), tz=timezone.utc)
