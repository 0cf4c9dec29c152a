"""A Megatec (Q1) UPS simulator on a pseudo-terminal, for the demo and the tests.

The agent opens the simulator exactly like a real RS-232 port, so the whole
serial path (pyserial, timeouts, reopen) is exercised. Replies come from
settable state, so a script can stage a power cut:

    with MegatecResponder() as ups:              # ups.port_path -> the agent
        ups.q1 = q1_line(input_voltage=0.0, bits=UTILITY_FAIL | STANDBY)
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty

# Status bits b7..b0 (shared/testdata/megatec/README.md, "Q1 layout").
UTILITY_FAIL = 0b1000_0000
BATTERY_LOW = 0b0100_0000
BYPASS_BOOST_BUCK = 0b0010_0000
UPS_FAILED = 0b0001_0000
STANDBY = 0b0000_1000
TEST_IN_PROGRESS = 0b0000_0100
SHUTDOWN_ACTIVE = 0b0000_0010
BEEPER_ON = 0b0000_0001


def _num(value: float | None, spec: str, missing: str) -> str:
    """Format a field, or Megatec's '@' / Voltronic's '-' filler when None."""
    return missing if value is None else format(value, spec)


def q1_line(input_voltage: float | None = 230.0, output_voltage: float | None = 230.0,
            load: float | None = 20, battery_voltage: float | None = 13.5,
            temperature: float | None = 25.0, bits: int | str = STANDBY, *,
            fault_voltage: float | None = None, frequency: float | None = 50.0) -> str:
    """A Q1 reply line (no CR) from values; bits as an int (b7 = 0x80) or a raw string."""
    if fault_voltage is None:
        fault_voltage = input_voltage
    # Battery: per-cell S.SS on on-line units, pack SS.S on standby units.
    battery = _num(battery_voltage, ".2f" if (battery_voltage or 0) < 10 else "04.1f", "@.@@")
    status = format(bits, "08b") if isinstance(bits, int) else bits
    return (f"({_num(input_voltage, '05.1f', '@@@.@')} {_num(fault_voltage, '05.1f', '@@@.@')} "
            f"{_num(output_voltage, '05.1f', '@@@.@')} {_num(load, '03.0f', '@@@')} "
            f"{_num(frequency, '04.1f', '@@.@')} {battery} "
            f"{_num(temperature, '04.1f', '--.-')} {status}")


def rating_line(voltage: float = 230.0, current: float = 4, battery_voltage: float = 12.0,
                frequency: float = 50.0) -> str:
    """An F reply line (no CR): '#MMM.M QQQ SS.SS RR.R'."""
    return f"#{voltage:05.1f} {current:03.0f} {battery_voltage:05.2f} {frequency:04.1f}"


def identity_line(company: str = "", model: str = "", version: str = "") -> str:
    """An I reply line (no CR): '#' + company(15) model(10) version(10)."""
    return f"#{company[:15]:<15} {model[:10]:<10} {version[:10]:<10}"


class MegatecResponder:
    """One simulated UPS serving one end of a pseudo-terminal from a thread.

    Without `path` it makes its own pty pair and the agent opens `.port_path`.
    With `path` (e.g. one link of `socat pty,link=A pty,link=B`) it serves
    that end; `port_path` then names the other end if the caller knows it.
    """

    def __init__(self, path: str | None = None, *, port_path: str | None = None):
        self._held: int | None = None
        if path is None:
            self._fd, slave = os.openpty()
            # Raw: no echo and no CR->LF mapping, so bytes cross as a UART's would.
            tty.setraw(slave)
            # Keep our own slave fd so the master never reads EIO while the
            # agent has the port closed (it reopens after every failure).
            self._held = slave
            self.port_path: str | None = os.ttyname(slave)
        else:
            self._fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            tty.setraw(self._fd)
            self.port_path = port_path
        self.q1 = q1_line()
        self.rating = rating_line()
        self.identity = identity_line("BRANCHWATCH SIM", "MEGATEC-1K", "V1.00")
        self.silent = False          # answer nothing at all (dead UPS, unplugged cable)
        self.raw: bytes | None = None  # answer these bytes to everything (garbage)
        self.echo_unknown = True     # Megatec echoes commands it does not know
        self.delay = 0.0             # seconds before each reply
        self.received: list[str] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def attach(cls, path: str, port_path: str | None = None) -> "MegatecResponder":
        """Serve an existing tty path (such as a socat pty link)."""
        return cls(path, port_path=port_path)

    def respond(self, command: str) -> bytes:
        """The bytes this UPS sends back for one command (b"" = no answer)."""
        if self.silent:
            return b""
        if self.raw is not None:
            return self.raw
        line = {"Q1": self.q1, "QS": self.q1, "F": self.rating, "I": self.identity}.get(command)
        if line is None:
            return (command + "\r").encode("ascii", "replace") if self.echo_unknown else b""
        return (line + "\r").encode("ascii")

    def inject(self, data: bytes) -> None:
        """Send bytes nobody asked for (line noise, a reply arriving too late)."""
        self._write(data)

    def start(self) -> "MegatecResponder":
        """Start answering in a background thread."""
        self._thread = threading.Thread(target=self._serve, name="megatec-responder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close this end of the pty."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        for fd in (self._fd, self._held):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._fd = self._held = None

    def __enter__(self) -> "MegatecResponder":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self) -> None:
        buf = b""
        while not self._stop.is_set():
            # A short select timeout so stop() is noticed promptly.
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(self._fd, 1024)
            except OSError as e:
                self.error = f"read failed: {e}"
                return
            if not chunk:
                self.error = "the other end hung up"
                return
            buf += chunk
            while b"\r" in buf:
                raw, buf = buf.split(b"\r", 1)
                command = raw.strip(b"\n\x00 ").decode("ascii", "replace")
                if not command:
                    continue
                self.received.append(command)
                reply = self.respond(command)
                if reply:
                    if self.delay:
                        time.sleep(self.delay)
                    self._write(reply)

    def _write(self, data: bytes) -> None:
        while data and not self._stop.is_set():
            try:
                data = data[os.write(self._fd, data):]
            except OSError as e:
                self.error = f"write failed: {e}"
                return
