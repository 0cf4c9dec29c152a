"""A runbook running on an incident: a pure state machine (issue 6).

`start` freezes the runbook onto the run (design.md, Grafana OnCall: an edit
of the file cannot change a runbook already running). `advance` moves it as
far as it can go by itself at `now`, given what is known of the incident
(`Context`), and returns `Effect`s: what happened, for the audit trail, and
what the caller must carry out (`execute`). People `confirm`, `skip` and
`fail` the current step; the executor `report`s an action's result.

domain.md §4 / 第三條(二): pre-authorised actions run by themselves, the rest
wait for a person. 第三十條: a failed step raises "plan failed" at once and
goes to its manual fallback (`on_fail`).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .schema import END, Action, Runbook, Step

RECORDS = ("hold", "release")     # actions on the incident itself (schema.py)
MAX_MOVES = 100          # steps one advance may pass (a loop in a runbook stops here)


@dataclass
class StepRecord:
    """What happened to one step of one run."""

    step: str
    status: str                       # waiting | running | done | skipped | failed | not_needed
    started_at: datetime
    ended_at: datetime | None = None
    who: str | None = None            # the person who confirmed, skipped or failed it
    note: str | None = None           # their note or evidence, or the action's result
    choice: str | None = None         # a decision's answer
    confirmed: bool = False           # an action a person allowed
    held: bool = False                # pre-authorised, but not at the incident's grade


@dataclass
class Run:
    """One runbook on one incident, frozen when it started."""

    id: str
    runbook: Runbook
    started_at: datetime
    started_by: str
    status: str = "running"           # running | done | failed
    current: str | None = None
    ended_at: datetime | None = None
    records: list[StepRecord] = field(default_factory=list)

    def record(self, step_id: str | None = None) -> StepRecord | None:
        """The latest record of a step (the current one by default)."""
        step_id = step_id or self.current
        return next((r for r in reversed(self.records) if r.step == step_id), None)


@dataclass(frozen=True)
class Fact:
    """A fault of the incident, as waits see it."""

    check: str
    active: bool
    state: str
    since: datetime                    # start of its current span, or when it cleared


@dataclass(frozen=True)
class AgentAction:
    """An `action` event an agent reported at the incident's branch."""

    check: str
    ok: bool
    at: datetime
    reason: str


@dataclass(frozen=True)
class Context:
    """What a run may look at: the incident's faults, diagnosis and agent actions."""

    now: datetime
    diagnosis: str | None = None
    faults: tuple[Fact, ...] = ()
    actions: tuple[AgentAction, ...] = ()
    since: datetime | None = None      # the incident's start: agent actions from then count
    # The incident's grade per table now, and each table's grades (most severe
    # first): a pre-authorisation holds only up to its grade (domain.md §4).
    grades: Mapping[str, str | None] = field(default_factory=dict)
    ranks: Mapping[str, Sequence[str]] = field(default_factory=dict)


def runs_by_itself(step: Step, ctx: Context) -> bool:
    """Whether an action step's pre-authorisation holds now: granted, and the
    incident not graded above the grant's grade (domain.md §4: above it, the
    step waits for a person)."""
    if step.action is not None and step.action.type in RECORDS:
        return True                    # bookkeeping on the incident, no equipment
    grant = step.preauthorised
    if grant is True or grant is False:
        return grant
    grade, order = ctx.grades.get(grant.table), list(ctx.ranks.get(grant.table, ()))
    if grade is None:
        return True                    # ungraded (or the table is not in use)
    if grade not in order or grant.up_to_grade not in order:
        return False                   # cannot tell: a person decides
    return order.index(grade) >= order.index(grant.up_to_grade)


def grant_text(step: Step) -> str:
    """Who pre-authorised the step, when, and up to which grade (or why not)."""
    g = step.preauthorised
    if g is True:
        return "pre-authorised"
    if not g:
        return "not pre-authorised"
    return (f"pre-authorised by {g.granted_by} on {g.granted_at} up to grade "
            f"{g.up_to_grade} ({g.table})")


@dataclass(frozen=True)
class Effect:
    """Something that happened to a run (audited), or must be done (`execute`)."""

    kind: str          # step_waiting|step_started|step_done|step_skipped|step_failed|
    #                    execute|plan_failed|runbook_done|runbook_failed
    run: str
    step: str | None
    detail: str
    alert: bool = False
    action: Action | None = None


class NotNow(Exception):
    """A person's action the run's state refuses (-> 409 with this reason)."""


def start(run_id: str, runbook: Runbook, who: str, ctx: Context) -> tuple[Run, list[Effect]]:
    """A new run at the first step, advanced as far as it goes by itself."""
    run = Run(run_id, runbook, ctx.now, who)
    effects = [Effect("step_started", run_id, None, f"runbook {runbook.id} started by {who}: "
                                                  f"{runbook.title}")]
    return run, effects + _enter(run, runbook.steps[0].id, ctx)


