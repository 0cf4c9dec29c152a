"""Where the report templates live, and how they write a time (shared by the
renderers, the prefilled texts and the drill reports)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

TEMPLATES = Path(__file__).parent / "templates"


def time_format(tz: str):
    """A function for templates: RFC 3339 text (or a datetime) as 'YYYY-MM-DD HH:MM'
    in the report's time zone; None stays None."""
    zone = ZoneInfo(tz)

    def t(value, pattern: str = "%Y-%m-%d %H:%M"):
        if value is None:
            return None
        when = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.astimezone(zone).strftime(pattern)
    return t
