"""Collector throughput and reaction time, against Alertmanager and a real upsd.

  - ingest (--pairs A/B pairs, interleaved, order swapped every pair): a fresh
    collector (SQLite WAL, synchronous=FULL: every acknowledged batch is
    fsync'd) and a fresh Debian prometheus-alertmanager, each fed by the same
    client code for --window seconds: 8 posters, batches of 100 new events
    (for Alertmanager, the same events as 100 unique alerts). The collector's
    figure counts events acknowledged AND applied by its engine: if the
    engine's lag at the end of the window is 2 s or more, only what it applied
    in the window counts. Per pair: events/s, CPU us per event, the ratio.
  - heartbeats: 5,000 enrolled agents, each posting a heartbeat (20 checks)
    every 15 s, spread evenly; p50/p99/max latency and collector CPU;
  - delay: a real upsd (dummy-ups) and a real agent sending to the
    collector; from the moment upsd serves "OB" to the moment the incident
    is listed by the collector's API (median, p99, max over --changes), and
    the p99 of ack -> incident change from the collector's own histogram.
Targets: durable ingest >= 1.0x Alertmanager (and >= 20,000
events/s on a quiet 2-core machine), heartbeat p99 under 50 ms, UPS change
to incident p99 <= 3 s, ack -> incident p99 < 100 ms. Absolute figures
depend on the machine and its load (reported): compare the ratios.

With --store sqlite,postgresql every pair also runs a collector whose store is
a real PostgreSQL (started here: initdb + pg_ctl, fsync and synchronous_commit
on; a fresh database per run), in the same run: "collector_postgresql" and
its ratio to Alertmanager beside the SQLite figures.

Run: python3 bench/collector_bench.py [--window 20] [--pairs 3] [--changes 6]
     [--only ingest,heartbeats,delay] [--store sqlite,postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from collector.api import token_hash  # noqa: E402
from tests.support.agent import AgentProcess  # noqa: E402
from tests.support.collector import CollectorProcess  # noqa: E402
from tests.support.nut import NutServer  # noqa: E402

from tests.support.notify import Alertmanager  # noqa: E402

from measure import spread  # noqa: E402

INGEST_AGENTS, BATCH, CHECKS = 8, 100, 200
REPLAY_FROM = datetime.now(timezone.utc) - timedelta(days=14)
HB_AGENTS, HB_INTERVAL, HB_CHECKS = 5000, 15.0, 20
OPERATOR = "bench-operator-token-xxxxxxxxxxxxxxxx"
ONLINE = "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\ninput.voltage: 230\n"
ON_BATTERY = ONLINE.replace("OL", "OB DISCHRG")


STARTUP = 90.0      # seconds a collector may take to start on a loaded machine


class Started:
    """A collector started with a patient timeout, stopped at the end."""

    def __init__(self, c: CollectorProcess):
        self.c = c

    def __enter__(self) -> CollectorProcess:
        return self.c.start(timeout=STARTUP)

    def __exit__(self, *exc) -> None:
        self.c.stop()


def _cpu(proc: psutil.Process) -> float:
    return sum(proc.cpu_times()[:2])


def batch_body(agent: str, seq: int) -> bytes:
    """100 new events of one agent, as a spool replay after a long cut sends them.

    Each of CHECKS checks goes warning in one pass and ok in the next, 3 s
    apart; ten minutes separate passes. So every other pass opens an incident
    of CHECKS faults and the pass after clears and resolves it. The replay
    starts 14 days back: the collector applies events observed within a month
    of their arrival, so all of these go through the incident engine."""
    events = []
    for i in range(BATCH):
        n = seq * BATCH + i
        n_pass, k = divmod(n, CHECKS)
        at = REPLAY_FROM + timedelta(minutes=20 * n_pass, seconds=3 * k)
        events.append({"id": uuid.uuid4().hex, "kind": "state", "agent": agent, "branch": agent,
                       "check": f"tcp/svc{k}", "old_state": None,
                       "new_state": "warning" if n_pass % 2 == 0 else "ok",
                       "reason": "connect refused", "observed_at": at.isoformat()})
    return json.dumps({"agent": agent, "branch": agent, "sent_at":
                       datetime.now(timezone.utc).isoformat(), "events": events}).encode()


def alerts_body(agent: str, seq: int) -> bytes:
    """The same 100 events as `batch_body`, as Prometheus posts alerts to Alertmanager:
    one alert per event, its id a label (unique: Alertmanager keeps every one)."""
    batch = json.loads(batch_body(agent, seq))
    return json.dumps([{"labels": {"alertname": "BranchwatchBench", "agent": agent,
                                   "check": e["check"], "id": e["id"]},
                        "annotations": {"reason": e["reason"], "state": e["new_state"]},
                        "startsAt": e["observed_at"]} for e in batch["events"]]).encode()


async def _ingest_client(url: str, agent: str, until: float, out: list,
                         body=batch_body, count=lambda r, ack: len(ack["accepted"])) -> None:
    """One poster: the next batch as soon as the last is acknowledged (both peers)."""
    headers = {"Authorization": f"Bearer tok-{agent}-xxxxxxxxxxxxxxxx",
               "Content-Type": "application/json"}
    seq = 0
    async with aiohttp.ClientSession(headers=headers) as http:
        while time.monotonic() < until:
            data = body(agent, seq)
            seq += 1
            async with http.post(url, data=data) as r:
                ack = await r.json(content_type=None)
                if r.status != 200:
                    raise RuntimeError(f"ingest refused: {r.status} {ack}")
                out.append(count(r, ack))


async def _ingest_all(url: str, agents: list[str], window: float, out: list | None = None,
                      **how) -> None:
    until = time.monotonic() + window
    await asyncio.gather(*(_ingest_client(url, a, until, out if out is not None else [], **how)
                           for a in agents))


def _server_cpu(pg) -> float:
    """CPU seconds of the PostgreSQL server: its postmaster and every backend now
    running (the collector's sessions live through the window)."""
    if pg is None:
        return 0.0
    pid = int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])
    master = psutil.Process(pid)
    total = _cpu(master)
    for child in master.children():
        try:
            total += _cpu(child)
        except psutil.NoSuchProcess:
            pass
    return total


