"""Shared by the benchmarks: delay spreads and the command line."""

from __future__ import annotations

import argparse
import json
import statistics


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
