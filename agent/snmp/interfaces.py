"""From IF-MIB rows to port facts and verdicts: pure functions of their inputs.

The switch probe does the I/O and keeps the memory between polls; every rule
lives here so it can be tested with small tables. `resolve_ifindex` is the
one coroutine: it reads through a session it is given (port actions use it).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..model import CheckResult, State
from ..schema_network import UPLINK_ROLES, InterfaceSpec
from .client import SnmpError, text
from .if_mib import (ADMIN_STATUS, COLUMNS, COUNTERS, DISCARD_COUNTERS, ERROR_COUNTERS,
                     IF_DESCR, IF_SPEED_MAX, OPER_DOWN, OPER_STATUS, SELECTOR_COLUMN, SYSTEM)

TICKS_WRAP = 2 ** 32          # sysUpTime is a 32-bit TimeTicks: wraps after ~497 days
RECENT_RESTART = 600.0        # seconds: a switch up for less than this "just restarted"
DEVICE = "device"


# --- the system group ------------------------------------------------------------

@dataclass(frozen=True)
class System:
    """sysName, sysDescr and sysUpTime (in ticks) as the switch answered them."""

    name: str
    descr: str
    uptime_ticks: int


def read_system(values: dict[str, object]) -> System:
    """The system group from a GET; SnmpError says why it cannot be used."""
    missing = [n for n, oid in SYSTEM.items() if values.get(oid) is None]
    if missing:
        raise SnmpError(f"it answers, but with noSuchObject/noSuchInstance for "
                        f"{', '.join(missing)} (no usable system group)")
    uptime = values[SYSTEM["sysUpTime"]]
    if not isinstance(uptime, int) or uptime < 0:
        raise SnmpError(f"it answers with a malformed sysUpTime {shown(uptime)} "
                        f"(expected TimeTicks, a whole number)")
    return System(text(values[SYSTEM["sysName"]]) or "", text(values[SYSTEM["sysDescr"]]) or "",
                  uptime)


def first_line(descr: str, limit: int = 120) -> str:
    """sysDescr's first non-empty line, cut to `limit` characters (a metric label)."""
    line = next((x.strip() for x in descr.splitlines() if x.strip()), "")
    return line[:limit]


# --- the interface table -----------------------------------------------------------

@dataclass(frozen=True)
class IfRow:
    """One ifIndex of the device; raw status codes, speed in bit/s, counters (raw, bits)."""

    index: int
    descr: str | None
    name: str | None
    alias: str | None
    admin: object
    oper: object
    speed_bps: int | None
    counters: dict[str, tuple[int, int]]

    @property
    def label(self) -> str:
        """What people call the port: ifName, else ifDescr."""
        return self.name or self.descr or f"ifIndex {self.index}"


