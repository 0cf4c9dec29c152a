"""Grade an incident from its facts: a pure function of (facts, table, calendar, now).

How a table is read (domain.md §2; decisions where it is silent are marked):
- Only what was known by `now` counts: an outage, observation or assertion
  that starts after `now` is ignored; one still open (or ending after `now`)
  counts until `now`.
- Outages are per unit (the regulation's province, domain.md §2.1 "How
  branchwatch reads the table"): incident_facts/units decide when a unit is
  out (a share of its branches or a key site). Each outage carries its
  channel's calendar; a unit is out in business hours while an open channel
  of it is out. "k units at the same moment" is a sweep over the joined
  spans; units out at different times never add up to two.
- scope: business time with >= k units out, summed; reached at the exact
  moment the sum hits the threshold, inclusive (含).
- provisional (criterion 3): >= k units out continuously, unrepaired, for
  wall_minutes of wall-clock time, some of it outside business hours; the
  time keeps accumulating when business hours begin. Decision: a
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
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from . import wording
from .calendar import Calendar
from .facts import Grading, IncidentFacts, Outage, RuleMatch, require_aware
from .table import GradingTable, Rule

Span = tuple[datetime, datetime]


def classify(facts: IncidentFacts, table: GradingTable, calendar: Calendar, now: datetime) -> Grading:
    """The grade the table gives these facts, judged on what was known at `now`."""
    require_aware(now, "now")
    units = _unit_spans(facts.outages, calendar, now)
    by_k: dict[tuple[str, int], list[Span]] = {}

    def spans(which: str, k: int) -> list[Span]:
        if (which, k) not in by_k:
            by_k[which, k] = _at_least({u: getattr(x, which) for u, x in units.items()}, k)
        return by_k[which, k]

    words = _Words(units, calendar.zone, now)
    matches: list[RuleMatch] = []
    latest: dict[str, datetime] = {}          # override rule id -> its latest assertion
    for rule in table.rules:
        k = rule.regions_at_least
        if rule.kind == "scope":
            m = _scope(rule, spans("business", k), words)
        elif rule.kind == "provisional":
            m = _provisional(rule, spans("wall", k), spans("business", k), words)
        elif rule.kind == "observed":
            m = _observed(rule, facts, now, words)
        else:
            m, last = _asserted(rule, facts, now, words)
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
        en, zh = _ungraded(table, units, words)
        return Grading(table.name, None, None, False, None, en, reasons_zh=zh)
    rest = [m for m in matches if m is not win]
    en = tuple(dict.fromkeys([win.reason] + [m.reason for m in rest]))
    zh = tuple(dict.fromkeys([win.reason_zh] + [m.reason_zh for m in rest]))
    return Grading(table.name, win.grade, win.rule, win.provisional, win.reached_at,
                   en, tuple(matches), zh)


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

@dataclass
class _Unit:
    """One unit's outages up to `now`: wall-clock spans, business-hours spans
    (each outage on its channel's calendar, domain.md §2.1), and the outages."""

    wall: list[Span] = field(default_factory=list)
    business: list[Span] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)


def _unit_spans(outages: Iterable[Outage], calendar: Calendar, now: datetime) -> dict[str, _Unit]:
    """Per unit, its outages clipped to `now` and joined: a unit is out while any
    of its channels is out, and out in business hours while an open one is."""
    units: dict[str, _Unit] = {}
    for o in outages:
        end = now if o.end is None or o.end > now else o.end
        if o.start < end:
            u = units.setdefault(o.region, _Unit())
            u.outages.append(o)
            u.wall.append((o.start, end))
            u.business.extend((o.calendar or calendar).open_intervals(o.start, end))
    for u in units.values():
        u.wall, u.business = _union(u.wall), _union(u.business)
    return units


