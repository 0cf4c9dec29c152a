"""Incidents: group a branch's faults, suppress what hides behind an outage,
resolve when all clear, close by a person. Pure: fed facts and times.

Rules (issue 4; choices where it is silent are marked "chosen"):
- A fault is a check in warning/critical, or flapping. `unknown` is a fault
  only for "cannot see it" checks (`*/comm`, `*/reachable`, dead-man);
  elsewhere unknown neither opens nor clears a fault (chosen: not knowing is
  not repaired). Only `ok` clears.
- Grouping: a new fault joins a non-closed incident at its branch when it
  starts within `window` of any unsuppressed fault start in it (chains
  slide; suppressed children do not stretch it), or it
  is on the same device (`ups/NAME`, `switch/NAME`, chosen: battery_low ten
  minutes after on_battery belongs to the same outage), or, for a resolved
  incident, it starts no later than `window` after the resolution.
  Joining a resolved incident reopens it. Closed incidents are final.
- Suppression: a per-port (`switch/*/if/*`, not an uplink) or per-service
  (`tcp/`, `process/`, `listen/`) fault that starts while a blocker is
  active at the branch (dead-man silence, or an uplink/line fault that is
  critical) joins the blocker's incident as a suppressed child: kept, shown,
  `Change.alert` False. Judged at the fault's observation time.
- Uplinks: a `switch/*/if/*/link` fault with a diagnosis (the agent gives
  one only for uplink roles) or listed in `uplinks`.
- Flapping: a flapping fault stays active whatever states arrive until
  `flapping_end`, which applies its settled state; no clear/resolve/reopen
  storm.
- Order: per check on observed_at. An event older than the newest applied
  for its check is superseded: recorded in the fault's history in time
  order, no state change. A late event newer than its check's last is
  applied with its own observed_at: grouping, suppression and fault start
  use observation time, so a late fault that started before a resolution
  joins and reopens that incident (the resolution was premature).
- `Change.at` is observation time for fault changes, `now` for people.
- Drills (domain.md §5): faults of a drill's agents (`drill:RUN:BRANCH`) open
  and join only that drill's incidents (`drill`, titled "DRILL: ..."), and a
  real fault only real ones: neither joins, reopens nor suppresses the other.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from agent.wire import CheckStatus, Event

from .incident_index import IncidentIndex, Side, device_of
# The incident's parts, re-exported: this module is where the book's users import them.
from .incident_model import (HISTORY_KEEP, SPAN_KEEP, SPAN_SLACK, Action, Change, Fault,
                             Incident, Refused)
from .incident_rules import (DRILL_TITLE, FALLBACK_TITLE, SUPPRESSIBLE, TITLE_RULES, TitleRule,
                             category, drill_of, is_fault, silence_check)

__all__ = ["Action", "Change", "Fault", "HISTORY_KEEP", "Incident", "IncidentBook", "Refused",
           "SPAN_KEEP", "SPAN_SLACK", "category", "is_fault"]


class IncidentBook:
    """In-memory incident state machine; the caller persists `incidents()`."""

    def __init__(self, window: float = 120.0, rules: list[TitleRule] | None = None,
                 uplinks: Iterable[str] = (), new_id: Callable[[], str] | None = None,
                 incidents: Iterable[Incident] = (),
                 cause_of: Callable[[str], str | None] | None = None):
        self.window = timedelta(seconds=window)
        # check id -> name of the business-stopping cause it shows (or None);
        # faults with the same cause join across branches.
        self.cause_of = cause_of
        self.rules = TITLE_RULES if rules is None else rules
        self.uplinks = frozenset(uplinks)
        counter = itertools.count(1)
        self._new_id = new_id or (lambda: f"inc-{next(counter)}")
        self._incidents: dict[str, Incident] = {i.id: i for i in incidents}
        self._latest: dict[tuple[str, str], tuple[Incident, Fault]] = {}
        self.index = IncidentIndex(cause_of)
        for inc in sorted(self._incidents.values(), key=lambda i: i.started_at):
            self.index.add_incident(inc)       # its side: its faults' agents
            for key, f in inc.faults.items():
                self._latest[key] = (inc, f)

    # --- queries -----------------------------------------------------------------
    def incidents(self, status: str | None = None) -> list[Incident]:
        """All incidents (or those with this status), oldest first."""
        return sorted((i for i in self._incidents.values() if status in (None, i.status)),
                      key=lambda i: (i.started_at, i.id))

    def count(self, status: str, drill: bool = False) -> int:
        """How many incidents have this status, real ones or drills (O(1), for /metrics)."""
        return self.index.count(status, drill)

    def get(self, incident_id: str) -> Incident:
        """One incident; KeyError when unknown (→ 404)."""
        return self._incidents[incident_id]

    def drill_run(self, inc: Incident) -> str | None:
        """The drill run whose faults make up this incident; None for a real one."""
        first = next(iter(inc.faults.values()), None) if inc.drill else None
        return drill_of(first.agent) if first is not None else None

    def adopt(self, incident: Incident) -> None:
        """Take back an incident kept elsewhere (a closed one, loaded on demand)."""
        if incident.id not in self._incidents:
            self._incidents[incident.id] = incident
            self.index.add_incident(incident)

    # --- facts -------------------------------------------------------------------
    def apply_event(self, event: Event, now: datetime) -> list[Change]:
        """Apply one wire event (state, flapping, flapping_end)."""
        return self._apply(event.agent, event.branch, event.check, event.kind, event.new_state,
                           event.reason, event.diagnosis, event.observed_at)

    def apply_silence(self, silence, now: datetime) -> list[Change]:
        """The dead-man found this agent silent (deadman.Silence); active from last_heard."""
        return self._apply(silence.agent, silence.branch, silence_check(silence.agent),
                           "state", "critical", silence.reason, None, silence.last_heard)

    def clear_silence(self, agent: str, branch: str, heard_at: datetime,
                      now: datetime) -> list[Change]:
        """The agent was heard again at heard_at."""
        return self._apply(agent, branch, silence_check(agent), "state", "ok",
                           "heard again", None, heard_at)

    def apply_heartbeat(self, agent: str, branch: str, checks: Iterable[CheckStatus],
                        at: datetime, now: datetime,
                        correct: Callable[[datetime], datetime] = lambda t: t) -> list[Change]:
        """Rebuild the truth after a gap: any check whose state differs from ours, as of
        when the agent says it entered that state (`since`, on our clock), else `at`.
        (The events that said so exactly may still be in the agent's spool; starting
        the fault at `at` would make them look older than it, and superseded.)"""
        changes = []
        # Faults before clears, so one snapshot cannot resolve and reopen an incident.
        for c in sorted(checks, key=lambda c: not is_fault(c.check, c.state)):
            known = self._latest.get((agent, c.check))
            ours = known[1].state if known and known[1].active else "ok"
            if c.state != ours and (is_fault(c.check, c.state) or known and known[1].active):
                since = correct(c.since) if c.since is not None else at
                t = since if since <= at and (known is None or since >= known[1].last_at) \
                    else at
                changes += self._apply(agent, branch, c.check, "state", c.state,
                                       c.reason, c.diagnosis, t)
        return changes

    def _apply(self, agent, branch, check, kind, state, reason, diagnosis, t) -> list[Change]:
        key = (agent, check)
        inc, fault = self._latest.get(key, (None, None))
        if fault is not None and t < fault.last_at:
            # Late and superseded for this check: history only, in time order.
            fault.note((t, "superseded " + kind, state, reason))
            return []
        faulty = kind == "flapping" or is_fault(check, state)
        if fault is not None and fault.active and inc.status != "closed":
            return self._update(inc, fault, kind, state, reason, diagnosis, t, faulty)
        if not faulty:
            if fault is not None:
                fault.last_at = t
                fault.note((t, kind, state, reason))
            return []
        return self._start(branch, agent, check, kind, state, reason, diagnosis, t, inc, fault)

    def _update(self, inc, fault, kind, state, reason, diagnosis, t, faulty) -> list[Change]:
        fault.note((t, kind, state, reason))
        fault.last_at, fault.state = t, state
        if state != "ok":                 # keep why it was a fault (the title may show it)
            fault.reason, fault.diagnosis = reason, diagnosis or fault.diagnosis
        if kind == "flapping":
            fault.flapping = True
            return [Change("flapping", inc.id, t, f"{fault.check} flapping: {reason}", fault.check)]
        changes = []
        if kind == "flapping_end":
            fault.flapping = False
            changes.append(Change("flapping", inc.id, t,
                                  f"{fault.check} settled {state}: {reason}", fault.check))
        if state != "ok" or fault.flapping or faulty:
            return changes                # still a fault, or unknown: not repaired
        fault.spans[-1][1] = t
        self.index.span_ended(inc)
        changes.append(Change("cleared", inc.id, t, f"{fault.check}: {reason}", fault.check))
        if inc.status == "open" and not self.index.any_active(inc):
            inc.status = "resolved"
            inc.resolved_at = max(f.spans[-1][1] for f in inc.faults.values())
            self.index.status_changed(inc, "open")
            changes.append(Change("resolved", inc.id, inc.resolved_at, "every fault cleared"))
        return changes

    def _start(self, branch, agent, check, kind, state, reason, diagnosis, t,
               inc, fault) -> list[Change]:
        cat = category(check, diagnosis, self.uplinks)
        side = drill_of(agent)            # domain.md §5: a drill and the real world never mix
        blocker = self._blocker(branch, t, side) if cat in SUPPRESSIBLE else None
        if blocker is not None:
            target = blocker
        elif inc is not None and (inc.status == "open" or inc.status == "resolved"
                                  and self._may_join(inc, check, t)):
            target = inc                  # the same check firing again
        else:
            # domain.md §2.1: a region's business stops on the same cause at
            # many branches; the regulator grades that as one incident.
            cause = self.cause_of(check) if self.cause_of else None
            target = (cause and self._same_cause(cause, branch, t, side)) or \
                self._candidate(branch, check, t, side)
        changes, opened = [], target is None
        if opened:
            target = Incident(self._new_id(), branch, "", t, drill=side is not None)
            self._incidents[target.id] = target
            self.index.add_incident(target, side)
        if fault is None or inc is not target:
            fault = Fault(agent, branch, check, cat, state, reason, diagnosis, t,
                          suppressed=blocker is not None)
            replaced = target.faults.get((agent, check))
            target.faults[(agent, check)] = fault
            self._latest[(agent, check)] = (target, fault)
            if replaced is None:
                self.index.add_fault(target, fault)
            else:
                self.index.remove_fault(target, replaced)
        fault.spans.append([t, None])
        self.index.span_started(target, fault, t)
        for gone in fault.bound_spans():
            self.index.span_merged(target, fault, gone)
        fault.state, fault.reason, fault.last_at = state, reason, t
        fault.diagnosis = diagnosis or fault.diagnosis
        fault.flapping = fault.flapping or kind == "flapping"
        fault.note((t, kind, state, reason))
        target.started_at = min(target.started_at, t)
        what = f"{check} {state}: {reason}"
        if opened:
            self._retitle(target, t)
            return [Change("opened", target.id, t, f"{target.title}: {what}", check, True)]
        if target.status == "resolved":
            target.status, target.resolved_at, target.resolved_by = "open", None, None
            self.index.status_changed(target, "resolved")
            changes.append(Change("reopened", target.id, t, what, check, not fault.suppressed))
        else:
            kind_ = "suppressed" if fault.suppressed else "joined"
            changes.append(Change(kind_, target.id, t, what, check, not fault.suppressed))
        return changes + self._retitle(target, t)

    def _live(self, branch: str, side: Side, since: datetime) -> list[Incident]:
        """Open incidents at a branch on the same side (real, or this drill), and the
        resolved ones resolved at or after `since` (no older one matters), newest first."""
        incs = [*self.index.open_at(branch, side), *self.index.resolved_since(branch, since, side)]
        return sorted(incs, key=lambda i: (i.started_at, i.id), reverse=True)

    def _blocker(self, branch: str, t: datetime, side: Side) -> Incident | None:
        """The incident holding a blocker active at t at this branch, if any."""
        for inc in self._live(branch, side, t):
            if t < inc.started_at or inc.resolved_at is not None and t >= inc.resolved_at:
                continue                  # nothing in it was active at t
            if any((f.category == "silent" or f.state == "critical") and f.active_at(t)
                   for f in self.index.notable(inc, branch)):
                return inc
        return None

    def _same_cause(self, cause: str, branch: str, t: datetime,
                    side: str | None) -> Incident | None:
        """An open incident where this business-stopping cause holds at another branch at t."""
        for inc in self.index.with_cause(cause, side):
            if any(
                    f.branch != branch and not f.suppressed and f.active_at(t)
                    for f in self.index.caused(inc, cause)):   # a suppressed one is a consequence
                return inc
        return None

    def _may_join(self, inc: Incident, check: str, t: datetime) -> bool:
        if inc.status == "resolved":
            return inc.started_at - self.window <= t <= inc.resolved_at + self.window
        # Suppressed children are consequences: they do not stretch the window.
        device = device_of(check)
        return self.index.starts_near(inc, t, self.window) or (
            device is not None and self.index.device_active(inc, device))

    def _candidate(self, branch: str, check: str, t: datetime,
                   side: str | None) -> Incident | None:
        return next((i for i in self._live(branch, side, t - self.window)
                     if self._may_join(i, check, t)), None)

    def _retitle(self, inc: Incident, t: datetime) -> list[Change]:
        # issue 7: nobody may take a drill for the real thing; it says so first.
        title = (DRILL_TITLE if inc.drill else "") + self._title(inc)
        old, inc.title = inc.title, title
        if title == old or not old:
            return []
        return [Change("retitled", inc.id, t, f"{old} -> {title}")]

    def _title(self, inc: Incident) -> str:
        spread = self.index.spread(inc)
        if spread is not None:
            cause, branches = spread
            return f"{cause}: {len(branches)} branches"
        cats, all_suppressed = self.index.categories(inc)
        faults = [f for f in self.index.notable(inc) if all_suppressed or not f.suppressed]
        rule = next((r for r in self.rules if r.matches(cats)), None)
        diag = sorted({f.diagnosis for f in faults if f.category == "network" and f.diagnosis})
        silence = [f.reason for f in faults if f.category == "silent"]
        return FALLBACK_TITLE if rule is None else rule.title.format(
            diagnosis=f" ({'/'.join(diag)})" if diag else "",
            silence=f": {silence[-1]}" if silence else "")

    # --- people ------------------------------------------------------------------
    def ack(self, incident_id: str, who: str, why: str, now: datetime) -> list[Change]:
        """A person acknowledges: recorded with who and why; refused once closed."""
        inc = self._person(incident_id, who, why)
        if inc.status == "closed":
            raise Refused(f"{incident_id} is closed")
        inc.acks.append(Action(who, why, now))
        return [Change("acknowledged", inc.id, now, f"{who}: {why}")]

    def note(self, incident_id: str, who: str, text: str, now: datetime) -> list[Change]:
        """A person adds a note (allowed at any status, for the review afterwards)."""
        inc = self._person(incident_id, who, text)
        inc.notes.append(Action(who, text, now))
        return [Change("noted", inc.id, now, f"{who}: {text}")]

    def resolve(self, incident_id: str, who: str, why: str, now: datetime,
                force: bool = False) -> list[Change]:
        """A person declares it resolved; refused while faults are active unless force."""
        inc = self._person(incident_id, who, why)
        if inc.status != "open":
            raise Refused(f"{incident_id} is {inc.status}, not open")
        active = inc.active_faults()
        if active and not force:
            raise Refused(f"{incident_id} has faults still active: "
                          + ", ".join(f.check for f in active))
        changes = []
        for f in active:      # forced: cleared by this person, flapping or not
            f.spans[-1][1], f.flapping = now, False
            self.index.span_ended(inc)
            f.note((now, "cleared by person", f.state, f"{who}: {why}"))
            changes.append(Change("cleared", inc.id, now, f"{f.check}: by {who}: {why}", f.check))
        inc.status, inc.resolved_at, inc.resolved_by = "resolved", now, Action(who, why, now)
        self.index.status_changed(inc, "open")
        return changes + [Change("resolved", inc.id, now, f"by {who}: {why}")]

    def close(self, incident_id: str, who: str, why: str, now: datetime) -> list[Change]:
        """A person closes a resolved incident; refused while it is open."""
        inc = self._person(incident_id, who, why)
        if inc.status != "resolved":
            active = ", ".join(f.check for f in inc.active_faults())
            raise Refused(f"{incident_id} is {inc.status}"
                          + (f": faults still active: {active}" if active else ""))
        inc.status, inc.closed = "closed", Action(who, why, now)
        self.index.status_changed(inc, "resolved")
        return [Change("closed", inc.id, now, f"{who}: {why}")]

    def _person(self, incident_id: str, who: str, why: str) -> Incident:
        if incident_id not in self._incidents:
            raise KeyError(incident_id)
        if not who.strip() or not why.strip():
            raise Refused("who and why are required")
        return self._incidents[incident_id]
