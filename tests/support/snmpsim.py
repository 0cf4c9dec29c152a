"""A real SNMP agent (snmpsim) on 127.0.0.1, serving recordings, owned by a test.

The shared recordings are served in place (community = the file's stem);
recordings a test writes go into its own folder, where it may change them
at runtime (edit, then `touch` with mtime + 1 s) or make records writable.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from .paths import need_binary

RESPONDER = "snmpsim-command-responder"


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SnmpSim:
    """snmpsim-command-responder over one or more data folders."""

    def __init__(self, folder: Path, data_dirs: list[Path] = (), prefix: list[str] = ()):
        self.prefix = list(prefix)   # e.g. ["ip", "netns", "exec", NS]
        self.binary = need_binary(RESPONDER)
        self.dir = Path(folder)
        self.own = self.dir / "data"          # recordings this test writes
        self.own.mkdir(parents=True, exist_ok=True)
        self.data_dirs = [self.own, *map(Path, data_dirs)]
        self.port = free_udp_port()
        self.proc: subprocess.Popen | None = None

    def write(self, community: str, records: str) -> Path:
        """Write (or rewrite) a recording served under `community`; bumps mtime."""
        path = self.own / f"{community}.snmprec"
        old = path.stat().st_mtime if path.exists() else 0
        path.write_text(records)
        stamp = max(time.time(), old + 1.5)   # snmpsim compares whole seconds
        os.utime(path, (stamp, stamp))
        return path

    def start(self, timeout: float = 60.0, probe_community: str | None = None) -> "SnmpSim":
        """Start the responder; wait until it answers (index build ~1-10 s)."""
        cmd = [*self.prefix, self.binary, *[f"--data-dir={d}" for d in self.data_dirs],
               f"--cache-dir={self.dir / 'cache'}",
               f"--agent-udpv4-endpoint=127.0.0.1:{self.port}",
               f"--logging-method=file:{self.dir / 'sim.log'}"]
        env = {**os.environ, "SNMPSIM_ALLOW_ROOT": "true"}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "wb"))
        community = probe_community or self._any_community()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"snmpsim exited: {(self.dir / 'stderr.log').read_text()[-2000:]}")
            if self.answers(community):
                return self
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"snmpsim did not answer within {timeout} s")

    def answers(self, community: str) -> bool:
        """True if a GET of sysUpTime under `community` gets a reply."""
        get = need_binary("snmpget")
        done = subprocess.run([*self.prefix, get, "-v2c", "-c", community, "-t", "0.5", "-r", "0",
                               f"127.0.0.1:{self.port}", "1.3.6.1.2.1.1.3.0"],
                              capture_output=True, text=True)
        return done.returncode == 0

    def _any_community(self) -> str:
        for d in self.data_dirs:
            for f in sorted(d.glob("*.snmprec")):
                return f.stem
        raise RuntimeError("no recordings to serve")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


SYSTEM_AND_IF_MIB = ("1.3.6.1.2.1.1.", "1.3.6.1.2.1.2.", "1.3.6.1.2.1.31.")


def subset(recording: Path, prefixes: tuple[str, ...] = SYSTEM_AND_IF_MIB) -> dict[str, str]:
    """The records of a real recording under some OID prefixes: {oid: 'TAG|VALUE'}."""
    out: dict[str, str] = {}
    for line in Path(recording).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line or line.startswith("#") or "|" not in line:
            continue
        oid, rest = line.split("|", 1)
        if oid.startswith(prefixes):
            out[oid] = rest
    return out


def render(records: dict[str, str]) -> str:
    """Records back into snmprec text, in OID order (snmpsim needs it sorted)."""
    key = lambda oid: tuple(int(x) for x in oid.split("."))  # noqa: E731
    return "".join(f"{oid}|{records[oid]}\n" for oid in sorted(records, key=key))
