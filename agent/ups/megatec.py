"""The Megatec/Voltronic "Q1" serial protocol: parsing only, no I/O.

Replies and their oddities are described in shared/testdata/megatec/README.md
(Megatec spec, NUT's nutdrv_qx and real captures). Everything here is pure so
the same code serves the serial probe, the tests and any other transport.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..model import ProbeError
from .ranges import RANGES, Range, out_of_range, shown
from .status import UpsData


class MegatecError(ProbeError):
    """A Megatec reply that cannot be used; the message says why, for operators."""


@dataclass(frozen=True)
class Q1:
    """One status reply; None where the UPS marked the value as missing or sent
    one that cannot be read (then `problems` says why, by Q1 attribute)."""

    input_voltage: float | None
    input_fault_voltage: float | None
    output_voltage: float | None
    load_percent: float | None
    frequency: float | None
    battery_voltage: float | None
    temperature: float | None
    bits: str  # "b7b6b5b4b3b2b1b0" exactly as sent, 8 characters of 0/1
    problems: dict[str, str] = field(default_factory=dict, compare=False)

    def bit(self, n: int) -> bool:
        """Whether status bit b<n> (7 = leftmost) is set."""
        return self.bits[7 - n] == "1"


@dataclass(frozen=True)
class Rating:
    """The F reply: the unit's nominal values."""

    voltage: float | None
    current: float | None
    battery_voltage: float | None
    frequency: float | None


@dataclass(frozen=True)
class Identity:
    """The I reply; "" for parts the unit left blank or dash-filled."""

    company: str
    model: str
    version: str


Q1_FIELDS = ("input voltage", "input fault voltage", "output voltage", "load",
             "frequency", "battery voltage", "temperature")
# The Q1 fields in order: (Q1 attribute, NUT variable it is in nutdrv_qx,
# UpsData field or None for UpsData.extra, scale to the base unit). The
# NUT variable names its range in ranges.yaml and the value in a reason.
Q1_LAYOUT = (
    ("input_voltage", "input.voltage", "input_voltage", 1.0),
    ("input_fault_voltage", "input.voltage.fault", None, 1.0),
    ("output_voltage", "output.voltage", "output_voltage", 1.0),
    ("load_percent", "ups.load", "load_ratio", 0.01),
    ("frequency", "input.frequency", "input_frequency", 1.0),
    ("battery_voltage", "battery.voltage", "battery_voltage", 1.0),
    ("temperature", "ups.temperature", "temperature_celsius", 1.0),
)
F_FIELDS = ("rated voltage", "rated current", "rated battery voltage", "rated frequency")
# I layout: '#', company(15), ' ', model(10), ' ', version(10).
I_PARTS = ((0, 15), (16, 26), (27, 37))

# A sign is allowed: an unheated ATM lobby in winter reads "-5.0" degrees.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
# Megatec fills unavailable data with '@', Voltronic with '-' (README
# "Disagreements"): such a field is missing data, not a broken reply.
_MISSING = re.compile(r"[@.-]*[@-][@.-]*")


def _shown(text) -> str:
    """A reply as quoted in an error, cut so a flood of garbage stays readable."""
    s = repr(text)
    return s if len(s) <= 70 else s[:66] + "...'"


def _line(reply: bytes, command: str, start: str) -> str:
    """The reply's text up to CR, checked for silence, NAK, echo and start character."""
    data = bytes(reply)
    # Bytes after the CR are USB report padding or stale chunks (README rows
    # with NUL after CR); a reply without CR is taken whole (nut issue 608).
    data = data.split(b"\r", 1)[0].strip(b"\x00")
    if not data.strip():
        raise MegatecError(f"empty reply to {command}: the UPS sent nothing")
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        raise MegatecError(f"garbage reply to {command}: not ASCII text: {_shown(data)}") from None
    bare = text.strip()
    if bare.lstrip("(#") == "NAK":
        raise MegatecError(f"the UPS refused {command} (NAK)")
    if bare == command:
        raise MegatecError(f"the UPS echoed {command} back: it does not support the command")
    if text[0] != start:
        raise MegatecError(f"invalid start character {text[0]!r} in reply to {command} "
                           f"(expected {start!r}): {_shown(text)}")
    return text


def _fields(text: str, names: tuple[str, ...], extra: int, command: str) -> list[str]:
    """Space-separated fields after the start character, exactly as many as expected."""
    fields = [f for f in text[1:].split(" ") if f]
    want = len(names) + extra
    if len(fields) < want:
        raise MegatecError(f"short reply to {command}: {len(fields)} of {want} fields: {_shown(text)}")
    if len(fields) > want:
        raise MegatecError(f"unexpected reply to {command}: {len(fields)} fields instead of "
                           f"{want}: {_shown(text)}")
    return fields


def _number(name: str, raw: str) -> float | None:
    """A numeric field; None for '@'/'-' missing-data markers."""
    if _NUMBER.fullmatch(raw):
        return float(raw)
    if _MISSING.fullmatch(raw):
        return None
    raise MegatecError(f"{name} is not a number: {_shown(raw)}")


def parse_q1(reply: bytes, *, command: str = "Q1") -> Q1:
    """Parse a Q1 (or QS) status reply; MegatecError says what is wrong with it."""
    text = _line(reply, command, "(")
    fields = _fields(text, Q1_FIELDS, 1, command)
    bits = fields[-1]
    if set(bits) - {"0", "1"}:
        raise MegatecError(f"status bits {_shown(bits)} in reply to {command} are not binary")
    # A truncated bit field is rejected, never padded: a missing b0..b3 would
    # silently read as "on-line, not failed" (nut issue 1978).
    if len(bits) != 8:
        what = "short reply" if len(bits) < 8 else "unexpected reply"
        raise MegatecError(f"{what} to {command}: {len(bits)} of 8 status bits: {_shown(text)}")
    # One field that does not parse, or says what no device can mean, drops
    # that value alone, as NUT's nutdrv_qx does; the status bits still count.
    values, problems = [], {}
    for (attr, var, _field, _scale), raw in zip(Q1_LAYOUT, fields):
        value, why = _q1_value(var, raw, RANGES.get(var))
        values.append(value)
        if why:
            problems[attr] = why
    return Q1(*values, bits=bits, problems=problems)


