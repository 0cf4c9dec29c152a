"""One SQLite data directory serves one collector: a second real collector
process on it is refused at start with one line (exit 2) naming the first,
and once the first dies, even by SIGKILL, the directory can be used again."""

from __future__ import annotations

import signal
import subprocess
import sys

from .support.collector import CollectorProcess
from .support.paths import REPO

AGENTS = {"a1": ("BR-1", "east", "single-engine-agent-token-aaaa")}


def second_on(first: CollectorProcess, folder) -> CollectorProcess:
    """A collector with its own port and config, on the first one's data directory."""
    other = CollectorProcess(folder, AGENTS)
    text = other.config.read_text().replace(str(folder / "data"), str(first.folder / "data"))
    other.config.write_text(text)
    return other


def run_to_exit(c: CollectorProcess) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector.cli", "collector",
                           "--config", str(c.config)], cwd=REPO, env=c.env,
                          capture_output=True, text=True, timeout=60)


def test_a_second_collector_on_one_data_dir_is_refused(tmp_path):
    with CollectorProcess(tmp_path / "a", AGENTS) as first:
        second = second_on(first, tmp_path / "b")
        done = run_to_exit(second)
        assert done.returncode == 2, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert f"another collector (pid {first.proc.pid})" in lines[0]
        assert str(first.folder / "data") in lines[0]
        assert "Traceback" not in done.stderr
        # the first one is untouched by the attempt
        assert first.proc.poll() is None


def test_the_lock_goes_with_a_killed_collector(tmp_path):
    first = CollectorProcess(tmp_path / "a", AGENTS).start()
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=15)
    first.proc.stdout.close()
    first.proc.stderr.close()
    with second_on(first, tmp_path / "b") as second:
        assert second.proc.poll() is None
    # stopped cleanly: the next one starts too
    with second_on(first, tmp_path / "c") as third:
        assert third.proc.poll() is None


def test_status_on_sqlite_names_the_sole_collector(tmp_path):
    import json
    with CollectorProcess(tmp_path / "a", AGENTS) as c:
        done = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "status",
                               "--config", str(c.config), "--json"], cwd=REPO, env=c.env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        status = json.loads(done.stdout)
        assert status["epoch"] == 1 and "SQLite" in status["leader"]
        assert status["lag_entries"] == 0 and status["outbox_depth"] == {}
        text = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "status",
                               "--config", str(c.config)], cwd=REPO, env=c.env,
                              capture_output=True, text=True, timeout=60).stdout
        assert text.startswith("leader:") and "cursor lag:   0 entries" in text


def test_status_without_a_database_is_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{data_dir: {tmp_path / 'none'}}}\n")
    done = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "status",
                           "--config", str(config)], cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "no collector database" in done.stderr
