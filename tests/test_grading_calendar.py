"""The business-hours calendar (collector/grading/calendar.py): open days and
hours, holidays and make-up working days, DST, config errors, invariants."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.grading import Calendar

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
H = 3600.0


def sh(text: str) -> datetime:
    """A Shanghai local time 'YYYY-MM-DD HH:MM[:SS]' as an aware datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=SH)


def ny(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=NY)


# China 2024: Labour Day holiday 1-5 May, make-up working days Sun 28 April and Sat 11 May.
CN_2024 = Calendar.from_dict({
    "timezone": "Asia/Shanghai", "weekdays": ["mon", "tue", "wed", "thu", "fri"],
    "hours": ["08:30-12:00", "13:30-17:00"],
    "holidays": ["2024-05-01..2024-05-05"], "workdays": [date(2024, 4, 28), "2024-05-11"],
}, "test")
NY_ALL_DAY = Calendar("America/New_York", frozenset(range(7)), ((time(0), time(0)),))
NY_NIGHT = Calendar("America/New_York", frozenset(range(7)), ((time(0, 30), time(3, 30)),))


def test_default_is_shanghai_weekdays_0830_to_1700():
    c = Calendar.default()
    assert (c.timezone, c.weekdays, c.hours) == ("Asia/Shanghai", frozenset(range(5)),
                                                ((time(8, 30), time(17, 0)),))
    assert c.open_seconds(sh("2024-05-06 00:00"), sh("2024-05-13 00:00")) == 5 * 8.5 * H


@pytest.mark.parametrize("when, is_open", [
    ("2024-05-06 08:29:59", False), ("2024-05-06 08:30", True), ("2024-05-06 11:59:59", True),
    ("2024-05-06 12:00", False), ("2024-05-06 13:29:59", False), ("2024-05-06 13:30", True),
    ("2024-05-06 16:59:59", True), ("2024-05-06 17:00", False),
    ("2024-05-01 10:00", False),   # Wednesday, but Labour Day: a holiday closes a weekday
    ("2024-05-11 10:00", True),    # Saturday, but a make-up working day with the normal hours
    ("2024-05-11 12:30", False),   # ... including the lunch break
    ("2024-04-28 09:00", True),    # Sunday make-up day
    ("2024-05-12 10:00", False),   # an ordinary Sunday
])
def test_open_days_and_hours(when, is_open):
    assert CN_2024.is_open(sh(when)) is is_open


def test_utc_input_is_judged_in_the_calendar_zone():
    # 2024-05-06 00:30 UTC is Monday 08:30 in Shanghai; the UTC date is still Monday but
    # 2024-05-05 23:59 UTC (Sunday UTC) is Monday 07:59 local: closed.
    assert CN_2024.is_open(datetime(2024, 5, 6, 0, 30, tzinfo=timezone.utc))
    assert not CN_2024.is_open(datetime(2024, 5, 6, 0, 29, tzinfo=timezone.utc))
    assert CN_2024.open_seconds(datetime(2024, 5, 5, 23, 0, tzinfo=timezone.utc),
                                datetime(2024, 5, 6, 1, 0, tzinfo=timezone.utc)) == 0.5 * H


def test_open_intervals_are_utc_merged_and_clipped():
    got = list(CN_2024.open_intervals(sh("2024-05-10 10:00"), sh("2024-05-13 09:00")))
    utc = [(a.astimezone(SH), b.astimezone(SH)) for a, b in got]
    assert utc == [(sh("2024-05-10 10:00"), sh("2024-05-10 12:00")),
                   (sh("2024-05-10 13:30"), sh("2024-05-10 17:00")),
                   (sh("2024-05-11 08:30"), sh("2024-05-11 12:00")),
                   (sh("2024-05-11 13:30"), sh("2024-05-11 17:00")),
                   (sh("2024-05-13 08:30"), sh("2024-05-13 09:00"))]
    assert all(a.utcoffset() == timedelta(0) for a, _ in got)
    # A 24-hour calendar is one interval across midnights.
    assert list(NY_ALL_DAY.open_intervals(ny("2024-05-06 10:00"), ny("2024-05-09 10:00"))) == [
        (ny("2024-05-06 10:00"), ny("2024-05-09 10:00"))]


@pytest.mark.parametrize("day, hours", [
    ("2024-03-09", 24), ("2024-03-10", 23), ("2024-03-11", 24),   # spring forward
    ("2024-11-03", 25),                                           # fall back
])
def test_dst_days_are_as_long_as_the_wall_clock_says(day, hours):
    d = date.fromisoformat(day)
    start = datetime.combine(d, time(0), NY)
    end = datetime.combine(d + timedelta(days=1), time(0), NY)
    assert NY_ALL_DAY.open_seconds(start, end) == hours * H


@pytest.mark.parametrize("day, hours", [("2024-03-09", 3), ("2024-03-10", 2), ("2024-11-03", 4)])
def test_dst_inside_business_hours(day, hours):
    # 00:30-03:30 local straddles the 02:00 change: 2 h real on spring day, 4 h on fall day.
    d = datetime.fromisoformat(day).replace(tzinfo=NY)
    assert NY_NIGHT.open_seconds(d, d + timedelta(days=1)) == hours * H


