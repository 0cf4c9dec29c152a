"""Agent footprint against its peers, in the same run on the same machine.

Two set-ups, each at the agent's default intervals, with heartbeats to a real
collector and a scrape of every /metrics every 15 s:
  - "ups_host": 1 UPS on a real upsd (dummy-ups) + 20 host checks, against
    node_exporter (scraped every 15 s) + NUT's upsmon (same UPS, POLLFREQ 5);
  - "switches": the same plus 2 switches x 48 ports on snmpsim (a real
    48-port recording), against node_exporter + upsmon + snmp_exporter
    walking the same ports of both switches every 10 s (the agent's
    default switch interval).
All processes run together; CPU and RSS are read over the same consecutive
windows, scrapes alternate A/B order. Reported per set-up: agent and peers
(median and range over windows) and the agent/peers ratios (median, range);
for ups_host also the delay from upsd serving a new ups.status to the
agent's event (default debounce 2), after the windows.
Targets: ups_host <= 1 % of a core and <= 40 MB RSS; switches
<= 2 % and <= 55 MB.

Run: python3 bench/agent_bench.py [--window 60] [--changes 5]   (--changes: windows)
Needs .ci/setup (nut-server, nut-client, snmpsim, prometheus-node-exporter,
prometheus-snmp-exporter).
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.snmp.if_mib import COLUMNS  # noqa: E402
from tests.support.agent import AgentProcess  # noqa: E402
from tests.support.collector import CollectorProcess  # noqa: E402
from tests.support.nut import NutServer  # noqa: E402
from tests.support.paths import REPO  # noqa: E402
from tests.support.snmpsim import SnmpSim, render, subset  # noqa: E402

import peers  # noqa: E402
from measure import main, spread  # noqa: E402

ONLINE = "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\ninput.voltage: 230\nups.load: 20\n"
ON_BATTERY = ONLINE.replace("OL", "OB DISCHRG")
TESTDATA = REPO.parent / "shared" / "testdata"
RECORDING = "tplink-jetstream-48port-l2.snmprec"
SWITCHES, PORTS = 2, 48
SCRAPE, WALK = 15.0, 10.0
TOKEN = "bench-token-0123456789abcdef"
# What the agent walks on a steady poll (names and speeds are re-read only on change).
POLL_COLUMNS = [COLUMNS[c] for c in ("ifAdminStatus", "ifOperStatus", "ifInOctets",
                                     "ifOutOctets", "ifInErrors", "ifInDiscards", "ifOutErrors")]


def host_checks(folder: Path, listeners: list[socket.socket]) -> dict:
    """20 service checks against things that really exist here."""
    ports = [s.getsockname()[1] for s in listeners]
    backups = folder / "backups"
    backups.mkdir(exist_ok=True)
    (backups / "db.bak").write_bytes(b"x" * 4096)
    return {
        "tcp": [{"name": f"svc{i}", "host": "127.0.0.1", "port": p} for i, p in enumerate(ports[:8])],
        "listening": [{"name": f"port{i}", "port": p} for i, p in enumerate(ports[8:12])],
        "processes": [{"name": "agent", "cmdline": "agent.cli"},
                      {"name": "upsd", "process": "upsd"},
                      {"name": "dummy-ups", "process": "dummy-ups"},
                      {"name": "init", "cmdline": "."}],
        "disks": [{"mount": "/"}, {"mount": str(folder)}],
        "backups": [{"name": "db", "glob": str(backups / "*.bak")},
                    {"name": "any", "glob": str(backups / "*")}],
    }


def port_names(records: dict[str, str]) -> list[str]:
    """ifDescr of the recording's first 48 physical ports."""
    rows = []
    for oid, value in records.items():
        descr = value.split("|", 1)[1]
        if oid.startswith(COLUMNS["ifDescr"] + ".") and descr.startswith("gigabitEthernet"):
            rows.append((int(oid.rsplit(".", 1)[1]), descr))
    return [d for _, d in sorted(rows)[:PORTS]]


def agent_config(folder, nut_port, collector_url, listeners, sim=None, ports=()) -> dict:
    config = {"agent": {"id": "bench", "branch": "bench"},
              "state": {"flap_threshold": 1000},   # timed status changes are not flapping
              "collector": {"url": collector_url, "token": TOKEN},
              "ups": [{"name": "ups0", "nut": {"ups": "ups0", "port": nut_port}}],
              "host": host_checks(folder, listeners)}
    if sim is not None:
        config["switches"] = [{
            "name": f"sw{n}", "host": "127.0.0.1", "port": sim.port,
            "snmp": {"community": f"sw{n}"},
            "interfaces": [{"descr": d, "id": f"p{i}", "role": "uplink-primary" if i == 0 else "access"}
                           for i, d in enumerate(ports)]} for n in range(SWITCHES)]
    return config


