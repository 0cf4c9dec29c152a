"""The collector's grading set-up: tables, calendar, business stops, regions;
and the person's grading actions on an incident (issue 5).

Built once from the config (`Grader.from_config`); the incident desk calls
`regrade` on every tick and `act` for people. Everything it calls is pure
(incident_facts.py, incident_grades.py, grading/).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from prometheus_client.core import GaugeMetricFamily

from .config import BusinessStop, Config, Grading, ObservedKind
from .grading import Calendar, GradingTable, IncidentFacts, load_tables
from .grading.holidays import public_holidays, stale_warning
from .grading.units import UnitScope
from .incident_facts import cause_lookup, facts_of
from .incident_grades import mark_met, regrade, regrade_by_person, set_criterion, set_grade
from .incidents import Change, Incident, Refused

# Person actions on grading, with the body field each needs besides "why".
GRADING_ACTIONS = {"deadline": "key", "criterion": "criterion", "withdraw": "criterion",
                   "grade": "grade"}


@dataclass(frozen=True)
class Grader:
    """Grades and deadlines for every incident the desk holds."""

    tables: dict[str, GradingTable]
    calendar: Calendar
    stops: list[BusinessStop]
    kinds: list[ObservedKind]
    regions: dict[str, str]             # branch -> its unit, where the unit has a name
    scope: UnitScope = UnitScope()      # units, share, key sites, channels (domain.md §2.1)

    @classmethod
    def from_config(cls, config: Config) -> Grader:
        """From the (validated) collector config."""
        g = config.grading
        # domain.md §2.1: the State Council's holidays by default (public_holidays).
        calendar = Calendar.from_dict(g.calendar, "", "grading.calendar")
        units = {}
        for a in config.agents:
            units.setdefault(a.branch, a.region or g.scope.unit)
        scope = UnitScope(units, g.scope.unit, g.scope.share,
                          {u: s.share for u, s in g.scope.units.items()},
                          frozenset(g.scope.key_sites), channel_calendars(g),
                          tuple(g.default_channels),
                          {b: tuple(c) for b, c in g.branch_channels.items()})
        return cls(load_tables(g.tables), calendar, list(g.business_stopping), list(g.observed),
                   {b: u for b, u in units.items() if u}, scope)

    def region_of(self, branch: str) -> str:
        """The branch's unit (the regulation's province; one for the deployment by default)."""
        return self.scope.unit_of(branch)

    def warn_if_stale(self, now: float, log: logging.Logger) -> str | None:
        """Log one line when the current year is past the holiday package's data."""
        line = stale_warning(datetime.fromtimestamp(now, timezone.utc))
        if line:
            log.warning(line)
        return line

    def calendar_metrics(self, clock: Callable[[], float]) -> _CalendarMetrics:
        """A Prometheus collector: the last year the holiday data knows, and whether
        the current year is past it (register it on the /metrics registry)."""
        return _CalendarMetrics(clock)

    def cause_of(self, check: str) -> str | None:
        """The business-stopping cause a check shows (faults join across branches)."""
        return cause_lookup(self.stops)(check)

    def facts(self, inc: Incident) -> IncidentFacts:
        """What the tables judge this incident by."""
        return facts_of(inc, self.stops, self.kinds, self.scope, inc.assertions)

    def regrade(self, inc: Incident, now: datetime) -> list[Change]:
        """Grade and deadlines as of now."""
        return self.regrade_with(inc, self.facts(inc), now)

    def regrade_with(self, inc: Incident, facts: IncidentFacts, now: datetime) -> list[Change]:
        """`regrade` on facts already built."""
        return regrade(inc, facts, self.tables, self.calendar, now)

    def moves_with_time(self, inc: Incident, facts: IncidentFacts) -> bool:
        """Whether time alone can change this incident's grade or deadlines: an
        outage accumulating, a person's criterion, a deadline still due, or an
        observed kind a table reads. If not, it need not be looked at again
        until it changes."""
        uses_observed = any(r.kind == "observed" for t in self.tables.values() for r in t.rules
                            ) or any(d.kind == "after_observed_start"
                                     for t in self.tables.values() for d in t.deadlines)
        return bool(facts.outages or facts.assertions or (uses_observed and facts.observed)
                    or any(d.status == "due" for d in inc.deadlines))

    def act(self, inc: Incident, action: str, who: str, why: str, value: str | None,
            now: datetime, table: str | None = None) -> list[Change]:
        """deadline (met: value=key, why=what was sent) | criterion | withdraw | grade."""
        if action == "deadline":
            return mark_met(inc, value, who, why, now)
        if action in ("criterion", "withdraw"):
            changes = set_criterion(inc, self.tables, value, who, why, now,
                                    withdraw=action == "withdraw")
            if action == "withdraw":     # a person's act: the grade may go down
                return changes + regrade_by_person(inc, self.facts(inc), self.tables,
                                                   self.calendar, now, who, why, value)
            return changes + self.regrade(inc, now)
        if action == "grade":
            name = table or next(iter(self.tables))
            if name not in self.tables:
                raise Refused(f"no grading table {name!r}; in use: {', '.join(self.tables)}")
            grade = None if value in ("", "none", "ungraded") else value
            return set_grade(inc, self.facts(inc), self.tables[name], self.calendar, grade,
                             who, why, now)
        raise KeyError(action)


def channel_calendars(g: Grading) -> dict[str, Calendar]:
    """Each channel's business hours: its keys over grading.calendar's (an
    `around_the_clock: true` channel keeps only the time zone). ValueError is
    one line naming grading.channels.NAME.key."""
    out = {}
    for name, keys in g.channels.items():
        keys = {} if keys is None else keys
        if not isinstance(keys, dict):
            raise ValueError(f": grading.channels.{name}: expected a mapping of calendar keys "
                             f"(weekdays, hours, around_the_clock...), got {keys!r}")
        if keys.get("around_the_clock"):
            data = {"timezone": g.calendar.get("timezone", "Asia/Shanghai"), **keys}
        else:
            data = {**g.calendar, **keys}
        out[name] = Calendar.from_dict(data, "", f"grading.channels.{name}")
    return out


class _CalendarMetrics:
    """Read at scrape time, on the collector's clock (a drill may move it)."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock

    def collect(self):
        known = public_holidays()
        year = datetime.fromtimestamp(self.clock(), timezone.utc).year
        last = GaugeMetricFamily("branchwatch_collector_grading_holidays_known_until_year",
                                 f"The last year whose public holidays {known.source} knows")
        last.add_metric([], known.last_year)
        stale = GaugeMetricFamily("branchwatch_collector_grading_holidays_stale",
                                  "1 when the current year is past the public-holiday data: "
                                  "business days are weekdays only (domain.md §2.1)")
        stale.add_metric([], 1 if year > known.last_year else 0)
        return [last, stale]
