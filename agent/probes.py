"""Build the probes a config asks for, importing only what it uses.

The agent stays small: a branch without a serial UPS never imports
pyserial, one without host checks never imports psutil.
"""

from __future__ import annotations

from typing import Protocol

from .config import Config
from .model import Reading


class Probe(Protocol):
    """What the runner drives; `read` blocks and runs in a worker thread."""

    name: str
    interval: float
    timeout: float

    def read(self) -> Reading: ...

    def close(self) -> None: ...


def build_probes(config: Config) -> list[Probe]:
    """One probe per UPS, per TCP target, per backup; one for each host group."""
    probes: list[Probe] = []
    for ups in config.ups:
        if ups.nut is not None:
            from .ups.nut_probe import NutUpsProbe
            probes.append(NutUpsProbe(ups, config.nut_client))
        else:
            from .ups.serial_probe import SerialUpsProbe
            probes.append(SerialUpsProbe(ups))
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
