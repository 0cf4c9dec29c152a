"""A real NUT upsd with dummy-ups drivers on 127.0.0.1, owned by a test."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from .paths import free_port, need_binary

NUT_BIN = Path("/lib/nut")


class NutServer:
    """upsd plus one dummy-ups driver per UPS, in a private config folder.

    `devices` maps a UPS name to a .dev file to serve (read in place) or to
    the text of one (written into the folder, so the test can change it).
    """

    def __init__(self, folder: Path, devices: dict[str, str | Path], maxage: int = 30):
        self.maxage = maxage
        self.upsd_bin = need_binary(str(NUT_BIN / "upsd"))
        self.driver_bin = need_binary(str(NUT_BIN / "dummy-ups"))
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.devices: dict[str, Path] = {}
        for name, dev in devices.items():
            if isinstance(dev, Path):
                self.devices[name] = dev
            else:
                path = self.dir / f"{name}.dev"
                path.write_text(dev)
                self.devices[name] = path
        self.procs: list[subprocess.Popen] = []
        self.last_error = ""
        self.upsd: subprocess.Popen | None = None
        self.env = {**os.environ, "NUT_CONFPATH": str(self.dir),
                    "NUT_STATEPATH": str(self.dir), "NUT_ALTPIDPATH": str(self.dir)}

    def start(self, timeout: float = 30.0) -> "NutServer":
        """Write the configs, start drivers and upsd, wait until data flows."""
        (self.dir / "nut.conf").write_text("MODE=standalone\n")
        (self.dir / "ups.conf").write_text("".join(
            f'[{name}]\n\tdriver = dummy-ups\n\tport = "{path}"\n\tdesc = "{name}"\n'
            for name, path in self.devices.items()))
        (self.dir / "upsd.conf").write_text(f"LISTEN 127.0.0.1 {self.port}\nMAXAGE {self.maxage}\n")
        (self.dir / "upsd.users").write_text(
            "[admin]\n\tpassword = adminpass\n\tactions = SET\n\tinstcmds = ALL\n")
        for p in self.dir.glob("*.conf"):
            p.chmod(0o600)
        (self.dir / "upsd.users").chmod(0o600)
        log = open(self.dir / "drivers.log", "ab")
        for name in self.devices:
            self.procs.append(subprocess.Popen(
                [self.driver_bin, "-F", "-u", "root", "-a", name], env=self.env,
                stdout=log, stderr=subprocess.STDOUT))
        self._wait_sockets(timeout)
        self.upsd = subprocess.Popen([self.upsd_bin, "-F", "-u", "root"], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT)
        self.wait_data(timeout)
        return self

    def _wait_sockets(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(any(self.dir.glob(f"dummy-ups-{n}")) for n in self.devices):
                return
            dead = [p for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"dummy-ups exited: {self.log_tail()}")
            time.sleep(0.1)
        raise RuntimeError(f"dummy-ups sockets did not appear: {self.log_tail()}")

    def wait_data(self, timeout: float = 30.0) -> None:
        """Wait until every UPS answers with a status other than WAIT."""
        deadline = time.monotonic() + timeout
        waiting = set(self.devices)
        while waiting and time.monotonic() < deadline:
            if self.upsd.poll() is not None:
                raise RuntimeError(f"upsd exited: {self.log_tail()}")
            waiting = {n for n in waiting if self.variables(n).get("ups.status", "WAIT") == "WAIT"
                       and not self._answers_without_status(n)}
            if waiting:
                time.sleep(0.2)
        if waiting:
            raise RuntimeError(f"no data from {sorted(waiting)[:5]}: {self.log_tail()}")

    def _answers_without_status(self, name: str) -> bool:
        v = self.variables(name)
        return bool(v) and "ups.status" not in v

    def variables(self, name: str) -> dict[str, str]:
        """upsc's view of one UPS ({} if upsd does not answer for it)."""
        r = subprocess.run(["upsc", f"{name}@127.0.0.1:{self.port}"], capture_output=True,
                           text=True, timeout=10)
        if r.returncode:
            self.last_error = r.stderr.strip()
            return {}
        return dict(line.split(": ", 1) for line in r.stdout.splitlines() if ": " in line)

    def set_device(self, name: str, text: str, wait: float = 15.0, poll: float = 0.1) -> float:
        """Rewrite a served .dev file, wait until upsd shows its status, and
        return when it first did (time.time(), within `poll` seconds)."""
        path = self.devices[name]
        old = path.stat().st_mtime
        path.write_text(text)
        # dummy-ups compares whole-second mtimes: same-second writes are missed.
        os.utime(path, (old + 2, old + 2))
        want = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                     if line.startswith("ups.status:")), None)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.variables(name).get("ups.status") == want:
                return time.time()
            time.sleep(poll)
        raise RuntimeError(f"upsd did not pick up {name} status {want!r}")

    def log_tail(self) -> str:
        try:
            return (self.dir / "drivers.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def stop_upsd(self) -> None:
        """Stop upsd only (drivers keep running), as when upsd is restarted."""
        if self.upsd is not None:
            self.upsd.terminate()
            self.upsd.wait(10)

    def restart_upsd(self) -> None:
        self.stop_upsd()
        self.upsd = subprocess.Popen([self.upsd_bin, "-F", "-u", "root"], env=self.env,
                                     stdout=open(self.dir / "drivers.log", "ab"),
                                     stderr=subprocess.STDOUT)
        self.wait_data()

    def stop(self) -> None:
        """terminate → wait → kill, upsd first."""
        for p in ([self.upsd] if self.upsd else []) + self.procs:
            if p.poll() is None:
                p.terminate()
        for p in ([self.upsd] if self.upsd else []) + self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
