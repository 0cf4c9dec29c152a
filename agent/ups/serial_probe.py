"""Poll one UPS over a serial line with the Megatec Q1 protocol."""

from __future__ import annotations

import errno
import os
import time

import serial

from ..config import Ups
from ..model import Reading
from .megatec import MegatecError, parse_f, parse_i, parse_q1, to_ups_data
from .status import ups_failed_reading, ups_reading

# Longest we block in one pyserial read; the overall deadline is the
# configured timeout. Small so silence costs at most timeout + this.
_READ_SLICE = 0.1


class SerialUpsProbe:
    """One UPS on one serial port (or socket:// URL); keeps the port open between polls."""

    def __init__(self, ups: Ups):
        assert ups.serial is not None
        self.ups = ups
        self.target = ups.serial
        self.name = f"ups/{ups.name}"
        self.interval = ups.interval
        # A fresh open asks Q1, F and I, each bounded by the serial timeout.
        self.timeout = ups.serial.timeout * 3 + 1
        self._port: serial.SerialBase | None = None
        self._fresh = False
        self._rating = None
        self._identity = None
        self._notes: dict[str, str] = {}

    def read(self) -> Reading:
        """One poll: Q1 (plus F and I after an open), mapped onto checks and samples."""
        try:
            if self._port is None:
                self._open()
            q1 = self._query("Q1", parse_q1)
            # F and I only once the unit answers Q1: a dead UPS then costs one
            # timeout per poll, not three.
            if self._fresh:
                self._fresh = False
                self._rating = self._optional("F", parse_f, "rating_error")
                self._identity = self._optional("I", parse_i, "identity_error")
        except (MegatecError, serial.SerialException, OSError, ValueError) as e:
            self.close()
            return ups_failed_reading(self.name, self.ups.name, "serial", str(e))
        data = to_ups_data(q1, self._rating, self._identity)
        reading = ups_reading(self.name, self.ups.name, "serial", data, self.ups.thresholds)
        reading.detail["port"] = self.target.port
        reading.detail.update(self._notes)
        return reading

    def close(self) -> None:
        """Close the port (the next poll reopens it and asks F and I again)."""
        port, self._port = self._port, None
        self._rating = self._identity = None
        self._notes = {}
        if port is not None:
            try:
                port.close()
            except (serial.SerialException, OSError):
                pass

    def _open(self) -> None:
        t = self.target
        try:
            # serial_for_url: a path opens a tty, socket://host:port a TCP bridge.
            # exclusive: a second agent (or NUT driver) on the same port would
            # steal half of every reply.
            self._port = serial.serial_for_url(
                t.port, baudrate=t.baud, timeout=min(_READ_SLICE, t.timeout),
                write_timeout=t.timeout, exclusive=True)
        except serial.SerialException as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                why = "in use by another program (it holds the port's lock)"
            else:
                why = os.strerror(e.errno) if e.errno else str(e)
            raise MegatecError(f"cannot open {t.port}: {why}") from None
        self._fresh = True

    def _ask(self, command: str) -> tuple[bytes, bool]:
        """Send one command; the reply so far and whether its CR arrived."""
        port = self._port
        port.reset_input_buffer()  # drop a late reply to an earlier command
        port.write(command.encode("ascii") + b"\r")
        port.flush()
        deadline = time.monotonic() + self.target.timeout
        buf = bytearray()
        while b"\r" not in buf and time.monotonic() < deadline:
            # Whatever is waiting, at least 1 byte: read(64) would wait the
            # port timeout for bytes that never come after a 47-byte reply.
            buf += port.read(max(1, port.in_waiting))
        return bytes(buf), b"\r" in buf

    def _query(self, command: str, parse):
        """Ask and parse; silence and incomplete replies become MegatecError."""
        raw, complete = self._ask(command)
        if not raw:
            raise MegatecError(f"timed out: no reply to {command} within {self.target.timeout:g} s")
        try:
            return parse(raw, command=command)
        except MegatecError as e:
            if complete:
                raise
            raise MegatecError(f"timed out waiting for the CR ending the reply to {command} "
                               f"after {self.target.timeout:g} s: {e}") from None

    def _optional(self, command: str, parse, note: str):
        """F and I are informational: a failure is noted in the detail, not fatal."""
        try:
            return self._query(command, parse)
        except (MegatecError, serial.SerialException) as e:
            self._notes[note] = str(e)
            return None

