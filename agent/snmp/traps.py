"""SNMP v2c trap listener: linkDown/linkUp/coldStart/warmStart act at once.

A trap changes the check state immediately (no debounce: the device itself
said so), then the switch is polled at once to confirm. A trap from an
unknown source or with the wrong community is counted and dropped.

Decoding uses pysnmp's message API; the UDP socket is asyncio's own, so
every drop can be counted with its reason (pysnmp's receiver drops bad
communities silently).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from dataclasses import dataclass, field
from typing import Callable

from ..model import CheckResult, Sample
from .client import to_python

log = logging.getLogger("branchwatch.traps")

SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0"
TRAPS = {  # RFC 3418 / RFC 2863 generic traps
    "1.3.6.1.6.3.1.1.5.1": "coldStart",
    "1.3.6.1.6.3.1.1.5.2": "warmStart",
    "1.3.6.1.6.3.1.1.5.3": "linkDown",
    "1.3.6.1.6.3.1.1.5.4": "linkUp",
}
IF_INDEX, IF_ADMIN, IF_OPER = "1.3.6.1.2.1.2.2.1.1.", "1.3.6.1.2.1.2.2.1.7.", "1.3.6.1.2.1.2.2.1.8."


@dataclass
class Trap:
    """One decoded notification."""

    community: str
    trap_oid: str
    varbinds: dict[str, object]
    inform: bool = False

    @property
    def name(self) -> str:
        return TRAPS.get(self.trap_oid, "other")

    def if_index(self) -> int | None:
        """The ifIndex a link trap is about (from ifIndex, or any ifTable OID's suffix)."""
        for oid, value in self.varbinds.items():
            if oid.startswith(IF_INDEX) and isinstance(value, int):
                return value
        for oid in self.varbinds:
            for prefix in (IF_OPER, IF_ADMIN):
                if oid.startswith(prefix) and oid[len(prefix):].isdigit():
                    return int(oid[len(prefix):])
        return None

    def status(self, prefix: str) -> int | None:
        for oid, value in self.varbinds.items():
            if oid.startswith(prefix) and isinstance(value, int):
                return value
        return None


class TrapError(ValueError):
    """Not a v2c notification we can read; the message is the drop reason."""


def decode(data: bytes) -> tuple[Trap, bytes | None]:
    """Decode a v2c trap or inform; returns it and the response to send (informs)."""
    from pyasn1.codec.ber import decoder, encoder
    from pyasn1.error import PyAsn1Error
    from pysnmp.proto import api
    from pysnmp.proto.error import ProtocolError
    try:
        version = int(api.decodeMessageVersion(data))
    except (ProtocolError, PyAsn1Error, ValueError):
        raise TrapError("malformed") from None
    if version != api.SNMP_VERSION_2C:
        raise TrapError("version")   # v1 and v3 notifications are not accepted
    p = api.PROTOCOL_MODULES[version]
    try:
        msg, _ = decoder.decode(data, asn1Spec=p.Message())
        community = bytes(p.apiMessage.get_community(msg)).decode("utf-8", "replace")
        pdu = p.apiMessage.get_pdu(msg)
        inform = pdu.isSameTypeWith(p.InformRequestPDU())
        if not (inform or pdu.isSameTypeWith(p.SNMPv2TrapPDU())):
            raise TrapError("not_a_trap")
        varbinds = {str(oid): to_python(v) for oid, v in p.apiPDU.get_varbinds(pdu)}
        response = None
        if inform:
            rsp_msg = p.apiMessage.get_response(msg)
            rsp_pdu = p.apiPDU.get_response(pdu)
            p.apiPDU.set_varbinds(rsp_pdu, p.apiPDU.get_varbinds(pdu))
            p.apiMessage.set_pdu(rsp_msg, rsp_pdu)
            response = encoder.encode(rsp_msg)
    except (PyAsn1Error, ProtocolError, TypeError, ValueError) as e:
        if isinstance(e, TrapError):
            raise
        raise TrapError("malformed") from None
    trap_oid = varbinds.get(SNMP_TRAP_OID)
    if not isinstance(trap_oid, str):
        raise TrapError("malformed")
    return Trap(community, trap_oid, varbinds, inform), response


@dataclass
class TrapCounts:
    """Traps received by (device, trap) and dropped by reason, for /metrics."""

    received: dict[tuple[str, str], int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def accept(self, device: str, trap: str) -> None:
        with self._lock:
            self.received[(device, trap)] = self.received.get((device, trap), 0) + 1

    def drop(self, reason: str) -> None:
        with self._lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def samples(self) -> list[Sample]:
        with self._lock:
            out = [Sample.of("branchwatch_snmp_traps_received", n, device=d, trap=t)
                   for (d, t), n in sorted(self.received.items())]
            reasons = {"unknown_source", "community", "version", "malformed", "not_a_trap"}
            out += [Sample.of("branchwatch_snmp_traps_dropped", self.dropped.get(r, 0), reason=r)
                    for r in sorted(reasons | set(self.dropped))]
        return out


class TrapListener(asyncio.DatagramProtocol):
    """Receives traps for the configured switches and acts on them.

    `switches` is a list of (switch config, its SwitchProbe). `apply(results)`
    applies confirmed verdicts; `poll_now(probe_name)` asks for a poll;
    `publish(samples)` updates the trap counters in /metrics.
    """

    def __init__(self, switches, apply: Callable[[list[CheckResult]], None],
                 poll_now: Callable[[str], None], publish: Callable[[list[Sample]], None],
                 links=None, clock: Callable[[], float] | None = None):
        import time
        self.switches = switches
        self.apply, self.poll_now, self.publish = apply, poll_now, publish
        self.links = links
        self.clock = clock or time.time
        self.counts = TrapCounts()
        self.transport: asyncio.DatagramTransport | None = None
        self._addresses: dict[str, set[str]] = {}

    async def start(self, address: str, port: int) -> tuple[str, int]:
        """Resolve the switches' addresses and bind; returns the bound address."""
        loop = asyncio.get_running_loop()
        for spec, _ in self.switches:
            try:
                infos = await loop.getaddrinfo(spec.host, None, type=socket.SOCK_DGRAM)
                self._addresses[spec.name] = {i[4][0] for i in infos}
            except OSError as e:
                log.warning("traps: cannot resolve switch %s (%s): %s", spec.name, spec.host, e)
                self._addresses[spec.name] = set()
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(address, port), family=family)
        self.publish(self.counts.samples())
        return self.transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    def datagram_received(self, data: bytes, addr) -> None:
        try:
            self.handle(data, addr)
        except Exception:  # noqa: BLE001 - one bad packet must not stop the listener
            log.exception("trap from %s could not be handled", addr[0])
            self.counts.drop("malformed")
        self.publish(self.counts.samples())

    def handle(self, data: bytes, addr: tuple) -> None:
        """Decode, authenticate by source and community, then act."""
        now = self.clock()
        source = str(addr[0])
        try:
            trap, response = decode(data)
        except TrapError as e:
            self.counts.drop(str(e))
            log.info("trap from %s dropped: %s", source, e)
            return
        source = source.removeprefix("::ffff:")
        from_source = [(s, p) for s, p in self.switches if source in self._addresses.get(s.name, ())]
        if not from_source:
            self.counts.drop("unknown_source")
            log.info("trap %s from unknown source %s dropped", trap.name, source)
            return
        matching = [(s, p) for s, p in from_source
                    if trap.community == (s.trap_community or s.snmp.community)]
        if not matching:
            self.counts.drop("community")
            log.info("trap %s from %s dropped: wrong community", trap.name, source)
            return
        if response is not None and self.transport is not None:
            self.transport.sendto(response, addr)   # acknowledge an inform
        for spec, probe in matching:
            self.counts.accept(spec.name, trap.name)
            results = self._verdicts(trap, spec, probe, now)
            if results:
                self.apply(results)
            if results or trap.name in TRAPS.values():
                self.poll_now(probe.name)

    def _verdicts(self, trap: Trap, spec, probe, now: float) -> list[CheckResult]:
        if trap.name in ("coldStart", "warmStart"):
            return [probe.restart_verdict(f"{trap.name} trap")]
        if trap.name not in ("linkDown", "linkUp"):
            return []
        index = trap.if_index()
        key = probe.port_for_ifindex(index) if index is not None else None
        if key is None:
            return []   # not a watched port: the poll still runs and shows it
        oper = trap.status(IF_OPER)
        oper_up = (oper == 1) if oper is not None else trap.name == "linkUp"
        admin = trap.status(IF_ADMIN)
        admin_up = (admin == 1) if admin is not None else None
        if self.links is not None:
            from ..links import PortState
            self.links.set_port(spec.name, key, PortState(oper_up, admin_up, now))
        return [probe.link_verdict(key, oper_up, admin_up, f"{trap.name} trap")]
