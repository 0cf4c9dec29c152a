"""A Megatec UPS on a pseudo-terminal behind NUT's real nutdrv_qx and upsd.

dummy-ups has no instant commands (realstack.md), so tests of INSTCMD need a
driver that has: nutdrv_qx, speaking Megatec to agent/sim's MegatecResponder
over a pty. The responder answers the polls (Q1, F, I) and records every
line it receives, so a test sees exactly which commands reached the "UPS".
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from agent.sim.megatec_responder import MegatecResponder

from .nut import NUT_BIN, NutServer
from .paths import need_binary

# What nutdrv_qx sends on its own to poll a Megatec UPS.
POLLS = frozenset({"Q1", "F", "I"})

USERS = {
    "admin": ("adminpass", "\tinstcmds = ALL\n"),   # may run every instant command
    "viewer": ("viewpass", ""),                     # logged in, but no instcmds
}


class MegatecUpsd(NutServer):
    """upsd serving one UPS `name` read by nutdrv_qx from a MegatecResponder.

    Reuses NutServer's folder, environment, readiness (upsc) and teardown;
    only the driver, ups.conf and the users differ.
    """

    def __init__(self, folder: Path, name: str = "qx"):
        self.qx_bin = need_binary(str(NUT_BIN / "nutdrv_qx"))
        need_binary("upsc")   # NutServer's readiness check
        super().__init__(folder, {})   # skips (with the reason) before any pty is made
        self.responder = MegatecResponder()
        # Commands the UPS accepts say nothing back; an echo would mean "unknown
        # command" and nutdrv_qx would report the command FAILED.
        self.responder.echo_unknown = False
        self.name = name
        self.devices = {name: Path(self.responder.port_path)}

    def commands(self) -> list[str]:
        """Every line the UPS received that is not one of the driver's polls."""
        return [c for c in list(self.responder.received) if c not in POLLS]

    def start(self, timeout: float = 30.0) -> "MegatecUpsd":
        """Start the responder, nutdrv_qx and upsd; wait until upsd has data."""
        self.responder.start()
        pty = self.responder.port_path
        (self.dir / "nut.conf").write_text("MODE=standalone\n")
        (self.dir / "ups.conf").write_text(
            f"[{self.name}]\n\tdriver = nutdrv_qx\n\tport = {pty}\n\tprotocol = megatec\n")
        (self.dir / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\n")
        (self.dir / "upsd.users").write_text("".join(
            f"[{user}]\n\tpassword = {password}\n{extra}"
            for user, (password, extra) in USERS.items()))
        for p in self.dir.glob("*.conf"):
            p.chmod(0o600)
        (self.dir / "upsd.users").chmod(0o600)
        log = open(self.dir / "drivers.log", "ab")
        self.procs.append(subprocess.Popen(
            [self.qx_bin, "-s", self.name, "-x", f"port={pty}", "-x", "protocol=megatec",
             "-u", "root", "-F"], env=self.env, stdout=log, stderr=subprocess.STDOUT))
        self._wait_socket(timeout)
        self.upsd = subprocess.Popen([self.upsd_bin, "-F", "-u", "root"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        self.wait_data(timeout)
        return self

    def _wait_socket(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.dir / f"nutdrv_qx-{self.name}").exists():
                return
            if self.procs[-1].poll() is not None:
                raise RuntimeError(f"nutdrv_qx exited: {self.log_tail()}")
            time.sleep(0.05)
        raise RuntimeError(f"nutdrv_qx socket did not appear: {self.log_tail()}")

    def stop(self) -> None:
        """upsd, then the driver, then the responder (so the driver never reads EIO)."""
        super().stop()
        self.responder.stop()