def advance(run: Run, ctx: Context) -> list[Effect]:
    """Move on by itself: waits that are over, decisions the diagnosis answers,
    actions reported done by the agent, time-outs."""
    if run.status != "running" or run.current is None:
        return []
    step, rec = run.runbook.step(run.current), run.record()
    if step.kind == "decision" and step.auto == "diagnosis" and ctx.diagnosis in step.options:
        return _finish(run, step, rec, "done", ctx, note=f"diagnosis: {ctx.diagnosis}",
                       choice=ctx.diagnosis)
    if step.kind == "wait":
        return _wait(run, step, rec, ctx)
    if step.kind == "action" and (rec.confirmed or runs_by_itself(step, ctx)):
        return _action(run, step, rec, ctx)
    return []


def _enter(run: Run, step_id: str, ctx: Context) -> list[Effect]:
    # Steps entered at this same moment: a runbook that loops by itself stops.
    moves = sum(1 for r in run.records if r.started_at == ctx.now)
    if step_id == END or moves > MAX_MOVES:
        run.status, run.current, run.ended_at = ("done" if step_id == END else "failed",
                                                 None, ctx.now)
        return [Effect("runbook_done" if step_id == END else "runbook_failed", run.id, None,
                       f"runbook {run.runbook.id} {run.status}")]
    step = run.runbook.step(step_id)
    run.current = step_id
    run.records.append(StepRecord(step_id, "waiting", ctx.now))
    held = step.kind == "action" and not runs_by_itself(step, ctx)
    run.records[-1].held = held and bool(step.preauthorised)
    waits_for = ("the diagnosis or a person" if step.kind == "decision" and step.auto else
                 "a person" if step.kind in ("manual", "decision") or held else "itself")
    if held and step.preauthorised:
        # domain.md §4: graded above what the grant covers: a person decides.
        grades = ", ".join(f"{t} {g}" for t, g in ctx.grades.items() if g)
        waits_for += f" ({grant_text(step)}; the incident is graded {grades})"
    effects = [Effect("step_waiting", run.id, step_id,
                      f"{step_id}: {step.title}" + (f" ({step.role})" if step.role else "")
                      + f" - waits for {waits_for}")]
    return effects + advance(run, ctx)


def _next(run: Run, step: Step, choice: str | None) -> str:
    if step.kind == "decision" and choice is not None:
        return step.options[choice]
    return step.next or run.runbook.after(step.id)


def _finish(run: Run, step: Step, rec: StepRecord, status: str, ctx: Context,
            who: str | None = None, note: str | None = None,
            choice: str | None = None) -> list[Effect]:
    rec.status, rec.ended_at, rec.who = status, ctx.now, who or rec.who
    rec.note, rec.choice = note if note is not None else rec.note, choice
    by = f" by {who}" if who else ""
    text = f"{step.id} {status}{by}" + (f": {note}" if note else "")
    if status != "failed":
        return [Effect(f"step_{status}", run.id, step.id, text)] + \
            _enter(run, _next(run, step, choice), ctx)
    # 第三十條: a failed plan is reported at once; the manual fallback is offered.
    effects = [Effect("step_failed", run.id, step.id, text),
               Effect("plan_failed", run.id, step.id,
                      f"plan failed at {step.id} ({step.title}): {note or 'failed'}"
                      + (f"; manual fallback: {step.on_fail}" if step.on_fail else ""),
                      alert=True)]
    if step.on_fail:
        return effects + _enter(run, step.on_fail, ctx)
    run.status, run.current, run.ended_at = "failed", None, ctx.now
    return effects + [Effect("runbook_failed", run.id, None, f"runbook {run.runbook.id} failed")]


def _timed_out(step: Step, rec: StepRecord, ctx: Context) -> bool:
    return step.timeout is not None and (ctx.now - rec.started_at).total_seconds() >= step.timeout


def _wait(run: Run, step: Step, rec: StepRecord, ctx: Context) -> list[Effect]:
    if step.seconds is not None:
        if (ctx.now - rec.started_at).total_seconds() >= step.seconds:
            return _finish(run, step, rec, "done", ctx, note=f"{step.seconds:g} s passed")
    elif _holds(step, rec, ctx):
        return _finish(run, step, rec, "done", ctx,
                       note=f"{', '.join(step.until.checks)} {step.until.state} "
                            f"for {step.until.for_:g} s")
    if _timed_out(step, rec, ctx):
        return _finish(run, step, rec, "failed", ctx, note=f"not over after {step.timeout:g} s")
    return []


