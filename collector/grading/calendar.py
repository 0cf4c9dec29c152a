"""Business-hours calendar: when the branches are open for business.

domain.md §2.1: duration counts business-hours time only, and the calendar
(weekdays, hours, holidays) is data, not code. A day is open when it is a
make-up working day (調休上班, China swaps weekend days), or when it is one of
the weekdays and not a holiday. An open day uses the normal hours, which may
be several ranges (e.g. 08:30-12:00 and 13:30-17:00).

All arithmetic is on real (UTC) time: each day's local ranges are turned into
UTC instants through zoneinfo, so a DST change makes an open day an hour
shorter or longer, exactly as the clock on the wall does. A local time that
does not exist (inside a spring-forward gap) is read with the offset before
the change (PEP 495, fold=0).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .facts import require_aware
from .holidays import public_holidays

_DAY = timedelta(days=1)
_HOURS = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CALENDAR_KEYS = ("timezone", "weekdays", "hours", "holidays", "workdays", "public_holidays",
                  "around_the_clock")
# 24:00 as the end of a range is stored as 00:00 (time() cannot say 24:00).
_END_OF_DAY = time(0, 0)


@dataclass(frozen=True)
class Calendar:
    """Business hours in one time zone, with holidays and make-up working days."""

    timezone: str
    weekdays: frozenset[int]                    # 0 = Monday
    hours: tuple[tuple[time, time], ...]        # an end of 00:00 means 24:00
    holidays: frozenset[date] = frozenset()
    workdays: frozenset[date] = frozenset()     # make-up working days (open on a weekend)

    def __post_init__(self) -> None:
        problem = _problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def zone(self) -> ZoneInfo:
        """The calendar's zoneinfo time zone."""
        return ZoneInfo(self.timezone)

    @classmethod
    def default(cls) -> Calendar:
        """Asia/Shanghai, Monday to Friday, 08:30-17:00, no holidays."""
        return cls("Asia/Shanghai", frozenset(range(5)), ((time(8, 30), time(17, 0)),))

    @classmethod
    def from_dict(cls, data: dict, source: str, path: str = "calendar") -> Calendar:
        """Build from plain config data; ValueError reads "source: path.key: what was expected".
        Unless `public_holidays: false`, the State Council's holidays and make-up days
        (holidays.py) are added; dates listed in the data win over the package's."""
        return _from_dict(data, source, path)

    @classmethod
    def around_the_clock(cls, timezone: str = "Asia/Shanghai") -> Calendar:
        """Open every day, all day, holidays too (ATMs, electronic banking)."""
        return cls(timezone, frozenset(range(7)), ((time(0, 0), _END_OF_DAY),))

    def is_open_day(self, d: date) -> bool:
        """True when the local date d is a business day (make-up days open, holidays closed)."""
        return d in self.workdays or (d.weekday() in self.weekdays and d not in self.holidays)

    def is_open(self, t: datetime) -> bool:
        """True when t (aware) falls inside business hours."""
        require_aware(t, "t")
        return any(s <= t < e for s, e in self.open_intervals(t - _DAY, t + _DAY))

    def open_intervals(self, start: datetime, end: datetime) -> Iterator[tuple[datetime, datetime]]:
        """The open sub-intervals of [start, end) in UTC, merged and in order."""
        require_aware(start, "start")
        require_aware(end, "end")
        if end <= start:
            return
        start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
        zone = self.zone
        spans = []
        # One day either side: a local day's ranges may reach past UTC midnight.
        d = start.astimezone(zone).date() - _DAY
        last = end.astimezone(zone).date() + _DAY
        while d <= last:
            if self.is_open_day(d):
                for a, b in self.hours:
                    s = datetime.combine(d, a, zone).astimezone(timezone.utc)
                    e_day = d + _DAY if b == _END_OF_DAY else d
                    e = datetime.combine(e_day, b, zone).astimezone(timezone.utc)
                    s, e = max(s, start), min(e, end)
                    if s < e:
                        spans.append((s, e))
            d += _DAY
        # Sorted and merged: adjacent ranges (12:00-12:00) and 24-hour days join,
        # and a spring-forward gap can make two ranges overlap in UTC.
        spans.sort()
        cur: tuple[datetime, datetime] | None = None
        for s, e in spans:
            if cur is not None and s <= cur[1]:
                cur = (cur[0], max(cur[1], e))
                continue
            if cur is not None:
                yield cur
            cur = (s, e)
        if cur is not None:
            yield cur

    def open_time(self, start: datetime, end: datetime) -> timedelta:
        """Business-hours time in [start, end), exact to the microsecond."""
        return sum((e - s for s, e in self.open_intervals(start, end)), timedelta())

    def open_seconds(self, start: datetime, end: datetime) -> float:
        """Business-hours seconds in [start, end) (0 when end <= start)."""
        return self.open_time(start, end).total_seconds()


