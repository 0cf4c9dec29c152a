"""Pure rules: which route an incident takes, whether it is muted or below the
alert threshold now, and who holds a role.

- Routes: the first whose match holds (Alertmanager's routing tree without
  `continue`); a grade condition is "this grade or more severe" in its table.
- Mutes (silences, maintenance windows) hold back fault alerts only. Regulatory
  alerts (a grade rising, deadline reminders and misses, a failed plan:
  domain.md §3, 第二十七條/第三十條) and escalation of something already sent
  are never muted: reporting duties do not pause for maintenance.
- The alert threshold: fault alerts need an active fault at `min_state`
  (critical by default; unknown counts as critical: "cannot see it"). A
  heightened-watch period (domain.md §6, 第十一條) lowers it to warning
  instead of muting. A graded incident always passes.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime

from ..grading import Calendar, GradingTable
from ..incidents import Incident
from .settings import Contacts, Notify, Person, Route, Scope, Silence

# Alert reasons a silence or maintenance window (and the threshold) hold back.
MUTABLE = frozenset({"opened", "joined", "reopened", "resolved"})
STATE_RANK = {"ok": 0, "warning": 1, "critical": 2, "unknown": 2}


@dataclass(frozen=True)
class Rules:
    """The notify settings compiled once: tables, regions, maintenance calendars."""

    settings: Notify
    tables: dict[str, GradingTable]
    regions: dict[str, str]                      # branch -> region
    windows: tuple[tuple[Scope, Calendar], ...] = ()
    timezone: str = "Asia/Shanghai"              # messages' times (notify.timezone wins)
    stored: tuple[Silence, ...] = ()             # set by people (notify/silences.py)

    @classmethod
    def build(cls, settings: Notify, tables: dict[str, GradingTable],
              regions: dict[str, str], timezone: str = "Asia/Shanghai") -> Rules:
        """From validated settings."""
        windows = tuple((m, Calendar.from_dict(m.when, "", "when")) for m in settings.maintenance)
        return cls(settings, tables, regions, windows, settings.timezone or timezone)

    def region_of(self, branch: str) -> str:
        """The branch's region ('' when none is enrolled)."""
        return self.regions.get(branch, "")

    # --- routes ----------------------------------------------------------------------
    def route(self, inc: Incident, reason: str) -> tuple[int, Route] | None:
        """The first route matching this incident and alert reason."""
        for i, r in enumerate(self.settings.routes):
            if self._matches(r, inc, reason):
                return i, r
        return None

    def _matches(self, r: Route, inc: Incident, reason: str) -> bool:
        m = r.match
        if m.changes and reason not in m.changes:
            return False
        if m.at_least and not any(self.at_least(inc, t, g) for t, g in m.at_least.items()):
            return False
        branches = branches_of(inc)
        if m.branches and not any(_any(b, m.branches) for b in branches):
            return False
        return not m.regions or any(_any(self.region_of(b), m.regions) for b in branches)

    def at_least(self, inc: Incident, table: str, grade: str) -> bool:
        """Whether the incident's grade in `table` is `grade` or more severe."""
        rec, t = inc.grades.get(table), self.tables.get(table)
        if rec is None or t is None or rec.grade is None:
            return False
        return t.rank(rec.grade) >= t.rank(grade)

    # --- mutes and threshold -----------------------------------------------------------
    def muted(self, inc: Incident, now: datetime) -> str | None:
        """Why fault alerts of this incident are held back now (every branch of it
        under a silence or maintenance window), or None."""
        whys = []
        for b in branches_of(inc):
            why = self._mute(b, now)
            if why is None:
                return None
            whys.append(why)
        return whys[0] if whys else None

    def _mute(self, branch: str, now: datetime) -> str | None:
        region = self.region_of(branch)
        for s in (*self.settings.silences, *self.stored):
            if s.starts <= now < s.ends and in_scope(s, branch, region):
                return f"silenced until {s.ends.isoformat()}: {s.why}"
        for scope, cal in self.windows:
            if in_scope(scope, branch, region) and cal.is_open(now):
                return f"maintenance window {scope.name}"
        return None

    def min_state(self, inc: Incident, now: datetime) -> str:
        """The fault state that raises an alert now: lowered by a watch period."""
        state = self.settings.min_state
        for w in self.settings.watch:
            if w.starts <= now < w.ends and any(
                    in_scope(w, b, self.region_of(b)) for b in branches_of(inc)):
                if STATE_RANK[w.min_state] < STATE_RANK[state]:
                    state = w.min_state
        return state

    def below_threshold(self, inc: Incident, now: datetime) -> str | None:
        """Why the incident is not yet worth an alert, or None."""
        if any(r.grade is not None for r in inc.grades.values()):
            return None
        need = self.min_state(inc, now)
        for f in inc.faults.values():
            if f.active and not f.suppressed and (
                    f.flapping or STATE_RANK.get(f.state, 0) >= STATE_RANK[need]):
                return None
        return f"no active fault at {need} or worse"

    # --- people ----------------------------------------------------------------------
    def holders(self, roles: list[str]) -> list[tuple[str, str, Contacts]]:
        """(recipient, role, contacts) for the roles: every person holding one (once,
        under the first of the roles they hold), then each role's group robot."""
        out, seen = [], set()
        for role in roles:
            for p in self.settings.people:
                if role in p.roles and p.name not in seen:
                    seen.add(p.name)
                    out.append((p.name, role, p))
        for role in roles:
            if role in self.settings.groups:
                out.append((f"group:{role}", role, self.settings.groups[role]))
        return out

    def person(self, name: str) -> Person | None:
        """A person by name."""
        return next((p for p in self.settings.people if p.name == name), None)

    def contacts(self, to: str) -> Contacts | None:
        """The contacts of a recipient named in a delivery."""
        if to.startswith("group:"):
            return self.settings.groups.get(to[6:])
        return self.person(to)


def branches_of(inc: Incident) -> list[str]:
    """Every branch an incident spans (one cause at many branches is one incident)."""
    return list(dict.fromkeys([inc.branch, *(f.branch for f in inc.faults.values())]))


def in_scope(scope: Scope, branch: str, region: str) -> bool:
    """Whether a branch (in its region) is inside a silence/window/watch scope."""
    return (not scope.branches or _any(branch, scope.branches)) and (
        not scope.regions or _any(region, scope.regions))


def _any(value: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, p) for p in patterns)