def _holds(step: Step, rec: StepRecord, ctx: Context) -> bool:
    """Every matching fault in the wanted state for `for` seconds (since the step
    began, when none matches)."""
    u = step.until
    facts = [f for f in ctx.faults if any(fnmatch.fnmatchcase(f.check, p) for p in u.checks)]
    since = [rec.started_at]
    for f in facts:
        ok = not f.active if u.state == "cleared" else f.state == u.state
        if not ok:
            return False
        since.append(f.since)
    return (ctx.now - max(since)).total_seconds() >= u.for_


def _action(run: Run, step: Step, rec: StepRecord, ctx: Context) -> list[Effect]:
    if step.done_when:
        # The agent does this one itself (pre-authorised, even with the line
        # cut) and reports it: the step follows its report.
        # From the incident's start: a spool replay brings the agent's report
        # after the run began, stamped with when the agent acted.
        since = min(run.started_at, ctx.since or run.started_at)
        seen = [a for a in ctx.actions if a.at >= since
                and fnmatch.fnmatchcase(a.check, step.done_when)]
        if seen:
            last = max(seen, key=lambda a: a.at)
            return _finish(run, step, rec, "done" if last.ok else "failed", ctx,
                           note=f"agent: {last.reason}")
    elif rec.status == "waiting":
        rec.status = "running"
        return [Effect("execute", run.id, step.id, f"{step.id}: {step.title}",
                       action=step.action)]
    if _timed_out(step, rec, ctx):
        return _finish(run, step, rec, "failed", ctx,
                       note=f"no result within {step.timeout:g} s")
    return []


# --- people and the executor ------------------------------------------------------
def _current(run: Run, step_id: str) -> tuple[Step, StepRecord]:
    if run.status != "running":
        raise NotNow(f"runbook {run.runbook.id} ({run.id}) is {run.status}")
    if step_id != run.current:
        raise NotNow(f"step {step_id!r} is not the current step; {run.id} is at "
                     f"{run.current!r}")
    return run.runbook.step(step_id), run.record()


def confirm(run: Run, step_id: str, who: str, note: str, ctx: Context,
            choice: str | None = None) -> list[Effect]:
    """A person confirms the current step: a task done, a decision taken, an
    action allowed (it then runs), a wait ended early."""
    step, rec = _current(run, step_id)
    if step.kind == "decision":
        if choice not in step.options:
            raise NotNow(f"{step_id} needs a choice: one of {', '.join(step.options)}")
        return _finish(run, step, rec, "done", ctx, who, note, choice)
    if step.kind == "action":
        if rec.confirmed or runs_by_itself(step, ctx):
            raise NotNow(f"{step_id} runs by itself; nothing to confirm "
                         "(skip or fail it instead)")
        rec.confirmed, rec.who, rec.note = True, who, note
        return [Effect("step_started", run.id, step_id, f"{step_id} allowed by {who}: {note}")
                ] + advance(run, ctx)
    return _finish(run, step, rec, "done", ctx, who, note)


def stand_down(run: Run, why: str, ctx: Context) -> list[Effect]:
    """The incident is over: the step waiting for a person is not needed (stored
    with why), and the run ends as done. Steps never reached stay without a
    record (a branch not taken, not "pending")."""
    if run.status != "running" or run.current is None:
        return []
    rec = run.record()
    effects = []
    if rec is not None and rec.status in ("waiting", "running"):
        rec.status, rec.ended_at, rec.note = "not_needed", ctx.now, why
        effects.append(Effect("step_not_needed", run.id, rec.step, f"{rec.step} not needed: {why}"))
    run.status, run.current, run.ended_at = "done", None, ctx.now
    return effects + [Effect("runbook_done", run.id, None,
                             f"runbook {run.runbook.id} done: {why}")]


def skip(run: Run, step_id: str, who: str, why: str, ctx: Context) -> list[Effect]:
    """A person skips the current step (recorded with why); the run goes on."""
    step, rec = _current(run, step_id)
    return _finish(run, step, rec, "skipped", ctx, who, why)


def fail(run: Run, step_id: str, who: str, why: str, ctx: Context) -> list[Effect]:
    """A person marks the current step failed: plan failed, manual fallback."""
    step, rec = _current(run, step_id)
    return _finish(run, step, rec, "failed", ctx, who, why)


def report(run: Run, step_id: str, ok: bool, message: str, ctx: Context) -> list[Effect]:
    """The executor's result for an action it carried out (read back)."""
    if run.status != "running" or run.current != step_id:
        return []                      # late result of a step already decided
    step, rec = run.runbook.step(step_id), run.record()
    return _finish(run, step, rec, "done" if ok else "failed", ctx, note=message)
