"""Grade an incident from its facts: a pure function of (facts, table, calendar, now).

How a table is read (domain.md §2; decisions where it is silent are marked):
- Only what was known by `now` counts: an outage, observation or assertion
  that starts after `now` is ignored; one still open (or ending after `now`)
  counts until `now`.
- A region's outages are joined (two branches of one region out at once are
  one region out). "k regions at the same moment" is a sweep over those
  joined spans; regions out at different times never add up to two.
- scope: business time (calendar) with >= k regions out, summed; reached at
  the exact moment the sum hits the threshold, inclusive (含).
- provisional: the first moment outside business hours at which >= k regions
  have been out continuously for wall_minutes (inclusive). Decision: a
  criterion that held at any moment up to `now` still counts, because a grade
  never drops by itself (domain.md §2.1, 第六條) and events arrive late (a cut
  line, a spool replay): the grade must not depend on when the collector
  happened to look. So classify is monotone in `now` and in the facts.
- observed: any listed kind seen; asserted: a person set the criterion
  (withdrawn assertions are ignored: withdrawing is how a grade goes down).
- The highest grade wins; on equal grades a firm rule beats a provisional one
  (the provisional criterion only stands in for one not yet met), then the
  first rule in the file.
- Decision (hospital): an asserted rule with `override: true` is a person's
  cause or correction ("A person may also correct a class, with a reason",
  domain.md §2.2); when one holds it replaces every other rule, and among
  several the latest assertion wins.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from .calendar import Calendar
from .facts import Grading, IncidentFacts, Outage, RuleMatch, require_aware
from .table import GradingTable, Rule

Span = tuple[datetime, datetime]


def classify(facts: IncidentFacts, table: GradingTable, calendar: Calendar, now: datetime) -> Grading:
    """The grade the table gives these facts, judged on what was known at `now`."""
    require_aware(now, "now")
    regions = _region_spans(facts.outages, now)
    by_k: dict[int, list[Span]] = {}

    def spans(k: int) -> list[Span]:
        if k not in by_k:
            by_k[k] = _at_least(regions, k)
        return by_k[k]

    matches: list[RuleMatch] = []
    latest: dict[str, datetime] = {}          # override rule id -> its latest assertion
    for rule in table.rules:
        if rule.kind in ("scope", "provisional"):
            m = _EVAL[rule.kind](rule, spans(rule.regions_at_least), regions, calendar)
        elif rule.kind == "observed":
            m = _observed(rule, facts, now)
        else:
            m, last = _asserted(rule, facts, now)
            if m and rule.override:
                latest[rule.id] = last
        if m:
            matches.append(m)

    order = {r.id: i for i, r in enumerate(table.rules)}
    if latest:
        # domain.md §2.2: a person's correction stands over observation; the latest one.
        win_id = max(latest, key=lambda rid: (latest[rid], order[rid]))
        win = next(m for m in matches if m.rule == win_id)
    elif matches:
        win = min(matches, key=lambda m: (-table.rank(m.grade), m.provisional, order[m.rule]))
    else:
        return Grading(table.name, None, None, False, None, _ungraded(table, regions, calendar, now))
    others = [f"also: {m.reason}" for m in matches if m is not win]
    return Grading(table.name, win.grade, win.rule, win.provisional, win.reached_at,
                   (win.reason, *others), tuple(matches))


def raise_only(previous: Grading | None, new: Grading, table: GradingTable) -> Grading:
    """The grade to keep: never lower than before by itself (domain.md §2.1, 第六條)."""
    if previous is None:
        return new
    if any(r.id == new.rule and r.override for r in table.rules):
        return new     # a person's correction is not "by itself" (domain.md §2.2, §4 第四條)
    up = table.rank(new.grade) - table.rank(previous.grade)
    if up > 0:
        return new
    if up < 0:
        return previous
    # Same grade: a firm grade replaces a provisional one, never the reverse.
    return previous if (new.provisional and not previous.provisional) else new


# ---- outage geometry ------------------------------------------------------------

def _region_spans(outages: Iterable[Outage], now: datetime) -> dict[str, list[tuple[datetime, datetime, str]]]:
    """Per region, its outages clipped to `now` and joined: (start, end, causes)."""
    raw: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for o in outages:
        end = now if o.end is None or o.end > now else o.end
        if o.start < end:
            raw.setdefault(o.region, []).append((o.start, end, o.cause))
    joined: dict[str, list[tuple[datetime, datetime, str]]] = {}
    for region, items in raw.items():
        out: list[tuple[datetime, datetime, str]] = []
        for s, e, c in sorted(items):
            if out and s <= out[-1][1]:
                ps, pe, pc = out[-1]
                causes = pc if not c or c in pc.split("; ") else f"{pc}; {c}" if pc else c
                out[-1] = (ps, max(pe, e), causes)
            else:
                out.append((s, e, c))
        joined[region] = out
    return joined


def _at_least(regions: dict, k: int) -> list[Span]:
    """Maximal spans during which >= k regions were out at the same moment."""
    events = sorted([(s, 1) for items in regions.values() for s, _, _ in items]
                    + [(e, -1) for items in regions.values() for _, e, _ in items],
                    key=lambda ev: (ev[0], ev[1]))      # ends first: [s, e) spans do not overlap at e
    spans: list[Span] = []
    count, opened = 0, None
    for t, delta in events:
        count += delta
        if count >= k and opened is None:
            opened = t
        elif count < k and opened is not None:
            if spans and spans[-1][1] == opened:        # no gap in time: one span
                spans[-1] = (spans[-1][0], t)
            elif opened < t:
                spans.append((opened, t))
            opened = None
    return spans


def _regions_in(regions: dict, spans: Iterable[Span]) -> list[str]:
    """Regions out during any of these spans, with their causes."""
    spans = list(spans)
    found = []
    for region in sorted(regions):
        causes = [c for s, e, c in regions[region] if any(s < b and a < e for a, b in spans)]
        if causes:
            why = "; ".join(dict.fromkeys(x for c in causes for x in c.split("; ") if x))
            found.append(f"{region} ({why})" if why else region)
    return found


def _first_closed(calendar: Calendar, a: datetime, b: datetime) -> datetime | None:
    """The earliest moment in [a, b] outside business hours, or None."""
    t = a
    for s, e in calendar.open_intervals(a, b + timedelta(microseconds=1)):
        if s > t:
            break
        t = e                     # intervals are merged: the next one starts later
    return t if t <= b else None


# ---- one function per rule kind ---------------------------------------------------

def _scope(rule: Rule, spans: list[Span], regions: dict, calendar: Calendar) -> RuleMatch | None:
    # domain.md §2.1: business-hours time with >= k regions out at once, summed; inclusive (含).
    need = timedelta(minutes=rule.business_minutes)
    acc, reached, counted = timedelta(), None, []
    for s, e in spans:
        for os_, oe in calendar.open_intervals(s, e):
            if reached is None and acc + (oe - os_) >= need:
                reached = os_ + (need - acc)
            acc += oe - os_
            counted.append((os_, oe))
    if reached is None:
        return None
    who = ", ".join(_regions_in(regions, counted))
    reason = (f"{rule.id} ({rule.grade}): {_scope_words(rule.regions_at_least)} "
              f"for {_dur(acc)} of business time (threshold {_dur(need)}), reached at "
              f"{_when(reached, calendar)}; regions: {who}")
    return RuleMatch(rule.id, rule.grade, reached, False, reason)


def _provisional(rule: Rule, spans: list[Span], regions: dict, calendar: Calendar) -> RuleMatch | None:
    # domain.md §2.1 criterion 3: outside business hours, unrepaired for 30 wall minutes.
    wall = timedelta(minutes=rule.wall_minutes)
    for s, e in spans:
        if e - s < wall:
            continue
        t = _first_closed(calendar, s + wall, e)
        if t is not None:
            who = ", ".join(_regions_in(regions, [(s, t)]))
            reason = (f"{rule.id} ({rule.grade}, provisional): {_scope_words(rule.regions_at_least)} "
                      f"since {_when(s, calendar)}, {_dur(t - s)} unrepaired outside business hours "
                      f"at {_when(t, calendar)} (threshold {_dur(wall)} wall-clock); regions: {who}")
            return RuleMatch(rule.id, rule.grade, t, True, reason)
    return None


def _observed(rule: Rule, facts: IncidentFacts, now: datetime) -> RuleMatch | None:
    seen = sorted((o for o in facts.observed if o.kind in rule.kinds_any and o.start <= now),
                  key=lambda o: o.start)
    if not seen:
        return None
    what = "; ".join(dict.fromkeys(f"{o.kind}{': ' + o.detail if o.detail else ''}" for o in seen))
    reason = f"{rule.id} ({rule.grade}): observed since {_iso(seen[0].start)}: {what}"
    return RuleMatch(rule.id, rule.grade, seen[0].start, False, reason)


def _asserted(rule: Rule, facts: IncidentFacts, now: datetime) -> tuple[RuleMatch | None, datetime | None]:
    held = sorted((a for a in facts.assertions
                   if a.criterion == rule.criterion and not a.withdrawn and a.at <= now),
                  key=lambda a: a.at)
    if not held:
        return None, None
    a = held[-1]
    kind = "correction" if rule.override else "criterion"
    reason = (f"{rule.id} ({rule.grade}): {kind} {rule.criterion!r} set by {a.who} at {_iso(a.at)}: "
              f"{a.why}" + (f" ({rule.title})" if rule.title else ""))
    return RuleMatch(rule.id, rule.grade, held[0].at, False, reason), a.at


_EVAL = {"scope": _scope, "provisional": _provisional}


def _ungraded(table: GradingTable, regions: dict, calendar: Calendar, now: datetime) -> tuple[str, ...]:
    lowest = table.grades[-1]
    lines = [f"no rule of table {table.name} holds: below grade {lowest} (ungraded)"]
    if regions:
        one = _at_least(regions, 1)
        lines.append(f"regions out: {', '.join(_regions_in(regions, one))}; business time with a "
                     f"region out: {_dur(sum((calendar.open_time(s, e) for s, e in one), timedelta()))}")
    return tuple(lines)


# ---- wording ------------------------------------------------------------------------

def _dur(d: timedelta) -> str:
    """1h02m, 30m, 29m59s, 0.5s: short and exact enough for a reason line."""
    total = d.total_seconds()
    h, rest = divmod(int(total), 3600)
    m, s = divmod(rest, 60)
    frac = total - int(total)
    text = (f"{h}h" if h else "") + (f"{m:02d}m" if h else f"{m}m" if m else "")
    if s or frac or not text:
        text += f"{s + frac:g}s" if frac else f"{s}s"
    return text


def _scope_words(k: int) -> str:
    return "a region out" if k == 1 else f"{k} or more regions out at the same moment"


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _when(t: datetime, calendar: Calendar) -> str:
    """Local calendar time, as the people on duty read it."""
    return t.astimezone(calendar.zone).strftime("%Y-%m-%d %H:%M:%S %Z")
