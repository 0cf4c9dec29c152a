"""The collector's grading set-up: tables, calendar, business stops, regions;
and the person's grading actions on an incident (issue 5).

Built once from the config (`Grader.from_config`); the incident desk calls
`regrade` on every tick and `act` for people. Everything it calls is pure
(incident_facts.py, incident_grades.py, grading/).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .config import BusinessStop, Config, ObservedKind
from .grading import Calendar, GradingTable, IncidentFacts, load_tables
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
    regions: dict[str, str]             # branch -> region (the scope unit)

    @classmethod
    def from_config(cls, config: Config) -> Grader:
        """From the (validated) collector config."""
        g = config.grading
        calendar = (Calendar.from_dict(g.calendar, "", "grading.calendar") if g.calendar
                    else Calendar.default())
        regions = {}
        for a in config.agents:
            if a.region:
                regions.setdefault(a.branch, a.region)
        return cls(load_tables(g.tables), calendar, list(g.business_stopping), list(g.observed),
                   regions)

    def region_of(self, branch: str) -> str:
        """The branch's region; a branch without one is its own scope unit."""
        return self.regions.get(branch) or f"branch {branch}"

    def cause_of(self, check: str) -> str | None:
        """The business-stopping cause a check shows (faults join across branches)."""
        return cause_lookup(self.stops)(check)

    def facts(self, inc: Incident) -> IncidentFacts:
        """What the tables judge this incident by."""
        return facts_of(inc, self.stops, self.kinds, self.region_of, inc.assertions)

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
