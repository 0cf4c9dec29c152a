"""Heartbeats posted back to back on one kept-alive connection, timed (the
login spray's test and benchmark measure the collector's answer with it)."""

from __future__ import annotations

import http.client
import threading
import time
import urllib.parse
from datetime import datetime, timezone

from agent.wire import Heartbeat, encode


class HeartbeatProbe:
    """Post one agent's heartbeat every `every` seconds until stopped; keep each
    answer's status and latency (seconds)."""

    def __init__(self, url: str, agent: str, branch: str, token: str, every: float = 0.02):
        self.url, self.agent, self.branch, self.token, self.every = url, agent, branch, token, every
        self.results: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "HeartbeatProbe":
        self._thread.start()
        return self

    def stop(self) -> list[tuple[int, float]]:
        """Stop posting; every (status, latency) measured."""
        self._stop.set()
        self._thread.join(timeout=120)
        return self.results

    def _run(self) -> None:
        u = urllib.parse.urlsplit(self.url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        while not self._stop.is_set():
            body = encode(Heartbeat(agent=self.agent, branch=self.branch,
                                    sent_at=datetime.now(timezone.utc), interval=15.0,
                                    checks=[]))
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/api/v1/heartbeat", body, headers)
                r = conn.getresponse()
                r.read()
                status = r.status
            except OSError:
                status = 0
                conn.close()
                conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            self.results.append((status, time.perf_counter() - t0))
            self._stop.wait(self.every)
        conn.close()


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]
