"""Switch polling cost and link-down reaction time, against a real snmpsim.

snmpsim serves 2 switches (the system and IF-MIB rows of a real 48-port
recording, TP-Link JetStream: no ifXTable, so 32-bit counters); the agent
watches all 48 ports of each at a 10 s interval and listens for traps.
Side by side, in the same run: Debian's snmp_exporter walks the same
columns of the same switches every 10 s (scrape order alternating).
Reported:
  - CPU ms per switch walk, agent and snmp_exporter, per window (median,
    range) and their ratio (target: agent <= 2x snmp_exporter);
  - RSS and share of one core of both;
  - link-down-to-event delay: by trap (snmptrap linkDown, the table
    changed at the same moment) and by poll alone (no trap).
Targets (issue 3): trap delay < 1 s.

Run: python3 bench/switch_bench.py [--window 60] [--changes 6]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.agent import AgentProcess  # noqa: E402
from tests.support.paths import REPO  # noqa: E402
from tests.support.snmpsim import SnmpSim, free_udp_port, render, subset  # noqa: E402

import peers  # noqa: E402
from agent_bench import POLL_COLUMNS  # noqa: E402
from measure import main, spread  # noqa: E402

RECORDING = REPO.parent / "shared" / "testdata" / "snmprec" / "tplink-jetstream-48port-l2.snmprec"
SWITCHES, PORTS, INTERVAL = 2, 48, 10.0
WINDOWS = 5
OPER = "1.3.6.1.2.1.2.2.1.8."
LINK_DOWN, LINK_UP = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4"

def port_names(records: dict[str, str]) -> list[tuple[int, str]]:
    """(ifIndex, ifDescr) of the recording's physical ports."""
    rows = []
    for oid, value in records.items():
        descr = value.split("|", 1)[1]
        if oid.startswith("1.3.6.1.2.1.2.2.1.2.") and descr.startswith("gigabitEthernet"):
            rows.append((int(oid.rsplit(".", 1)[1]), descr))
    return sorted(rows)[:PORTS]

def config(sim: SnmpSim, ports, trap_port: int) -> dict:
    return {
        "agent": {"id": "bench", "branch": "bench"},
        "state": {"debounce": 2, "flap_threshold": 1000},
        "traps": {"address": "127.0.0.1", "port": trap_port},
        "switches": [{
            "name": f"sw{n}", "host": "127.0.0.1", "port": sim.port,
            "snmp": {"version": "2c", "community": f"sw{n}"}, "interval": INTERVAL,
            "interfaces": [{"descr": descr, "id": f"p{index}",
                            "role": "uplink-primary" if i == 0 else "access"}
                           for i, (index, descr) in enumerate(ports)]}
            for n in range(SWITCHES)],
    }

def set_oper(sim: SnmpSim, records: dict, index: int, up: bool) -> None:
    records[f"{OPER}{index}"] = f"2|{1 if up else 2}"
    sim.write("sw0", render(records))

def time_changes(sim, records, agent, index, changes, trap_port: int | None) -> list[float]:
    """Seconds from the port's change (and trap) to the agent's event, per change."""
    check = f"switch/sw0/if/p{index}/link"
    delays = []
    for i in range(changes):
        down = i % 2 == 0
        before = len(agent.events_for(check))
        set_oper(sim, records, index, not down)
        changed = time.time()
        if trap_port is not None:
            subprocess.run(["snmptrap", "-v2c", "-c", "sw0", f"127.0.0.1:{trap_port}", "",
                            LINK_DOWN if down else LINK_UP, f"1.3.6.1.2.1.2.2.1.1.{index}", "i",
                            str(index), f"{OPER}{index}", "i", "2" if down else "1"], check=True)
        want = "critical" if down else "ok"
        deadline = time.monotonic() + 4 * INTERVAL
        while time.monotonic() < deadline:
            evs = agent.events_for(check)
            if len(evs) > before and evs[-1]["new_state"] == want:
                delays.append(agent.event_times[id(evs[-1])] - changed)
                break
            time.sleep(0.005)
        else:
            raise RuntimeError(f"no {want} event for {check} (by {'trap' if trap_port else 'poll'}); "
                               f"events: {agent.events_for(check)[-3:]}")
        time.sleep(1.5)  # let snmpsim's whole-second mtime check move on
    return delays

def versus_snmp_exporter(agent, exporter, base: str, sim: SnmpSim, window: float) -> dict:
    """CPU per walk of the agent and of snmp_exporter over the same windows."""
    meter = peers.Meter({"agent": [agent.proc.pid], "snmp_exporter": [exporter.pid]})
    walks = [lambda n=n: peers.scrape(f"{base}/snmp?target=127.0.0.1:{sim.port}&module=sw{n}")
             for n in range(SWITCHES)]
    rows = peers.paired_windows(meter, WINDOWS, window, [(INTERVAL, walks)])
    per_walk = {n: [1000 * w[n]["cpu_s"] / (w[n]["elapsed_s"] / INTERVAL * SWITCHES) for w in rows]
                for n in ("agent", "snmp_exporter")}
    return {
        "cpu_ms_per_switch_walk": {n: peers.summary(v, 1) for n, v in per_walk.items()},
        "ratio_agent_to_snmp_exporter": peers.summary(
            [a / b for a, b in zip(per_walk["agent"], per_walk["snmp_exporter"]) if b > 0], 2),
        "cpu_pct": {n: peers.summary([w[n]["cpu_pct"] for w in rows], 3) for n in meter.procs},
        "rss_mb": {n: peers.summary([w[n]["rss_mb"] for w in rows], 1) for n in meter.procs},
        "windows": f"{WINDOWS} x {window:g} s"}


def run(window: float, changes: int) -> dict:
    out: dict = {}
    records = subset(RECORDING)
    ports = port_names(records)
    uplink = ports[0][0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = SnmpSim(tmp / "sim")
        for n in range(SWITCHES):
            sim.write(f"sw{n}", render(records))
        sim.start()
        try:
            trap_port = free_udp_port()
            exporter, base = peers.snmp_exporter(tmp, [f"sw{n}" for n in range(SWITCHES)],
                                                 POLL_COLUMNS)
            try:
                with AgentProcess(tmp, config(sim, ports, trap_port)) as agent:
                    time.sleep(INTERVAL + 2)  # warm-up: imports, first polls
                    out["switches_x_ports"] = f"{SWITCHES} x {len(ports)}"
                    out.update(versus_snmp_exporter(agent, exporter, base, sim, window))
                    peers.stop(exporter)
                    for how, port in (("trap", trap_port), ("poll", None)):
                        d = time_changes(sim, records, agent, uplink, changes, port)
                        out[f"link_down_delay_s_{how}"] = spread(d)
            finally:
                peers.stop(exporter)
        finally:
            sim.stop()
    return out

if __name__ == "__main__":
    main(__doc__, run, "link changes timed per method")
