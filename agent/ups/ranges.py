"""Sanity ranges for UPS values: what no device can mean is no reading.

The bounds are data (`ranges.yaml` beside this module, keyed by NUT
variable); this module loads them and turns one raw value into a number or a
reason that names the raw value.
"""

from __future__ import annotations

import math
from importlib import resources

import msgspec
import yaml

SHOWN_LIMIT = 40   # a raw value quoted in a reason is cut to this many characters


class Range(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    min: float
    max: float
    unit: str

    def span(self) -> str:
        """The range as a reason shows it: 0..100."""
        return span(self.min, self.max)


class RangeTable(msgspec.Struct, forbid_unknown_fields=True):
    ranges: dict[str, Range]


def load_ranges(text: str | None = None) -> dict[str, Range]:
    """Load and check the range table (agent/ups/ranges.yaml by default)."""
    if text is None:
        text = resources.files(__package__).joinpath("ranges.yaml").read_text(encoding="utf-8")
    table = msgspec.convert(yaml.safe_load(text), RangeTable).ranges
    for var, r in table.items():
        if not r.min < r.max:
            raise ValueError(f"ranges.yaml: {var}: min {bound(r.min)} is not below max {bound(r.max)}")
    return table


RANGES = load_ranges()


def bound(x: float | None) -> str:
    """A bound written out in full: 2147483647, not 2.14748e+09."""
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def span(low: float | None, high: float | None) -> str:
    """A range as a reason shows it: 0..100 (an open end left empty)."""
    return f"{bound(low)}..{bound(high)}"


def shown(raw: object) -> str:
    """A raw value quoted for a reason, cut (with its length) if it is long."""
    s = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
    if len(s) > SHOWN_LIMIT:
        s = f"{s[:SHOWN_LIMIT]}… ({len(s)} characters)"
    return f"'{s}'"


def out_of_range(name: str, value: float, raw: object, bounds: Range | None) -> str | None:
    """The reason `value` cannot be meant, or None if it can."""
    if not math.isfinite(value):
        return f"{name} {shown(raw)} is not a finite number"
    if bounds is not None and not bounds.min <= value <= bounds.max:
        return f"{name} {shown(raw)} outside {bounds.span()}"
    return None


def parse_number(name: str, raw: str, bounds: Range | None = None) -> tuple[float | None, str | None]:
    """A NUT-style text value as (number, None), or (None, reason naming the raw value)."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None, f"{name} {shown(raw)} is not a number"
    why = out_of_range(name, value, raw, bounds)
    return (None, why) if why else (value, None)
