"""Can a target be reached, and how fast: ICMP echo, or TCP connect.

ICMP goes through the kernel's unprivileged "ping socket"
(SOCK_DGRAM + IPPROTO_ICMP), which needs no root and no raw socket but
is only open to groups in `net.ipv4.ping_group_range` (the same sysctl
governs IPv6). Where the kernel refuses it, "auto" measures a TCP
handshake instead: an answer of any kind, even a refusal (RST), proves
the far side is reachable. Everything runs on the event loop; no
threads, no `ping` subprocess.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import secrets
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

ICMP, TCP = "icmp", "tcp"

# family -> (echo request type, echo reply type, protocol)
_ECHO = {socket.AF_INET: (8, 0, socket.IPPROTO_ICMP),
         socket.AF_INET6: (128, 129, socket.IPPROTO_ICMPV6)}

# What socket() raises when the kernel will not give us a ping socket.
_REFUSED = {errno.EACCES, errno.EPERM, errno.EPROTONOSUPPORT, errno.EAFNOSUPPORT,
            errno.ESOCKTNOSUPPORT}

PING_GROUP_RANGE = Path("/proc/sys/net/ipv4/ping_group_range")


@dataclass
class PingResult:
    """What `count` echoes (or connects) to one target got back."""

    method: str                   # "icmp" or "tcp": what was actually used
    sent: int = 0
    received: int = 0
    rtts: list[float] = field(default_factory=list)   # seconds, one per answer
    # Why ICMP was not used ("...; using TCP"), or why nothing could be sent
    # at all (name not resolved, source address not ours, ICMP forbidden).
    error: str | None = None
    lost_reason: str | None = None   # why the last lost echo got no answer
    address: str | None = None       # the address the name resolved to

    @property
    def loss_ratio(self) -> float:
        """Share of echoes without an answer, 0 to 1 (1 when nothing was sent)."""
        return (self.sent - self.received) / self.sent if self.sent else 1.0

    @property
    def avg_rtt(self) -> float | None:
        """Mean round-trip time of the answers, or None if nothing answered."""
        return sum(self.rtts) / len(self.rtts) if self.rtts else None


async def probe_target(host: str, *, count: int, timeout: float, method: str = "auto",
                       port: int = 443, source: str | None = None) -> PingResult:
    """Send `count` echoes (one at a time, each waiting up to `timeout`) to `host`.

    method "icmp" forces ICMP (every echo lost, with the reason, where the
    kernel forbids it); "tcp" connects to `port`; "auto" uses ICMP where
    the kernel allows it, else TCP. `source` binds the local address,
    which selects the line the traffic leaves by. A target that cannot be
    reached is a result, not an exception; OSError escapes only when no
    socket can be opened at all (out of file descriptors).
    """
    if method not in ("auto", ICMP, TCP):
        raise ValueError(f"unknown method {method!r}")
    try:
        family, sockaddr = await _resolve(host, port, source, timeout)
    except _Unresolved as e:
        used = method if method != "auto" else (ICMP if icmp_permitted() else TCP)
        return _all_lost(used, count, str(e))
    address = sockaddr[0]
    note = None
    if method in ("auto", ICMP):
        try:
            sock = socket.socket(family, socket.SOCK_DGRAM, _ECHO[family][2])
        except OSError as e:
            if e.errno not in _REFUSED:
                raise   # EMFILE and the like: not a verdict on ICMP
            why = icmp_refusal(e)
            if method == ICMP:
                return _all_lost(ICMP, count, why, address)
            note = f"{why}; using TCP"
        else:
            with sock:
                result = await _echo(sock, family, sockaddr, count, timeout, source)
            result.address = address
            return result
    result = await _connect(family, sockaddr, count, timeout, source)
    result.address = address
    result.error = result.error or note
    return result


def icmp_permitted(family: int = socket.AF_INET) -> bool:
    """True if this process may open an unprivileged ICMP socket."""
    try:
        socket.socket(family, socket.SOCK_DGRAM, _ECHO[family][2]).close()
    except OSError:
        return False
    return True


def icmp_refusal(e: OSError, range_file: Path = PING_GROUP_RANGE) -> str:
    """Why the kernel refused a ping socket, in words an operator can act on."""
    gid = os.getegid()
    try:
        low, high = map(int, range_file.read_text().split())
    except (OSError, ValueError):
        low, high = gid, gid   # range unknown: say only what the kernel said
    if e.errno == errno.EACCES and not low <= gid <= high:
        # The kernel also accepts a supplementary group in the range; we
        # only get here when none of ours is.
        return f"ICMP not permitted here (net.ipv4.ping_group_range excludes gid {gid})"
    return f"ICMP not permitted here ({e.strerror or e})"


class _Unresolved(Exception):
    """The target's name did not resolve (in time)."""


def _family_of(source: str | None) -> int:
    """The address family a source address forces (any, if not a literal)."""
    if source is None:
        return socket.AF_UNSPEC
    try:
        return socket.AF_INET6 if ipaddress.ip_address(source).version == 6 else socket.AF_INET
    except ValueError:
        return socket.AF_UNSPEC


