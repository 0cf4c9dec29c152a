"""Runbooks on incidents (issue 6): which one starts, how it moves, what people
and agents do to it. Pure over the incident; the desk saves and audits the
changes, and the API carries out the `Execute`s it is handed.

- An incident gets the runbook its faults call for when it opens
  (runbooks/select.py); a person may start another by hand.
- Each run is frozen onto the incident (runbooks/run.py), stored with it.
- Agents report what they did as `action` events (their uplink failover,
  a runbook command): kept on the branch's newest open incident, where a
  step's `done_when` finds them.
- Every effect is a Change, so every step's start, result, who and note go
  to the audit trail (incident.step_done, incident.plan_failed, ...).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.config import ConfigError
from agent.wire import Event

from .incidents import Change, Incident, Refused
from .runbooks.run import (RECORDS, AgentAction, Context, Effect, Fact, NotNow, Run, advance,
                           confirm, fail, report, skip, stand_down, start)
from .incident_reporter import plan_failed
from .runbooks.schema import Action, Runbook, load_runbooks
from .runbooks.select import choose

ROOT = Path(__file__).resolve().parents[1]
PERSON_ACTIONS = ("confirm", "skip", "fail")
AGENT_ACTIONS = ("snmp_port", "nut_command")       # carried out by the branch agent
RECORD_ACTIONS = RECORDS                            # carried out on the incident (the desk)


def shipped_dir() -> Path:
    """config/runbooks in a checkout, <prefix>/share/branchwatch/runbooks installed."""
    source = ROOT / "config" / "runbooks"
    return source if source.is_dir() else Path(sys.prefix) / "share" / "branchwatch" / "runbooks"


@dataclass(frozen=True)
class Execute:
    """An action step the collector must carry out now (or hand to an agent)."""

    incident: str
    branch: str
    run: str
    step: str
    action: Action


def _change(inc: Incident, e: Effect, at: datetime) -> Change:
    # "execute" is audited as the step starting to run.
    kind = "step_running" if e.kind == "execute" else e.kind
    return Change(kind, inc.id, at, f"{e.run}: {e.detail}", None, e.alert)


def context(inc: Incident, now: datetime, ranks=None) -> Context:
    """What a run of this incident may look at (`ranks`: each grading table's
    grades, most severe first, for pre-authorisations)."""
    faults = tuple(Fact(f.check, f.active, f.state,
                        f.spans[-1][0] if f.active else (f.spans[-1][1] or f.last_at))
                   for f in inc.faults.values() if f.spans)
    diag = next((f.diagnosis for f in inc.faults.values()
                 if f.active and f.diagnosis and not f.suppressed), None)
    return Context(now, diag, faults, tuple(inc.actions), inc.started_at,
                   {name: g.grade for name, g in inc.grades.items()}, ranks or {})


class Runbooks:
    """The collector's runbooks and what they do to incidents."""

    def __init__(self, runbooks: dict[str, Runbook], auto_start: bool = True,
                 ranks: dict[str, list[str]] | None = None,
                 no_backup_port: tuple[str, ...] = (), regulator: bool = False):
        self.runbooks, self.auto_start = runbooks, auto_start
        # 第三十條: a failed plan is a regulator deadline (when a regulator's table is in use).
        self.regulator = regulator
        self.ranks = ranks or {}          # table -> grades, most severe first
        self.no_backup_port = tuple(no_backup_port)   # branch patterns (RunbookSettings)

    @classmethod
    def from_folder(cls, folder: str | Path | None, auto_start: bool = True,
                    ranks: dict[str, list[str]] | None = None,
                    no_backup_port: tuple[str, ...] = (), regulator: bool = False
                    ) -> Runbooks:
        """Load every runbook in a folder (the shipped ones by default)."""
        folder = Path(folder) if folder else shipped_dir()
        if not folder.is_dir():
            raise ConfigError(f"{folder}: runbooks: no such folder")
        return cls(load_runbooks(folder), auto_start, ranks, no_backup_port, regulator)

    def context(self, inc: Incident, now: datetime) -> Context:
        """What a run of this incident may look at, with the tables' grade order."""
        return context(inc, now, self.ranks)

    def _effects(self, inc: Incident, effects: list[Effect], now: datetime
                 ) -> tuple[list[Change], list[Execute]]:
        executes = [Execute(inc.id, inc.branch, e.run, e.step, e.action)
                    for e in effects if e.kind == "execute"]
        changes = []
        for e in effects:
            changes.append(_change(inc, e, now))
            if e.kind == "plan_failed" and self.regulator:
                changes += plan_failed(inc, e.run, e.step, e.detail, now)   # 第三十條
        return changes, executes

    def start(self, inc: Incident, runbook_id: str, who: str, now: datetime
              ) -> tuple[list[Change], list[Execute]]:
        """Start a runbook on the incident (frozen onto it)."""
        rb = self.runbooks.get(runbook_id)
        if rb is None:
            raise Refused(f"no runbook {runbook_id!r}; known: {', '.join(sorted(self.runbooks))}")
        run, effects = start(f"R{len(inc.runbooks) + 1}", rb, who, self.context(inc, now))
        inc.runbooks.append(run)
        return self._effects(inc, effects, now)

    def opened(self, inc: Incident, now: datetime, first: bool = True
               ) -> tuple[list[Change], list[Execute]]:
        """A new incident (or a fault joined one that has no runbook yet): start the
        runbook its faults call for. domain.md §3 (第二十七條(二)): when none does,
        no runbook is made up, and the leadership group is told at once that the
        plan does not cover it (once, when it opens)."""
        if not self.auto_start or inc.runbooks:
            return [], []
        rb = choose(self.runbooks, inc, self.no_backup_port)
        if rb is not None:
            return self.start(inc, rb.id, "collector", now)
        if not first:
            return [], []
        faults = ", ".join(sorted({f.check for f in inc.faults.values() if not f.suppressed}))
        return [Change("not_covered", inc.id, now,
                       f"no runbook covers {inc.title or 'this incident'} ({faults}); "
                       "the leadership group decides what to do", None, True)], []

    def advance(self, inc: Incident, now: datetime) -> tuple[list[Change], list[Execute]]:
        """Move every running run of the incident as far as it goes by itself."""
        changes, executes = [], []
        ctx = None
        for run in inc.runbooks:
            if moves_by_itself(run):
                ctx = ctx or self.context(inc, now)
                c, x = self._effects(inc, advance(run, ctx), now)
                changes, executes = changes + c, executes + x
            if inc.status != "open" and run.status == "running" and not moves_by_itself(run) \
                    and not run.runbook.step(run.current).after_recovery:
                # The incident resolved: a step still waiting for a person is not
                # needed, and the run is over. Waits and pre-authorised actions go
                # on first (swapping back to the primary line follows its return).
                ctx = ctx or self.context(inc, now)
                c, x = self._effects(inc, stand_down(run, f"incident {inc.status}", ctx), now)
                changes, executes = changes + c, executes + x
        return changes, executes

    def record_action(self, inc: Incident, event: Event, at: datetime) -> list[Change]:
        """An agent's `action` event, kept on the incident for `done_when`."""
        ok = event.new_state == "ok"
        inc.actions.append(AgentAction(event.check, ok, at, event.reason))
        return [Change("agent_action", inc.id, at,
                       f"{event.agent}: {event.check} {'ok' if ok else 'FAILED'}: {event.reason}",
                       event.check, not ok)]

    def act(self, inc: Incident, action: str, step: str, who: str, note: str, now: datetime,
            run_id: str | None = None, choice: str | None = None
            ) -> tuple[list[Change], list[Execute]]:
        """A person confirms, skips or fails a step of a run (the one at it by default)."""
        run = self._run(inc, step, run_id)
        ctx = self.context(inc, now)
        try:
            if action == "confirm":
                effects = confirm(run, step, who, note, ctx, choice)
            elif action == "skip":
                effects = skip(run, step, who, note, ctx)
            else:
                effects = fail(run, step, who, note, ctx)
        except NotNow as e:
            raise Refused(str(e)) from None
        return self._effects(inc, effects, now)

    def result(self, inc: Incident, run_id: str, step: str, ok: bool, message: str,
               now: datetime) -> tuple[list[Change], list[Execute]]:
        """The executor's read-back of an action it carried out."""
        run = self._run(inc, step, run_id)
        return self._effects(inc, report(run, step, ok, message, self.context(inc, now)), now)

    def _run(self, inc: Incident, step: str, run_id: str | None) -> Run:
        runs = [r for r in inc.runbooks if run_id in (None, r.id)]
        if run_id is not None and not runs:
            raise Refused(f"{inc.id} has no runbook run {run_id!r}")
        at = [r for r in runs if r.current == step] or runs
        if not at:
            raise Refused(f"{inc.id} has no runbook running")
        return at[-1]


def moves_by_itself(run: Run) -> bool:
    """Whether time or the incident's facts can move this run (a wait, a decision
    the diagnosis may answer, an action running or allowed); a manual task or
    an action waiting for a person cannot."""
    if run.status != "running" or run.current is None:
        return False
    step, rec = run.runbook.step(run.current), run.record()
    if step.kind == "wait":
        return True
    if step.kind == "decision":
        return step.auto is not None
    if step.kind == "action":
        return bool(step.preauthorised) or rec.confirmed   # a grant's grade: checked on advance
    return False


def waiting_on_agents(inc: Incident) -> list[Execute]:
    """Action steps still running that an agent carries out (to re-queue after a restart)."""
    out = []
    for run in inc.runbooks:
        rec = run.record() if run.current else None
        if rec is None or rec.status != "running":
            continue
        step = run.runbook.step(run.current)
        if step.action is not None and step.action.type in AGENT_ACTIONS:
            out.append(Execute(inc.id, inc.branch, run.id, step.id, step.action))
    return out
