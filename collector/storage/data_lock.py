"""One collector per SQLite data directory: a lock file held while it runs.

Two collectors on one SQLite file would both run the engine: one fault at a
branch would become two incidents, graded, notified and run twice. SQLite's
own locking only serialises their writes, it does not stop the second
engine. So the running collector holds an exclusive `flock` on
`<data_dir>/collector.lock` for its whole life; a second one is refused at
start with one line naming the holder. The kernel drops the lock when the
process dies (SIGKILL included), so a crash never leaves a stale lock behind.
Tools that only read the store (audit verify, reports) do not take it.
Several collectors sharing one database need the PostgreSQL store.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = "collector.lock"


class DataDirBusy(Exception):
    """Another collector holds the data directory."""


class DataDirLock:
    """An exclusive lock on a data directory, held until `release` (or exit)."""

    def __init__(self, data_dir: str | Path):
        self.path = Path(data_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> "DataDirLock":
        """Take the lock or raise DataDirBusy naming the process that holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DataDirBusy(
                f"another collector (pid {holder}) is running on {self.path.parent}; "
                f"one SQLite data directory serves one collector (several need "
                f"storage: postgresql)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Let the directory go (the file stays; only the lock matters)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "DataDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