async def _resolve(host: str, port: int, source: str | None, timeout: float):
    """(family, sockaddr) of the first address of `host`; bounded by `timeout`.

    The system resolver is not otherwise bounded (glibc: 5 s a try); an
    abandoned lookup finishes in its executor thread and is dropped.
    """
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, family=_family_of(source), type=socket.SOCK_STREAM),
            timeout)
    except TimeoutError:
        raise _Unresolved(f"DNS lookup of {host} took longer than {timeout:g} s") from None
    except socket.gaierror as e:
        raise _Unresolved(f"DNS failure for {host}: {e.strerror or e}") from None
    for family, _type, _proto, _name, sockaddr in infos:
        if family in _ECHO:
            return family, sockaddr
    raise _Unresolved(f"no IPv4 or IPv6 address for {host}")


def _all_lost(method: str, count: int, why: str, address: str | None = None) -> PingResult:
    return PingResult(method, sent=count, error=why, lost_reason=why, address=address)


def _not_sent(e: OSError) -> str:
    """Why the kernel would not send an echo, for a person."""
    if e.errno == errno.ENOBUFS:
        # Seen when the link has lost carrier and the next hop's ARP entry
        # is being re-checked: the kernel drops the packet at once.
        return "not sent (No buffer space available: the link is down or the next hop is silent)"
    return f"not sent ({e.strerror or e})"


def _bind(sock: socket.socket, source: str | None) -> None:
    if source is not None:
        sock.bind((source, 0))


async def _echo(sock: socket.socket, family: int, sockaddr: tuple, count: int,
                timeout: float, source: str | None) -> PingResult:
    """ICMP echoes on an open ping socket, matched to replies by sequence number."""
    loop = asyncio.get_running_loop()
    request, reply, _ = _ECHO[family]
    result = PingResult(ICMP)
    sock.setblocking(False)
    try:
        _bind(sock, source)
    except OSError as e:
        return _all_lost(ICMP, count, f"cannot send from {source}: {e.strerror or e}")
    # The kernel sets the identifier (the socket's "port") and the checksum,
    # and delivers only replies carrying our identifier; the token guards
    # against a stray reply that happens to reuse a sequence number.
    token = secrets.token_bytes(8)
    first = secrets.randbelow(0x10000)
    dest = (sockaddr[0], 0, *sockaddr[2:])
    for i in range(count):
        seq = (first + i) & 0xFFFF
        packet = struct.pack("!BBHHH", request, 0, 0, 0, seq) + token
        result.sent += 1
        start = time.perf_counter()
        try:
            await loop.sock_sendto(sock, packet, dest)
        except OSError as e:   # no route, network down: this echo is lost
            result.lost_reason = _not_sent(e)
            continue
        rtt = await _await_reply(sock, reply, seq, token, start, start + timeout)
        if rtt is None:
            result.lost_reason = f"no echo reply within {timeout:g} s"
        else:
            result.received += 1
            result.rtts.append(rtt)
    return result


async def _await_reply(sock: socket.socket, reply: int, seq: int, token: bytes,
                       start: float, deadline: float) -> float | None:
    """Seconds until the reply to `seq` came, or None at the deadline."""
    loop = asyncio.get_running_loop()
    while (remaining := deadline - time.perf_counter()) > 0:
        try:
            data = await asyncio.wait_for(loop.sock_recv(sock, 4096), remaining)
        except TimeoutError:
            return None
        except OSError:
            return None
        now = time.perf_counter()
        # A ping socket hands over the ICMP message without the IP header.
        if (len(data) >= 16 and data[0] == reply and struct.unpack_from("!H", data, 6)[0] == seq
                and data[8:16] == token):
            return now - start
        # A late reply to an earlier echo, or not ours: keep waiting.
    return None


async def _connect(family: int, sockaddr: tuple, count: int, timeout: float,
                   source: str | None) -> PingResult:
    """TCP handshakes to sockaddr; connected or refused both mean it answered."""
    loop = asyncio.get_running_loop()
    result = PingResult(TCP)
    for _ in range(count):
        result.sent += 1
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setblocking(False)
            try:
                _bind(sock, source)
            except OSError as e:
                why = f"cannot send from {source}: {e.strerror or e}"
                return _all_lost(TCP, count, why)
            start = time.perf_counter()
            try:
                await asyncio.wait_for(loop.sock_connect(sock, sockaddr), timeout)
            except ConnectionRefusedError:
                pass   # an RST is an answer: the host is there, the port is closed
            except TimeoutError:
                result.lost_reason = f"no answer to TCP connect within {timeout:g} s"
                continue
            except OSError as e:   # EHOSTUNREACH, ENETUNREACH, ...
                result.lost_reason = e.strerror or str(e)
                continue
            result.received += 1
            result.rtts.append(time.perf_counter() - start)
    return result