def test_shanghai_has_no_dst_on_the_new_york_dates():
    c = Calendar("Asia/Shanghai", frozenset(range(7)), ((time(0), time(0)),))
    assert c.open_seconds(sh("2024-03-10 00:00"), sh("2024-03-11 00:00")) == 24 * H


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="aware"):
        Calendar.default().is_open(datetime(2024, 5, 6, 9, 0))


@pytest.mark.parametrize("data, message", [
    ({"hours": ["08:30-17:00", "18:00-09:00"]},
     "collector.yaml: grading.calendar.hours[1]: expected 'HH:MM-HH:MM' with start before end, got '18:00-09:00'"),
    ({"hours": ["8:30-17:00"]},
     "collector.yaml: grading.calendar.hours[0]: expected 'HH:MM-HH:MM' with start before end, got '8:30-17:00'"),
    ({"hours": ["08:30-12:00", "11:00-17:00"]},
     "collector.yaml: grading.calendar.hours[1]: expected ranges in order and apart, got '11:00-17:00' overlapping hours[0]"),
    ({"hours": []}, "collector.yaml: grading.calendar.hours: expected at least one 'HH:MM-HH:MM' range"),
    ({"timezone": "Mars/Olympus"},
     "collector.yaml: grading.calendar.timezone: expected an IANA time zone name like 'Asia/Shanghai', got 'Mars/Olympus'"),
    ({"weekdays": [7]},
     "collector.yaml: grading.calendar.weekdays[0]: expected 0-6 (0 = Monday) or a day name like 'mon', got 7"),
    ({"holidays": ["2024-13-01"]},
     "collector.yaml: grading.calendar.holidays[0]: expected a date 'YYYY-MM-DD' or a range 'YYYY-MM-DD..YYYY-MM-DD', got '2024-13-01'"),
    ({"holidays": ["2024-05-01"], "workdays": ["2024-05-01"]},
     "collector.yaml: grading.calendar.workdays: 2024-05-01 is also listed in holidays"),
    ({"hour": ["08:30-17:00"]},
     "collector.yaml: grading.calendar.hour: unknown key (expected one of timezone, weekdays, hours, holidays, workdays, public_holidays, around_the_clock)"),
    ("weekdays", "collector.yaml: grading.calendar: expected a mapping, got 'weekdays'"),
])
def test_config_errors_name_source_key_and_expectation(data, message):
    with pytest.raises(ValueError) as e:
        Calendar.from_dict(data, "collector.yaml", path="grading.calendar")
    assert str(e.value) == message


def test_config_accepts_numbers_names_24h_and_defaults():
    c = Calendar.from_dict({"weekdays": [0, "Tuesday", "sat"], "hours": ["00:00-24:00"]}, "x")
    assert c.weekdays == frozenset({0, 1, 5}) and c.timezone == "Asia/Shanghai"
    assert c.open_seconds(sh("2024-05-06 00:00"), sh("2024-05-08 00:00")) == 48 * H
    assert Calendar.from_dict({"public_holidays": False}, "x") == Calendar.default()


def test_calendar_built_in_code_is_checked_too():
    with pytest.raises(ValueError, match="hours\\[0\\]: start 17:00 is not before end 08:30"):
        Calendar("Asia/Shanghai", frozenset({0}), ((time(17), time(8, 30)),))


# ---- invariants ------------------------------------------------------------------

CALENDARS = [Calendar.default(), CN_2024, NY_ALL_DAY, NY_NIGHT,
             Calendar("America/New_York", frozenset(range(5)), ((time(9), time(17)),),
                      frozenset({date(2024, 11, 28)}), frozenset({date(2024, 11, 2)}))]
BASE = datetime(2024, 1, 1, tzinfo=timezone.utc)
moments = st.integers(0, 366 * 86400 * 1_000_000).map(lambda us: BASE + timedelta(microseconds=us))


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CALENDARS), moments, st.integers(0, 10 * 86400 * 10**6),
       st.integers(0, 10 * 86400 * 10**6))
def test_open_time_is_additive_and_never_exceeds_wall_time(cal, a, ab, bc):
    b = a + timedelta(microseconds=ab)
    c = b + timedelta(microseconds=bc)
    assert cal.open_time(a, c) == cal.open_time(a, b) + cal.open_time(b, c)
    assert cal.open_seconds(a, c) == pytest.approx(cal.open_seconds(a, b) + cal.open_seconds(b, c))
    assert timedelta(0) <= cal.open_time(a, c) <= c - a
    assert cal.open_seconds(c, a) == 0.0 or a == c


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(CALENDARS), moments)
def test_is_open_agrees_with_open_intervals(cal, t):
    assert cal.is_open(t) == (cal.open_time(t, t + timedelta(microseconds=1)) > timedelta(0))


def test_ranges_inside_a_spring_forward_gap():
    # 02:15-02:45 does not exist on 2024-03-10 in New York: read with the offset before the
    # change it is 03:15-03:45 EDT, inside the next range; the day is open 1 h of real time.
    c = Calendar("America/New_York", frozenset(range(7)), ((time(2, 15), time(2, 45)), (time(3), time(4))))
    day = ny("2024-03-10 00:00")
    assert list(c.open_intervals(day, day + timedelta(days=1))) == [
        (datetime(2024, 3, 10, 7, 0, tzinfo=timezone.utc), datetime(2024, 3, 10, 8, 0, tzinfo=timezone.utc))]
    assert c.is_open(datetime(2024, 3, 10, 7, 5, tzinfo=timezone.utc))
