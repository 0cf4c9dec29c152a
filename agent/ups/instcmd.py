"""Acting on a UPS: run a NUT instant command (`test.battery.start.quick`,
`beeper.toggle`, `bypass.start`, ...) through upsd, as a runbook step.

domain.md §4 (power cut, UPS fault) has steps such as "start a battery
test" or "put the UPS on bypass"; the runbooks and `branchwatch ups-command`
call `ups_command`. Nothing is sent unless the command is listed under that
UPS's `nut.actions.commands` (pre-authorisation).

The conversation is NUT's network protocol, spoken here directly over an
asyncio stream rather than through nut2 / PyNUTClient (agent/ups/nut_client.py):
those libraries block, and neither can ask upsd for the driver's verdict
(`SET TRACKING ON` / `GET TRACKING`, NUT ≥ 2.8). With tracking, "done" means
the driver sent the command to the UPS, not merely that upsd queued it: the
read-back every runbook action needs. Every failure ends here as an outcome
with one line of text, never as an exception.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Set
from dataclasses import asdict, dataclass
from pathlib import Path

from ..config import Config, NutTarget
from .nut_client import NutError

# upsd's ERR words (NUT docs/net-protocol.txt) that mean "no" from upsd or
# the driver: the request was understood and declined. Every other ERR
# (DRIVER-NOT-CONNECTED, DATA-STALE, INSTCMD-FAILED, the driver's FAILED...)
# means it could not be carried out.
REFUSALS = frozenset({
    "ACCESS-DENIED", "CMD-NOT-SUPPORTED", "UNKNOWN-UPS", "INVALID-ARGUMENT",
    "INVALID-VALUE", "USERNAME-REQUIRED", "PASSWORD-REQUIRED", "INVALID-USERNAME",
    "INVALID-PASSWORD", "READONLY",
})

# What an operator should check when upsd says a word (appended to the message).
HINTS = {
    "ACCESS-DENIED": "does upsd.users give this user `instcmds` for it, with this password?",
    "UNKNOWN-UPS": "is nut.ups the section name in upsd's ups.conf?",
    "DRIVER-NOT-CONNECTED": "the UPS driver is not running or not connected to upsd",
    "DATA-STALE": "the driver has lost the UPS (cable, power)",
}


@dataclass
class CommandResult:
    """What happened to one instant command; `ok` only when it was carried out."""

    ok: bool
    outcome: str            # done | refused | failed | not_allowed | unconfirmed
    target: str             # the UPS's name in the config (ups[].name)
    command: str
    message: str            # one line for people
    upsd: str | None = None   # host:port asked
    reply: str | None = None  # upsd's last word: OK, ERR ACCESS-DENIED, SUCCESS, ...
    at: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


async def ups_command(config: Config, ups: str, command: str, *, wait: float = 10.0,
                      clock: Callable[[], float] = time.time) -> CommandResult:
    """Run an instant command on a configured UPS, if its config allows it."""
    spec = next((u for u in config.ups if u.name == ups), None)
    if spec is None or spec.nut is None:
        why = (f"no UPS named {ups!r} in the config" if spec is None else
               f"UPS {ups!r} is not read through NUT: instant commands go through upsd")
        return CommandResult(False, "not_allowed", ups, command, why, at=clock())
    allowed = set(spec.nut.actions.commands) if spec.nut.actions else set()
    return await run_instcmd(spec.nut, ups, command, allowed, wait=wait, clock=clock)


async def run_instcmd(target: NutTarget, ups: str, command: str, allowed: Set[str], *,
                      wait: float = 10.0,
                      clock: Callable[[], float] = time.time) -> CommandResult:
    """Log in to upsd, check LIST CMD, send INSTCMD and wait for the driver's verdict.

    `ups` names the UPS in results (the config's name; upsd's is target.ups).
    `wait` bounds how long the driver's tracked result is awaited.
    """
    where = f"{target.host}:{target.port}"

    def result(outcome: str, message: str, reply: str | None = None) -> CommandResult:
        return CommandResult(outcome == "done", outcome, ups, command, message,
                             upsd=where, reply=reply, at=clock())

    if command not in allowed:
        # Pre-authorisation: a command nobody listed is never sent, not even asked about.
        return CommandResult(False, "not_allowed", ups, command,
                             f"{command!r} is not allowed on UPS {ups} "
                             f"(list it under ups[].nut.actions.commands)", at=clock())
    try:
        password = read_password(target)
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or str(e)
        return result("failed", f"cannot read nut.password_file {target.password_file}: {reason}")
    try:
        conn = await _Upsd.open(target.host, target.port, target.timeout)
    except NutError as e:
        return result("failed", str(e))
    try:
        outcome, message, reply = await _converse(conn, target, password, command, wait)
    except NutError as e:
        return result("failed", str(e))
    finally:
        await conn.close()
    return result(outcome, message, reply)


def read_password(target: NutTarget) -> str | None:
    """The upsd password: given inline or read (stripped) from password_file."""
    if target.password_file is None:
        return target.password
    return Path(target.password_file).read_text(encoding="utf-8").strip()


async def _converse(conn: "_Upsd", t: NutTarget, password: str | None, command: str,
                    wait: float) -> tuple[str, str, str | None]:
    """The protocol steps; returns (outcome, message, upsd's reply)."""
    for verb, value in (("USERNAME", t.user), ("PASSWORD", password)):
        if value is None:
            continue
        reply = await conn.ask(f"{verb} {_quote(value)}")
        if reply != "OK":
            return _declined(reply, f"{verb} {t.user if verb == 'USERNAME' else '***'}")
    listed = await conn.list_cmd(t.ups)
    if isinstance(listed, str):
        return _declined(listed, f"LIST CMD {t.ups}")
    if command not in listed:
        # Stop here: upsd would answer ERR CMD-NOT-SUPPORTED; its list says why.
        have = ", ".join(sorted(listed)) or "none"
        return ("refused", f"upsd does not support {command} on {t.ups} "
                           f"(CMD-NOT-SUPPORTED; LIST CMD {t.ups}: {have})", None)
    # NUT ≥ 2.8: ask for a tracking id so the driver's own result can be read back.
    tracking = await conn.ask("SET TRACKING ON") == "OK"
    sent = f"INSTCMD {t.ups} {command}"
    reply = await conn.ask(sent)
    if reply == "OK":
        note = " (no tracking id returned)" if tracking else ""
        return ("done", f"upsd accepted {sent}; this upsd cannot report the driver's "
                        f"result{note}", reply)
    if not reply.startswith("OK TRACKING "):
        return _declined(reply, sent)
    return await _track(conn, reply.split()[-1], sent, wait)


async def _track(conn: "_Upsd", tid: str, sent: str, wait: float) -> tuple[str, str, str | None]:
    """Poll GET TRACKING until the driver has answered or `wait` has passed."""
    deadline = time.monotonic() + wait
    pause = 0.05
    while True:
        status = await conn.ask(f"GET TRACKING {tid}")
        if status == "SUCCESS":
            return "done", f"{sent}: the driver carried it out (tracking SUCCESS)", status
        if status != "PENDING":
            outcome, message, _ = _declined(status, f"{sent} (driver's result)")
            if status == "ERR FAILED":
                message += ": the driver could not get the UPS to accept it"
            return outcome, message, status
        if time.monotonic() + pause > deadline:
            return ("unconfirmed", f"{sent} accepted by upsd, but the driver gave no "
                                   f"result within {wait:g} s (tracking PENDING)", status)
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.5)


