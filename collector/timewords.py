"""Dates, times and durations as a person reads them, in their locale and
the collector's time zone, the zone always said (a reader in Fujian and a reader of
a log in UTC must not guess): "2026-12-02 14:05 (CST, UTC+8)" / "2026-12-02 14:05
北京时间". Durations by Babel in at most two units ("1 hr, 5 min" / "1小时5分钟"),
never "3:00:05.098660".
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

LOCALES = {"zh": "zh_CN", "en": "en"}
# The mainland's one zone: people call it 北京时间, whatever the tz database names it.
BEIJING = {"Asia/Shanghai", "Asia/Chongqing", "Asia/Harbin", "Asia/Urumqi", "PRC"}
UNITS = (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def locale_of(lang: str) -> str:
    """The Babel locale of a console/report language."""
    return LOCALES.get(lang, "en")


def zone_label(zone: tzinfo, lang: str, at: datetime | None = None) -> str:
    """How the zone is said: '北京时间' / 'CST, UTC+8'; 'UTC' for UTC."""
    at = (at or datetime.now(timezone.utc)).astimezone(zone)
    minutes = int((at.utcoffset() or timedelta()).total_seconds() // 60)
    sign, (hours, mins) = ("+" if minutes >= 0 else "-"), divmod(abs(minutes), 60)
    offset = "UTC" if not minutes else f"UTC{sign}{hours}" + (f":{mins:02d}" if mins else "")
    name = getattr(zone, "key", None)
    if lang == "zh" and name in BEIJING:
        return "北京时间"
    abbrev = at.tzname() or ""
    if offset == "UTC":
        return "UTC"
    if lang == "zh" or not abbrev or abbrev[0] in "+-":
        return offset
    return f"{abbrev}, {offset}"


def when(dt: datetime | None, lang: str, zone: tzinfo, seconds: bool = False,
         with_zone: bool = True) -> str:
    """A moment in the zone: '2026-12-02 14:05 (CST, UTC+8)' / '2026-12-02 14:05（北京时间）'."""
    if dt is None:
        return ""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    pattern = "yyyy-MM-dd HH:mm" + (":ss" if seconds else "")
    try:
        from babel.dates import format_datetime      # the collector's dependency (pyproject)
    except ImportError:                              # an operator's CLI on a base install
        text = dt.astimezone(zone).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))
    else:
        text = format_datetime(dt, pattern, tzinfo=zone, locale=locale_of(lang))
    if not with_zone:
        return text
    label = zone_label(zone, lang, dt)
    return f"{text}（{label}）" if lang == "zh" else f"{text} ({label})"


def span(seconds: float | timedelta, lang: str, units: int = 2) -> str:
    """A duration in at most `units` units, by Babel: '3 hr, 5 min' / '3小时5分钟';
    never negative, no fractions of a second."""
    if isinstance(seconds, timedelta):
        seconds = seconds.total_seconds()
    left = max(0, int(seconds))
    parts = []
    for name, size in UNITS:
        n, left = divmod(left, size)
        if n or (parts and len(parts) < units and name != "second"):
            parts.append((n, name))
        if len(parts) >= units:
            break
    parts = [p for p in parts if p[0]] or [(0, "second")]
    return _said(tuple(parts), locale_of(lang))


@functools.lru_cache(maxsize=8192)
def _said(parts: tuple[tuple[int, str], ...], loc: str) -> str:
    # Babel takes ~90 µs for one; a page of 100 rows says 200 ages and countdowns
    # every refresh, from a few thousand distinct values: remember them.
    from babel.lists import format_list          # the collector's dependency (pyproject)
    from babel.units import format_unit
    words = [format_unit(n, f"duration-{name}", length="short", locale=loc) for n, name in parts]
    return format_list(words, style="unit-short", locale=loc)


def zone_of(name: str | None) -> tzinfo:
    """A zone by name (the collector's `timezone`), UTC when none is given."""
    return ZoneInfo(name) if name else timezone.utc
