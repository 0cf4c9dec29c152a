"""Heartbeats while people read: p99 with 5,000 agents at 15 s while 10 console
viewers refresh the incidents page holding 1,000 open incidents.

A real collector process (SQLite WAL, synchronous=FULL) with 5,000 enrolled
agents; 1,000 of them report a critical fault first (1,000 open incidents,
one per branch). Then, for --window seconds, every agent posts a heartbeat
(20 checks) every 15 s, spread evenly, while 10 viewers logged in to the
console each reload /console/incidents as soon as the last load finished
(harder than its 2 s live refresh). Reported: heartbeat p50/p99/max, page
loads and their p50/p99, collector CPU.

A/B interleaved against another checkout (--peer DIR, e.g. an unpacked
`git archive main`): runs alternate this tree, the peer, this tree, ...;
each figure is given per run and as this/peer ratios (median and range).
Target: heartbeat p99 < 50 ms here.

Run: python3 bench/collector_reads_bench.py [--window 30] [--runs 2] [--peer DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import psutil

HERE = Path(__file__).resolve().parents[1]
AGENTS, OPEN, VIEWERS, INTERVAL, CHECKS = 5000, 1000, 10, 15.0, 20


def _cpu(proc: psutil.Process) -> float:
    return sum(proc.cpu_times()[:2])


def _token(i: int) -> str:
    return f"tok-hb{i}-xxxxxxxxxxxxxxxx"


def heartbeat_body(i: int) -> bytes:
    checks = [{"check": f"tcp/svc{k}", "state": "ok", "reason": "answers",
               "since": "2026-01-05T09:00:00+00:00"} for k in range(CHECKS)]
    return json.dumps({"agent": f"hb{i}", "branch": f"br{i}", "region": "r1",
                       "sent_at": datetime.now(timezone.utc).isoformat(),
                       "interval": INTERVAL, "spool_depth": 0, "checks": checks}).encode()


def fault_body(i: int) -> bytes:
    now = datetime.now(timezone.utc).isoformat()
    return json.dumps({"agent": f"hb{i}", "branch": f"br{i}", "sent_at": now, "events": [{
        "id": f"ev-{i:06d}-xxxxxxxxxxxxxxxxxxxxxxxxx", "kind": "state", "agent": f"hb{i}",
        "branch": f"br{i}", "check": "ups/rack/on_battery", "old_state": "ok",
        "new_state": "critical", "reason": "mains lost", "observed_at": now}]}).encode()


async def _load(url: str, window: float) -> dict:
    hb: list[float] = []
    pages: list[float] = []
    bad: list[str] = []                  # page loads that did not show the incidents
    # unsafe: keep the session cookie of an IP-address host (127.0.0.1).
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=300),
                                     cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        for i in range(OPEN):
            async with http.post(url + "/api/v1/events", data=fault_body(i), headers={
                    "Authorization": f"Bearer {_token(i)}",
                    "Content-Type": "application/json"}) as r:
                assert r.status == 200, await r.text()
        async with http.post(url + "/console/login", allow_redirects=False, data={
                "user": "viewer", "password": "viewer-password-1",
                "next": "/console/incidents"}) as r:
            assert r.status in (302, 303), (r.status, await r.text())
        until = time.monotonic() + window

        async def viewer():
            while time.monotonic() < until:
                t = time.monotonic()
                async with http.get(url + "/console/incidents") as r:
                    body = await r.read()
                # Every open incident counted (this tree shows the 100 most severe).
                if r.status == 200 and f'id="open-count">{OPEN}<'.encode() in body:
                    pages.append(time.monotonic() - t)
                else:
                    shown = re.findall(rb'id="open-count">[^<]*<|<title>[^<]*<', body)
                    bad.append(f"{r.status}: {shown!r}")

        async def beat(i: int, at: float):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            t = time.monotonic()
            async with http.post(url + "/api/v1/heartbeat", data=heartbeat_body(i), headers={
                    "Authorization": f"Bearer {_token(i)}",
                    "Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 204, r.status
            hb.append(time.monotonic() - t)

        start = time.monotonic() + 0.2
        rounds = max(1, round(window / INTERVAL))
        await asyncio.gather(*(viewer() for _ in range(VIEWERS)),
                             *(beat(i, start + k * INTERVAL + i * INTERVAL / AGENTS)
                               for k in range(rounds) for i in range(AGENTS)))
    return {"hb": hb, "pages": pages, "bad": bad}


def _pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return round(1000 * xs[max(0, int(len(xs) * p) - 1)], 1)


def run_one(tree: Path, window: float) -> dict:
    """One collector from `tree`, loaded; the figures."""
    sys.path.insert(0, str(tree))
    try:
        from collector.api import token_hash
        from collector.web.passwords import hash_password
        from tests.support.paths import free_port
    finally:
        sys.path.pop(0)
    with tempfile.TemporaryDirectory(prefix="reads-bench-") as tmp:
        folder, port = Path(tmp), free_port()
        lines = [f"  - {{id: hb{i}, branch: br{i}, region: r1, "
                 f"token_sha256: {token_hash(_token(i))}}}" for i in range(AGENTS)]
        (folder / "c.yaml").write_text(
            f"listen: {{address: 127.0.0.1, port: {port}}}\n"
            f"storage: {{data_dir: {folder / 'data'}}}\n"
            "incidents: {deadman_grace: 86400}\n"
            "agents:\n" + "\n".join(lines) + "\n"
            "console:\n  users:\n"
            f"    - {{name: viewer, roles: [viewer], password: '{hash_password('viewer-password-1')}'}}\n")
        proc = subprocess.Popen([sys.executable, "-m", "collector.cli", "collector", "--config",
                                 str(folder / "c.yaml")], cwd=tree,
                                env={**os.environ, "PYTHONPATH": str(tree)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    import urllib.request
                    urllib.request.urlopen(url + "/healthz", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError(f"collector from {tree} did not start")
                    time.sleep(0.2)
            ps = psutil.Process(proc.pid)
            cpu0, t0 = _cpu(ps), time.monotonic()
            got = asyncio.run(_load(url, window))
            cpu, elapsed = _cpu(ps) - cpu0, time.monotonic() - t0
        finally:
            proc.terminate()
            proc.wait(30)
    return {"tree": str(tree), "heartbeats": len(got["hb"]),
            "hb_p50_ms": _pct(got["hb"], 0.5), "hb_p99_ms": _pct(got["hb"], 0.99),
            "hb_max_ms": _pct(got["hb"], 1.0), "page_loads": len(got["pages"]),
            "page_p50_ms": _pct(got["pages"], 0.5) if got["pages"] else None,
            "page_p99_ms": _pct(got["pages"], 0.99) if got["pages"] else None,
            "bad_pages": len(got["bad"]), "first_bad": got["bad"][:1],
            "collector_cpu_cores": round(cpu / elapsed, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=30.0)
    ap.add_argument("--runs", type=int, default=2, help="runs per tree")
    ap.add_argument("--peer", type=Path, help="another checkout, run interleaved")
    args = ap.parse_args()
    trees = [HERE] + ([args.peer.resolve()] if args.peer else [])
    runs = [run_one(tree, args.window) for _ in range(args.runs) for tree in trees]
    out = {"runs": runs}
    if args.peer:
        mine = [r for r in runs if r["tree"] == str(HERE)]
        peer = [r for r in runs if r["tree"] != str(HERE)]
        for key in ("hb_p99_ms", "page_p50_ms", "collector_cpu_cores"):
            ratios = [a[key] / b[key] for a, b in zip(mine, peer) if a[key] and b[key]]
            out[f"{key}_this_over_peer"] = {
                "median": round(statistics.median(ratios), 3),
                "range": [round(min(ratios), 3), round(max(ratios), 3)]} if ratios else None
        out["page_loads_this_over_peer"] = [round(a["page_loads"] / max(1, b["page_loads"]), 2)
                                            for a, b in zip(mine, peer)]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
