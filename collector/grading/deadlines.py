"""Plan an incident's deadlines from its table, its start and end, and its grade history.

Pure: the same inputs give the same list, so the caller can re-plan after
every change (a new grade, the end) and store the result with the incident.
The deadline kinds are data in the table (domain.md §3, §2.3):

- after_start:        start + minutes, once min_grade was reached; with
                      not_before_grade, no earlier than the moment it was
                      reached (§3: reached after its 60 min → due on reaching);
                      at_once_for_rules: due at the moment one of those rules
                      held, if earlier (§3: at once for every data criterion, 第二十七條(六)).
                      Counted from the original start, so an upgrade does not move it.
- after_grade_reached: first reaching of min_grade + minutes.
- every_after_grade:  first reaching of min_grade + n × minutes, n = 1, 2, ...
                      while the incident is open (§3: grade I progress every 2 h).
                      Planned: every one due up to `now`, and the next one;
                      after the end, every one due before the end.
- after_end:          end + minutes (hospital §6.6 review within 2 days).
- after_observed_start: an observed kind's start + minutes, unless it was over
                      by then (§2.3 manual-operation milestones); `observed` may
                      give a kind several separate spans: each plans its own,
                      the second keyed KEY-2, and so on.
- day_of_observed_end: once an observed kind's span has ended, the end of that
                      local day + `days` days (§2.3, hospital §6.4: important data
                      re-entered the same day, all data the next day), in `zone`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone, tzinfo

from .facts import Grading, IncidentFacts, RuleMatch, require_aware
from .table import DeadlineRule, GradingTable

WHOLE_NETWORK = "network_down_whole"
MAX_PERIODIC = 24          # every_after_grade: planned reports kept (2 days of 2-hourly ones)


@dataclass(frozen=True)
class Deadline:
    """One thing due by a moment: stable key, what, when, which table deadline, why."""

    key: str            # stable, e.g. "regulator-notice", "progress-2", "manual-30m"
    title: str
    due_at: datetime
    rule: str           # the table deadline's key
    reason: str
    departments: tuple[str, ...] = ()


# (grade, reached_at) or (grade, reached_at, rule_id), or a RuleMatch
HistoryItem = tuple | RuleMatch


def plan_deadlines(table: GradingTable, started_at: datetime, ended_at: datetime | None,
                   grade_history: Iterable[HistoryItem], now: datetime,
                   whole_network_outage_start: datetime | None = None, *,
                   whole_network_outage_end: datetime | None = None,
                   observed: Mapping[str, tuple[datetime, datetime | None]] | None = None,
                   zone: tzinfo = timezone.utc) -> list[Deadline]:
    """Every deadline the table sets for this incident, ordered by due time; days
    (day_of_observed_end) are counted in `zone`, the calendar's."""
    for t, what in ((started_at, "started_at"), (ended_at, "ended_at"), (now, "now"),
                    (whole_network_outage_start, "whole_network_outage_start"),
                    (whole_network_outage_end, "whole_network_outage_end")):
        require_aware(t, what)
    history = _history(table, grade_history, now)
    # kind -> its separate spans, oldest first (a single span is a list of one).
    spans = {k: list(v) if isinstance(v, list) else [v] for k, v in (observed or {}).items()}
    if whole_network_outage_start is not None:
        spans[WHOLE_NETWORK] = [(whole_network_outage_start, whole_network_outage_end)]
    out: list[Deadline] = []
    for d in table.deadlines:
        if d.kind == "day_of_observed_end":
            out.extend(_day_of_observed_end(d, spans, zone))
            continue
        out.extend(_PLAN[d.kind](d, table, started_at, ended_at, history, now, spans))
    return sorted(out, key=lambda x: (x.due_at, x.key))


# --- deadlines a workflow moment sets, not the table (domain.md §3) ------------------
REGULATOR_NOTICE = "regulator-notice"


def regulator_table(tables: Mapping[str, GradingTable]) -> str | None:
    """The table whose deadlines are the regulator's (it plans a regulator notice)."""
    return next((n for n, t in tables.items()
                 if any(d.key == REGULATOR_NOTICE for d in t.deadlines)), None)


