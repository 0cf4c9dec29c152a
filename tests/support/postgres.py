"""A real PostgreSQL server the tests start themselves.

Debian's `postgresql` (CI installs it), initdb + pg_ctl in a temporary
directory as an unprivileged user (initdb refuses root), listening on
127.0.0.1 only. fsync and synchronous_commit stay on: a test or benchmark
that claims durability gets it. Skips, with the reason, where the binaries
or psycopg are missing.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .paths import free_port

PG_USER = "bwpg"          # the unprivileged system user that owns the cluster when run as root


def pg_bindir() -> Path:
    """The newest installed PostgreSQL's bin directory; skip if none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parts[-3]))
    if not found:
        pytest.skip("PostgreSQL is not installed (CI installs it: .ci/setup)")
    return Path(found[-1]).parent


def _as_owner() -> list[str]:
    """The command prefix that runs as the cluster's owner (root: a system user)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", PG_USER], check=True)
    return ["runuser", "-u", PG_USER, "--"]


class PostgresServer:
    """One PostgreSQL cluster in a fresh directory; `dsn(db)` to connect."""

    def __init__(self, folder: Path | None = None, settings: dict[str, str] | None = None):
        pytest.importorskip("psycopg", reason="psycopg is not installed (pip install '.[postgresql]')")
        self.bin = pg_bindir()
        self.prefix = _as_owner()
        # The owner must reach the directory: pytest's tmp_path sits under a
        # root-only 0700 folder, so as root the cluster lives in its own /tmp dir.
        if folder is None or self.prefix:
            self.dir = Path(tempfile.mkdtemp(prefix="bw-pg-"))
        else:
            self.dir = Path(folder)
            self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.settings = {"max_connections": "200", "fsync": "on", "synchronous_commit": "on",
                         **(settings or {})}
        self._created = 0

    def _own(self) -> None:
        if self.prefix:
            shutil.chown(self.dir, PG_USER)
        os.chmod(self.dir, 0o700)

    def start(self, timeout: float = 30.0) -> "PostgresServer":
        """initdb (first time) and start; returns when it accepts connections."""
        self._own()
        data = self.dir / "data"
        if not data.exists():
            subprocess.run([*self.prefix, str(self.bin / "initdb"), "-D", str(data), "-A", "trust",
                            "-U", "postgres", "-E", "UTF8", "--no-sync"],
                           check=True, capture_output=True)
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.dir}"
        for key, value in self.settings.items():
            opts += f" -c {key}={value}"
        proc = subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(data),
                               "-l", str(self.dir / "log"), "-w", "-t", str(int(timeout)),
                               "start", "-o", opts], capture_output=True, text=True)
        if proc.returncode != 0:
            log = (self.dir / "log").read_text(errors="replace")[-2000:] if (self.dir / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr}\n{log}")
        return self

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (mode: smart, fast or immediate, as pg_ctl takes them)."""
        subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"),
                        "-m", mode, "-w", "stop"], capture_output=True)

    def dsn(self, dbname: str = "postgres") -> str:
        """A libpq connection string to one database of this server."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its DSN (one per test keeps tests apart)."""
        import psycopg
        self._created += 1
        name = name or f"bw_{os.getpid()}_{self._created}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def remove(self) -> None:
        """Stop and delete the cluster's directory."""
        self.stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.remove()
