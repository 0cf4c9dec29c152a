"""Where the shared real-device test data lives (read in place, never copied)."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def data_dir(*parts: str) -> Path:
    """A folder of ../shared/testdata (or $BRANCHWATCH_TESTDATA); skip if absent."""
    root = Path(os.environ.get("BRANCHWATCH_TESTDATA", REPO.parent / "shared" / "testdata"))
    path = root.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"test data {path} is not here (set BRANCHWATCH_TESTDATA)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_binary(path: str) -> str:
    """Skip the test, with the reason, when a server binary is not installed."""
    import shutil
    found = path if os.path.isabs(path) and os.access(path, os.X_OK) else shutil.which(path)
    if not found:
        pytest.skip(f"{path} is not installed (CI installs it: .ci/setup)")
    return found


def terminate(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM a server the test started, SIGKILL it if it does not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_ready(argv: list[str], log: Path, ready_url: str, timeout: float = 20.0
                ) -> subprocess.Popen:
    """Start a server with its output in `log`; wait until `ready_url` answers.
    RuntimeError with the log's tail if it exits or never gets ready."""
    import time
    import urllib.request
    out = open(log, "wb")
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    out.close()                    # the child keeps its own descriptor
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(log.read_text(errors="replace")[-2000:])
        try:
            urllib.request.urlopen(ready_url, timeout=1)
            return proc
        except OSError:
            time.sleep(0.1)
    terminate(proc)
    raise RuntimeError(f"{argv[0]} did not become ready: {log.read_text(errors='replace')[-2000:]}")
