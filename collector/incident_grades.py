"""Grades and deadlines kept on an incident (issue 5; domain.md §2, §3).

`regrade` is pure: given an incident, its facts (incident_facts.py), the
tables, the calendar and `now`, it updates the incident's grade per table,
its grade history and its deadlines, and returns the changes for the audit
trail. The collector calls it on every tick, so a grade is reached as time
passes even when no event arrives; the moment a rule first held is computed
exactly by classify, never "when we happened to look".

Rules, cited where they live:
- a grade only rises by itself (第六條, domain.md §2.1): raise_only;
- a person may lower it with a reason (第四條(一)3): `set_grade`; the
  person's grade stands until the facts give more than they gave when the
  person decided;
- a person sets or withdraws data criteria with a reason; withdrawing is
  a person's act, so the grade is judged afresh;
- deadlines are planned from the original start (domain.md §3) and stored
  with the incident: each is due, met (by whom, with what was sent) or
  missed; missing one is a change raised exactly once, because its state
  is saved with the incident in the same transaction as the audit record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from .grading import (Assertion, Calendar, Grading, GradingTable, IncidentFacts, classify,
                      observed_span_lists, plan_deadlines, raise_only)
from .incidents import Change, Incident, Refused


@dataclass
class GradeChange:
    """One step in a table's grade on an incident: by a rule, or by a person."""

    grade: str | None
    rule: str | None
    provisional: bool
    reached_at: datetime | None
    at: datetime
    who: str | None = None
    why: str | None = None


@dataclass
class GradeRecord:
    """One table's grade on one incident, and how it got there."""

    table: str
    grade: str | None = None
    rule: str | None = None
    provisional: bool = False
    reached_at: datetime | None = None
    reasons: list[str] = field(default_factory=list)
    reasons_zh: list[str] = field(default_factory=list)   # the same in Chinese (domain.md §2.1)
    history: list[GradeChange] = field(default_factory=list)
    # When a person set the grade: the grade rank the facts gave then.
    person_floor: int | None = None
    handler: str | None = None          # who handles this grade (domain.md §2.2), per the table

    def as_grading(self) -> Grading:
        """This record as a classify() result (for raise_only)."""
        return Grading(self.table, self.grade, self.rule, self.provisional, self.reached_at,
                       tuple(self.reasons), reasons_zh=tuple(self.reasons_zh))


@dataclass
class DeadlineState:
    """One deadline on one incident: planned by the table, kept by the collector."""

    table: str
    key: str
    title: str
    rule: str
    reason: str
    due_at: datetime
    status: str = "due"                 # due | met | missed
    departments: list[str] = field(default_factory=list)
    met_at: datetime | None = None
    met_by: str | None = None
    what: str | None = None             # what was sent, as the person recorded it
    missed_at: datetime | None = None


def _label(table: GradingTable, grade: str | None, provisional: bool = False) -> str:
    """'II 重大' style, or 'ungraded'."""
    if grade is None:
        return "ungraded"
    title = table.grade_titles.get(grade)
    return (f"{grade} {title}" if title else grade) + (" (provisional)" if provisional else "")


def regrade(inc: Incident, facts: IncidentFacts, tables: dict[str, GradingTable],
            calendar: Calendar, now: datetime) -> list[Change]:
    """Re-evaluate every table's grade and the deadlines; the changes made."""
    changes: list[Change] = []
    for name, table in tables.items():
        rec = inc.grades.setdefault(name, GradeRecord(name))
        computed = classify(facts, table, calendar, now)
        changes += _apply_grade(inc, rec, table, computed, now)
        changes += _plan(inc, rec, table, facts, computed, now, calendar.zone)
    changes += _misses(inc, now)
    return changes


def _apply_grade(inc: Incident, rec: GradeRecord, table: GradingTable, computed: Grading,
                 now: datetime, who: str | None = None, why: str | None = None,
                 fresh: bool = False) -> list[Change]:
    if rec.person_floor is not None and not fresh:
        if table.rank(computed.grade) <= rec.person_floor:
            return []                   # a person's grade stands: the facts gave no more
        rec.person_floor = None
    kept = computed if fresh or not rec.history else raise_only(rec.as_grading(), computed, table)
    if rec.history and (kept.grade, kept.rule, kept.provisional) == (
            rec.grade, rec.rule, rec.provisional):
        return []
    old = _label(table, rec.grade, rec.provisional) if rec.history else "not yet graded"
    rec.grade, rec.rule, rec.provisional = kept.grade, kept.rule, kept.provisional
    rec.reached_at, rec.reasons = kept.reached_at, list(kept.reasons)
    rec.reasons_zh = list(kept.reasons_zh)
    rec.handler = table.handler(kept.grade)
    rec.history.append(GradeChange(kept.grade, kept.rule, kept.provisional, kept.reached_at,
                                   now, who, why))
    new = _label(table, kept.grade, kept.provisional)
    by = f" by {who}: {why}" if who else f" by rule {kept.rule}" if kept.rule else ""
    detail = f"{table.name}: {old} -> {new}{by}" + (
        f" ({kept.reasons[0]})" if kept.reasons and not who else "")
    return [Change("graded", inc.id, now, detail, None, table.rank(kept.grade) >
                   table.rank(rec.history[-2].grade if len(rec.history) > 1 else None))]


