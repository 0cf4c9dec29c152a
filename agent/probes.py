"""Build the probes a config asks for, importing only what it uses.

The agent stays small: a branch without a serial UPS never imports
pyserial, one without host checks never imports psutil.
"""

from __future__ import annotations

from typing import Protocol

from .config import Config
from .links import LinkView
from .model import Reading


class Probe(Protocol):
    """What the runner drives; `read` blocks and runs in a worker thread."""

    name: str
    interval: float
    timeout: float

    def read(self) -> Reading: ...

    def close(self) -> None: ...


def build_probes(config: Config, links: LinkView | None = None) -> list[Probe]:
    """One probe per UPS, switch, line, TCP target and backup; one per host group.

    Switch and line probes share `links`, so a line can tell a device fault
    from a line fault by its uplink port's state.
    """
    probes: list[Probe] = []
    links = links if links is not None else LinkView()
    for ups in config.ups:
        if ups.snmp is not None:
            from .snmp.ups_probe import SnmpUpsProbe
            probes.append(SnmpUpsProbe(ups))
        elif ups.nut is not None:
            from .ups.nut_probe import NutUpsProbe
            probes.append(NutUpsProbe(ups, config.nut_client))
        else:
            from .ups.serial_probe import SerialUpsProbe
            probes.append(SerialUpsProbe(ups))
    if config.switches:
        from .snmp.switch_probe import SwitchProbe
        probes.extend(SwitchProbe(s, links) for s in config.switches)
    if config.lines:
        from .lines.probe import LineProbe
        probes.extend(LineProbe(spec, links) for spec in config.lines)
    h = config.host
    every = h.interval
    if h.processes:
        from .host.processes import ProcessProbe
        probes.append(ProcessProbe(h.processes, every))
    if h.listening:
        from .host.listening import ListeningProbe
        probes.append(ListeningProbe(h.listening, every))
    if h.tcp:
        from .host.tcp import TcpProbe
        probes.extend(TcpProbe(spec, every) for spec in h.tcp)
    if h.disks or h.memory or h.load:
        from .host.resources import ResourcesProbe
        probes.append(ResourcesProbe(h.disks, h.memory, h.load, every))
    if h.backups:
        from .host.backups import BackupProbe
        probes.extend(BackupProbe(spec, every) for spec in h.backups)
    return probes
