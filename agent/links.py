"""What the agent last knew about its switches and uplink ports, for diagnosis.

Switch probes (and the trap listener) write here; line probes read it to
tell a device fault from a line fault (branch plan §5.1, domain.md §4.1).
Everything runs on the agent's event loop or behind a lock, so a reader
always sees whole entries.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

DEVICE, LINE, LOCAL = "device", "line", "local"


@dataclass(frozen=True)
class PortState:
    """One watched port as last seen: None means not known."""

    oper_up: bool | None
    admin_up: bool | None
    at: float


class LinkView:
    """Latest switch reachability and port states, by switch name and port id."""

    def __init__(self):
        self._lock = threading.Lock()
        self._answering: dict[str, bool] = {}
        self._ports: dict[tuple[str, str], PortState] = {}
        self._local: dict[str, str] = {}   # switch -> this machine's NIC behind it

    def set_local_interface(self, switch: str, nic: str | None) -> None:
        with self._lock:
            if nic:
                self._local[switch] = nic

    def set_answering(self, switch: str, answering: bool) -> None:
        with self._lock:
            self._answering[switch] = answering

    def set_port(self, switch: str, port: str, state: PortState) -> None:
        with self._lock:
            self._ports[(switch, port)] = state

    def answering(self, switch: str) -> bool | None:
        with self._lock:
            return self._answering.get(switch)

    def port(self, switch: str, port: str) -> PortState | None:
        with self._lock:
            return self._ports.get((switch, port))

    def local_link_up(self, switch: str) -> bool | None:
        """This machine's own link towards the switch (None: not configured)."""
        with self._lock:
            nic = self._local.get(switch)
        return nic_link_up(nic) if nic else None


def nic_link_up(nic: str, sysfs: Path = Path("/sys/class/net")) -> bool | None:
    """True if the NIC has carrier and is up; None if there is no such NIC.

    carrier is read first: operstate lags a lost carrier by about a second.
    """
    base = sysfs / nic
    try:
        oper = (base / "operstate").read_text().strip()
    except OSError:
        return None
    try:
        carrier = (base / "carrier").read_text().strip()
    except OSError:
        carrier = None   # unreadable while the NIC is administratively down
    if carrier == "0":
        return False
    if oper == "unknown":  # loopback, tun and some virtual NICs never say "up"
        return None if carrier is None else carrier == "1"
    return oper == "up"


def diagnose_silent_switch(local_up: bool | None) -> tuple[str | None, str]:
    """The switch does not answer: device fault unless our own link is down.

    branch plan §5.1 (domain.md §4.1): decide device or line first.
    """
    if local_up is False:
        return LOCAL, "this machine's own link towards the switch is down"
    if local_up is True:
        return DEVICE, "this machine's own link is up, so the switch itself is at fault"
    return DEVICE, "assumed a device fault (no local_interface configured to rule out our own link)"


def diagnose_unreachable(port: PortState | None, answering: bool | None,
                         local_up: bool | None) -> tuple[str | None, str]:
    """The far side is unreachable over a line: whose fault is it?

    Uplink port down, or switch silent while our own link is up: device.
    Port up but the far side unreachable: line (branch plan §5.1).
    """
    if answering is False:
        return diagnose_silent_switch(local_up)
    if port is None or port.oper_up is None:
        return None, "uplink port state not known"
    if port.admin_up is False:
        return DEVICE, "uplink port is administratively down"
    if not port.oper_up:
        return DEVICE, "uplink port is down"
    return LINE, "uplink port is up but the far side does not answer"