def plan_failure(n: int, run: str, step: str, detail: str, at: datetime) -> Deadline:
    """第三十條: a plan or decision failed while handling: the leadership group
    reports to the regulator at once (due at that moment)."""
    require_aware(at, "at")
    return Deadline(f"plan-failed-{n}", "Report the failed plan to the regulator at once", at,
                    "plan-failed", f"at once: {run} {step} failed at {_iso(at)}: {detail} (第三十條)")


def reporter_filing(n: int, old: str, new: str, at: datetime) -> Deadline:
    """第二十六條: a change of the reporter (報告責任人) is filed with the regulator.
    Chosen: at once, as the other changes the leadership reports (the seed gives no time)."""
    require_aware(at, "at")
    return Deadline(f"reporter-filing-{n}", "File the change of reporter with the regulator", at,
                    "reporter-filing", f"reporter changed from {old} to {new} at {_iso(at)} "
                                       "(第二十六條)")


def history_from(grading: Grading) -> list[tuple[str, datetime, str]]:
    """grade_history items from one classify() result: every rule that held."""
    return [(m.grade, m.reached_at, m.rule) for m in grading.matches]


def observed_span_lists(facts: IncidentFacts, now: datetime
                        ) -> dict[str, list[tuple[datetime, datetime | None]]]:
    """Per observed kind, its separate continuous spans known at `now`, oldest first
    (overlapping or touching ones joined; end None = still on)."""
    out: dict[str, list[list]] = {}
    for o in sorted((o for o in facts.observed if o.start <= now), key=lambda o: o.start):
        end = None if o.end is None or o.end > now else o.end
        spans = out.setdefault(o.kind, [])
        if spans and (spans[-1][1] is None or o.start <= spans[-1][1]):
            if spans[-1][1] is not None:
                spans[-1][1] = None if end is None else max(spans[-1][1], end)
        else:
            spans.append([o.start, end])
    return {k: [(s, e) for s, e in v] for k, v in out.items()}


def observed_spans(facts: IncidentFacts, now: datetime) -> dict[str, tuple[datetime, datetime | None]]:
    """Per observed kind, its first continuous span known at `now` (end None = still on)."""
    out: dict[str, tuple[datetime, datetime | None]] = {}
    for o in sorted((o for o in facts.observed if o.start <= now), key=lambda o: o.start):
        end = None if o.end is None or o.end > now else o.end
        if o.kind not in out:
            out[o.kind] = (o.start, end)
        else:
            s, e = out[o.kind]
            if e is not None and o.start <= e:   # overlapping or touching: the same span
                out[o.kind] = (s, None if end is None else max(e, end))
    return out


def _history(table: GradingTable, items: Iterable[HistoryItem], now: datetime):
    """(rank, reached_at, rule) for each item known by `now`; rank checks the grade."""
    out = []
    for item in items:
        if isinstance(item, RuleMatch):
            grade, reached, rule = item.grade, item.reached_at, item.rule
        else:
            grade, reached, rule = (tuple(item) + (None,))[:3]
        require_aware(reached, "grade_history reached_at")
        if grade is not None and reached <= now:
            out.append((table.rank(grade), reached, rule))
    return out


def _first_reached(table: GradingTable, history, grade: str | None) -> datetime | None:
    """The first moment the incident held `grade` or higher (any grade when None)."""
    need = table.rank(grade) if grade is not None else 1
    times = [r for rank, r, _ in history if rank >= need]
    return min(times) if times else None


def _after_start(d: DeadlineRule, table, started_at, ended_at, history, now, spans):
    reached = _first_reached(table, history, d.min_grade)
    if d.min_grade is not None and reached is None:
        return []
    due = started_at + timedelta(minutes=d.minutes)
    why = f"{_mins(d.minutes)} after the incident's start at {_iso(started_at)}"
    if d.not_before_grade and reached is not None and reached > due:
        # domain.md §3: grade reached after the window passed: due at the moment it was reached.
        due, why = reached, f"grade {d.min_grade} or higher reached at {_iso(reached)}, after the {_mins(d.minutes)} had passed"
    once = [(r, rule) for _, r, rule in history if rule in d.at_once_for_rules]
    if once and min(once)[0] < due:
        # domain.md §3: immediately for a data/damage criterion (第二十七條(六)).
        r, rule = min(once)
        due, why = r, f"at once: rule {rule} held at {_iso(r)}"
    return [Deadline(d.key, d.title, due, d.key, _cite(why, d))]