def status_delays(nut: NutServer, agent: AgentProcess, changes: int) -> list[float]:
    """Seconds from upsd serving a new ups.status to the agent's event, per change."""
    delays = []
    for i in range(changes):
        text, want = (ON_BATTERY, "warning") if i % 2 == 0 else (ONLINE, "ok")
        before = len(agent.events_for("ups/ups0/on_battery"))
        served_at = nut.set_device("ups0", text, poll=0.02)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            evs = agent.events_for("ups/ups0/on_battery")
            if len(evs) > before and evs[-1]["new_state"] == want:
                delays.append(agent.event_times[id(evs[-1])] - served_at)
                break
            time.sleep(0.01)
        else:
            raise RuntimeError(f"no {want} event for ups/ups0/on_battery")
    return delays


def measure_setup(name, tmp, nut, collector, listeners, windows, seconds, sim=None, ports=()):
    """One set-up: agent and peers side by side over paired windows."""
    folder = tmp / name
    folder.mkdir()
    config = agent_config(folder, nut.port, collector.url, listeners, sim, ports)
    node, node_url = peers.node_exporter(folder)
    mon = peers.upsmon(folder, "ups0", nut.port)
    started = [node, mon]
    try:
        pids = {"node_exporter": [node.pid], "upsmon": [mon.pid]}
        walks = []
        if sim is not None:
            snmp, base = peers.snmp_exporter(folder, [f"sw{n}" for n in range(SWITCHES)], POLL_COLUMNS)
            started.append(snmp)
            pids["snmp_exporter"] = [snmp.pid]
            walks = [lambda n=n: peers.scrape(f"{base}/snmp?target=127.0.0.1:{sim.port}&module=sw{n}")
                     for n in range(SWITCHES)]
        with AgentProcess(folder, config) as agent:
            time.sleep(20)   # warm-up: imports done, first polls and heartbeat made
            pids["agent"] = [agent.proc.pid]
            meter = peers.Meter(pids)
            jobs = [(SCRAPE, [lambda: peers.scrape(agent.metrics_url), lambda: peers.scrape(node_url)])]
            if walks:
                jobs.append((WALK, walks))
            rows = peers.paired_windows(meter, windows, seconds, jobs)
            delays = status_delays(nut, agent, 4) if sim is None else []
    finally:
        for p in started:
            peers.stop(p)
    peer_names = [n for n in pids if n != "agent"]
    for w in rows:
        w["peers"] = {"cpu_pct": sum(w[n]["cpu_pct"] for n in peer_names),
                      "rss_mb": sum(w[n]["rss_mb"] for n in peer_names)}
    out = {n: {"cpu_pct": peers.summary([w[n]["cpu_pct"] for w in rows], 3),
               "rss_mb": peers.summary([w[n]["rss_mb"] for w in rows], 1)}
           for n in [*pids, "peers"]}
    out["ratio_agent_to_peers"] = {"cpu": peers.ratio(rows, "agent", "peers", "cpu_pct"),
                                   "rss": peers.ratio(rows, "agent", "peers", "rss_mb")}
    if sim is not None:
        walks_per_window = [w["agent"]["elapsed_s"] / WALK * SWITCHES for w in rows]
        per_walk = {n: [1000 * w[n]["cpu_s"] / k for w, k in zip(rows, walks_per_window)]
                    for n in ("agent", "snmp_exporter")}
        out["cpu_ms_per_switch_walk"] = {
            "snmp_exporter": peers.summary(per_walk["snmp_exporter"], 1),
            # the agent's includes its UPS and host checks: an upper bound
            "agent_all_probes": peers.summary(per_walk["agent"], 1)}
    if delays:   # default debounce 2: two 2 s polls (target: interval + 0.5 s after the second)
        out["ups_status_to_event_s"] = spread(delays)
    out["windows"] = f"{windows} x {seconds:g} s"
    return out


def run(window: float, windows: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(12)]
        records = subset(TESTDATA / "snmprec" / RECORDING)
        sim = SnmpSim(tmp / "sim")
        for n in range(SWITCHES):
            sim.write(f"sw{n}", render(records))
        sim.start(probe_community="sw0")
        try:
            with NutServer(tmp / "nut", {"ups0": ONLINE}) as nut, \
                    CollectorProcess(tmp / "collector", {"bench": ("bench", TOKEN)}) as collector:
                peers.add_upsmon_user(nut.dir)
                nut.restart_upsd()
                out["ups_host"] = measure_setup("ups_host", tmp, nut, collector, listeners,
                                                windows, window)
                out["switches"] = measure_setup("switches", tmp, nut, collector, listeners,
                                                windows, window, sim, port_names(records))
        finally:
            sim.stop()
            for s in listeners:
                s.close()
    return out


if __name__ == "__main__":
    main(__doc__, run, "measurement windows per set-up")