def integer_like(value: object) -> int | None:
    """A number however the device typed it: an INTEGER/Gauge32, or an OCTET
    STRING holding decimal digits (an FS S3800 sends ifSpeed so) or, failing
    that, the number's big-endian bytes. None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = value.encode("latin-1", "replace")
    if not isinstance(value, bytes) or not value:
        return None
    digits = value.strip(b"\x00 \t\r\n")
    if digits.isdigit():
        return int(digits)
    if len(value) <= 8 and any(b < 0x20 or b > 0x7e for b in value):
        return int.from_bytes(value, "big")
    return None


def speed_bps(if_speed: object, if_high_speed: object) -> int | None:
    """Port speed: ifHighSpeed (Mbit/s) when nonzero, else ifSpeed; None if unknown.

    RFC 2863: ifSpeed 2^32-1 means "faster than that, read ifHighSpeed".
    Either may come in any integer-like encoding (`integer_like`).
    """
    if_speed, if_high_speed = integer_like(if_speed), integer_like(if_high_speed)
    if isinstance(if_high_speed, int) and if_high_speed > 0:
        if _high_speed_in_bits(if_speed, if_high_speed):
            return if_high_speed
        return if_high_speed * 1_000_000
    if isinstance(if_speed, int) and 0 <= if_speed < IF_SPEED_MAX:
        return if_speed
    return None


def _high_speed_in_bits(if_speed: object, if_high_speed: int) -> bool:
    """Quirk: D-Link DES-3028 firmware puts bit/s in ifHighSpeed (100000000 on a
    100 Mbit/s port, equal to ifSpeed). A real ifHighSpeed equals ifSpeed only
    at 0, and no port runs at 10 Tbit/s or more."""
    return if_high_speed == if_speed or if_high_speed >= 10_000_000


def parse_table(walked: dict[str, dict[str, object]]) -> dict[int, IfRow]:
    """The IF-MIB walk as rows by ifIndex; a row exists where ifDescr does.

    Counters take the 64-bit (HC) column where the device has it, else 32-bit.
    Values of the wrong type are dropped here (they are not counters).
    """
    cols = {name: walked.get(oid, {}) for name, oid in COLUMNS.items()}
    rows: dict[int, IfRow] = {}
    for suffix in cols["ifDescr"]:
        if not suffix.isdigit():
            continue
        get = lambda column: cols[column].get(suffix)  # noqa: E731
        counters: dict[str, tuple[int, int]] = {}
        for metric, (hc, low) in COUNTERS.items():
            if hc is not None and _is_count(get(hc)):
                counters[metric] = (get(hc), 64)
            elif _is_count(get(low)):
                counters[metric] = (get(low), 32)
        rows[int(suffix)] = IfRow(
            int(suffix), text(get("ifDescr")), text(get("ifName")) or None,
            text(get("ifAlias")), get("ifAdminStatus"), get("ifOperStatus"),
            speed_bps(get("ifSpeed"), get("ifHighSpeed")), counters)
    return dict(sorted(rows.items()))


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def selector(spec: InterfaceSpec) -> tuple[str, object]:
    """Which attribute of IfRow the spec matches on, and the wanted value."""
    for attr in ("name", "descr", "alias", "index"):
        if getattr(spec, attr) is not None:
            return attr, getattr(spec, attr)
    raise ValueError("an interface spec without name, descr, alias or index")


def find_interface(spec: InterfaceSpec, rows: dict[int, IfRow]) -> IfRow | None:
    """The row a spec selects: exact match, lowest ifIndex first.

    ifIndex may change after a reboot, so names are matched again every poll.
    """
    attr, wanted = selector(spec)
    if attr == "index":
        return rows.get(wanted)
    return next((r for r in rows.values() if getattr(r, attr) == wanted), None)


def missing_reason(spec: InterfaceSpec, rows: dict[int, IfRow]) -> str:
    """Why a configured interface was not found, for an unknown verdict."""
    attr, wanted = selector(spec)
    column = "ifIndex" if attr == "index" else SELECTOR_COLUMN[attr]
    shown_value = wanted if attr == "index" else repr(wanted)
    reason = f"no interface with {column} {shown_value} on the device ({len(rows)} interfaces"
    if attr != "index" and not any(getattr(r, attr) for r in rows.values()):
        reason += f", none has an {column}"
    return reason + ")"


async def resolve_ifindex(session, spec: InterfaceSpec) -> int | None:
    """The ifIndex a spec selects now, read from the device (None: no such port)."""
    attr, wanted = selector(spec)
    if attr == "index":
        oid = f"{IF_DESCR}.{wanted}"
        return wanted if (await session.get([oid])).get(oid) is not None else None
    column = COLUMNS[SELECTOR_COLUMN[attr]]
    found = (await session.walk([column]))[column]
    matches = [int(s) for s, v in found.items() if s.isdigit() and text(v) == wanted]
    return min(matches) if matches else None


# --- counters and rates ------------------------------------------------------------

@dataclass(frozen=True)
class CounterState:
    """One counter as last read: the device's value and the agent's running total."""

    raw: int
    bits: int
    ifindex: int
    total: int
    at: float


def counter_delta(old: int, new: int, bits: int, reset: bool) -> int:
    """How much a counter grew between two polls.

    After a reset (device reboot) the count starts again from zero: delta = new.
    A 32-bit counter that went down wrapped; a 64-bit one never wraps in
    practice, so going down means it was reset.
    """
    if reset:
        return new
    if new >= old:
        return new - old
    if bits == 32:
        return new + 2 ** 32 - old
    return new


def advance_counter(prev: CounterState | None, raw: int, bits: int, ifindex: int,
                    reset: bool, at: float) -> tuple[CounterState, float | None]:
    """The counter's new state and its rate per second (None on first sight).

    The exported total starts at the device's first value and only grows.
    If the row or the counter width changed without a reboot, the old value
    belongs to another counter: start again from here, adding nothing.
    """
    if prev is None:
        return CounterState(raw, bits, ifindex, raw, at), None
    if not reset and (prev.bits != bits or prev.ifindex != ifindex):
        return CounterState(raw, bits, ifindex, prev.total, at), None
    delta = counter_delta(prev.raw, raw, bits, reset)
    elapsed = at - prev.at
    return (CounterState(raw, bits, ifindex, prev.total + delta, at),
            delta / elapsed if elapsed > 0 else None)


# --- uptime and restarts -----------------------------------------------------------

def uptime_change(old: int | None, new: int, elapsed: float | None) -> str:
    """"first", "same", "wrap" or "restart": what a new sysUpTime says.

    TimeTicks wrap at 2^32 (~497 days): a drop from near 2^32 to about
    the time elapsed since the last poll is a wrap, not a restart.
    """
    if old is None or elapsed is None:
        return "first"
    if new >= old - 100:             # up to 1 s backwards is clock noise
        return "same"
    ticks = elapsed * 100
    slack = max(ticks * 0.5, 30 * 100)
    if old + ticks + slack >= TICKS_WRAP and new <= old + ticks - TICKS_WRAP + slack:
        return "wrap"
    return "restart"


def restart_verdict(check: str, change: str, uptime_s: float, was_s: float | None) -> CheckResult:
    """Warning when the switch restarted since the last poll, or less than 10 min ago.

    `was_s` is the uptime before the restart the probe saw (None if it saw none),
    kept while the warning lasts so a debounced event still says it.
    """
    if change == "restart" or (was_s is not None and uptime_s < RECENT_RESTART):
        was = f" (was {duration(was_s)})" if was_s is not None else ""
        return CheckResult(check, State.WARNING, f"restarted: uptime {duration(uptime_s)}{was}")
    if uptime_s < RECENT_RESTART:
        return CheckResult(check, State.WARNING, f"restarted {duration(uptime_s)} ago")
    note = " (sysUpTime wrapped at 2^32 ticks)" if change == "wrap" else ""
    return CheckResult(check, State.OK, f"up {duration(uptime_s)}{note}")


# --- link and errors ---------------------------------------------------------------

# branch plan §5.1 / domain.md §4.1: a down uplink or trunk cuts the branch off;
# a down backup line or access port leaves service running.
DOWN_STATE = {"uplink-primary": State.CRITICAL, "trunk": State.CRITICAL,
              "uplink-backup": State.WARNING, "access": State.WARNING}
DOWN_NOTE = {"uplink-backup": "backup line not available"}


def link_verdict(check: str, role: str, oper: object, admin: object,
                 speed: int | None = None, source: str | None = None) -> CheckResult:
    """A port's link state from ifOperStatus/ifAdminStatus codes and its role.

    `source` names where the states came from when not a poll ("linkDown trap").
    """
    def result(state: State, reason: str, qualifiers: list[str] = ()) -> CheckResult:
        quals = [q for q in [*qualifiers, source] if q]
        if quals:
            head, sep, note = reason.partition(": ")
            reason = f"{head} ({', '.join(quals)}){sep}{note}"
        # branch plan §5.1 (domain.md §4.1): an uplink port down is a device fault.
        diagnosis = DEVICE if role in UPLINK_ROLES and state in (State.WARNING, State.CRITICAL) \
            else None
        return CheckResult(check, state, reason, diagnosis)

    if admin == 2:
        return result(State.OK, "administratively down (not a fault)")
    if oper is None:
        return result(State.UNKNOWN, "the device did not report ifOperStatus for this port")
    if not isinstance(oper, int) or oper not in OPER_STATUS:
        return result(State.UNKNOWN,
                      f"ifOperStatus is {shown(oper)}, not a valid status (1 to 7)")
    name, up, words = OPER_STATUS[oper]
    if up:
        return result(State.OK, f"up, {bitrate(speed)}" if speed else "up")
    if oper in OPER_DOWN:
        note = DOWN_NOTE.get(role)
        return result(DOWN_STATE[role], f"down: {note}" if note else "down",
                      [name] if oper != 2 else [])
    return result(State.UNKNOWN if up is None else State.WARNING, words)


def errors_verdict(check: str, rates: dict[str, float], error_warning: float,
                   discard_warning: float) -> CheckResult | None:
    """Warning when error or discard rates pass their thresholds; None without data."""
    errors = {m: rates[m] for m in ERROR_COUNTERS if m in rates}
    discards = sum(rates[m] for m in DISCARD_COUNTERS if m in rates)
    if not errors and not any(m in rates for m in DISCARD_COUNTERS):
        return None
    err_in = errors.get("branchwatch_interface_in_errors", 0.0)
    err_out = errors.get("branchwatch_interface_out_errors", 0.0)
    err = err_in + err_out
    problems = []
    if err > error_warning:
        if not err_out:
            what = f"{num(err)} input errors/s"
        elif not err_in:
            what = f"{num(err)} output errors/s"
        else:
            what = f"{num(err)} errors/s ({num(err_in)} in, {num(err_out)} out)"
        problems.append(f"{what} (threshold {num(error_warning)}/s)")
    if discards > discard_warning:
        problems.append(f"{num(discards)} input discards/s (threshold {num(discard_warning)}/s)")
    if problems:
        return CheckResult(check, State.WARNING, "degraded: " + "; ".join(problems))
    return CheckResult(check, State.OK, f"{num(err)} errors/s, {num(discards)} discards/s")


def admin_up(admin: object) -> bool | None:
    """ifAdminStatus as up/not up; None for a value outside RFC 2863."""
    return admin == 1 if admin in ADMIN_STATUS else None


def oper_up(oper: object) -> bool | None:
    """ifOperStatus as up/not up; None when neither the device nor we know."""
    return OPER_STATUS[oper][1] if isinstance(oper, int) and oper in OPER_STATUS else None


def status_name(code: object, table: dict) -> str | None:
    """A status code by its RFC 2863 name; odd values shown as they came."""
    if code is None:
        return None
    entry = table.get(code) if isinstance(code, int) else None
    if entry is None:
        return f"invalid {shown(code)}"
    return entry if isinstance(entry, str) else entry[0]


# --- how numbers read in a reason --------------------------------------------------

def duration(seconds: float) -> str:
    """A duration in its two largest units: "5d 1h", "2m 3s", "4m", "0s"."""
    s = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if parts or s >= size or unit == "s":
            parts.append((s // size, unit))
            s %= size
    parts = parts[:2]
    while len(parts) > 1 and parts[-1][0] == 0:
        parts.pop()
    return " ".join(f"{n}{u}" for n, u in parts)


def bitrate(bps: float) -> str:
    """A port speed as a person says it: "1 Gbit/s", "100 Mbit/s", "2.5 Gbit/s"."""
    for unit, size in (("Tbit/s", 1e12), ("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= size:
            return f"{num(bps / size)} {unit}"
    return f"{num(bps)} bit/s"


def num(x: float) -> str:
    """A rate or threshold without noise: 1, 3.2, 0.05, 1234."""
    if x == int(x):
        return str(int(x))
    if abs(x) >= 100:
        return f"{x:.0f}"
    if abs(x) >= 1:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.2g}"


def shown(value: object) -> str:
    """A value from the device as it reads in a reason (strings quoted)."""
    if isinstance(value, bytes):
        return repr(text(value))
    return repr(value)
