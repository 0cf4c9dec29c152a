"""The reporter of an incident (報告責任人, 第二十六條; domain.md §3), and the
workflow deadlines that are not the table's: pure over the incident.

- When an incident opens, the designated reporter (`reports.reporter` in the
  collector's config) is recorded as its reporter, by the collector.
- The leadership group may name another (collector/roles.py), with a reason:
  every change is recorded (who named whom, when, why) and audited, and asks
  for the filing with the regulator: a deadline due at once (第二十六條).
- A failed plan (第三十條) sets a regulator deadline due at that moment; the
  next progress report lists it (collector/reports/model.py).
Both deadlines are kept with the table's ones (incident_grades.DeadlineState)
under the table name WORKFLOW, so re-planning a table never drops them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .grading.deadlines import Deadline, plan_failure, reporter_filing
from .incident_grades import DeadlineState
from .incidents import Change, Incident, Refused

WORKFLOW = "workflow"


@dataclass
class ReporterChange:
    """Who the reporter became, named by whom, when and why."""

    name: str
    by: str
    why: str
    at: datetime


def reporter(inc: Incident) -> str | None:
    """The incident's reporter now (None when nobody is named)."""
    return inc.reporters[-1].name if inc.reporters else None


def name_designated(inc: Incident, name: str | None, now: datetime) -> list[Change]:
    """At the opening: the designated reporter from the config, if there is one."""
    if not name or inc.reporters:
        return []
    inc.reporters.append(ReporterChange(name, "collector", "the designated reporter "
                                                          "(reports.reporter)", now))
    return [Change("reporter", inc.id, now, f"reporter: {name} (the designated reporter)")]


def change_reporter(inc: Incident, name: str, who: str, why: str, now: datetime,
                    regulator: bool) -> list[Change]:
    """The leadership names another reporter; the change is filed with the regulator
    (a deadline at once) when a regulator's table is in use."""
    name = name.strip()
    old = reporter(inc)
    if not name:
        raise Refused("name: expected the new reporter's name")
    if name == old:
        raise Refused(f"{name} is already the reporter of {inc.id}")
    inc.reporters.append(ReporterChange(name, who, why, now))
    changes = [Change("reporter", inc.id, now,
                      f"reporter: {old or 'nobody'} -> {name} by {who}: {why}")]
    if old is not None and regulator:
        n = sum(1 for d in inc.deadlines if d.rule == "reporter-filing") + 1
        changes += _add(inc, reporter_filing(n, old, name, now), now)
    return changes


def plan_failed(inc: Incident, run: str, step: str | None, detail: str, now: datetime
                ) -> list[Change]:
    """第三十條: a regulator deadline due now for a failed plan."""
    n = sum(1 for d in inc.deadlines if d.rule == "plan-failed") + 1
    return _add(inc, plan_failure(n, run, step or "", detail, now), now)


def _add(inc: Incident, d: Deadline, now: datetime) -> list[Change]:
    inc.deadlines.append(DeadlineState(WORKFLOW, d.key, d.title, d.rule, d.reason, d.due_at))
    inc.deadlines.sort(key=lambda x: (x.due_at, x.key))
    return [Change("deadline_set", inc.id, now,
                   f"{d.key} due {d.due_at.isoformat()}: {d.title} ({d.reason})")]