def _plan(inc: Incident, rec: GradeRecord, table: GradingTable, facts: IncidentFacts,
          computed: Grading, now: datetime, zone=timezone.utc) -> list[Change]:
    # Every grade the incident held (with when its rule first held) and every
    # rule holding now: deadlines count from the first reaching (domain.md §3).
    history = [(h.grade, h.reached_at, h.rule) for h in rec.history
               if h.grade is not None and h.reached_at is not None]
    history += [(m.grade, m.reached_at, m.rule) for m in computed.matches]
    ended = facts.ended_at
    planned = plan_deadlines(table, inc.started_at, ended, history, now,
                             observed=observed_span_lists(facts, now), zone=zone)
    known = {(d.table, d.key): d for d in inc.deadlines}
    changes = []
    for p in planned:
        d = known.get((table.name, p.key))
        if d is None:
            inc.deadlines.append(DeadlineState(
                table.name, p.key, p.title, p.rule, p.reason, p.due_at,
                departments=list(p.departments)))
            changes.append(Change("deadline_set", inc.id, now,
                                  f"{p.key} due {p.due_at.isoformat()}: {p.title} ({p.reason})"))
        elif d.status == "due" and d.due_at != p.due_at:
            # An upgrade re-plans from the original start; only open ones move.
            changes.append(Change("deadline_moved", inc.id, now,
                                  f"{p.key} due {d.due_at.isoformat()} -> {p.due_at.isoformat()}"
                                  f" ({p.reason})"))
            d.due_at, d.reason = p.due_at, p.reason
    # Due ones the table no longer plans (the outage ended before a milestone,
    # the incident ended before a progress report) are withdrawn, not missed.
    keys = {p.key for p in planned}
    for d in [d for d in inc.deadlines if d.table == table.name and d.status == "due"
              and d.key not in keys]:
        inc.deadlines.remove(d)
        changes.append(Change("deadline_dropped", inc.id, now,
                              f"{d.key} (was due {d.due_at.isoformat()}) no longer applies"))
    inc.deadlines.sort(key=lambda d: (d.due_at, d.key))
    return changes


def _misses(inc: Incident, now: datetime) -> list[Change]:
    changes = []
    for d in inc.deadlines:
        # "within 60 minutes": a deadline is missed once its moment has passed,
        # not at it (a report sent at 60:00 is on time).
        if d.status == "due" and d.due_at < now:
            d.status, d.missed_at = "missed", now
            changes.append(Change("deadline_missed", inc.id, now,
                                  f"{d.key} was due {d.due_at.isoformat()}: {d.title}", None, True))
    return changes


# --- people ------------------------------------------------------------------------
def mark_met(inc: Incident, key: str, who: str, what: str, now: datetime) -> list[Change]:
    """A person records a deadline as met, with what was sent (late is still recorded)."""
    found = [d for d in inc.deadlines if d.key == key]
    if not found:
        raise Refused(f"{inc.id} has no deadline {key!r}; it has: "
                      + (", ".join(d.key for d in inc.deadlines) or "none"))
    d = found[0]
    if d.status == "met":
        raise Refused(f"{key} was already met by {d.met_by} at {d.met_at.isoformat()}")
    late = d.status == "missed"
    d.status, d.met_at, d.met_by, d.what = "met", now, who, what
    return [Change("deadline_met", inc.id, now,
                   f"{key}{' (late)' if late else ''} by {who}: {what}")]


def set_criterion(inc: Incident, tables: dict[str, GradingTable], criterion: str, who: str,
                  why: str, now: datetime, withdraw: bool = False) -> list[Change]:
    """A person sets (or withdraws) a criterion only a person can judge."""
    known = {c for t in tables.values() for c in t.criteria()}
    if criterion not in known:
        raise Refused(f"unknown criterion {criterion!r}; the tables in use know: "
                      + ", ".join(sorted(known)))
    if withdraw:
        held = [a for a in inc.assertions if a.criterion == criterion and not a.withdrawn]
        if not held:
            raise Refused(f"{criterion!r} is not set on {inc.id}")
        inc.assertions = [replace(a, withdrawn=True) if a in held else a
                          for a in inc.assertions]
        return [Change("criterion_withdrawn", inc.id, now, f"{criterion} by {who}: {why}")]
    inc.assertions.append(Assertion(criterion, who, why, now))
    return [Change("criterion_set", inc.id, now, f"{criterion} by {who}: {why}")]


def regrade_by_person(inc: Incident, facts: IncidentFacts, tables: dict[str, GradingTable],
                      calendar: Calendar, now: datetime, who: str, why: str,
                      criterion: str | None = None) -> list[Change]:
    """After a person withdrew a criterion: judge afresh (the grade may go down) in
    the tables that know it; the others, and grades set by hand there, stay."""
    changes = []
    for name, table in tables.items():
        if criterion is not None and criterion not in table.criteria():
            continue
        rec = inc.grades.setdefault(name, GradeRecord(name))
        rec.person_floor = None
        computed = classify(facts, table, calendar, now)
        changes += _apply_grade(inc, rec, table, computed, now, who, why, fresh=True)
    return changes


def set_grade(inc: Incident, facts: IncidentFacts, table: GradingTable, calendar: Calendar,
              grade: str | None, who: str, why: str, now: datetime) -> list[Change]:
    """A person sets the grade (typically lower: 第四條(一)3), with a reason."""
    if grade is not None and grade not in table.grades:
        raise Refused(f"{table.name} has no grade {grade!r}; it has: {', '.join(table.grades)}")
    rec = inc.grades.setdefault(table.name, GradeRecord(table.name))
    computed = classify(facts, table, calendar, now)
    person = Grading(table.name, grade, "person", False, now, (f"set by {who}: {why}",),
                     reasons_zh=(f"{who} 人工定级:{why}",))
    changes = _apply_grade(inc, rec, table, person, now, who, why, fresh=True)
    rec.person_floor = table.rank(computed.grade)
    return changes
