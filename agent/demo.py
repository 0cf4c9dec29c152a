"""`branchwatch demo`: the real agent against a simulated branch.

Nothing is installed and nothing runs as root: a simulated upsd (NUT's
protocol on 127.0.0.1), a Megatec UPS on a pseudo-terminal, a "core
system" TCP service and a backup folder. A short story plays on them
(a power cut, a low battery, mains back, the core system lost and back)
while the agent prints each state change and serves /metrics.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import tempfile
import time
from pathlib import Path

from .config import from_dict
from .sim.megatec_responder import BATTERY_LOW, STANDBY, UTILITY_FAIL, MegatecResponder, q1_line
from .sim.nut_server import SimulatedUpsd

MAIN_ONLINE = {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "2400",
               "input.voltage": "229.8", "output.voltage": "230.1", "ups.load": "31",
               "ups.temperature": "27.5", "ups.mfr": "Santak", "ups.model": "Castle C3K"}


class CoreSystem:
    """A TCP service standing in for the core banking system."""

    def __init__(self):
        self.sock: socket.socket | None = None
        self.port = 0

    def up(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]

    def down(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def demo_config(upsd_port: int, serial_port: str, core_port: int, backups: Path, metrics_port: int):
    """The embedded config of the demo branch."""
    return from_dict({
        "agent": {"id": "demo-agent", "branch": "demo-branch-001", "region": "demo-county"},
        "metrics": {"address": "127.0.0.1", "port": metrics_port},
        "state": {"debounce": 2, "flap_window": 120, "flap_threshold": 6},
        "ups": [
            {"name": "main", "interval": 1, "nut": {"ups": "main", "port": upsd_port}},
            {"name": "rack", "interval": 1, "serial": {"port": serial_port, "timeout": 0.5}},
        ],
        "host": {
            "interval": 1,
            "tcp": [{"name": "core-system", "host": "127.0.0.1", "port": core_port,
                     "timeout": 0.5}],
            "listening": [{"name": "core-listener", "port": core_port}],
            "processes": [{"name": "agent", "cmdline": "branchwatch|agent.cli", "min_count": 1}],
            "disks": [{"mount": "/"}],
            "memory": {},
            "backups": [{"name": "nightly", "glob": str(backups / "*.bak"), "max_age": 3600}],
        },
    }, "<demo>")


def run_demo(port: int = 9811, duration: float | None = None, speed: float = 1.0) -> int:
    """Run the demo until Ctrl-C (or `duration` seconds)."""
    logging.getLogger("branchwatch.agent").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="branchwatch-demo-") as tmp, \
            SimulatedUpsd() as upsd, MegatecResponder() as rack:
        backups = Path(tmp) / "backups"
        backups.mkdir()
        (backups / "nightly.bak").write_bytes(b"demo backup\n" * 100)
        upsd.set("main", MAIN_ONLINE)
        rack.q1 = q1_line(bits=STANDBY)
        core = CoreSystem()
        core.up()
        config = demo_config(upsd.port, rack.port_path, core.port, backups, port)
        return asyncio.run(_play(config, upsd, rack, core, duration, speed))


def say(text: str) -> None:
    """A story line, set apart from the agent's event lines."""
    print(f"\n▶ {time.strftime('%H:%M:%S')}  {text}", flush=True)


async def _play(config, upsd, rack, core, duration, speed) -> int:
    from .probes import build_probes
    from .service import serve

    def announce(url: str) -> None:
        print(f"branchwatch demo: one branch, two UPS (NUT and serial), a core system, backups.\n"
              f"  metrics: {url}\n"
              f"  every state change is printed below; Ctrl-C stops.\n", flush=True)

    stop = asyncio.Event()
    agent = asyncio.create_task(serve(config, build_probes(config), "text", duration, stop,
                                      announce))
    story = asyncio.create_task(_story(upsd, rack, core, speed))
    try:
        return await agent
    finally:
        story.cancel()
        core.down()


async def _story(upsd, rack, core, speed) -> None:
    step = 6.0 / speed

    async def pause(n=1.0):
        await asyncio.sleep(step * n)

    while True:
        await pause()
        say("Mains power lost: both UPS switch to battery.")
        upsd.update("main", ups_status="OB DISCHRG", input_voltage="0.0", battery_charge="78",
                    battery_runtime="1300")
        rack.q1 = q1_line(input_voltage=0.0, battery_voltage=12.4, bits=UTILITY_FAIL | STANDBY)
        await pause(1.5)
        say("The outage goes on: main UPS battery low.")
        upsd.update("main", ups_status="OB DISCHRG LB", battery_charge="18", battery_runtime="240")
        rack.q1 = q1_line(input_voltage=0.0, battery_voltage=10.9,
                          bits=UTILITY_FAIL | BATTERY_LOW | STANDBY)
        await pause(1.5)
        say("Mains power is back: UPS charging.")
        upsd.update("main", ups_status="OL CHRG", input_voltage="230.4", battery_charge="21",
                    battery_runtime="600")
        rack.q1 = q1_line(bits=STANDBY)
        await pause(1.5)
        say("The core banking system stops answering.")
        core.down()
        await pause(1.5)
        say("The core system is back. The main UPS stops answering its upsd.")
        core.up()
        upsd.fail("main", "DATA-STALE")
        await pause(1.5)
        say("All normal again; the story repeats.")
        upsd.set("main", MAIN_ONLINE)
        await pause(2)


def main() -> None:  # pragma: no cover - `python -m agent.demo`
    sys.exit(run_demo())


if __name__ == "__main__":  # pragma: no cover
    main()
