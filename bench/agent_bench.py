"""Agent cost and reaction time against real servers.

A real upsd serves 4 dummy UPS; 20 local services are checked (TCP
targets, listening ports, processes, disks, backups). The agent runs as
its own process at default intervals. Reported:
  - RSS of the agent process after warm-up, and its peak;
  - CPU: share of one core over the window, and CPU ms per UPS poll cycle;
  - delay from the moment upsd serves a new ups.status to the agent's event
    (debounce 1, and the default debounce 2).
Targets (issue 2): RSS < 40 MB, CPU < 1 % of a core, delay < interval + 0.5 s.

Run: python3 bench/agent_bench.py [--window 60] [--changes 6]
"""

from __future__ import annotations

import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.agent import AgentProcess  # noqa: E402
from tests.support.nut import NutServer  # noqa: E402

from measure import main, spread, steady_state  # noqa: E402

ONLINE = "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\ninput.voltage: 230\nups.load: 20\n"
ON_BATTERY = ONLINE.replace("OL", "OB DISCHRG")

def services(folder: Path, listeners: list[socket.socket]) -> dict:
    """20 service checks against things that really exist here."""
    ports = [s.getsockname()[1] for s in listeners]
    backups = folder / "backups"
    backups.mkdir()
    (backups / "db.bak").write_bytes(b"x" * 4096)
    return {
        "tcp": [{"name": f"svc{i}", "host": "127.0.0.1", "port": p} for i, p in enumerate(ports[:8])],
        "listening": [{"name": f"port{i}", "port": p} for i, p in enumerate(ports[8:12])],
        "processes": [{"name": "agent", "cmdline": "agent.cli"},
                      {"name": "upsd", "process": "upsd"},
                      {"name": "dummy-ups", "process": "dummy-ups", "min_count": 4},
                      {"name": "init", "cmdline": "."}],
        "disks": [{"mount": "/"}, {"mount": str(folder)}],
        "backups": [{"name": "db", "glob": str(backups / "*.bak")},
                    {"name": "any", "glob": str(backups / "*")}],
    }

def measure_delay(nut: NutServer, agent: AgentProcess, changes: int) -> list[float]:
    """Seconds from upsd serving a new status to the agent's event, per change."""
    delays = []
    for i in range(changes):
        text, want = (ON_BATTERY, "warning") if i % 2 == 0 else (ONLINE, "ok")
        seen_before = len(agent.events_for("ups/ups0/on_battery"))
        served_at = nut.set_device("ups0", text, poll=0.02)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            evs = agent.events_for("ups/ups0/on_battery")
            if len(evs) > seen_before and evs[-1]["new_state"] == want:
                delays.append(agent.event_times[id(evs[-1])] - served_at)
                break
            time.sleep(0.01)
        else:
            raise RuntimeError("no event")
        time.sleep(1)
    return delays

def run(window: float, changes: int) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(12)]
        with NutServer(tmp / "nut", {f"ups{i}": ONLINE for i in range(4)}) as nut:
            for debounce in (1, 2):
                folder = tmp / f"d{debounce}"
                folder.mkdir()
                config = {"agent": {"id": "bench", "branch": "bench"},
                          # Many timed changes would (rightly) count as flapping.
                          "state": {"debounce": debounce, "flap_threshold": 1000},
                          "ups": [{"name": f"ups{i}", "nut": {"ups": f"ups{i}", "port": nut.port}}
                                  for i in range(4)],
                          "host": services(folder, listeners)}
                with AgentProcess(folder, config) as agent:
                    if debounce == 1:
                        time.sleep(5)  # warm-up: imports done, first polls made
                        # a cycle = one 2 s UPS poll interval
                        out.update(steady_state(agent.proc.pid, window, cycle=2.0))
                    delays = measure_delay(nut, agent, changes)
                    out[f"delay_s_debounce{debounce}"] = spread(delays)
        for s in listeners:
            s.close()
    return out

if __name__ == "__main__":
    main(__doc__, run, "status changes timed per debounce")
