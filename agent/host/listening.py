"""Is something listening on each configured local TCP port."""

from __future__ import annotations

import ipaddress

import psutil

from ..config import ListenSpec
from ..model import CheckResult, Reading, Sample, State
from . import procnet

_WILDCARDS = {"0.0.0.0", "::"}


def normalise(address: str) -> str:
    """One spelling per address: '::ffff:10.0.0.1' → '10.0.0.1', zone ids dropped."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address  # not an IP literal; compared as written
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip)


def hostport(address: str, port: int) -> str:
    """'host:port', with IPv6 literals in brackets."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def listening_sockets() -> tuple[str, list[tuple[str, int]]]:
    """(source, [(address, port)]) of every TCP socket in LISTEN state.

    psutil works without root on Linux (pids come back None, which is
    fine here); elsewhere, or with a locked-down psutil, it can refuse,
    and /proc/net is read directly instead.
    """
    try:
        conns = psutil.net_connections("tcp")
    except psutil.AccessDenied:
        return "/proc/net", procnet.listening()
    found = [(c.laddr.ip, c.laddr.port) for c in conns
             if c.status == psutil.CONN_LISTEN and c.laddr]
    return "psutil", found


class ListeningProbe:
    """Checks the configured ports against one listing of listening sockets."""

    def __init__(self, specs: list[ListenSpec], interval: float):
        self.specs = list(specs)
        self.name = "listening"
        self.interval = interval
        self.timeout = 5.0  # a /proc/net read; bounds a wedged /proc only

    def read(self) -> Reading:
        """List listening sockets once, then judge every spec."""
        try:
            source, sockets = listening_sockets()
        except (psutil.Error, OSError) as e:
            reason = f"cannot list listening TCP sockets: {e}"
            checks = [CheckResult(f"listen/{s.name}", State.UNKNOWN, reason) for s in self.specs]
            return Reading(self.name, False, [], checks, {}, error=reason)
        by_port: dict[int, set[str]] = {}
        for address, port in sockets:
            by_port.setdefault(port, set()).add(normalise(address))
        samples, checks, ports = [], [], {}
        for spec in self.specs:
            on_port = by_port.get(spec.port, set())
            state, reason = self._verdict(spec, on_port)
            samples.append(Sample.of("branchwatch_port_listening", 1.0 if state is State.OK else 0.0,
                                     name=spec.name, port=str(spec.port)))
            checks.append(CheckResult(f"listen/{spec.name}", state, reason))
            ports[spec.name] = {"port": spec.port, "address": spec.address,
                                "listening_on": sorted(on_port)}
        return Reading(self.name, True, samples, checks, {"source": source, "ports": ports})

    @staticmethod
    def _verdict(spec: ListenSpec, on_port: set[str]) -> tuple[State, str]:
        """Ok when a socket covers the wanted address, critical otherwise."""
        if not on_port:
            where = hostport(spec.address, spec.port) if spec.address else f"TCP port {spec.port}"
            return State.CRITICAL, f"nothing listens on {where}"
        shown = ", ".join(sorted(on_port))
        if spec.address is None:
            return State.OK, f"TCP port {spec.port} is listening on {shown}"
        wanted = normalise(spec.address)
        # A wildcard socket accepts connections to every local address.
        if wanted in on_port or on_port & _WILDCARDS:
            return State.OK, f"{hostport(spec.address, spec.port)} is listening (bound to {shown})"
        return State.CRITICAL, (f"nothing listens on {hostport(spec.address, spec.port)} "
                                f"(port {spec.port} is open only on {shown})")

    def close(self) -> None:
        """Nothing to release."""