def _problem(c: Calendar) -> str | None:
    """Why a Calendar built in code is unusable, or None."""
    try:
        ZoneInfo(c.timezone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return f"timezone: unknown time zone {c.timezone!r}"
    if not c.hours:
        return "hours: expected at least one 'HH:MM-HH:MM' range"
    bad = sorted(d for d in c.weekdays if d not in range(7))
    if bad:
        return f"weekdays: expected 0 (Monday) to 6 (Sunday), got {bad[0]!r}"
    prev_end = None
    for i, (a, b) in enumerate(c.hours):
        if b != _END_OF_DAY and a >= b:
            return f"hours[{i}]: start {a:%H:%M} is not before end {b:%H:%M}"
        if prev_end is not None and (prev_end == _END_OF_DAY or a < prev_end):
            return f"hours[{i}]: overlaps hours[{i - 1}] (list ranges in order, apart)"
        prev_end = b
    both = sorted(c.holidays & c.workdays)
    if both:
        return f"workdays: {both[0].isoformat()} is also a holiday"
    return None


def _from_dict(data, source: str, path: str) -> Calendar:
    def fail(key: str, what: str):
        raise ValueError(f"{source}: {path}{'.' + key if key else ''}: {what}")

    if not isinstance(data, dict):
        fail("", f"expected a mapping, got {data!r}")
    for k in data:
        if k not in _CALENDAR_KEYS:
            fail(str(k), f"unknown key (expected one of {', '.join(_CALENDAR_KEYS)})")
    base = Calendar.default()
    tz = data.get("timezone", base.timezone)
    for key in ("public_holidays", "around_the_clock"):
        if not isinstance(data.get(key, False), bool):
            fail(key, f"expected true or false, got {data[key]!r}")
    if data.get("around_the_clock"):
        extra = [k for k in ("weekdays", "hours", "holidays", "workdays", "public_holidays") if k in data]
        if extra:
            fail(extra[0], "not with around_the_clock: true (open every day, all day)")
    if not isinstance(tz, str):
        fail("timezone", f"expected an IANA time zone name like 'Asia/Shanghai', got {tz!r}")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        fail("timezone", f"expected an IANA time zone name like 'Asia/Shanghai', got {tz!r}")

    weekdays = set()
    for i, w in enumerate(_listed(data, "weekdays", ["mon", "tue", "wed", "thu", "fri"], fail)):
        if isinstance(w, int) and not isinstance(w, bool) and 0 <= w <= 6:
            weekdays.add(w)
        elif isinstance(w, str) and w.lower()[:3] in _WEEKDAY_NAMES:
            weekdays.add(_WEEKDAY_NAMES.index(w.lower()[:3]))
        else:
            fail(f"weekdays[{i}]", f"expected 0-6 (0 = Monday) or a day name like 'mon', got {w!r}")

    hours = []
    for i, h in enumerate(_listed(data, "hours", ["08:30-17:00"], fail)):
        m = _HOURS.match(h) if isinstance(h, str) else None
        rng = _range(m) if m else None
        if rng is None:
            fail(f"hours[{i}]", f"expected 'HH:MM-HH:MM' with start before end, got {h!r}")
        if hours and (hours[-1][1] == _END_OF_DAY or rng[0] < hours[-1][1]):
            fail(f"hours[{i}]", f"expected ranges in order and apart, got {h!r} overlapping hours[{i - 1}]")
        hours.append(rng)
    if not hours:
        fail("hours", "expected at least one 'HH:MM-HH:MM' range")

    days = {key: _dates(_listed(data, key, [], fail), key, fail) for key in ("holidays", "workdays")}
    both = sorted(days["holidays"] & days["workdays"])
    if both:
        fail("workdays", f"{both[0].isoformat()} is also listed in holidays")
    if data.get("around_the_clock"):
        return Calendar.around_the_clock(tz)
    holidays, workdays = days["holidays"], days["workdays"]
    if data.get("public_holidays", True):
        # domain.md §2.1: the State Council's schedule by default, overridable:
        # a date the deployment lists wins over the package's.
        known = public_holidays()
        holidays = (known.holidays - workdays) | holidays
        workdays = (known.workdays - holidays) | workdays
    return Calendar(tz, frozenset(weekdays), tuple(hours), frozenset(holidays),
                    frozenset(workdays))


def _listed(data: dict, key: str, default: list, fail) -> list:
    v = data.get(key, default)
    if v is None:
        return []
    if not isinstance(v, list):
        fail(key, f"expected a list, got {v!r}")
    return v


def _range(m: re.Match) -> tuple[time, time] | None:
    """'HH:MM-HH:MM' → (start, end); 24:00 is allowed as an end only."""
    h1, m1, h2, m2 = (int(x) for x in m.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
        return None
    a = time(h1, m1)
    b = _END_OF_DAY if h2 == 24 else time(h2, m2)
    return (a, b) if b == _END_OF_DAY or a < b else None


def _dates(items: list, key: str, fail) -> set[date]:
    """Dates as YAML dates, 'YYYY-MM-DD' strings or 'YYYY-MM-DD..YYYY-MM-DD' ranges."""
    out: set[date] = set()
    for i, item in enumerate(items):
        if isinstance(item, date) and not isinstance(item, datetime):
            out.add(item)
            continue
        try:
            first, _, last = str(item).partition("..") if isinstance(item, str) else ("", "", "")
            a = date.fromisoformat(first)
            b = date.fromisoformat(last) if last else a
        except ValueError:
            a = b = None
        if a is None or b < a:
            fail(f"{key}[{i}]", f"expected a date 'YYYY-MM-DD' or a range 'YYYY-MM-DD..YYYY-MM-DD', got {item!r}")
        while a <= b:
            out.add(a)
            a += _DAY
    return out
