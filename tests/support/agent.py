"""The real agent as a subprocess: its events, its /metrics, its exit."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

from .paths import REPO


class AgentProcess:
    """`branchwatch agent --config FILE` with stdout events collected."""

    def __init__(self, folder: Path, config: dict, *args: str, prefix: list[str] = (),
                 cwd: Path | None = None):
        self.prefix = list(prefix)   # e.g. ["ip", "netns", "exec", NS]: run it elsewhere
        self.cwd = cwd               # relative paths in the config resolve from here
        self.config_path = Path(folder) / "agent.yaml"
        config.setdefault("metrics", {"address": "127.0.0.1", "port": 0})
        self.config_path.write_text(yaml.safe_dump(config))
        self.args = args
        self.events: list[dict] = []
        self.event_times: dict[int, float] = {}  # id(event) -> when it was read
        self.stderr: list[str] = []
        self.metrics_url: str | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()

    def start(self, timeout: float = 20.0) -> "AgentProcess":
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "agent.cli", "agent", "--config", str(self.config_path),
             *self.args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            cwd=self.cwd)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("agent did not start:\n" + "".join(self.stderr))
        return self

    def _read_stdout(self):
        for line in self.proc.stdout:
            event = json.loads(line)
            with self._lock:
                self.event_times[id(event)] = time.time()
                self.events.append(event)

    def _read_stderr(self):
        for line in self.proc.stderr:
            self.stderr.append(line)
            if m := re.search(r"metrics on (https?://\S+/metrics)", line):
                self.metrics_url = m[1]
                self._ready.set()

    def wait_event(self, timeout: float = 15.0, after: int = 0, **match) -> dict:
        """The first event (in order, from number `after` on) whose fields equal `match`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for e in self.events[after:]:
                    if all(e.get(k) == v for k, v in match.items()):
                        return e
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no event {match} within {timeout} s; got:\n"
                             + "\n".join(map(str, self.events)) + "\n" + "".join(self.stderr))

    def events_for(self, check: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["check"] == check]

    def scrape(self) -> dict[tuple[str, frozenset], float]:
        """/metrics as {(name, labels): value}."""
        text = urllib.request.urlopen(self.metrics_url, timeout=5).read().decode()
        out = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                out[(s.name, frozenset(s.labels.items()))] = s.value
        return out

    def metric(self, name: str, **labels) -> float | None:
        """One value from /metrics, or None if absent."""
        for (n, ls), v in self.scrape().items():
            if n == name and all((k, v2) in ls for k, v2 in labels.items()):
                return v
        return None

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
