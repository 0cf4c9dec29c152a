"""Two network namespaces joined by a veth pair: a branch and its far side.

The branch namespace plays the branch machine, the far namespace the
gateway or core system at the other end of the line. Everything lives
inside the two namespaces: the veth pair is created in the branch
namespace with its peer moved straight into the far one, the /30 is
private to them, and the host's own interfaces and sysctls are never
touched. Name lookups inside the branch namespace go to 127.0.0.1 there
(its own /etc/netns resolv.conf), so a test can never query a real DNS
server. Both namespaces are deleted at teardown.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from .paths import REPO

BRANCH_ADDRESS = "10.213.7.1"
FAR_ADDRESS = "10.213.7.2"
_PREFIX = 30
_BRANCH_NIC, _FAR_NIC = "bwline0", "bwfar0"
_ETC_NETNS = Path("/etc/netns")


def _ip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)


class NetnsPair:
    """bw-branch-XXXX (10.213.7.1/30) and bw-far-XXXX (10.213.7.2/30) over a veth."""

    branch_address = BRANCH_ADDRESS
    far_address = FAR_ADDRESS
    branch_nic = _BRANCH_NIC
    far_nic = _FAR_NIC

    def __init__(self):
        suffix = secrets.token_hex(3)
        self.branch = f"bw-branch-{suffix}"
        self.far = f"bw-far-{suffix}"
        self._created: list[str] = []
        self._made_etc_netns = False

    def create(self) -> "NetnsPair":
        """Make both namespaces; pytest.skip (with the reason) if we may not."""
        if shutil.which("ip") is None:
            pytest.skip("iproute2 (`ip`) is not installed")
        for ns in (self.branch, self.far):
            done = _ip("netns", "add", ns)
            if done.returncode != 0:
                self.delete()
                pytest.skip(f"cannot create a network namespace: {done.stderr.strip()}")
            self._created.append(ns)
        try:
            b, f = self.branch, self.far
            self._must("-n", b, "link", "set", "lo", "up")
            self._must("-n", f, "link", "set", "lo", "up")
            self._must("-n", b, "link", "add", _BRANCH_NIC, "type", "veth",
                       "peer", "name", _FAR_NIC, "netns", f)
            self._must("-n", b, "addr", "add", f"{BRANCH_ADDRESS}/{_PREFIX}", "dev", _BRANCH_NIC)
            self._must("-n", f, "addr", "add", f"{FAR_ADDRESS}/{_PREFIX}", "dev", _FAR_NIC)
            self._must("-n", b, "link", "set", _BRANCH_NIC, "up")
            self._must("-n", f, "link", "set", _FAR_NIC, "up")
            # Open unprivileged ICMP to every group, in the branch namespace only
            # (the sysctl is per namespace; the host's stays as it is).
            done = self.run(["sysctl", "-q", "-w", "net.ipv4.ping_group_range=0 2147483647"])
            if done.returncode != 0:
                raise RuntimeError(f"sysctl in {b} failed: {done.stderr.strip()}")
            self._made_etc_netns = not _ETC_NETNS.exists()
            resolv = _ETC_NETNS / b
            resolv.mkdir(parents=True, exist_ok=True)
            (resolv / "resolv.conf").write_text("nameserver 127.0.0.1\n")
        except BaseException:
            self.delete()
            raise
        return self

    def _must(self, *args: str) -> None:
        done = _ip(*args)
        if done.returncode != 0:
            raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")

    def cut(self) -> None:
        """Cut the line: the far side's end of the veth goes down.

        Returns once the branch side's NIC reports it (its operstate lags
        the carrier by the kernel's link-watch delay).
        """
        self._must("-n", self.far, "link", "set", _FAR_NIC, "down")
        self._wait_operstate("DOWN")

    def restore(self) -> None:
        """Mend the line: the far side's end comes back up (and the branch sees it)."""
        self._must("-n", self.far, "link", "set", _FAR_NIC, "up")
        self._wait_operstate("UP")

    def _wait_operstate(self, want: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = _ip("-n", self.branch, "-j", "link", "show", "dev", _BRANCH_NIC)
            state = json.loads(done.stdout)[0].get("operstate") if done.returncode == 0 else None
            if state == want:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{_BRANCH_NIC} in {self.branch} is {state}, not {want}, "
                                   f"after {timeout:g} s")
            time.sleep(0.02)

    def _exec(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.branch, *cmd]

    def env(self) -> dict[str, str]:
        """The environment for a Python process that imports this project."""
        return {**os.environ, "PYTHONPATH": str(REPO)}

    def run(self, cmd: list[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run a command inside the branch namespace and wait for it."""
        kw.setdefault("env", self.env())
        return subprocess.run(self._exec(cmd), capture_output=True, text=True,
                              timeout=timeout, **kw)

    def popen(self, cmd: list[str], **kw) -> subprocess.Popen:
        """Start a command inside the branch namespace."""
        kw.setdefault("env", self.env())
        return subprocess.Popen(self._exec(cmd), **kw)

    def run_far(self, cmd: list[str], timeout: float = 30, **kw) -> subprocess.CompletedProcess:
        """Run a command inside the far namespace (a server on the far side)."""
        kw.setdefault("env", self.env())
        return subprocess.run(["ip", "netns", "exec", self.far, *cmd], capture_output=True,
                              text=True, timeout=timeout, **kw)

    def delete(self) -> None:
        """Delete both namespaces (their veth ends go with them)."""
        for ns in self._created:
            _ip("netns", "del", ns)
        self._created.clear()
        shutil.rmtree(_ETC_NETNS / self.branch, ignore_errors=True)
        if self._made_etc_netns:
            try:
                _ETC_NETNS.rmdir()   # only if nobody else put anything there since
            except OSError:
                pass

    def __enter__(self) -> "NetnsPair":
        return self.create()

    def __exit__(self, *exc) -> None:
        self.delete()
