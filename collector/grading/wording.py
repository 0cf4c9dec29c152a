"""Grade reasons in a person's words, in Chinese and English.

A reason says who cannot do business, since when, and for how long, the way
the people on duty would write it ("2 of 4 branches in 福建 cannot do
business since 10:10 (business time 30 min)"): durations as "1 hr, 5 min",
never "1:05:00.000312", and no rule ids.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from ..timewords import span

LANGUAGES = ("en", "zh")


def duration(d: timedelta, lang: str = "en") -> str:
    """A duration as a person reads it, by Babel (collector/timewords.span): '30 min',
    '3 hr', '1 hr, 5 min', '29 min, 59 sec' (en) or '30分钟', '3小时', '1小时5分钟',
    '29分钟59秒' (zh); two units at most, never fractions of a second."""
    return span(d, lang)


def clock(t: datetime, zone: ZoneInfo, now: datetime | None = None) -> str:
    """Local time as the people on duty read it: '10:10' on the day of `now`,
    '2026-12-01 10:10' on another day (seconds only when there are some)."""
    local = t.astimezone(zone)
    text = local.strftime("%H:%M:%S" if local.second else "%H:%M")
    if now is None or now.astimezone(zone).date() != local.date():
        text = f"{local:%Y-%m-%d} {text}"
    return text


def unit_words(unit: str, out: int, enrolled: int, key_site: str, lang: str) -> str:
    """Who cannot do business in one unit: 'the key site DC-01 of 福建' or
    '2 of 4 branches in 福建' (the unit's name left out when it has none)."""
    if lang == "zh":
        place = f"{unit}" if unit else ""
        if key_site:
            return f"{place}关键站点 {key_site}" if place else f"关键站点 {key_site}"
        if enrolled:
            return f"{place} {enrolled} 个网点中 {out} 个".strip()
        return f"{place}".strip() or "网点"
    where = f" in {unit}" if unit else ""
    if key_site:
        return f"the key site {key_site}" + (f" of {unit}" if unit else "")
    if enrolled:
        return f"{out} of {enrolled} branch{'es' if enrolled != 1 else ''}{where}"
    return unit or "the branches"


def joined(parts: list[str], lang: str) -> str:
    """'A', 'A and B', 'A, B and C' (en); 'A、B' (zh)."""
    if lang == "zh":
        return "、".join(parts)
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def stopped_since(who: str, since: str, lang: str, together: bool) -> str:
    """'<who> cannot do business since <since>' (together: at the same time)."""
    if lang == "zh":
        return f"{who}自 {since} 起{'同时' if together else ''}无法正常营业"
    return f"{who} cannot do business{' at the same time' if together else ''} since {since}"


def business_reason(who: str, since: str, business: timedelta, lang: str, together: bool) -> str:
    """A firm grade's reason: counted in business time."""
    head = stopped_since(who, since, lang, together)
    if lang == "zh":
        return f"{head}(营业时间 {duration(business, 'zh')})"
    return f"{head} (business time {duration(business)})"


def unrepaired_reason(who: str, since: str, wall: timedelta, lang: str, together: bool) -> str:
    """A provisional grade's reason: wall-clock time unrepaired, partly outside business hours."""
    head = stopped_since(who, since, lang, together)
    if lang == "zh":
        return f"{head},{duration(wall, 'zh')}未修复,部分在营业时间以外(暂定等级)"
    return (f"{head}, unrepaired for {duration(wall)}, partly outside business hours "
            f"(provisional)")


def below_reason(who: str, since: str, business: timedelta, wall: timedelta, lang: str) -> str:
    """An ungraded incident's scope so far: business time and time unrepaired."""
    head = stopped_since(who, since, lang, False)
    if lang == "zh":
        return f"{head}(营业时间 {duration(business, 'zh')},未修复 {duration(wall, 'zh')})"
    return f"{head} (business time {duration(business)}, unrepaired {duration(wall)})"
