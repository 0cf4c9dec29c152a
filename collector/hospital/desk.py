"""The hospital's plan on the running collector (domain.md §2.3), on the writer
thread with the incident desk (collector/incident_desk.py):

- `observe`: after every change of a core member, is the whole network out? The
  outage fault (outage.py) starts when the share is reached and ends when it no
  longer is, at the moments the members' faults say (observation time);
- `declare` / `over`: IT declares the outage, and says when it is over;
- `announce`: IT's notice to the departments (notices.py), recorded on the
  incident and sent through the notify routing; a start of manual work meets each
  milestone whose departments have all been told (the announcement it asks for);
- the monthly restore test's register (restore_tests.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo

from agent.wire import Event, new_event_id

from ..incident_grades import mark_met
from ..incidents import Change, Fault, Incident, IncidentBook, Refused
from .notices import MANUAL, announce, announced, outage_start
from .outage import DECLARER, OBSERVER, OUTAGE_CHECK, back_at, outage_event, read_core
from .restore_tests import OVERDUE_CHECK, RestoreRegister, RestoreTest
from .settings import Hospital


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class HospitalDesk:
    """Whole-network outage, departments' notices and restore tests for one desk."""

    def __init__(self, desk, settings: Hospital, zone: tzinfo):
        self.desk, self.settings = desk, settings
        self.branch = settings.outage_branch()
        self.core = settings.core
        self.members = {(m.branch, m.check) for m in self.core.members}
        self.register = (RestoreRegister(desk.store, zone, desk.clock())
                         if settings.restore_tests else None)

    # --- the outage ---------------------------------------------------------------------
    def outage(self, book: IncidentBook, agent: str | None = None
               ) -> tuple[Incident, Fault] | None:
        """The active outage fault (of one agent: observed or declared) and its incident."""
        for inc in book.index.live(self.branch) if self.branch else ():
            for who in (agent,) if agent else (DECLARER, OBSERVER):
                f = inc.faults.get((who, OUTAGE_CHECK))
                if f is not None and f.active and not inc.drill:
                    return inc, f
        return None

    def observe(self, book: IncidentBook, changes: list[Change], at: float) -> list[Change]:
        """The outage fault's start or end when the core's share was reached or lost."""
        # Every save, not only those with a member's change: a member going from
        # critical to warning is no incident change, yet it may end the outage.
        if not self.members:
            return []
        branches = {b for b, _ in self.members}
        faults = [f for b in branches for inc in book.index.live(b) if not inc.drill
                  for f in inc.faults.values() if (f.branch, f.check) in self.members]
        reading, now = read_core(self.core, faults), _utc(at)
        held = self.outage(book, OBSERVER)
        if reading.out and held is None:
            return book.apply_event(outage_event(OBSERVER, self.branch, True,
                                                 f"whole network out: {reading.reason()}",
                                                 reading.since), now)
        if not reading.out and held is not None:
            # Back at the moment the share was lost (a member cleared, or left the
            # down states), by observation time.
            start = held[1].spans[-1][0]
            end = max(back_at(self.core, faults, start) or now, held[1].last_at)
            return book.apply_event(outage_event(OBSERVER, self.branch, False,
                                                 f"core back: {reading.reason()}", end), now)
        return []

    def outage_runbooks(self, runbooks, changes: list[Change], now: datetime) -> tuple[list, list]:
        """An outage that joined an incident already running another runbook (a switch
        fault's) still gets the runbook for a whole-network outage (hospital §5, §6):
        the best one whose `applies_to.categories` names whole_network."""
        if not runbooks.auto_start:
            return [], []
        fitting = [rb for rb in runbooks.runbooks.values()
                   if "whole_network" in rb.applies_to.categories]
        if not fitting:
            return [], []
        rb = min(fitting, key=lambda rb: (-rb.applies_to.priority, rb.id))
        out, executes = [], []
        for c in changes:
            if c.check != OUTAGE_CHECK or c.kind not in ("opened", "joined", "reopened"):
                continue
            inc = self.desk.book.get(c.incident_id)
            if any(r.runbook.id == rb.id and r.status == "running" for r in inc.runbooks):
                continue
            more, x = runbooks.start(inc, rb.id, "collector", now)
            out, executes = out + more, executes + x
        return out, executes

    def declare(self, who: str, why: str) -> dict:
        """IT determines the whole network is out (「信息科一旦確定」)."""
        return self._person(who, why, True)

    def over(self, who: str, why: str) -> dict:
        """IT says the declared outage is over (an observed one ends with the core)."""
        return self._person(who, why, False)

    def _person(self, who: str, why: str, on: bool) -> dict:
        desk, ts = self.desk, self.desk.clock()
        if self.branch is None:
            raise Refused("hospital.branch is not configured: where would the outage be kept?")
        held = self.outage(desk.book, DECLARER)
        if on and held is not None:
            raise Refused(f"a whole-network outage is already declared on {held[0].id} "
                          f"since {held[1].spans[-1][0].isoformat()}")
        if not on and held is None:
            raise Refused("no whole-network outage is declared; an observed one ends when "
                          "the core is back")
        now = _utc(ts)
        reason = f"{'declared' if on else 'declared over'} by {who}: {why}"
        changes = desk.book.apply_event(outage_event(DECLARER, self.branch, on, reason, now), now)
        desk.save(changes, ts, actor=who)
        if desk.grader is not None:
            inc = held[0] if held else self.outage(desk.book, DECLARER)[0]
            desk.save(desk.grader.regrade(inc, now), ts)
        found = held or self.outage(desk.book, DECLARER)
        return desk.incident_dict(found[0].id)

    # --- IT's notices -------------------------------------------------------------------
    def announce(self, kind: str, incident_id: str | None, who: str, text: str,
                 departments: list[str] | None = None) -> dict:
        """IT's start of manual work or time to resume, to the departments concerned."""
        desk, ts = self.desk, self.desk.clock()
        now = _utc(ts)
        inc = desk.incident(incident_id) if incident_id else self._latest_outage()
        table = desk.grader.tables.get("hospital") if desk.grader else None
        milestones = [list(d.departments) for d in (table.deadlines if table else ())
                      if d.departments]
        language = desk.notifier.rules.settings.language if desk.notifier else "zh"
        if departments and desk.notifier is not None:
            nobody = [d for d in departments if not desk.notifier.rules.holders([d])]
            if nobody:
                raise Refused(f"nobody holds the department role {nobody[0]!r} "
                              "(notify.people[].roles or notify.groups)")
        changes, alert = announce(inc, kind, who, text, now, language, departments, milestones)
        if kind == MANUAL:
            # A milestone asks for exactly this announcement (hospital §4.1): met once
            # every department it names has been told to start (early counts too).
            for d in [d for d in inc.deadlines if d.departments and d.status != "met"]:
                # The announcements of this outage only (not of one before a recovery).
                since = outage_start(inc, min(d.due_at, now))
                if set(d.departments) <= set(alert.roles) | set(announced(inc, since)):
                    changes += mark_met(inc, d.key, who, f"notice {kind}: {text}", now)
        desk.save(changes, ts, actor=who)
        if desk.notifier is not None:
            desk.send_alerts([alert], ts)
        return desk.incident_dict(inc.id)

    def _latest_outage(self) -> Incident:
        held = self.outage(self.desk.book)
        if held is not None:
            return held[0]
        # Recovered: the newest not-closed incident that was an outage (the resume notice).
        for inc in self.desk.book.index.live(self.branch) if self.branch else ():
            if any(f.check == OUTAGE_CHECK for f in inc.faults.values()) and not inc.drill:
                return inc
        raise Refused("no whole-network outage is open or recovering; name the incident")

    # --- the monthly restore test -------------------------------------------------------
    def record_test(self, test: RestoreTest) -> dict:
        """Record a restore test (audited); the register's status after it."""
        if self.register is None:
            raise Refused("restore tests are not tracked (hospital.restore_tests: false)")
        ts = self.desk.clock()
        self.register.record(test, ts)
        self.tick()                            # a passed test ends an overdue alert at once
        return self.tests_dict(ts)

    def tick(self) -> None:
        """Once a second: the overdue restore test is a fault the collector holds at the
        hospital's branch (an incident, notified by the routes) until a test passes."""
        if self.register is None or self.branch is None:
            return
        desk, ts = self.desk, self.desk.clock()
        now = _utc(ts)
        st = self.register.status(now)
        held = next((f for inc in desk.book.index.live(self.branch) if not inc.drill
                     for f in [inc.faults.get((OBSERVER, OVERDUE_CHECK))]
                     if f is not None and f.active), None)
        if st.overdue and held is None:
            event = restore_event(self.branch, True, f"monthly restore test overdue: {st.line()}",
                                  max(st.due_at, now - timedelta(days=31)))
        elif not st.overdue and held is not None:
            event = restore_event(self.branch, False, st.line(), max(now, held.last_at))
        else:
            return
        desk.save(desk.book.apply_event(event, now), ts)

    def tests_dict(self, ts: float | None = None) -> dict:
        """The register and its status, as the API shows it."""
        if self.register is None:
            raise Refused("restore tests are not tracked (hospital.restore_tests: false)")
        now = _utc(self.desk.clock() if ts is None else ts)
        st = self.register.status(now)
        return {"tests": [t.data() for t in sorted(self.register.tests, key=lambda t: t.at)],
                **st.as_dict(), "status": st.line()}


def restore_event(branch: str, on: bool, reason: str, at: datetime) -> Event:
    """The overdue restore test's fault starting (on) or ending."""
    return Event(id=new_event_id(), kind="state", agent=OBSERVER, branch=branch,
                 check=OVERDUE_CHECK, old_state="ok" if on else "critical",
                 new_state="critical" if on else "ok", reason=reason, observed_at=at)