def run_ingest(folder: Path, window: float, dsn: str | None = None, pg=None) -> dict:
    """The collector: events acknowledged (fsync'd) and applied by its engine; on
    the PostgreSQL database `dsn` of server `pg` when given (its CPU is counted
    too), else its SQLite file."""
    agents = {f"ing{i}": (f"ing{i}", f"tok-ing{i}-xxxxxxxxxxxxxxxx")
              for i in range(INGEST_AGENTS)}
    with Started(CollectorProcess(folder, agents, max_body=1 << 20, dsn=dsn)) as c:
        proc = psutil.Process(c.proc.pid)
        url = c.url + "/api/v1/events"
        asyncio.run(_ingest_all(url, list(agents), 2.0))           # warm-up
        accepted0 = _scrape(c.url, 'branchwatch_collector_events_ingested_total{result="accepted"}')
        while _scrape(c.url, "branchwatch_collector_engine_applied_total") < accepted0:
            time.sleep(0.05)             # the warm-up applied: the window starts level
        applied0 = _scrape(c.url, "branchwatch_collector_engine_applied_total")
        commits0 = _scrape(c.url, "branchwatch_collector_store_commits_total")
        cpu0, t0, server0 = _cpu(proc), time.monotonic(), _server_cpu(pg)
        counts: list[int] = []
        asyncio.run(_ingest_all(url, list(agents), window, counts))
        elapsed = time.monotonic() - t0
        applied = _scrape(c.url, "branchwatch_collector_engine_applied_total") - applied0
        cpu = _cpu(proc) - cpu0
        server = _server_cpu(pg) - server0
        commits = _scrape(c.url, "branchwatch_collector_store_commits_total") - commits0
        accepted = sum(counts)
        # The engine's lag at the end of the window, in seconds: how long it takes
        # to apply what was acknowledged and not applied yet.
        drain0 = time.monotonic()
        while _scrape(c.url, "branchwatch_collector_engine_applied_total") < applied0 + accepted:
            time.sleep(0.05)
        lag = time.monotonic() - drain0
        # Counted only as far as applied: an engine falling behind does not count.
        counted = accepted if lag < 2.0 else applied
        extra = {} if pg is None else {
            "postgresql_cpu_us_per_event": round(1e6 * server / max(accepted, 1), 1),
            "postgresql_cpu_cores": round(server / elapsed, 2)}
        return {**extra, "events_per_s": round(counted / elapsed),
                "acked_per_s": round(accepted / elapsed),
                "applied_in_window_per_s": round(applied / elapsed),
                "engine_lag_at_end_s": round(lag, 2),
                "cpu_us_per_event": round(1e6 * cpu / max(accepted, 1), 1),
                "collector_cpu_cores": round(cpu / elapsed, 2),
                "commits_per_s": round(commits / elapsed),
                "db_mb": round(_db_bytes(folder, dsn) / 2**20, 1)}


def _db_bytes(folder: Path, dsn: str | None) -> int:
    if dsn is None:
        return (folder / "data" / "collector.db").stat().st_size
    import psycopg
    with psycopg.connect(dsn) as pg:
        return pg.execute("SELECT pg_database_size(current_database())").fetchone()[0]