def _q1_value(var: str, raw: str, bounds: Range | None) -> tuple[float | None, str | None]:
    """One Q1 field: (value, None), (None, None) for a missing-data marker, or (None, why)."""
    if _MISSING.fullmatch(raw):
        return None, None
    if not _NUMBER.fullmatch(raw):
        return None, f"{var} {shown(raw)} is not a number"
    value = float(raw)
    why = out_of_range(var, value, raw, bounds)
    return (None, why) if why else (value, None)


def parse_f(reply: bytes, *, command: str = "F") -> Rating:
    """Parse an F (rating) reply: voltage, current, battery voltage, frequency."""
    text = _line(reply, command, "#")
    fields = _fields(text, F_FIELDS, 0, command)
    return Rating(*(_number(n, f) for n, f in zip(F_FIELDS, fields)))


def parse_i(reply: bytes, *, command: str = "I") -> Identity:
    """Parse an I (identity) reply: fixed-width company, model and version."""
    text = _line(reply, command, "#")
    # Fixed columns, not split(): company names contain spaces. A short
    # reply only means blank trailing parts (nut issue 1360 logs just '#').
    body = text[1:].ljust(I_PARTS[-1][1])
    parts = [body[a:b].strip() for a, b in I_PARTS]
    return Identity(*("" if _MISSING.fullmatch(p) else p for p in parts))


# Q1 status bits -> NUT flags, per the README's "Q1 layout" (Megatec spec,
# NUT's blazer_process_status_bits in nutdrv_qx_blazer-common.c):
# bit: (flag when 1, flag when 0). REGULATING is one of BYPASS/BOOST/TRIM,
# chosen from output÷input by _regulation() as NUT does.
REGULATING = "BYPASS|BOOST|TRIM"
STATUS_BITS: dict[int, tuple[str | None, str | None]] = {
    7: ("OB", "OL"),         # utility fail
    6: ("LB", None),         # battery low
    5: (REGULATING, None),   # bypass / boost / buck active
    4: ("ALARM", None),      # UPS failed
    2: ("CAL", None),        # test in progress
    1: ("FSD", None),        # shutdown active
}
# Bits that describe the unit rather than its state -> UpsData.extra:
# bit: (key, value when 1, value when 0).
EXTRA_BITS: dict[int, tuple[str, object, object]] = {
    3: ("ups_type", "standby", "online"),   # 1 = standby / line-interactive
    0: ("beeper", True, False),             # beeper on
}
# NUT writes ALARM first (dstate.c status_commit), then nutdrv_qx's
# ups_status_set() order.
NUT_ORDER = ("ALARM", "OL", "OB", "LB", "TRIM", "BOOST", "BYPASS", "CAL", "FSD")
UPS_FAILED = "UPS failed"


def _regulation(q1: Q1) -> str:
    """BYPASS, BOOST or TRIM for b5, from output÷input (NUT's 0.95..1.05 band).

    Outside 0.5..1.5 NUT sets none of them (blazer_process_status_bits):
    the voltages are not a regulation step, so "" (no flag).
    """
    vin, vout = q1.input_voltage, q1.output_voltage
    if not vin or vout is None:
        return "BYPASS"
    ratio = vout / vin
    if ratio < 0.5 or ratio > 1.5:
        return ""
    if ratio < 0.95:
        return "TRIM"
    if ratio > 1.05:
        return "BOOST"
    return "BYPASS"


def status_flags(q1: Q1) -> list[str]:
    """The NUT flags the status bits stand for, in NUT's order."""
    flags = []
    for bit, (when_set, when_clear) in STATUS_BITS.items():
        flag = when_set if q1.bit(bit) else when_clear
        if flag == REGULATING:
            flag = _regulation(q1)
        if flag:
            flags.append(flag)
    return sorted(flags, key=NUT_ORDER.index)


def to_ups_data(q1: Q1, rating: Rating | None = None, identity: Identity | None = None) -> UpsData:
    """Map a Q1 reply (plus F and I when known) onto the shared UpsData."""
    flags = status_flags(q1)
    d = UpsData(
        status=" ".join(flags),
        input_voltage=q1.input_voltage,
        output_voltage=q1.output_voltage,
        battery_voltage=q1.battery_voltage,
        input_frequency=q1.frequency,
        load_ratio=None if q1.load_percent is None else q1.load_percent * 0.01,
        temperature_celsius=q1.temperature,
        alarm=UPS_FAILED if "ALARM" in flags else "",
    )
    for bit, (key, when_set, when_clear) in EXTRA_BITS.items():
        d.extra[key] = when_set if q1.bit(bit) else when_clear
    d.extra["input_fault_voltage"] = q1.input_fault_voltage
    for attr, _var, target, _scale in Q1_LAYOUT:
        if attr in q1.problems:
            d.problems[target or attr] = q1.problems[attr]
    if rating is not None:
        d.extra["rating"] = {"voltage": rating.voltage, "current": rating.current,
                             "battery_voltage": rating.battery_voltage,
                             "frequency": rating.frequency}
    if identity is not None:
        d.mfr, d.model = identity.company, identity.model
        d.extra["firmware"] = identity.version
    return d
