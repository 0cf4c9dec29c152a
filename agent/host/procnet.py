"""Listening TCP sockets read straight from /proc/net/tcp and /proc/net/tcp6.

Used when psutil.net_connections is refused (AccessDenied). On Linux it
normally is not: without root psutil still lists every socket, only
without the owning pid, which this agent does not need.
"""

from __future__ import annotations

import socket
import sys

_LISTEN = "0A"  # TCP_LISTEN in include/net/tcp_states.h, as /proc prints it


def decode_address(field: str) -> tuple[str, int]:
    """'0100007F:1F90' → ('127.0.0.1', 8080); IPv6 too.

    The kernel prints the address as 32-bit words in host byte order, so
    each 4-byte group is reversed on little-endian machines (x86, ARM).
    """
    hex_ip, hex_port = field.split(":")
    raw = bytes.fromhex(hex_ip)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    ip = raw
    family = socket.AF_INET if len(ip) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, ip), int(hex_port, 16)


def parse(text: str) -> list[tuple[str, int]]:
    """(address, port) of every LISTEN line of one /proc/net/tcp* file."""
    out = []
    for line in text.splitlines()[1:]:  # first line is the column header
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN:
            out.append(decode_address(fields[1]))
    return out


def listening(paths=("/proc/net/tcp", "/proc/net/tcp6")) -> list[tuple[str, int]]:
    """Every listening (address, port) in the files that exist.

    tcp6 is missing when IPv6 is disabled; that is fine. Neither file
    existing means this is not Linux or /proc is absent: an OSError.
    """
    out, read_any = [], False
    for path in paths:
        try:
            with open(path, encoding="ascii") as f:
                out.extend(parse(f.read()))
            read_any = True
        except FileNotFoundError:
            continue
    if not read_any:
        raise FileNotFoundError(f"none of {', '.join(paths)} exists")
    return out