def run_alertmanager(folder: Path, window: float) -> dict:
    """Debian's prometheus-alertmanager taking the same events as unique alerts,
    from the same client code (in memory: no fsync per batch)."""
    agents = [f"ing{i}" for i in range(INGEST_AGENTS)]
    am = Alertmanager(folder)
    # Its plainest setup, the cheapest for it: one route, alerts grouped as one
    # (Alertmanager's default group_by), a receiver that sends nothing.
    (am.dir / "am.yml").write_text("route: {receiver: quiet}\nreceivers: [{name: quiet}]\n")
    with am:
        proc = psutil.Process(am.proc.pid)
        url = am.url + "/api/v2/alerts"
        how = {"body": alerts_body, "count": lambda r, ack: BATCH}
        asyncio.run(_ingest_all(url, agents, 2.0, **how))          # warm-up
        cpu0, t0 = _cpu(proc), time.monotonic()
        counts: list[int] = []
        asyncio.run(_ingest_all(url, agents, window, counts, **how))
        elapsed = time.monotonic() - t0
        cpu = _cpu(proc) - cpu0
        return {"events_per_s": round(sum(counts) / elapsed),
                "cpu_us_per_event": round(1e6 * cpu / max(sum(counts), 1), 1),
                "cpu_cores": round(cpu / elapsed, 2)}


def run_pairs(folder: Path, window: float, pairs: int, pg=None) -> dict:
    """Collector and Alertmanager A/B, interleaved (the order swaps every pair, so a
    change in the machine's load falls on both): each pair's ratio, and the range.
    With `pg` (a PostgresServer), a collector on PostgreSQL runs in every pair too."""
    out = []
    runs = [("collector", run_ingest), ("alertmanager", run_alertmanager)]
    if pg is not None:
        runs.append(("collector_postgresql",
                     lambda f, w: run_ingest(f, w, dsn=pg.create_database(), pg=pg)))
    for k in range(pairs):
        got = {}
        for name, fn in runs if k % 2 == 0 else runs[::-1]:
            got[name] = fn(folder / f"{name}-{k}", window)
        am = got["alertmanager"]
        for name in [n for n, _ in runs if n != "alertmanager"]:
            suffix = name.removeprefix("collector")
            got["ratio" + suffix] = round(got[name]["events_per_s"] / am["events_per_s"], 2)
            got["cpu_per_event_ratio" + suffix] = round(got[name]["cpu_us_per_event"]
                                                        / am["cpu_us_per_event"], 2)
        out.append(got)
    summary = {"pairs": out, "load_average_1m": round(psutil.getloadavg()[0], 2)}
    for suffix in [n.removeprefix("collector") for n, _ in runs if n != "alertmanager"]:
        ratios = [p["ratio" + suffix] for p in out]
        cpu = [p["cpu_per_event_ratio" + suffix] for p in out]
        summary.update({"ratio_range" + suffix: [min(ratios), max(ratios)],
                        "ratio_median" + suffix: statistics.median(ratios),
                        "cpu_per_event_ratio_range" + suffix: [min(cpu), max(cpu)]})
    return summary


def _scrape(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return 0.0


def heartbeat_body(agent: str) -> bytes:
    checks = [{"check": f"tcp/svc{i}", "state": "ok", "reason": "answers",
               "since": "2026-01-05T09:00:00+00:00"} for i in range(HB_CHECKS)]
    return json.dumps({"agent": agent, "branch": agent, "region": "r1",
                       "sent_at": datetime.now(timezone.utc).isoformat(),
                       "interval": HB_INTERVAL, "spool_depth": 0, "checks": checks}).encode()


async def _heartbeats(url: str, window: float) -> list[float]:
    latencies: list[float] = []
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as http:
        async def one(i: int, at: float):
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            agent = f"hb{i}"
            headers = {"Authorization": f"Bearer tok-{agent}-xxxxxxxxxxxxxxxx",
                       "Content-Type": "application/json"}
            t = time.monotonic()
            async with http.post(url + "/api/v1/heartbeat", data=heartbeat_body(agent),
                                 headers=headers) as r:
                await r.read()
                if r.status != 204:
                    raise RuntimeError(f"heartbeat refused: {r.status}")
            latencies.append(time.monotonic() - t)

        start = time.monotonic() + 0.5
        tasks, rounds = [], max(1, round(window / HB_INTERVAL))
        for k in range(rounds):
            for i in range(HB_AGENTS):
                tasks.append(one(i, start + k * HB_INTERVAL + i * HB_INTERVAL / HB_AGENTS))
        await asyncio.gather(*tasks)
    return latencies


def run_heartbeats(folder: Path, window: float) -> dict:
    agents = {f"hb{i}": (f"hb{i}", "r1", f"tok-hb{i}-xxxxxxxxxxxxxxxx") for i in range(HB_AGENTS)}
    c = CollectorProcess(folder, agents).start(timeout=STARTUP)
    try:
        proc = psutil.Process(c.proc.pid)
        cpu0, t0 = _cpu(proc), time.monotonic()
        lat = sorted(asyncio.run(_heartbeats(c.url, window)))
        elapsed = time.monotonic() - t0
        cpu = _cpu(proc) - cpu0
    finally:
        c.stop()
    ms = [x * 1000 for x in lat]
    return {"agents": HB_AGENTS, "requests": len(ms), "per_s": round(len(ms) / elapsed),
            "p50_ms": round(statistics.median(ms), 1),
            "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 1), "max_ms": round(ms[-1], 1),
            "collector_cpu_cores": round(cpu / elapsed, 2)}


def _incidents(url: str) -> list[dict]:
    req = urllib.request.Request(url + "/api/v1/incidents?status=open",
                                 headers={"Authorization": f"Bearer {OPERATOR}"})
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read())["incidents"]


