"""The running collector's incidents: the pure book (incidents.py) and the
dead-man (deadman.py) fed from the store, their changes saved and audited.

Every method is synchronous and runs on the API's one writer thread
(collector/writer.py), inside that thread's transaction. Events reach the
book through the event log: ingest appends them, and the engine
(collector/engine/log_engine.py) hands each logged batch to `apply_batch`;
the incident change it causes, its audit records, its outbox entries and
the engine's cursor are committed together or not at all. The book is
never touched by two callers at once, and its state, the incidents table
and the audit trail change in the same order. When a job fails and is
rolled back, `reload` rebuilds the book from what is stored.

Agents' timestamps reach the book on the collector's clock
(clock_offset.py): the store keeps what the agent said.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import msgspec

from agent.wire import Event, Heartbeat

from .book_metrics import STATUSES, BookSnapshot, fresh_offsets
from .clock_offset import ClockOffsets
from .deadman import AgentLast, silent_agents
from .engine.actions import ActionOutbox
from .engine.log_engine import LogEngine
from .incident_codec import to_dict
from .grader import GRADING_ACTIONS, Grader
from .hospital.desk import HospitalDesk
from .hospital.settings import Hospital
from .incident_reporter import change_reporter, name_designated
from .incident_runbooks import (RECORD_ACTIONS, Execute, Runbooks, moves_by_itself,
                                waiting_on_agents)
from .incident_rules import drill_of
from .person_reports import PERSON, PersonReport, check_of, cleared_event, fault_event, reason_of
from .incidents import Change, IncidentBook, Refused
from .round_queue import EVERY_ROUND, RoundQueue, next_grading
from .store import Store

log = logging.getLogger("branchwatch.collector")

# An event observed further than this from when it arrived (after clock
# correction) is kept in the store and the audit trail but opens no incident:
# a spool replays days, not years; years mean a broken clock, and grading it
# would count decades of business hours.
MAX_EVENT_AGE = timedelta(days=31)

ACTIONS = ("ack", "note", "resolve", "close", "reporter", "clear", *GRADING_ACTIONS)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def audit_record(at: float, change: Change, actor: str = "collector") -> tuple:
    """One audit record for one incident change."""
    return (at, "incident." + change.kind, actor, {
        "incident": change.incident_id, "check": change.check, "detail": change.detail,
        "at": change.at.isoformat(), "alert": change.alert})


class IncidentDesk:
    """One IncidentBook over a store: ingest, heartbeats, dead-man, people."""

    def __init__(self, store: Store, clock: Callable[[], float], window: float = 120.0,
                 deadman_grace: float | None = None, grader: Grader | None = None,
                 runbooks: Runbooks | None = None, notifier=None, reporter: str | None = None,
                 shared: bool = False,
                 hospital: Hospital | None = None):
        self.store, self.clock, self.grace, self.window = store, clock, deadman_grace, window
        self.reporter = reporter               # the designated one (reports.reporter)
        self.grader, self.runbooks = grader, runbooks
        # issue 7 (collector/notify/): planned here, on the writer thread; `mail`
        # is what the API's dispatcher sends on the event loop.
        self.notifier = notifier
        self.mail: list = []
        # Runbook actions go to the stored outbox (collector/storage/outbox.py): for
        # the API to carry out (webhooks, commands), for a branch's agent (offered
        # on its heartbeats until it reports the result), or, a drill's, for the
        # drill desk to answer (domain.md §5: a drill touches no switch or UPS).
        # These counts only tell the event loop whether to look (a hint).
        self.actions = ActionOutbox(store, clock, lambda i: self._incident(i).drill)
        self.waiting = self.actions.waiting
        if not shared:
            # Claimed by a process that died: carried out again. On a shared store
            # the leader's claims are live; a new leader releases them when it takes
            # over (engine/leadership.py).
            store.release_outbox()
        # Changes a runbook's hold/release made, saved with the next _save.
        self.held: list[Change] = []
        self.offsets = ClockOffsets()
        # The one consumer of the event log: applies it to the book from the
        # stored cursor (collector/engine/log_engine.py).
        self.engine = LogEngine(store, self.apply_batch, on_failure=self.reload)
        self.published_offsets: dict[str, float] = {}
        # The dead-man's view, kept in memory (one SELECT per second over
        # thousands of agents would stall the writer): agent -> last heard.
        self.lasts: dict[str, AgentLast] = {}
        # The newest stored heartbeat the book has taken (engine/leadership.py: on a
        # shared store the leader takes the ones any collector stored since).
        self.heard_mark = 0.0
        for a in store.agents():
            if a.heartbeat_sent_at is not None:
                self.offsets.observe(a.agent, a.heartbeat_sent_at, a.heartbeat_at.timestamp())
            if a.heartbeat_at and a.interval:
                self.lasts[a.agent] = AgentLast(
                    agent=a.agent, branch=a.branch, region=a.region, last_heard=a.heartbeat_at,
                    interval=a.interval, checks={c.check: c.state for c in a.checks})
        # domain.md §2.3: the hospital's whole-network outage, notices, restore tests.
        self.hospital = HospitalDesk(self, hospital, grader.calendar.zone if grader else
                                     timezone.utc) if hospital and hospital.configured() else None
        self.reload()

    def reload(self) -> None:
        """Rebuild the book (and who is silent) from the stored open incidents."""
        self.book = IncidentBook(window=self.window, new_id=self._new_id,
                                 incidents=self.store.load_open_incidents(),
                                 cause_of=self.grader.cause_of if self.grader else None)
        # What the once-a-second rounds look at (round_queue.py): every incident
        # once after a load, then only what changed, moves by itself or falls due.
        self.grading_due, self.runbooks_due = RoundQueue(), RoundQueue()
        for q in (self.grading_due, self.runbooks_due):
            q.touch(i.id for i in self.book.incidents() if i.status != "closed")
        # Agents whose silence is an active fault (survives a restart via the book).
        self.silent: set[str] = {f.agent for i in self.book.incidents() if not i.drill
                                 for f in i.faults.values() if f.category == "silent" and f.active}
        # Agent actions still running on the book are in the outbox (a database
        # from before the outbox: put there now; the same key is never put twice).
        for inc in self.book.incidents():
            self._hand_out(waiting_on_agents(inc))
        if self.hospital is not None and self.hospital.register is not None:
            self.hospital.register.reload()     # a rolled-back restore test is not kept
        # Deliveries queued before a restart go out again (the dispatcher skips
        # ones it already holds).
        self.mail = self.notifier.pending(self.book.incidents()) if self.notifier else []

    def _new_id(self) -> str:
        # Date for people, a random part so ids never repeat across restarts.
        return f"INC-{_utc(self.clock()):%Y%m%d}-{uuid.uuid4().hex[:6]}"

    def save(self, changes: list[Change], at: float, actor: str = "collector") -> None:
        """Save (with what follows: runbooks, notifications) and audit these changes."""
        self._save(changes, at, actor)

    def _save(self, changes: list[Change], at: float, actor: str = "collector") -> None:
        changes, self.held = changes + self.held, []
        if self.hospital is not None:          # domain.md §2.3: is the whole network out?
            changes = changes + self.hospital.observe(self.book, changes, at)
        if not changes:
            return
        for c in [c for c in changes if c.kind == "opened"]:
            # 第二十六條: the designated reporter is recorded on every new incident.
            changes = changes + name_designated(self.book.get(c.incident_id), self.reporter,
                                                _utc(at))
        if self.runbooks is not None:
            # issue 6: an incident that opens gets the runbook its faults call for
            # (or, covered by none, the leadership hears so: incident_runbooks.py).
            for c in [c for c in changes if c.kind in ("opened", "joined")]:
                more, executes = self.runbooks.opened(self.book.get(c.incident_id), _utc(at),
                                                      first=c.kind == "opened")
                changes = changes + more
                self._hand_out(executes)
            if self.hospital is not None:      # domain.md §2.3: the outage's own runbook
                more, executes = self.hospital.outage_runbooks(self.runbooks, changes, _utc(at))
                changes = changes + more
                self._hand_out(executes)
            for c in [c for c in changes if c.kind == "resolved"]:
                # Steps waiting for a person are not needed once the incident resolved:
                # end them now, in this transaction, so no later round has to look again.
                more, executes = self.runbooks.advance(self.book.get(c.incident_id), _utc(at))
                changes = changes + more
                self._hand_out(executes)
            changes, self.held = changes + self.held, []
        ids = dict.fromkeys(c.incident_id for c in changes)
        self.grading_due.touch(ids)            # changed: grade it again, advance its runs
        self.runbooks_due.touch(ids)
        notes = None
        if self.notifier is not None:          # issue 7: who hears of it
            notes = self.notifier.on_changes(changes, self._incident, _utc(at))
        self.store.save_incidents([self.book.get(i) for i in ids], at,
                                  [audit_record(at, c, actor) for c in changes]
                                  + ([(at, k, "collector", d) for k, d in notes.records]
                                     if notes else []))
        if notes:
            self.mail += notes.outbox

    # --- notifications (issue 7) -----------------------------------------------------
    def hospital_tick(self) -> None:
        """Once a second: the hospital's overdue restore test (collector/hospital/desk.py)."""
        if self.hospital is not None:
            self.hospital.tick()

    def send_alerts(self, alerts: list, at: float) -> None:
        """Alerts a person's act raised (the hospital's notices) through the pipeline."""
        notes = self.notifier.send(alerts, self._incident, _utc(at))
        self.store.save_incidents([self.book.get(i) for i in notes.touched], at,
                                  [(at, k, "collector", d) for k, d in notes.records])
        self.mail += notes.outbox

    def notify_tick(self) -> int:
        """Once a second: escalations, deadline reminders, held alerts, refreshes."""
        if self.notifier is None:
            return 0
        ts = self.clock()
        notes = self.notifier.tick(self.book.incidents(), _utc(ts))
        if notes.touched or notes.records:
            self.store.save_incidents([self.book.get(i) for i in notes.touched], ts,
                                      [(ts, k, "collector", d) for k, d in notes.records])
        self.mail += notes.outbox
        return len(notes.outbox)

    def delivered(self, item, ok: bool, error: str | None, attempts: int, final: bool) -> None:
        """The dispatcher's outcome for one item: kept on the incident, audited."""
        ts = self.clock()
        try:
            inc = self._incident(item.incident)
        except KeyError:
            return
        records = self.notifier.delivered(inc, item, ok, error, attempts, final, _utc(ts))
        if records or item.delivery is not None:
            self.store.save_incidents([inc], ts, [(ts, k, "collector", d) for k, d in records])

    # --- facts -------------------------------------------------------------------
    def ingest(self, agent: str, branch: str, events: list[Event], received_at: float,
               sent_at: datetime | None = None) -> tuple[list[str], list[str]]:
        """Append a batch to the log and apply the log up to it (the in-process path:
        drills, Alertmanager's webhook; the API appends and wakes the engine instead)."""
        accepted, duplicates = self.store.add_events(agent, branch, events, received_at,
                                                     sent_at)
        self.apply_log()
        return accepted, duplicates

    def apply_log(self) -> int:
        """Apply what the log holds past the engine's cursor; entries applied."""
        return self.engine.catch_up()

    def apply_batch(self, agent: str, branch: str, events: list[Event], received_at: float,
                    sent_at: datetime | None = None) -> None:
        """Apply one logged batch to the book, by corrected observation time."""
        if sent_at is not None:
            self.offsets.observe(agent, sent_at, received_at)
        fresh = []
        for e in events:
            at = self.offsets.correct(agent, e.observed_at)
            # A copy only when the agent's clock is off (the log keeps what it said).
            fresh.append(e if at == e.observed_at else msgspec.structs.replace(e, observed_at=at))
        now, changes = _utc(received_at), []
        for e in sorted(fresh, key=lambda e: e.observed_at):
            if abs(now - e.observed_at) > MAX_EVENT_AGE:
                continue        # stored and audited, but a month away is no incident of now
            if e.kind == "action":
                changes += self._agent_action(e)
            else:
                changes += self.book.apply_event(e, now)
        self._save(changes, received_at)

    def heartbeat(self, hb: Heartbeat, received_at: float) -> bool:
        """Store a heartbeat; end the agent's silence; rebuild the truth it carries."""
        first = self.store.put_heartbeat(hb, received_at)
        self.heard(hb, received_at)
        return first

    def heard(self, hb: Heartbeat, received_at: float) -> None:
        """A stored heartbeat on the book: the agent's silence ends, its truth is
        rebuilt (on the leader; engine/leadership.py hands it the ones other
        collectors stored)."""
        self.offsets.observe(hb.agent, hb.sent_at, received_at)
        now, changes = _utc(received_at), []
        self.lasts[hb.agent] = AgentLast.from_heartbeat(hb, heard_at=now)
        if hb.agent in self.silent:
            self.silent.discard(hb.agent)
            changes += self.book.clear_silence(hb.agent, hb.branch, now, now)
        changes += self.book.apply_heartbeat(
            hb.agent, hb.branch, hb.checks, self.offsets.correct(hb.agent, hb.sent_at), now,
            lambda t: self.offsets.correct(hb.agent, t))
        self._save(changes, received_at)

    def deadman(self) -> list[Change]:
        """One dead-man round on the clock: new silences open or join incidents."""
        ts = self.clock()
        now = _utc(ts)
        changes = []
        for s in silent_agents(self.lasts.values(), now, self.grace):
            if s.agent not in self.silent:
                self.silent.add(s.agent)
                changes += self.book.apply_silence(s, now)
        self._save(changes, ts)
        return changes

    # --- runbooks (issue 6) ----------------------------------------------------------
    def _hand_out(self, executes: list[Execute]) -> None:
        """Runbook actions into the stored outbox (collector/engine/actions.py); a
        hold/release is done on the incident at once (no equipment, nothing to send)."""
        records = [x for x in executes if x.action.type in RECORD_ACTIONS]
        for x in records:
            self.held += self._record(x)
        self.actions.hand_out([x for x in executes if x.action.type not in RECORD_ACTIONS])

    def commands_for(self, branch: str) -> list[Execute]:
        """The agent actions this branch's agent has not answered yet: offered on every
        heartbeat until its `action` result event is applied (never popped on send);
        one whose step no longer waits is withdrawn."""
        return self.actions.for_agent(branch, self._waits_on_agent)

    def _waits_on_agent(self, x: Execute) -> bool:
        try:
            inc = self.book.get(x.incident)
        except KeyError:
            return False                  # closed: nothing of it runs
        return any((w.run, w.step) == (x.run, x.step) for w in waiting_on_agents(inc))

    def claim(self, kind: str, limit: int = 100) -> list[Execute]:
        """Claim outbox actions of a kind (EXECUTE, REHEARSAL) to carry out now."""
        return self.actions.claim(kind, limit)

    def _record(self, x: Execute) -> list[Change]:
        """A runbook's hold/release (domain.md §4: not over while on the generator)."""
        now, a = _utc(self.clock()), x.action
        if a.type == "hold":
            changes = self.book.hold(x.incident, a.check, a.reason, now)
        else:
            changes = self.book.release(x.incident, a.check, f"runbook {x.run}: {x.step}", now)
        more, executes = self.runbooks.result(self._incident(x.incident), x.run, x.step, True,
                                              f"{a.type} {a.check}", now)
        self._hand_out(executes)
        return changes + more

    def _agent_action(self, e: Event) -> list[Change]:
        """An agent's `action` event: the result of a runbook command it was given,
        or something it did by itself (its failover), kept on the incident it belongs to."""
        if self.runbooks is None:
            return []
        side = drill_of(e.agent)                # a drill's report never lands on a real one
        mine = [i for i in self.book.index.live(e.branch) if self.book.drill_run(i) == side]
        # The newest open incident; else one resolved whose runbook still runs: an
        # agent's swap back comes after the repaired line has resolved the incident,
        # and its runbook waits for exactly that (network-fault: swap-back).
        live = ([i for i in mine if i.status == "open"]
                or [i for i in mine if any(r.status == "running" for r in i.runbooks)])
        parts = e.check.split("/")
        if len(parts) == 5 and parts[:2] == ["action", "runbook"]:   # action/runbook/INC/RUN/STEP
            try:
                inc = self.book.get(parts[2])
            except KeyError:
                return []
            changes, executes = self.runbooks.result(inc, parts[3], parts[4],
                                                     e.new_state == "ok", e.reason, e.observed_at)
            # Answered: no longer offered (domain.md §4: the agent's report is the result).
            self.actions.answered("/".join(parts[2:]), f"{e.new_state}: {e.reason}")
            self._hand_out(executes)
            return self.runbooks.record_action(inc, e, e.observed_at) + changes
        return self.runbooks.record_action(live[0], e, e.observed_at) if live else []

    def advance_runbooks(self) -> list[Change]:
        """Once a second: waits that are over, agent reports that arrived, time-outs."""
        if self.runbooks is None:
            return []
        ts = self.clock()
        now, changes, looked = _utc(ts), [], []
        for inc in self._due(self.runbooks_due, now):
            more, executes = self.runbooks.advance(inc, now)
            changes += more
            self._hand_out(executes)
            looked.append(inc)
        self._save(changes, ts)
        for inc in looked:                     # a person's turn, or done: not until it changes
            self.runbooks_due.settle(inc.id, EVERY_ROUND if any(
                moves_by_itself(r) for r in inc.runbooks) else None)
        return changes

    def _due(self, queue: RoundQueue, now: datetime) -> list:
        """The not-closed incidents a round's queue says are due now."""
        due = []
        for iid in queue.take(now):
            try:
                inc = self.book.get(iid)
            except KeyError:
                continue
            if inc.status != "closed":
                due.append(inc)
        return due

    def runbook_act(self, incident_id: str, action: str, step: str, who: str, note: str,
                    run_id: str | None = None, choice: str | None = None) -> dict:
        """A person: confirm|skip|fail a step, or start RUNBOOK (step = its id)."""
        if self.runbooks is None:
            raise Refused("runbooks are not configured on this collector")
        ts = self.clock()
        inc = self._incident(incident_id)
        if action == "start":
            changes, executes = self.runbooks.start(inc, step, who, _utc(ts))
        else:
            changes, executes = self.runbooks.act(inc, action, step, who, note, _utc(ts),
                                                  run_id, choice)
        self._hand_out(executes)
        self._save(changes, ts, actor=who)
        return to_dict(inc)

    def runbook_result(self, x: Execute, ok: bool, message: str) -> None:
        """The API's executor (webhook, command) or the drill desk finished an action:
        the outcome on the incident and the outbox entry done, in one transaction."""
        ts = self.clock()
        inc = self._incident(x.incident)
        self.actions.done(x, f"{'ok' if ok else 'failed'}: {message}")
        changes, executes = self.runbooks.result(inc, x.run, x.step, ok, message, _utc(ts))
        self._hand_out(executes)
        self._save(changes, ts)

    def grade_all(self) -> list[Change]:
        """Grades and deadlines of every incident not closed, as time passes. One
        incident that cannot be graded is logged and skipped, never the others."""
        if self.grader is None:
            return []
        ts = self.clock()
        now, changes = _utc(ts), []
        settled = []
        for inc in self._due(self.grading_due, now):
            try:
                facts = self.grader.facts(inc)
                changes += self.grader.regrade_with(inc, facts, now)
                settled.append((inc.id, next_grading(inc, facts)
                                if self.grader.moves_with_time(inc, facts) else None))
            except Exception:
                log.exception("grading %s failed", inc.id)
                settled.append((inc.id, EVERY_ROUND))     # and again next round
        self._save(changes, ts)
        for iid, when in settled:
            self.grading_due.settle(iid, when)
        return changes

    def counts(self) -> dict:
        """Numbers for /metrics: real and drill incidents by status (domain.md §5: a
        drill never counts as a real incident), silent agents, clock offsets."""
        snap = self.snapshot()
        return {"incidents": dict(snap.incidents), "drill_incidents": dict(snap.drill_incidents),
                "silent": snap.silent, "offsets": self.offsets.agents()}

    def publish(self) -> None:
        """Once a round, on the writer: the clock offsets /metrics shows (agents heard
        lately only, book_metrics.py), replaced whole so a scrape reads them as they are."""
        self.published_offsets = fresh_offsets(self.offsets.agents(), self.lasts.values(),
                                               _utc(self.clock()))

    def snapshot(self) -> BookSnapshot:
        """What /metrics shows, from any thread: the book's counters are kept as
        incidents change (no scan); the offsets are the last ones published."""
        book = self.book
        return BookSnapshot(
            incidents={s: book.count(s) for s in STATUSES},
            drill_incidents={s: book.count(s, drill=True) for s in STATUSES},
            silent=len(self.silent), offsets=self.published_offsets)

    # --- people ------------------------------------------------------------------
    def act(self, action: str, incident_id: str, who: str, text: str,
            force: bool = False, value: str | None = None, table: str | None = None) -> dict:
        """ack|note|resolve|close, or a grading action (grader.GRADING_ACTIONS), by a
        person; KeyError unknown, Refused not allowed."""
        ts = self.clock()
        now = _utc(ts)
        inc = self._incident(incident_id)
        if action in GRADING_ACTIONS:
            if self.grader is None:
                raise Refused("grading is not configured on this collector")
            changes = self.grader.act(inc, action, who, text, value, now, table)
        elif action == "resolve":
            changes = self.book.resolve(incident_id, who, text, now, force=force)
        elif action == "clear":                   # a person-reported fault is over
            changes = self._clear_reported(inc, value or "", who, text, now)
        elif action == "reporter":                # 第二十六條 (incident_reporter.py)
            changes = change_reporter(inc, value or "", who, text, now,
                                      self.runbooks is not None and self.runbooks.regulator)
        else:
            changes = getattr(self.book, action)(incident_id, who, text, now)
        self._save(changes, ts, actor=who)
        if self.grader is not None and changes:
            # What follows from the person's act (a criterion raises the grade,
            # closing ends the progress reports) is the collector's doing.
            self._save(self.grader.regrade(inc, now), ts)
        return to_dict(self.book.get(incident_id))

    # --- faults people report (person_reports.py) ---------------------------------------
    def report_fault(self, r: PersonReport) -> dict:
        """A person reports a fault: it opens or joins an incident like an agent's
        fault (grading, runbook, notifications), the report audited under their
        name; a cause they know (hospital class 1 or 4) is set as a criterion."""
        ts = self.clock()
        now = _utc(ts)
        changes = self.book.apply_event(fault_event(r, now), now)
        check = check_of(r.kind)
        inc = next(i for i in reversed(self.book.index.live(r.branch))
                   if (PERSON, check) in i.faults and i.faults[(PERSON, check)].active)
        changes.append(Change("reported", inc.id, now, reason_of(r), check))
        self._save(changes, ts, actor=r.who)
        if r.cause is not None and self.grader is not None:
            self._save(self.grader.act(inc, "criterion", r.who, f"reported: {r.sees}",
                                       r.cause, now), ts, actor=r.who)
        if self.grader is not None:
            self._save(self.grader.regrade(inc, now), ts)
        return to_dict(inc)

    def _clear_reported(self, inc, check: str, who: str, why: str, now) -> list[Change]:
        f = inc.faults.get((PERSON, check))
        if f is None:
            raise Refused(f"{inc.id} has no fault reported by a person as {check!r}; an "
                          "agent's fault clears when its agent sees it clear")
        if not f.active:
            raise Refused(f"{check} on {inc.id} is already cleared")
        return self.book.apply_event(cleared_event(f.branch, check, who, why, now), now)

    def incident(self, incident_id: str):
        """An incident by id (KeyError when unknown)."""
        return self._incident(incident_id)

    def incident_dict(self, incident_id: str) -> dict:
        """An incident as the API shows it."""
        return to_dict(self._incident(incident_id))

    def _incident(self, incident_id: str):
        """An incident by id, from the book or (closed before a restart) the store."""
        try:
            return self.book.get(incident_id)
        except KeyError:
            stored = self.store.incident(incident_id)
            if stored is None:
                raise KeyError(incident_id) from None
            # The book starts from open ones only: hand it this one (a note on
            # a closed incident is allowed).
            self.book.adopt(stored)
            return stored

    def list(self, status: str | None = None, drill: str = "no") -> list[dict]:
        """Incidents as data (closed ones come from the store): real ones (drill "no",
        the default: domain.md §5), drills too ("yes") or drills only ("only")."""
        keep = {"no": (False,), "yes": (False, True), "only": (True,)}[drill]
        return [to_dict(i) for i in self.store.list_incidents(status) if i.drill in keep]

    def get(self, incident_id: str) -> dict | None:
        """One incident as data, or None."""
        inc = self.store.incident(incident_id)
        return None if inc is None else to_dict(inc)
