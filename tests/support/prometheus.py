"""A real Prometheus server on 127.0.0.1 scraping given targets."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from .paths import free_port, need_binary, start_ready, terminate


class PrometheusServer:
    """prometheus with a fresh TSDB, scraping `targets` every second (or the
    given `scrape_configs`)."""

    def __init__(self, folder: Path, targets: list[str] = (), scrape_configs: list[dict] | None = None):
        self.binary = need_binary("prometheus")
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": scrape_configs or [{"job_name": "branchwatch-agent", "static_configs": [
                {"targets": list(targets)}]}],
        }))

    def start(self, timeout: float = 20.0) -> "PrometheusServer":
        self.proc = start_ready(
            [self.binary, f"--config.file={self.dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={self.dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            self.dir / "prometheus.log", f"{self.url}/-/ready", timeout)
        return self

    def query(self, expr: str) -> list[dict]:
        """Instant query; the result vector."""
        q = urllib.parse.urlencode({"query": expr})
        body = json.load(urllib.request.urlopen(f"{self.url}/api/v1/query?{q}", timeout=5))
        assert body["status"] == "success", body
        return body["data"]["result"]

    def wait_query(self, expr: str, timeout: float = 30.0) -> list[dict]:
        """Poll a query until it returns data (targets apply on a ~5 s cycle)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result := self.query(expr):
                return result
            time.sleep(0.5)
        raise AssertionError(f"no data for {expr!r} within {timeout} s")

    def stop(self) -> None:
        terminate(self.proc)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