def run_delay(folder: Path, changes: int) -> list[float]:
    agents = {"a1": ("B1", "north", "tok-a1-xxxxxxxxxxxxxxxx")}
    extra = (f"operators:\n  - {{name: bench, token_sha256: {token_hash(OPERATOR)}}}\n"
             "incidents: {window: 1}\n")
    delays = []
    with NutServer(folder / "nut", {"ups0": ONLINE}) as nut, \
            Started(CollectorProcess(folder / "collector", agents, extra=extra)) as c:
        config = {"agent": {"id": "a1", "branch": "B1", "region": "north"},
                  # Default debounce (2 polls): the delay a real branch sees.
                  "state": {"flap_threshold": 1000},
                  "ups": [{"name": "ups0", "nut": {"ups": "ups0", "port": nut.port}}],
                  "collector": {"url": c.url, "token": "tok-a1-xxxxxxxxxxxxxxxx",
                                "spool": {"path": str(folder / "spool.db")}}}
        (folder / "agent").mkdir()
        with AgentProcess(folder / "agent", config):
            time.sleep(3)
            for _ in range(changes):
                served = nut.set_device("ups0", ON_BATTERY, poll=0.02)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    if any(f["check"] == "ups/ups0/on_battery" and f["active"]
                           for i in _incidents(c.url) for f in i["faults"]):
                        delays.append(time.time() - served)
                        break
                    time.sleep(0.02)
                else:
                    raise RuntimeError("no incident at the collector")
                nut.set_device("ups0", ONLINE, poll=0.02)
                while any(i["status"] == "open" for i in _incidents(c.url)):
                    time.sleep(0.1)
                time.sleep(2)   # past the 1 s grouping window: the next cut is a new incident
        engine_p99 = engine_delay_p99(c.url)
    return delays, engine_p99


def engine_delay_p99(url: str) -> float | None:
    """The p99 of ack -> incident change (engine_delay histogram), from its buckets."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        lines = r.read().decode().splitlines()
    buckets = []
    for line in lines:
        if line.startswith("branchwatch_collector_engine_delay_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            buckets.append((float(le), float(line.split()[1])))
    total = buckets[-1][1] if buckets else 0
    for le, n in buckets:
        if total and n >= 0.99 * total:
            return le
    return None


def run(window: float, changes: int, pairs: int, only: list[str],
        stores: list[str] = ("sqlite",)) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        pg = None
        if "postgresql" in stores and "ingest" in only:
            from tests.support.postgres import PostgresServer
            pg = stack.enter_context(PostgresServer())
        if "ingest" in only:
            out["ingest_vs_alertmanager"] = run_pairs(tmp / "ingest", window, pairs, pg)
        if "heartbeats" in only:
            out["heartbeats"] = run_heartbeats(tmp / "hb", max(window, HB_INTERVAL))
        if "delay" in only:
            delays, engine_p99 = run_delay(tmp / "delay", changes)
            out["ups_to_incident_s"] = {**spread(delays), "p99": round(
                sorted(delays)[max(0, int(len(delays) * 0.99) - 1)], 3)}
            out["ack_to_incident_p99_s_at_most"] = engine_p99
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--window", type=float, default=20.0, help="seconds per ingest run")
    ap.add_argument("--changes", type=int, default=6, help="UPS changes timed to the incident")
    ap.add_argument("--pairs", type=int, default=3, help="collector/Alertmanager pairs")
    ap.add_argument("--only", default="ingest,heartbeats,delay",
                    help="comma-separated: ingest, heartbeats, delay")
    ap.add_argument("--store", default="sqlite",
                    help="comma-separated stores for the ingest pairs: sqlite, postgresql "
                         "(SQLite always runs: the figures are side by side)")
    args = ap.parse_args()
    stores = args.store.split(",")
    if unknown := set(stores) - {"sqlite", "postgresql"}:
        ap.error(f"--store: expected sqlite or postgresql, got {', '.join(sorted(unknown))}")
    print(json.dumps(run(args.window, args.changes, args.pairs, args.only.split(","), stores),
                     indent=2))
