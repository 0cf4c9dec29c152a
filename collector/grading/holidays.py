"""The State Council's public holidays and make-up working days (調休), from the
`chinese-calendar` package (domain.md §2.1: "The default calendar is the State
Council's public holidays and make-up working days for the year, from a
maintained package, overridable").

The package knows the years the State Council has published; past its last
year the calendar has weekdays only, so `stale_warning` says so in one line
(at start, and /metrics shows the year it knows up to).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import date, datetime
from importlib import metadata


@dataclass(frozen=True)
class PublicHolidays:
    """Closed weekdays and open weekend days, for the years from first to last."""

    holidays: frozenset[date]
    workdays: frozenset[date]
    first_year: int
    last_year: int
    source: str                    # "chinese-calendar 1.11.0"


@functools.cache
def public_holidays() -> PublicHolidays:
    """What the installed chinese-calendar package knows (read once)."""
    from chinese_calendar import constants
    holidays, workdays = frozenset(constants.holidays), frozenset(constants.workdays)
    years = {d.year for d in holidays | workdays}
    try:
        version = metadata.version("chinese-calendar")
    except metadata.PackageNotFoundError:      # installed under its other name, chinesecalendar
        version = "?"
    return PublicHolidays(holidays, workdays, min(years), max(years), f"chinese-calendar {version}")


def stale_warning(now: datetime, known: PublicHolidays | None = None) -> str | None:
    """One line when `now`'s year is past the package's data, else None."""
    known = known or public_holidays()
    if now.year <= known.last_year:
        return None
    return (f"grading calendar: {known.source} knows public holidays up to {known.last_year}, "
            f"not {now.year}: business days are weekdays only until the package is upgraded "
            f"or grading.calendar.holidays/workdays list them")
