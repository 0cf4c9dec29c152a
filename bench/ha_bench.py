"""Durable ingest with several collector processes on one PostgreSQL, one engine leading.

Starts a real PostgreSQL (initdb + pg_ctl, fsync and synchronous_commit on),
--collectors collector processes on one fresh database, and 8 posters (the
same client code as bench/collector_bench.py: batches of 100 new events) spread
over the collectors for --window seconds. Counts events acknowledged by all
collectors and applied by the one engine (the leader's cursor), the engine's
lag when the window ends (entries and seconds until the cursor reaches what
was acknowledged), and the CPU of each collector and of the server.
Target (issue's): >= 20,000 events/s with two collectors, cursor lag < 1 s.
Absolute figures depend on the machine and its load.

Run: python3 bench/ha_bench.py [--collectors 2] [--window 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collector_bench import (INGEST_AGENTS, STARTUP, _cpu, _ingest_client,  # noqa: E402
                             _server_cpu)
from tests.support.collector import CollectorProcess  # noqa: E402
from tests.support.postgres import PostgresServer  # noqa: E402


def _cursor(dsn: str) -> tuple[int, int]:
    import psycopg
    with psycopg.connect(dsn) as db:
        head = db.execute("SELECT coalesce(max(seq), 0) FROM event_log").fetchone()[0]
        row = db.execute("SELECT seq FROM log_cursors WHERE name = 'engine'").fetchone()
    return head, row[0] if row else 0


async def _post_spread(urls: list[str], agents: list[str], window: float, out: list) -> None:
    until = time.monotonic() + window
    await asyncio.gather(*(_ingest_client(urls[i % len(urls)] + "/api/v1/events", a, until, out)
                           for i, a in enumerate(agents)))


def run(collectors: int, window: float) -> dict:
    """One run: the figures as a dict."""
    agents = {f"ing{i}": (f"ing{i}", f"tok-ing{i}-xxxxxxxxxxxxxxxx")
              for i in range(INGEST_AGENTS)}
    folder = Path(tempfile.mkdtemp(prefix="bw-ha-bench-"))
    with PostgresServer() as pg:
        dsn = pg.create_database()
        nodes = [CollectorProcess(folder / f"c{i}", agents, max_body=1 << 20, dsn=dsn)
                 for i in range(collectors)]
        try:
            for c in nodes:
                c.start(timeout=STARTUP)
            urls = [c.url for c in nodes]
            asyncio.run(_post_spread(urls, list(agents), 2.0, []))          # warm-up
            while (lambda h, c: c < h)(*_cursor(dsn)):
                time.sleep(0.05)
            procs = [psutil.Process(c.proc.pid) for c in nodes]
            cpu0 = [_cpu(p) for p in procs]
            server0, (head0, _) = _server_cpu(pg), _cursor(dsn)
            t0 = time.monotonic()
            counts: list[int] = []
            asyncio.run(_post_spread(urls, list(agents), window, counts))
            elapsed = time.monotonic() - t0
            head, cursor = _cursor(dsn)
            behind = head - cursor
            drain0 = time.monotonic()
            while (lambda h, c: c < h)(*_cursor(dsn)):
                time.sleep(0.05)
            lag = time.monotonic() - drain0
            cpu = [_cpu(p) - c0 for p, c0 in zip(procs, cpu0)]
            server = _server_cpu(pg) - server0
        finally:
            for c in nodes:
                if c.proc is not None and c.proc.poll() is None:
                    c.stop()
    acked = sum(counts)
    return {"collectors": collectors, "window_s": window,
            "acked_per_s": round(acked / elapsed),
            "applied_in_window_per_s": round((cursor - head0) / elapsed),
            "engine_behind_at_end_entries": behind, "engine_lag_at_end_s": round(lag, 2),
            "collector_cpu_cores": [round(x / elapsed, 2) for x in cpu],
            "postgresql_cpu_cores": round(server / elapsed, 2),
            "cpu_us_per_event": round(1e6 * (sum(cpu) + server) / max(acked, 1), 1),
            "machine_load_1m": round(psutil.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--collectors", type=int, default=2, help="collector processes")
    ap.add_argument("--window", type=float, default=20.0, help="seconds of ingest")
    args = ap.parse_args()
    print(json.dumps(run(args.collectors, args.window), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
