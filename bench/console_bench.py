"""The web console under a bank's load, against a real collector process.

80 branches in 8 regions, each with an agent that has sent a heartbeat of 20
checks, and 80 open incidents (one UPS on battery per branch, each with its
power-cut runbook). Then --viewers people keep the main pages open: each
loads the incidents list, the branches page and one incident page in turn,
as fast as answered, for --window seconds (far more often than the
2-second live update). Reported: p50/p99/max latency per page, pages/s, and
the collector's CPU.
Target (issue 8, 2-core machine): p99 under 250 ms for every page with 10
viewers.

Run: python3 bench/console_bench.py [--window 20] [--changes 10]   (--changes = viewers)
"""

from __future__ import annotations

import asyncio
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.collector import CollectorProcess  # noqa: E402
from tests.support.console import USERS, console_yaml, fault_batch, heartbeat  # noqa: E402

from measure import main  # noqa: E402

BRANCHES, REGIONS, CHECKS = 80, 8, 20


def agents() -> dict:
    return {f"a{i:02d}": (f"BR-{i:02d}", f"region-{i % REGIONS}", f"bench-console-token-{i:02d}")
            for i in range(BRANCHES)}


async def _load(url: str, enrolled: dict) -> None:
    async with aiohttp.ClientSession() as http:
        for agent, (branch, region, token) in enrolled.items():
            checks = {f"tcp/service-{k}": ("ok", "answers") for k in range(CHECKS - 2)}
            checks |= {"ups/main/on_battery": ("ok", "on mains"),
                       "line/primary/core": ("ok", "reachable")}
            auth = {"Authorization": f"Bearer {token}"}
            async with http.post(url + "/api/v1/heartbeat", headers=auth,
                                 data=heartbeat(agent, branch, region, checks)) as r:
                assert r.status in (200, 204), await r.text()
            async with http.post(url + "/api/v1/events", headers=auth, data=fault_batch(
                    agent, branch, "ups/main/on_battery", "critical", "on battery")) as r:
                assert r.status == 200, await r.text()


async def _viewer(url: str, incident: str, until: float, out: dict) -> None:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(url + "/console/login", data={
                "user": "vera", "password": USERS["vera"][1], "next": "/console/incidents"}) as r:
            assert r.status == 200, r.status
        pages = {"incidents": "/console/incidents?poll=1", "branches": "/console/branches?poll=1",
                 "incident": f"/console/incidents/{incident}?poll=1"}
        while time.monotonic() < until:
            for name, path in pages.items():
                t0 = time.perf_counter()
                async with http.get(url + path, headers={"HX-Request": "true"}) as r:
                    await r.read()
                    assert r.status == 200, (path, r.status)
                out[name].append(time.perf_counter() - t0)


def run(window: float, viewers: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        enrolled = agents()
        c = CollectorProcess(Path(tmp), enrolled, extra=console_yaml()).start()
        try:
            asyncio.run(_load(c.url, enrolled))
            time.sleep(2)      # the runbooks start on the next round
            proc = psutil.Process(c.proc.pid)
            out = {"incidents": [], "branches": [], "incident": []}
            body = asyncio.run(_first_page(c.url))
            incident = re.search(r'data-incident="([^"]+)"', body)[1]
            open_count = body.count('class="incident"')
            cpu0, t0 = sum(proc.cpu_times()[:2]), time.monotonic()

            async def all_viewers():
                until = time.monotonic() + window
                await asyncio.gather(*(_viewer(c.url, incident, until, out)
                                       for _ in range(viewers)))
            asyncio.run(all_viewers())
            elapsed = time.monotonic() - t0
            cpu = sum(proc.cpu_times()[:2]) - cpu0
        finally:
            c.stop()
    pages = {name: {"p50_ms": round(1000 * statistics.median(v), 1),
                    "p99_ms": round(1000 * statistics.quantiles(v, n=100)[98], 1),
                    "max_ms": round(1000 * max(v), 1), "n": len(v)} for name, v in out.items()}
    return {"branches": BRANCHES, "open_incidents": open_count, "viewers": viewers,
            "pages": pages, "pages_per_s": round(sum(len(v) for v in out.values()) / elapsed, 1),
            "collector_cpu_share_of_core_pct": round(100 * cpu / elapsed, 1)}


async def _first_page(url: str) -> str:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(url + "/console/login", data={
                "user": "vera", "password": USERS["vera"][1], "next": "/console/incidents"}) as r:
            return await r.text()


if __name__ == "__main__":
    main(__doc__, run, "viewers keeping the pages open")
