"""What the keyed audit chain costs the store's write path.

A/B interleaved, each run a fresh process and a fresh database (SQLite WAL,
synchronous=FULL), the same work each time: --batches batches of 100 events
through `SqliteStore.add_events` (one audit record each), every 10th batch
also saving 10 incidents (their rows.written digest record). Three variants:
  main      the store of the checkout at --main (no MAC, no row digests)
  unkeyed   this checkout, no audit key (row digests, no MAC)
  keyed     this checkout with an audit key (MAC on every record)
Then `audit verify`'s walk over the keyed database (events checked/s).

Run: python3 bench/audit_bench.py [--rounds 5] [--batches 400] [--main /work/main]
Prints events/s per variant (median, min..max) and keyed/main, unkeyed/main
ratios with their ranges over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]

WORK = r'''
import json, sys, tempfile, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from agent.wire import Event
from collector.store import SqliteStore
from collector.incidents import Incident
keyed, batches = sys.argv[1] == "keyed", int(sys.argv[2])
folder = Path(tempfile.mkdtemp())
kw = {"audit_key": b"k" * 64} if keyed else {}
store = SqliteStore(folder / "c.db", **kw)
t0 = datetime(2026, 12, 1, tzinfo=timezone.utc)
incidents = []
try:
    from tests.support.report_incident import incident
    incidents = [incident() for _ in range(10)]
    for i, inc in enumerate(incidents):
        inc.id = f"INC-{i}"
except Exception:
    pass
start = time.perf_counter()
for b in range(batches):
    events = [Event(id=f"e{b}-{i}", kind="state", agent="a1", branch="B1", check=f"c{i}",
                    old_state=None, new_state="ok", reason="ok",
                    observed_at=t0 + timedelta(seconds=b, microseconds=i)) for i in range(100)]
    with store.group():
        store.add_events("a1", "B1", events, 1.7e9 + b)
        if incidents and b % 10 == 0:
            store.save_incidents(incidents, 1.7e9 + b, [(1.7e9 + b, "incident.noted", "x", {"b": b})])
elapsed = time.perf_counter() - start
out = {"events_per_s": batches * 100 / elapsed}
if keyed:
    import sqlite3
    from collector.audit_verify import verify_database
    conn = sqlite3.connect(folder / "c.db")
    start = time.perf_counter()
    found = verify_database(conn, b"k" * 64, None)
    out["verify_events_per_s"] = batches * 100 / (time.perf_counter() - start)
    out["problems"] = len(found.problems)
store.close()
print(json.dumps(out))
'''


def run(variant: str, checkout: Path, batches: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    done = subprocess.run([sys.executable, "-c", WORK, variant, str(batches)], env=env,
                          cwd=tempfile.gettempdir(), capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        raise SystemExit(f"{variant}: {done.stderr.strip().splitlines()[-1]}")
    return json.loads(done.stdout)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} ({min(values):,.0f}..{max(values):,.0f})"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batches", type=int, default=400)
    p.add_argument("--main", type=Path, default=Path("/work/main"))
    a = p.parse_args()
    rates: dict[str, list[float]] = {"main": [], "unkeyed": [], "keyed": []}
    verify = []
    for _ in range(a.rounds):
        for variant, checkout in (("main", a.main), ("unkeyed", HERE), ("keyed", HERE)):
            r = run(variant, checkout, a.batches)
            rates[variant].append(r["events_per_s"])
            if variant == "keyed":
                verify.append(r["verify_events_per_s"])
                assert r["problems"] == 0
    for variant, values in rates.items():
        print(f"{variant:8s} events/s {spread(values)}")
    for variant in ("unkeyed", "keyed"):
        ratios = [x / m for x, m in zip(rates[variant], rates["main"])]
        print(f"{variant}/main  {statistics.median(ratios):.2f} "
              f"({min(ratios):.2f}..{max(ratios):.2f})")
    print(f"verify   events/s {spread(verify)} (chain, MACs and every event row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
