"""UPS-MIB (RFC 1628) values to `UpsData`: the pure half of the SNMP UPS path.

The device knowledge (OIDs, value maps, scales, well-known alarms) is
`ups_mib.yaml`; this module only applies it. Input is one flat dict of
OID -> value as `agent.snmp.client` returns them (int, bytes, str, None for
noSuchObject), table rows keyed `column.index`. A value the device got wrong
is left out and named in `extra["unreadable"]`, never raised.
"""

from __future__ import annotations

import re
from importlib import resources
from typing import Literal

import msgspec
import yaml

from ..ups.status import FLAGS, NUMERIC, UpsData
from ..ups.ranges import shown, span
from .client import text

_OID = re.compile(r"^[0-9]+(\.[0-9]+)+$")


class _S(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class Ident(_S):
    oid: str
    object: str


class EnumValue(_S):
    name: str
    flags: str = ""


class EnumObject(_S):
    oid: str
    object: str
    values: dict[int, EnumValue]


class Value(_S):
    """One numeric object: where it goes, its scale and its valid raw range."""

    object: str
    oid: str
    unit: str
    scale: float = 1.0
    field: str | None = None      # a UpsData attribute
    extra: str | None = None      # else a key of UpsData.extra
    min: float | None = None
    max: float | None = None
    rows: Literal["scalar", "first", "max"] = "scalar"
    vendor: str | None = None

    @property
    def key(self) -> str:
        return self.field or self.extra or ""


class Alarm(_S):
    name: str
    text: str
    flags: str = ""


class UpsMib(_S):
    ups_mib: str
    identity: dict[str, Ident]
    enums: dict[str, EnumObject]
    values: list[Value]
    alarm_descr: str
    well_known_alarms: str
    alarms: dict[int, Alarm]
    fallbacks: list[Value] = []


def load_ups_mib(source: str | None = None) -> UpsMib:
    """Load and check the mapping (agent/snmp/ups_mib.yaml by default)."""
    if source is None:
        source = resources.files(__package__).joinpath("ups_mib.yaml").read_text(encoding="utf-8")
    mib = msgspec.convert(yaml.safe_load(source), UpsMib)
    problems = list(_problems(mib))
    if problems:
        raise ValueError("ups_mib.yaml: " + "; ".join(problems))
    return mib


def _problems(mib: UpsMib):
    for need in ("output_source", "battery_status"):
        if need not in mib.enums:
            yield f"enums.{need} missing"
    for need in ("mfr", "model"):
        if need not in mib.identity:
            yield f"identity.{need} missing"
    oids = [mib.ups_mib, mib.alarm_descr, mib.well_known_alarms,
            *(i.oid for i in mib.identity.values()), *(e.oid for e in mib.enums.values()),
            *(v.oid for v in (*mib.values, *mib.fallbacks))]
    for oid in oids:
        if not _OID.match(oid):
            yield f"{oid!r} is not a dotted OID"
    for v in (*mib.values, *mib.fallbacks):
        if (v.field is None) == (v.extra is None):
            yield f"{v.object}: expected exactly one of 'field' or 'extra'"
        if v.field is not None and v.field not in NUMERIC:
            yield f"{v.object}: field {v.field!r} is not a numeric UpsData field"
        if (v.rows == "scalar") != v.oid.endswith(".0"):
            yield f"{v.object}: a scalar's OID ends in .0, a column's does not"
    for v in mib.fallbacks:
        if v.rows != "scalar" or v.field is None:
            yield f"{v.object}: a fallback is a scalar that fills a field"
    flag_sets = [(f"enums.{k}.{n}", ev.flags) for k, e in mib.enums.items()
                 for n, ev in e.values.items()]
    flag_sets += [(f"alarms.{n}", a.flags) for n, a in mib.alarms.items()]
    for where, flags in flag_sets:
        for flag in flags.split():
            if flag not in FLAGS:
                yield f"{where}: flag {flag!r} is not in agent/ups/flags.yaml"


MIB = load_ups_mib()


def scalar_oids(mib: UpsMib = MIB) -> list[str]:
    """The OIDs one GET asks for: identity, enums, scalar values, fallbacks."""
    return [*(i.oid for i in mib.identity.values()), *(e.oid for e in mib.enums.values()),
            *(v.oid for v in mib.values if v.rows == "scalar"), *(v.oid for v in mib.fallbacks)]


def column_oids(mib: UpsMib = MIB) -> list[str]:
    """The table columns one walk asks for: line values and the alarm table."""
    return [*(v.oid for v in mib.values if v.rows != "scalar"), mib.alarm_descr]


def has_ups_mib(values: dict[str, object], mib: UpsMib = MIB) -> bool:
    """True if the device answered any UPS-MIB object (not only noSuchObject)."""
    prefix = mib.ups_mib + "."
    return any(v is not None for k, v in values.items() if k.startswith(prefix))


def line_number(index: str) -> int | None:
    """The line number of an input/output/alarm table row from its OID index.

    Quirk, EAST iStars card (recording east-istars-ups): its rows are indexed
    `N.0` (upsInputVoltage.1.0) instead of `N`, so a GET of the RFC's
    instance finds nothing; walking the column and reading `N.0` as line N
    serves both.
    """
    parts = index.split(".")
    if len(parts) == 2 and parts[1] == "0":
        parts = parts[:1]
    if len(parts) == 1 and parts[0].isdigit():
        return int(parts[0])
    return None


def data_from_ups_mib(values: dict[str, object], mib: UpsMib = MIB) -> UpsData:
    """Map UPS-MIB values onto UpsData; odd values are noted, not fatal."""
    d = UpsData(status=None)
    unreadable: dict[str, str] = {}
    flags: list[str] = []
    for key, enum in mib.enums.items():
        raw = values.get(enum.oid)
        if raw is None:
            continue
        found = enum.values.get(raw) if _is_int(raw) else None
        if found is None:
            unreadable[enum.object] = _show(raw)
            continue
        d.extra[key] = found.name
        flags += found.flags.split()
    _identity(values, mib, d, unreadable)
    for spec in mib.values:
        _apply(spec, values, d, unreadable)
    for spec in mib.fallbacks:
        if getattr(d, spec.field) is None and values.get(spec.oid) is not None:
            _apply(spec, values, d, unreadable)
            if getattr(d, spec.field) is not None:
                d.extra.setdefault("from_vendor_mib", {})[spec.field] = spec.object
    alarm_flags, texts, names = _alarms(values, mib, d.extra.get("alarms_present"), unreadable)
    flags += alarm_flags
    if texts:
        flags.append("ALARM")
    # Like NUT's ups.alarm: only what no status flag says (an on-battery
    # alarm is OB); every alarm's name is in the detail.
    d.alarm = ", ".join(texts)
    if names:
        d.extra["alarms"] = names
    d.status = " ".join(dict.fromkeys(flags)) or None
    if unreadable:
        d.extra["unreadable"] = unreadable
    return d


def _identity(values, mib: UpsMib, d: UpsData, unreadable: dict) -> None:
    for key, ident in mib.identity.items():
        raw = values.get(ident.oid)
        if raw is None:
            continue
        if not isinstance(raw, (bytes, str)):
            unreadable[ident.object] = _show(raw)
            continue
        shown = text(raw).strip()
        if key in ("mfr", "model"):
            setattr(d, key, shown)
        elif shown:
            d.extra[key] = shown


def _apply(spec: Value, values, d: UpsData, unreadable: dict) -> None:
    problems: list[str] = []
    if spec.rows == "scalar":
        raw = values.get(spec.oid)
        value = None if raw is None else _number(spec, raw, spec.object, unreadable, problems)
    else:
        rows = _rows(values, spec.oid, spec.object, unreadable)
        numbers = {n: _number(spec, raw, f"{spec.object}.{n}", unreadable, problems)
                   for n, raw in rows}
        if len(numbers) > 1:
            d.extra.setdefault("lines", {})[spec.object] = {str(n): v for n, v in numbers.items()}
        if spec.rows == "first":
            value = numbers[rows[0][0]] if rows else None
        else:
            readable = [v for v in numbers.values() if v is not None]
            value = max(readable) if readable else None
    if value is None:
        if problems and spec.field is not None and getattr(d, spec.field) is None:
            earlier = d.problems.get(spec.field)   # the standard object's, before a fallback
            d.problems[spec.field] = "; ".join([earlier, *problems] if earlier else problems)
        return
    if spec.field is not None:
        setattr(d, spec.field, value)
        d.problems.pop(spec.field, None)   # a fallback that reads well wins
    else:
        d.extra[spec.extra] = int(value) if value.is_integer() else value


def _rows(values, column: str, name: str, unreadable: dict) -> list[tuple[int, object]]:
    """A column's rows as (line number, raw), by line number."""
    prefix = column + "."
    rows = []
    for oid, raw in values.items():
        if not oid.startswith(prefix) or raw is None:
            continue
        n = line_number(oid[len(prefix):])
        if n is None:
            unreadable[f"{name}.{oid[len(prefix):]}"] = _show(raw)
        else:
            rows.append((n, raw))
    return sorted(rows, key=lambda r: r[0])


def _number(spec: Value, raw, where: str, unreadable: dict, problems: list[str]) -> float | None:
    """One raw value scaled, or None with the raw value named in `problems`."""
    if not _is_int(raw):
        why = f"{where} {shown(text(raw) if isinstance(raw, bytes) else raw)} is not a number"
    elif (spec.min is not None and raw < spec.min) or (spec.max is not None and raw > spec.max):
        why = f"{where} '{raw}' outside {span(spec.min, spec.max)}"
    else:
        # Rounded: 240 * 0.1 is 24.000000000000004, and upsd would say 24.0.
        return round(raw * spec.scale, 6)
    unreadable[where] = _show(raw)
    problems.append(why)
    return None


def _alarms(values, mib: UpsMib, present, unreadable: dict):
    """The alarm table as (flags, texts of alarms no flag says, names)."""
    flags: list[str] = []
    texts: list[str] = []
    names: list[str] = []
    known = mib.well_known_alarms + "."
    rows = _rows(values, mib.alarm_descr, "upsAlarmDescr", unreadable)
    if present == 0:
        # RFC 1628: upsAlarmsPresent is the number of rows in the alarm
        # table. 0 is the card saying "no alarm"; rows it still lists are
        # leftovers (the CET Power card keeps 24 empty ones).
        return flags, texts, names
    for n, raw in rows:
        oid = raw.lstrip(".") if isinstance(raw, str) else None
        if oid is None or not _OID.match(oid):
            unreadable[f"upsAlarmDescr.{n}"] = _show(raw)
            texts.append("unreadable alarm")
            continue
        if set(oid) <= {"0", "."}:
            continue   # zeroDotZero (0.0): an empty row, no alarm
        number = oid[len(known):] if oid.startswith(known) else ""
        alarm = mib.alarms.get(int(number)) if number.isdigit() else None
        if alarm is None:
            texts.append(f"vendor alarm {oid}")
            names.append(oid)
        else:
            names.append(alarm.name)
            flags += alarm.flags.split()
            if not alarm.flags:
                texts.append(alarm.text)
    if not rows and isinstance(present, (int, float)) and present > 0:
        texts.append(f"{present:g} alarm(s) present, alarm table not readable")
    return flags, texts, names


def _is_int(raw) -> bool:
    return isinstance(raw, int) and not isinstance(raw, bool)


def _show(raw) -> str:
    """A raw value as an operator reads it in the reading's detail."""
    if isinstance(raw, bytes):
        return repr(text(raw))
    return repr(raw) if isinstance(raw, str) else str(raw)
