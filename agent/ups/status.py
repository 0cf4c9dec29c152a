"""From a UPS's variables to checks and metric samples.

Every source (NUT, the Megatec serial line, later SNMP UPS-MIB) fills one
`UpsData`; everything after that is shared, so the collector cannot tell
which path a reading came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

import msgspec
import yaml

from ..config import UpsThresholds
from ..model import CheckResult, Reading, Sample, State


class FlagInfo(msgspec.Struct, forbid_unknown_fields=True):
    meaning: str
    check: str | None = None
    state: str | None = None


class FlagTable(msgspec.Struct, forbid_unknown_fields=True):
    flags: dict[str, FlagInfo]


def load_flag_table(text: str | None = None) -> dict[str, FlagInfo]:
    """Load and check the flag table (agent/ups/flags.yaml by default)."""
    if text is None:
        text = resources.files(__package__).joinpath("flags.yaml").read_text(encoding="utf-8")
    table = msgspec.convert(yaml.safe_load(text), FlagTable).flags
    for flag, info in table.items():
        if (info.check is None) != (info.state is None):
            raise ValueError(f"flags.yaml: {flag}: 'check' and 'state' go together")
        if info.state is not None and info.state.upper() not in State.__members__:
            raise ValueError(f"flags.yaml: {flag}: unknown state {info.state!r}")
    return table


FLAGS = load_flag_table()
FLAG_CHECKS = {i.check: (f, State[i.state.upper()]) for f, i in FLAGS.items() if i.check}


@dataclass
class UpsData:
    """What one UPS reported, in base units; None where it said nothing."""

    status: str | None
    charge_ratio: float | None = None
    runtime_seconds: float | None = None
    input_voltage: float | None = None
    output_voltage: float | None = None
    battery_voltage: float | None = None
    input_frequency: float | None = None
    load_ratio: float | None = None
    temperature_celsius: float | None = None
    mfr: str = ""
    model: str = ""
    alarm: str = ""
    extra: dict = field(default_factory=dict)
    # UpsData field -> why the device's value for it was not taken
    # ("battery.charge '1000' outside 0..100"); the field stays None.
    problems: dict[str, str] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        return (self.status or "").split()


NUMERIC = {
    # UpsData field: (metric name, NUT variable, scale to base unit)
    "charge_ratio": ("branchwatch_ups_battery_charge_ratio", "battery.charge", 0.01),
    "runtime_seconds": ("branchwatch_ups_battery_runtime_seconds", "battery.runtime", 1.0),
    "battery_voltage": ("branchwatch_ups_battery_voltage_volts", "battery.voltage", 1.0),
    "input_voltage": ("branchwatch_ups_input_voltage_volts", "input.voltage", 1.0),
    "output_voltage": ("branchwatch_ups_output_voltage_volts", "output.voltage", 1.0),
    "input_frequency": ("branchwatch_ups_input_frequency_hertz", "input.frequency", 1.0),
    "load_ratio": ("branchwatch_ups_load_ratio", "ups.load", 0.01),
    "temperature_celsius": ("branchwatch_ups_temperature_celsius", "ups.temperature", 1.0),
}


def on_battery_check(flags: list[str], status: str | None) -> tuple[State, str]:
    """OL and OB read together: real units send both, or neither.

    On battery is a warning, not critical: domain.md §4.2, equipment runs on
    the UPS at once; it is the low battery (LB, runtime) that is critical.
    """
    ol, ob = "OL" in flags, "OB" in flags
    if ol and ob:
        return State.UNKNOWN, f"contradictory ups.status {status!r}: both OL and OB"
    if ob:
        return State.WARNING, "on battery: mains power lost"
    if ol:
        return State.OK, "on line power"
    if not flags:
        return State.UNKNOWN, "empty ups.status"
    return State.UNKNOWN, f"ups.status {status!r} says neither OL nor OB"


def _threshold(value, warn, crit, below: bool, what: str, unit) -> tuple[State, str]:
    bad = (lambda v, t: v < t) if below else (lambda v, t: v > t)
    shown = unit(value)
    if bad(value, crit):
        return State.CRITICAL, f"{what} {shown} {'below' if below else 'above'} {unit(crit)}"
    if bad(value, warn):
        return State.WARNING, f"{what} {shown} {'below' if below else 'above'} {unit(warn)}"
    return State.OK, f"{what} {shown}"


def _pct(v: float) -> str:
    return f"{v * 100:.0f}%"


def _secs(v: float) -> str:
    return f"{v / 60:.1f} min"


# UpsData field -> (check, what the reason calls it, low is bad, how it is shown)
THRESHOLD_CHECKS = {
    "charge_ratio": ("battery_charge", "battery charge", True, _pct),
    "runtime_seconds": ("battery_runtime", "battery runtime", True, _secs),
    "load_ratio": ("load", "load", False, _pct),
}


def ups_checks(name: str, d: UpsData, t: UpsThresholds) -> list[CheckResult]:
    """Every check of one UPS for one successful reading."""
    flags = d.flags
    prefix = f"ups/{name}"
    out = [CheckResult(f"{prefix}/comm", State.OK, "UPS answers")]
    out.append(CheckResult(f"{prefix}/on_battery", *on_battery_check(flags, d.status)))
    for check, (flag, state) in FLAG_CHECKS.items():
        if d.status is None or not flags:
            out.append(CheckResult(f"{prefix}/{check}", State.UNKNOWN, "empty ups.status"))
        elif flag in flags:
            reason = FLAGS[flag].meaning
            if flag == "ALARM" and d.alarm:
                reason = f"{reason}: {d.alarm}"
            out.append(CheckResult(f"{prefix}/{check}", state, reason))
        else:
            out.append(CheckResult(f"{prefix}/{check}", State.OK,
                                   f"no {flag} in ups.status ({FLAGS[flag].meaning})"))
    # Thresholds only for what this unit reports; a check that stops being
    # reported turns unknown in the runner. A value the unit sent but no
    # device can mean is unknown here, with the raw value in the reason.
    limits = {"charge_ratio": (t.charge_warning, t.charge_critical),
              "runtime_seconds": (t.runtime_warning, t.runtime_critical),
              "load_ratio": (t.load_warning, t.load_critical)}
    for attr, (check, what, below, unit) in THRESHOLD_CHECKS.items():
        value = getattr(d, attr)
        if value is not None:
            out.append(CheckResult(f"{prefix}/{check}",
                                   *_threshold(value, *limits[attr], below, what, unit)))
        elif attr in d.problems:
            out.append(CheckResult(f"{prefix}/{check}", State.UNKNOWN, d.problems[attr]))
    return out


def unseen_checks(name: str, reason: str) -> list[CheckResult]:
    """The UPS cannot be read: a monitoring fault, not a power fault.

    Power checks go unknown rather than critical: not seeing the UPS says
    nothing about mains power (the collector decides, domain.md §2.1).
    """
    prefix = f"ups/{name}"
    out = [CheckResult(f"{prefix}/comm", State.CRITICAL, f"cannot see the UPS: {reason}")]
    for check in ("on_battery", *FLAG_CHECKS):
        out.append(CheckResult(f"{prefix}/{check}", State.UNKNOWN, f"cannot see the UPS: {reason}"))
    return out


def ups_samples(name: str, d: UpsData, source: str) -> list[Sample]:
    """Metric samples for one reading: a 1/0 per known flag, then values."""
    flags = set(d.flags)
    out = [Sample.of("branchwatch_ups_status", 1.0 if f in flags else 0.0, ups=name, flag=f)
           for f in FLAGS]
    for attr, (metric, _var, _scale) in NUMERIC.items():
        value = getattr(d, attr)
        if value is not None:
            out.append(Sample.of(metric, value, ups=name))
    out.append(Sample.of("branchwatch_ups_info", 1.0, ups=name, source=source,
                         mfr=d.mfr, model=d.model))
    return out


def ups_reading(probe: str, name: str, source: str, d: UpsData, t: UpsThresholds) -> Reading:
    """A complete reading for a UPS that answered."""
    detail = {"ups": name, "source": source, "status": d.status, "flags": d.flags,
              **{a: getattr(d, a) for a in NUMERIC}, "mfr": d.mfr, "model": d.model}
    if d.alarm:
        detail["alarm"] = d.alarm
    if d.extra:
        detail["device"] = d.extra
    if d.problems:
        detail["unreadable"] = d.problems
    return Reading(probe, True, ups_samples(name, d, source), ups_checks(name, d, t), detail)


def ups_failed_reading(probe: str, name: str, source: str, reason: str) -> Reading:
    """The reading for a UPS that could not be read."""
    return Reading(probe, False, [], unseen_checks(name, reason),
                   {"ups": name, "source": source}, error=f"cannot see the UPS: {reason}")