def _declined(reply: str, request: str) -> tuple[str, str, str]:
    """upsd said something other than OK: refused or failed, with its words."""
    word = reply[4:].split(" ", 1)[0] if reply.startswith("ERR ") else ""
    outcome = "refused" if word in REFUSALS else "failed"
    hint = f" ({HINTS[word]})" if word in HINTS else ""
    return outcome, f"upsd answered {reply!r} to {request}{hint}", reply


def _quote(value: str) -> str:
    """A protocol argument: quoted with backslash escapes when it has spaces or quotes."""
    if value and not any(c in value for c in ' "\\\t'):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class _Upsd:
    """One line-by-line conversation with upsd; transport errors become NutError."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 where: str, timeout: float):
        self.reader, self.writer, self.where, self.timeout = reader, writer, where, timeout

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> "_Upsd":
        where = f"{host}:{port}"
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        except Exception as e:  # noqa: BLE001 - the edge: every socket failure becomes one line
            raise _transport_error(e, where) from None
        return cls(reader, writer, where, timeout)

    async def ask(self, line: str) -> str:
        """Send one request line, return upsd's one-line reply without its newline."""
        if "\n" in line or "\r" in line:
            # Never echo the line: it may be a PASSWORD read from a file.
            raise NutError(f"refusing to send {line.split(' ', 1)[0]} to upsd: "
                           f"its argument has a line break")
        try:
            self.writer.write(line.encode("utf-8") + b"\n")
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except Exception as e:  # noqa: BLE001
            raise _transport_error(e, self.where) from None
        return await self._line()

    async def list_cmd(self, ups: str) -> set[str] | str:
        """upsd's instant commands for `ups`, or its ERR reply as a string."""
        first = await self.ask(f"LIST CMD {ups}")
        if first.startswith("ERR "):
            return first
        if first != f"BEGIN LIST CMD {ups}":
            raise NutError(f"upsd at {self.where} sent something unexpected: {first!r}")
        names = set()
        while (line := await self._line()) != f"END LIST CMD {ups}":
            parts = line.split()
            if len(parts) != 3 or parts[:2] != ["CMD", ups]:
                raise NutError(f"upsd at {self.where} sent something unexpected: {line!r}")
            names.add(parts[2])
        return names

    async def close(self) -> None:
        """Say LOGOUT (best effort: upsd logs clean goodbyes) and close."""
        try:
            self.writer.write(b"LOGOUT\n")
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except Exception:  # noqa: BLE001 - closing a dead connection is not news
            pass
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), self.timeout)
        except Exception:  # noqa: BLE001
            pass

    async def _line(self) -> str:
        """One reply line; a silent, closed or broken connection is a NutError."""
        try:
            raw = await asyncio.wait_for(self.reader.readline(), self.timeout)
        except Exception as e:  # noqa: BLE001
            raise _transport_error(e, self.where) from None
        if not raw.endswith(b"\n"):
            raise NutError(f"upsd at {self.where} closed the connection")
        return raw.decode("utf-8", "replace").rstrip("\r\n")


def _transport_error(e: BaseException, where: str) -> NutError:
    """One line for a socket failure (the same wording as nut_client's)."""
    if isinstance(e, (asyncio.TimeoutError, TimeoutError)):
        return NutError(f"upsd at {where} did not answer in time")
    if isinstance(e, ConnectionRefusedError):
        return NutError(f"upsd at {where} refused the connection (is upsd running?)")
    if isinstance(e, OSError):
        return NutError(f"upsd at {where}: {e.strerror or type(e).__name__}")
    return NutError(f"upsd at {where}: {type(e).__name__}: {e}")
