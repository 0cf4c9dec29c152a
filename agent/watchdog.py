"""systemd's watchdog: WATCHDOG=1 over $NOTIFY_SOCKET while the agent makes progress.

With `WatchdogSec=` in the unit, systemd sets WATCHDOG_USEC (and
WATCHDOG_PID) and restarts the service when no WATCHDOG=1 arrives within
that time. The agent's main loop pings at half that period, and only while
every probe loop and the sender have turned recently (`Progress`), so an
agent whose event loop is blocked, or whose loop has stalled, is
restarted. sd_notify is one datagram on a unix socket: no library needed.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Callable, Mapping

log = logging.getLogger("branchwatch.agent")


def sd_notify(message: str, env: Mapping[str, str] = os.environ) -> bool:
    """Send one sd_notify message (e.g. "WATCHDOG=1"); False without a socket."""
    address = env.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):            # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.connect(address)
            s.sendall(message.encode())
        return True
    except OSError as e:
        log.warning("cannot notify systemd at %s: %s", env.get("NOTIFY_SOCKET"), e)
        return False


def watchdog_period(env: Mapping[str, str] = os.environ, pid: int | None = None) -> float | None:
    """Seconds between pings systemd asks for (half of WatchdogSec=), or None if off."""
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = env.get("WATCHDOG_PID")
    if usec <= 0 or not env.get("NOTIFY_SOCKET") or \
            (owner and owner != str(pid if pid is not None else os.getpid())):
        return None
    return usec / 1e6 / 2


class Progress:
    """When each loop last turned, and how long it may go without turning."""

    def __init__(self):
        self.sources: dict[str, tuple[Callable[[], float | None], float]] = {}

    def watch(self, name: str, age: Callable[[], float | None], allowance: float) -> None:
        """`age()` gives the seconds since the loop last turned (None: not started)."""
        self.sources[name] = (age, allowance)

    def stalled(self) -> list[str]:
        """Loops that have not turned within their allowance, with how long."""
        out = []
        for name, (age, allowance) in self.sources.items():
            seconds = age()
            if seconds is not None and seconds > allowance:
                out.append(f"{name} (no turn for {seconds:.0f} s)")
        return out


class Watchdog:
    """Pings systemd from the main loop while `progress` shows no stalled loop."""

    def __init__(self, progress: Progress, env: Mapping[str, str] = os.environ):
        self.progress, self.env = progress, env
        self.period = watchdog_period(env)
        self.pings = 0
        self._quiet_for: list[str] = []

    def tick(self) -> bool:
        """Ping if everything makes progress; True if a ping went out."""
        if self.period is None:
            return False
        stalled = self.progress.stalled()
        if stalled:
            if stalled != self._quiet_for:
                log.error("not pinging systemd's watchdog (it will restart the agent): %s",
                          ", ".join(stalled))
            self._quiet_for = stalled
            return False
        self._quiet_for = []
        sent = sd_notify("WATCHDOG=1", self.env)
        self.pings += sent
        return sent
