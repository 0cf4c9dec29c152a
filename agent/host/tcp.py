"""Can a TCP connection to a target be made, and how long does it take."""

from __future__ import annotations

import socket
import time

from ..config import TcpSpec
from ..model import CheckResult, Reading, Sample, State
from .human import ms, secs
from .listening import hostport

# The system resolver is not bounded by spec.timeout (glibc: 5 s per try,
# 2 tries by default); the runner's bound leaves it room.
_RESOLVER_ALLOWANCE = 10.0


class ConnectFailed(Exception):
    """A connection could not be made; str() is the reason for the check."""


def connect_latency(host: str, port: int, timeout: float) -> float:
    """Seconds to establish one TCP connection (then closed), or ConnectFailed.

    The name is resolved first, so the latency is the connection alone,
    not DNS; each resolved address is tried in turn within one overall
    `timeout`, as socket.create_connection would.
    """
    target = hostport(host, port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise ConnectFailed(f"DNS failure for {target}: {e.strerror or e}") from None
    deadline = time.perf_counter() + timeout
    error: OSError | None = None
    for _family, _type, _proto, _name, sockaddr in infos:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            error = TimeoutError()
            break
        start = time.perf_counter()
        try:
            with socket.create_connection(sockaddr[:2], timeout=remaining):
                return time.perf_counter() - start
        except OSError as e:
            error = e
    if isinstance(error, ConnectionRefusedError):
        raise ConnectFailed(f"connection to {target} refused")
    if isinstance(error, TimeoutError) or error is None:
        raise ConnectFailed(f"connection to {target} timed out after {secs(timeout)}")
    raise ConnectFailed(f"cannot connect to {target}: {error.strerror or error}")


class TcpProbe:
    """One TCP target: up or down, and connection latency."""

    def __init__(self, spec: TcpSpec, interval: float):
        self.spec = spec
        self.name = f"tcp/{spec.name}"
        self.interval = spec.interval or interval
        self.timeout = spec.timeout + _RESOLVER_ALLOWANCE

    def read(self) -> Reading:
        """One connection attempt; a failed target is a check state, not an error."""
        s = self.spec
        target = hostport(s.host, s.port)
        detail: dict = {"target": target, "timeout_s": s.timeout}
        try:
            latency = connect_latency(s.host, s.port, s.timeout)
        except ConnectFailed as e:
            detail["error"] = str(e)
            return Reading(self.name, True, [Sample.of("branchwatch_tcp_up", 0, target=s.name)],
                           [CheckResult(self.name, State.CRITICAL, str(e))], detail)
        detail["latency_s"] = round(latency, 6)
        samples = [Sample.of("branchwatch_tcp_up", 1, target=s.name),
                   Sample.of("branchwatch_tcp_connect_latency_seconds", latency, target=s.name)]
        if latency > s.latency_warning:
            check = CheckResult(self.name, State.WARNING,
                                f"connected to {target} in {ms(latency)} "
                                f"(warning above {ms(s.latency_warning)})")
        else:
            check = CheckResult(self.name, State.OK, f"connected to {target} in {ms(latency)}")
        return Reading(self.name, True, samples, [check], detail)

    def close(self) -> None:
        """Nothing to release: each read opens and closes its own connection."""
