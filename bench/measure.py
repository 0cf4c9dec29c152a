"""What both benchmarks measure of an agent process: memory, CPU, delays."""

from __future__ import annotations

import argparse
import json
import statistics
import time

import psutil


def steady_state(pid: int, window: float, cycle: float) -> dict:
    """RSS (median, peak), share of one core and CPU ms per poll cycle over `window` s."""
    proc = psutil.Process(pid)
    cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()
    rss = []
    while time.monotonic() - t0 < window:
        rss.append(proc.memory_info().rss)
        time.sleep(1)
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    elapsed = time.monotonic() - t0
    return {"rss_mb_median": round(statistics.median(rss) / 2**20, 1),
            "rss_mb_peak": round(max(rss) / 2**20, 1),
            "cpu_share_of_core_pct": round(100 * cpu / elapsed, 2),
            "cpu_ms_per_cycle": round(1000 * cpu / (elapsed / cycle), 1),
            "window_s": round(elapsed, 1)}


def spread(delays: list[float]) -> dict:
    """Median, max and count of measured delays (seconds)."""
    return {"median": round(statistics.median(delays), 3), "max": round(max(delays), 3),
            "n": len(delays)}


def main(doc: str, run, changes_help: str) -> None:
    """The shared command line: --window and --changes, JSON result on stdout."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--window", type=float, default=60.0, help="seconds of steady-state sampling")
    ap.add_argument("--changes", type=int, default=6, help=changes_help)
    args = ap.parse_args()
    print(json.dumps(run(args.window, args.changes), indent=2))