def _union(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _at_least(units: dict[str, list[Span]], k: int) -> list[Span]:
    """Maximal spans during which >= k units were out at the same moment."""
    events = sorted([(s, 1) for spans in units.values() for s, _ in spans]
                    + [(e, -1) for spans in units.values() for _, e in spans],
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


# ---- one function per rule kind ---------------------------------------------------

def _scope(rule: Rule, business: list[Span], words: _Words) -> RuleMatch | None:
    # domain.md §2.1: business-hours time with >= k units out at once, summed; inclusive (含).
    need = timedelta(minutes=rule.business_minutes)
    acc, reached = timedelta(), None
    for s, e in business:
        if reached is None and acc + (e - s) >= need:
            reached = s + (need - acc)
        acc += e - s
    if reached is None:
        return None
    en, zh = words.business(business, acc, rule.regions_at_least)
    return RuleMatch(rule.id, rule.grade, reached, False, en, zh)


def _provisional(rule: Rule, wall: list[Span], business: list[Span], words: _Words
                 ) -> RuleMatch | None:
    # domain.md §2.1 criterion 3: a fault not yet repaired outside business hours
    # counts its wall-clock time against the same thresholds, and keeps
    # accumulating when business hours begin. Reached once the stretch has
    # lasted the threshold and has been outside business hours at some moment
    # before its repair (while all of it is business time, the firm rule speaks).
    need = timedelta(minutes=rule.wall_minutes)
    for s, e in wall:
        closed = _first_closed(business, s, e)
        if e - s >= need and closed is not None and max(s + need, closed) <= e:
            at = max(s + need, closed)
            en, zh = words.unrepaired(s, e, rule.regions_at_least)
            return RuleMatch(rule.id, rule.grade, at, True, en, zh)
    return None


def _first_closed(business: list[Span], s: datetime, e: datetime) -> datetime | None:
    """The first moment in [s, e) that the business-hours spans do not cover."""
    t = s
    for a, b in business:
        if b <= t:
            continue
        if a > t:
            break
        t = b
    return t if t < e else None


def _observed(rule: Rule, facts: IncidentFacts, now: datetime, words: _Words) -> RuleMatch | None:
    seen = sorted((o for o in facts.observed if o.kind in rule.kinds_any and o.start <= now),
                  key=lambda o: o.start)
    if not seen:
        return None
    what = "; ".join(dict.fromkeys(f"{o.kind}{': ' + o.detail if o.detail else ''}" for o in seen))
    since = words.clock(seen[0].start)
    title = rule.title or rule.id
    return RuleMatch(rule.id, rule.grade, seen[0].start, False,
                     f"{title}: seen since {since}: {what}",
                     f"{rule.title_zh or title}:自 {since} 起观察到 {what}")


def _asserted(rule: Rule, facts: IncidentFacts, now: datetime, words: _Words
              ) -> tuple[RuleMatch | None, datetime | None]:
    held = sorted((a for a in facts.assertions
                   if a.criterion == rule.criterion and not a.withdrawn and a.at <= now),
                  key=lambda a: a.at)
    if not held:
        return None, None
    a = held[-1]
    title = rule.title or rule.criterion
    en = f"{title}: {'corrected' if rule.override else 'set'} by {a.who} at {words.clock(a.at)}: {a.why}"
    zh = f"{rule.title_zh or title}:{a.who} 于 {words.clock(a.at)} {'更正' if rule.override else '认定'}:{a.why}"
    return RuleMatch(rule.id, rule.grade, held[0].at, False, en, zh), a.at


def _ungraded(table: GradingTable, units: dict[str, _Unit], words: _Words
              ) -> tuple[tuple[str, ...], tuple[str, ...]]:
    lowest = table.grades[-1]
    en = [f"below grade {lowest} of {table.title}: ungraded"]
    zh = [f"未达到{table.title_zh or table.title}的 {lowest} 级:未定级"]
    if units:
        business = _at_least({u: x.business for u, x in units.items()}, 1)
        wall = _at_least({u: x.wall for u, x in units.items()}, 1)
        b_en, b_zh = words.below(wall, sum((e - s for s, e in business), timedelta()),
                                 max((e - s for s, e in wall), default=timedelta()))
        en.append(b_en)
        zh.append(b_zh)
    return tuple(en), tuple(zh)


# ---- wording ------------------------------------------------------------------------

class _Words:
    """Reasons for one classification: who (units, branches, key sites), since when."""

    def __init__(self, units: dict[str, _Unit], zone, now: datetime):
        self.units, self.zone, self.now = units, zone, now

    def clock(self, t: datetime) -> str:
        return wording.clock(t, self.zone, self.now)

    def _who(self, spans: list[Span], lang: str) -> tuple[str, datetime | None]:
        """The units out during these spans, in words, and since when they were."""
        found = []
        for name in self.units:
            hit = [o for o in self.units[name].outages
                   if any(o.start < b and a < (o.end or self.now) for a, b in spans)]
            if hit:
                key = next((o.key_site for o in hit if o.key_site), "")
                out, enrolled = max((o.out_of for o in hit), default=(0, 0))
                found.append((min(o.start for o in hit), name,
                              wording.unit_words(name, out, enrolled, key, lang)))
        found.sort()                     # in the order they went out
        return wording.joined([w for _, _, w in found], lang), (found[0][0] if found else None)

    def business(self, spans: list[Span], total: timedelta, k: int) -> tuple[str, str]:
        out = []
        for lang in wording.LANGUAGES:
            who, since = self._who(spans, lang)
            out.append(wording.business_reason(who, self.clock(since) if since else "?",
                                               total, lang, k > 1))
        return out[0], out[1]

    def below(self, wall: list[Span], business: timedelta, longest: timedelta) -> tuple[str, str]:
        out = []
        for lang in wording.LANGUAGES:
            who, since = self._who(wall, lang)
            out.append(wording.below_reason(who, self.clock(since) if since else "?",
                                            business, longest, lang))
        return out[0], out[1]

    def unrepaired(self, s: datetime, e: datetime, k: int) -> tuple[str, str]:
        out = []
        for lang in wording.LANGUAGES:
            who, _ = self._who([(s, e)], lang)
            out.append(wording.unrepaired_reason(who, self.clock(s), e - s, lang, k > 1))
        return out[0], out[1]