def _after_grade_reached(d: DeadlineRule, table, started_at, ended_at, history, now, spans):
    reached = _first_reached(table, history, d.min_grade)
    if reached is None:
        return []
    due = reached + timedelta(minutes=d.minutes)
    why = f"{_mins(d.minutes)} after grade {d.min_grade} was reached at {_iso(reached)}"
    return [Deadline(d.key, d.title, due, d.key, _cite(why, d))]


def _every_after_grade(d: DeadlineRule, table, started_at, ended_at, history, now, spans):
    reached = _first_reached(table, history, d.min_grade)
    if reached is None:
        return []
    period = timedelta(minutes=d.minutes)
    # At most the MAX_PERIODIC most recent (and the next): a grade reached long
    # ago (a replay of old events, a broken agent clock) must not plan thousands.
    limit = ended_at if ended_at is not None else now
    n = max(1, int((limit - reached) / period) - MAX_PERIODIC + 1)
    out = []
    while True:
        due = reached + n * period
        # Decision: a report due exactly at the end is replaced by the end itself (第三十三條).
        if ended_at is not None and due >= ended_at:
            break
        why = f"{n} × {_mins(d.minutes)} after grade {d.min_grade} was reached at {_iso(reached)}"
        out.append(Deadline(f"{d.key}-{n}", d.title, due, d.key, _cite(why, d)))
        if ended_at is None and due > now:
            break                       # the next upcoming one, then stop
        n += 1
    return out


def _after_end(d: DeadlineRule, table, started_at, ended_at, history, now, spans):
    if ended_at is None:
        return []
    if d.min_grade is not None and _first_reached(table, history, d.min_grade) is None:
        return []
    why = f"{_mins(d.minutes)} after the incident ended at {_iso(ended_at)}"
    return [Deadline(d.key, d.title, ended_at + timedelta(minutes=d.minutes), d.key, _cite(why, d))]


def _span_key(d: DeadlineRule, n: int) -> str:
    # The first span keeps the table's key; a later outage of the same incident
    # (the network back, then out again) gets its own: manual-30m-2, reentry-all-2.
    return d.key if n == 1 else f"{d.key}-{n}"


def _after_observed_start(d: DeadlineRule, table, started_at, ended_at, history, now, spans):
    out = []
    for n, (start, end) in enumerate(spans.get(d.observed, []), 1):
        due = start + timedelta(minutes=d.minutes)
        over = end if end is not None else ended_at
        # hospital §3.2 "not restored within 30 min": restored by the milestone → no milestone.
        if over is not None and over <= due:
            continue
        why = f"{_mins(d.minutes)} after {d.observed} began at {_iso(start)}"
        if d.departments:
            why += f"; switch to paper: {', '.join(d.departments)}"
        out.append(Deadline(_span_key(d, n), d.title, due, d.key, _cite(why, d), d.departments))
    return out


def _day_of_observed_end(d: DeadlineRule, spans, zone: tzinfo) -> list[Deadline]:
    out = []
    for n, (_, end) in enumerate(spans.get(d.observed, []), 1):
        if end is None:
            continue                    # still out: nothing to re-enter yet
        day = end.astimezone(zone).date() + timedelta(days=d.days + 1)
        # The end of the day is the next day's midnight there (due "by" it: 當日, 第二天).
        due = datetime.combine(day, time(0, 0), zone).astimezone(timezone.utc)
        when = "the same day" if d.days == 0 else "the next day" if d.days == 1 else \
            f"{d.days} days later"
        why = f"{d.observed} ended at {_iso(end)}: by the end of {when} ({_iso(due)})"
        out.append(Deadline(_span_key(d, n), d.title, due, d.key, _cite(why, d), d.departments))
    return out


_PLAN = {"after_start": _after_start, "after_grade_reached": _after_grade_reached,
         "every_after_grade": _every_after_grade, "after_end": _after_end,
         "after_observed_start": _after_observed_start}


def _mins(m: float) -> str:
    if m % 60 == 0:
        h = int(m // 60)
        return f"{h // 24} days" if h % 24 == 0 and h >= 48 else f"{h} h"
    return f"{m:g} min"


def _iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cite(why: str, d: DeadlineRule) -> str:
    return f"{why} ({d.cite})" if d.cite else why
