"""One simulated branch: its UPS (on the shared simulated upsd), its funds
switch (SNMP), the far sides of its primary and backup lines, and the core
system as the branch reaches it. The story changes these; the branch's real
agent sees the change the way it would see it at a real branch.
"""

from __future__ import annotations

import asyncio
import fnmatch
import threading

from agent.sim.nut_server import SimulatedUpsd
from agent.sim.snmp_switch import SimPort, SimulatedSwitch
from agent.wire import Event

from .config import BranchPorts, BranchSpec
from .network import Endpoint

ON_MAINS = {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "2700",
            "input.voltage": "229.8", "output.voltage": "230.1", "ups.load": "34",
            "ups.temperature": "27.5", "ups.mfr": "Santak", "ups.model": "Castle C3K"}
ON_BATTERY = {"ups.status": "OB DISCHRG", "input.voltage": "0.0", "battery.charge": "87",
              "battery.runtime": "1850"}
ON_GENERATOR = {"ups.status": "OL CHRG", "input.voltage": "226.4", "battery.charge": "71"}


def switch_ports() -> list[SimPort]:
    """A small branch switch: two uplinks (the backup one shut), then access ports."""
    return [SimPort("gi1", alias="uplink carrier A (primary line)", traffic=600_000),
            SimPort("gi2", alias="uplink carrier B (backup line)", admin_up=False,
                    writable=True, traffic=600_000),
            SimPort("gi3", alias="teller 1"), SimPort("gi4", alias="teller 2"),
            SimPort("gi5", alias="ATM"), SimPort("gi6", alias="branch server")]


class EventLog:
    """The agent's events as they happen (its EventSink, beside the spool)."""

    def __init__(self):
        self._lock = threading.Lock()
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def find(self, check: str, new_state: str | None = None, since: float = 0.0) -> list[Event]:
        """Events of checks matching `check` (a glob), in `new_state`, observed after `since`."""
        with self._lock:
            return [e for e in self.events if fnmatch.fnmatchcase(e.check, check)
                    and new_state in (None, e.new_state) and e.observed_at.timestamp() >= since]


class Branch:
    """The simulated equipment of one branch, and what the story does to it."""

    def __init__(self, spec: BranchSpec, upsd: SimulatedUpsd):
        self.spec, self.upsd = spec, upsd
        self.switch = SimulatedSwitch(switch_ports(), name=f"sw-{spec.branch.lower()}",
                                      location=f"{spec.branch} equipment room")
        self.primary = Endpoint(f"{spec.branch} primary line")
        self.backup = Endpoint(f"{spec.branch} backup line")
        self.core = Endpoint(f"core system from {spec.branch}")
        self.log = EventLog()

    @property
    def name(self) -> str:
        """The branch id, e.g. BR-north-01."""
        return self.spec.branch

    async def start(self) -> None:
        """Power on: mains, the switch, both lines answering, the core system up."""
        self.upsd.set(self.spec.ups, ON_MAINS)
        await asyncio.to_thread(self.switch.start)
        for endpoint in (self.primary, self.backup, self.core):
            await endpoint.serve()

    async def stop(self) -> None:
        """Power off: release every port."""
        for endpoint in (self.primary, self.backup, self.core):
            await endpoint.close()
        await asyncio.to_thread(self.switch.stop)

    def ports(self) -> BranchPorts:
        """Where the agent finds this branch's equipment."""
        return BranchPorts(upsd=self.upsd.port, switch=self.switch.port,
                           primary=self.primary.port, backup=self.backup.port,
                           core=self.core.port)

    # --- power (domain.md §4.2) -----------------------------------------------------
    def mains_lost(self) -> None:
        """The UPS runs the branch on battery."""
        self.upsd.update(self.spec.ups, **_keys(ON_BATTERY))

    def on_generator(self) -> None:
        """The generator feeds the UPS: input voltage is back (domain.md §1)."""
        self.upsd.update(self.spec.ups, **_keys(ON_GENERATOR))

    def mains_back(self) -> None:
        """Mains power again; the battery charged."""
        self.upsd.set(self.spec.ups, ON_MAINS)

    # --- lines (domain.md §4.1) -----------------------------------------------------
    async def cut_primary(self) -> None:
        """The primary line's far side goes silent (a cut cable)."""
        await self.primary.silence()

    async def repair_primary(self) -> None:
        """The primary line's far side answers again."""
        await self.primary.serve()

    def backup_port(self) -> str:
        """The backup uplink port as the switch has it: 'admin up, oper up' and so on."""
        up = {True: "up", False: "down"}
        return (f"gi2 admin {up[self.switch.admin_up('gi2')]}, "
                f"oper {up[self.switch.oper_up('gi2')]}")

    # --- the core system --------------------------------------------------------------
    async def core_lost(self) -> None:
        """The core system refuses this branch's connections."""
        await self.core.refuse()

    async def core_back(self) -> None:
        """The core system answers this branch again."""
        await self.core.serve()

    def failover_steps(self, since: float = 0.0) -> list[Event]:
        """The agent's failover actions (action/failover/STEP) since `since`."""
        return self.log.find("action/failover/*", since=since)


def _keys(values: dict[str, str]) -> dict[str, str]:
    """SimulatedUpsd.update takes ups_status for ups.status."""
    return {k.replace(".", "_"): v for k, v in values.items()}
