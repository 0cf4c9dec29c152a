"""Drills on the running collector (issue 7; domain.md §5, 第十五條 to 第二十四條).

Every method is synchronous and runs on the API's one writer thread, like
the incident desk it feeds: a drill's events go in through
`IncidentDesk.ingest`, the same path as an agent's, under drill agent ids
(`drill:RUN:BRANCH`), so incidents, grades, runbooks and notifications all
run; the book keeps them apart from real ones (incidents.py). What a drill
must not do is touch the world: its runbook actions are rehearsed here,
never sent to a branch's switch or UPS (`rehearse`).

A refusal (ValueError, KeyError, Refused) is raised before anything changes;
anything else reloads the running drills from the store, as the writer
rolls the job back.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from agent.wire import Event

from ..engine.actions import REHEARSAL
from ..incident_desk import IncidentDesk
from ..incident_rules import drill_of
from ..incidents import Refused
from .model import EDITABLE, DrillRun
from .plan import Plan, plan_files
from .render import FORMATS, LANGUAGES, render
from .report import build
from .scenario import Injection, Scenario, branches_for, expand, shipped_dir

DRILL_OVER = "drill over"


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def _reloads(method):
    """On an unexpected error, rebuild the running drills from the store (the
    writer rolls the job back); refusals changed nothing and pass through."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except (ValueError, KeyError, Refused):
            raise
        except Exception:
            self.reload()
            raise
    return wrapper


class DrillDesk:
    """Drill runs over the store and the incident desk."""

    def __init__(self, store, desk: IncidentDesk, scenarios: dict[str, Scenario],
                 branches: dict[str, str], clock: Callable[[], float], tz: str,
                 language: str = "zh", folder: str | None = None):
        self.store, self.desk, self.scenarios = store, desk, scenarios
        self.folder = folder or shipped_dir()    # where the scenarios and plans/ are
        self.branches = branches          # every enrolled branch -> its region ("" if none)
        self.clock, self.tz, self.language = clock, tz, language
        self.reload()

    def reload(self) -> None:
        """The running drills, from the store (they go on injecting after a restart)."""
        self.running: dict[str, DrillRun] = {r.id: r for r in self.store.drills("running")}

    # --- running a drill ------------------------------------------------------------
    @_reloads
    def start(self, scenario: Scenario | str, branch: str | None, region: str | None,
              plan: Plan | None, speed: float, who: str) -> DrillRun:
        """Start a drill: freeze the scenario and plan onto a new run, inject what is due
        at once. ValueError names the parameter that is wrong."""
        if isinstance(scenario, str):
            if scenario not in self.scenarios:
                raise ValueError(f"scenario: no scenario {scenario!r}; known: "
                                 f"{', '.join(sorted(self.scenarios)) or 'none'}")
            scenario = self.scenarios[scenario]
        if not speed > 0:
            raise ValueError(f"speed: expected a number above 0, got {speed!r}")
        if plan is not None and plan.scenario not in (None, scenario.id):
            raise ValueError(f"plan: it plans scenario {plan.scenario!r}, not {scenario.id!r}")
        branches = branches_for(scenario, branch, region, self.branches)
        region = region or (self.branches[branches[0]] if scenario.scope == "branch" else None) \
            or None                       # a branch drill names its branch's region
        for e in scenario.events:
            if e.branch is not None and e.branch not in self.branches:
                raise ValueError(f"scenario: events name branch {e.branch!r}, not enrolled")
        ts = self.clock()
        now = _utc(ts)
        run_id = f"DRILL-{now:%Y%m%d}-{uuid.uuid4().hex[:6]}"
        run = DrillRun(id=run_id, scenario=scenario, branch=branch, region=region,
                       branches=branches, speed=speed, plan=plan, started_at=now,
                       started_by=who, injections=expand(scenario, run_id, branches, speed),
                       fields={k: "" for k in EDITABLE})
        # domain.md §5 (第二十四條): every drill is recorded, from its start.
        self.store.put_drill(run, ts, [(ts, "drill.started", who, {
            "drill": run_id, "scenario": scenario.id, "branches": branches, "region": region,
            "speed": speed, "events": len(run.injections),
            "plan": plan.title if plan else None, "owner": plan.owner if plan else None})])
        self.running[run_id] = run
        self._inject(run, ts)
        return run

    @_reloads
    def tick(self) -> int:
        """A few times a second: inject what is due, answer rehearsed actions."""
        ts = self.clock()
        return sum(self._inject(run, ts) for run in list(self.running.values())) + \
            self.rehearse(ts)

    def _inject(self, run: DrillRun, ts: float) -> int:
        now = _utc(ts)
        due = [x for x in run.pending() if run.started_at + timedelta(seconds=x.due) <= now]
        for x in due:
            x.injected_at = run.started_at + timedelta(seconds=x.due)
        self._send(due, ts)
        if due:
            self._track(run)
            self.store.put_drill(run, ts)
        return len(due)

    def _send(self, injections: list[Injection], ts: float) -> None:
        """Through the agents' path (IncidentDesk.ingest), one batch per drill agent."""
        by_agent: dict[str, list[Injection]] = {}
        for x in injections:
            by_agent.setdefault(x.agent, []).append(x)
        for agent, xs in by_agent.items():
            events = [Event(id=x.event, kind=x.kind, agent=x.agent, branch=x.branch,
                            check=x.check, old_state=None, new_state=x.state, reason=x.reason,
                            observed_at=x.injected_at, diagnosis=x.diagnosis) for x in xs]
            self.desk.ingest(agent, xs[0].branch, events, ts)

    def _track(self, run: DrillRun) -> None:
        """Note the incidents this run's faults opened."""
        for inc in self.desk.book.incidents():
            if inc.drill and inc.id not in run.incidents and \
                    self.desk.book.drill_run(inc) == run.id:
                run.incidents.append(inc.id)

    def rehearse(self, ts: float) -> int:
        """Answer the drill incidents' runbook actions without carrying them out
        (domain.md §5: a drill touches no switch or UPS): done, or failed where the
        scenario's `actions` says so (to rehearse the plan-failed path, 第三十條)."""
        n = 0
        for x in self.desk.claim(REHEARSAL):    # done with its result, in this transaction
            try:
                run = self._get(self.desk.book.drill_run(self.desk.book.get(x.incident)) or "")
            except KeyError:
                continue                    # an incident no longer open: nothing to answer
            outcome = run.scenario.actions.get(x.step, "done")
            self.desk.runbook_result(x, outcome == "done", f"DRILL: {x.action.type} not "
                                     f"carried out (rehearsed as {outcome})")
            n += 1
        return n

    @_reloads
    def end(self, drill_id: str, who: str, why: str = DRILL_OVER) -> DrillRun:
        """End a drill: what is due is injected, every fault it raised clears, and its
        incidents resolve and close with `why`. Refused once ended."""
        run = self._get(drill_id)
        if run.status != "running":
            raise Refused(f"{drill_id} ended at {run.ended_at.isoformat()} by {run.ended_by}")
        if not why.strip():
            raise ValueError("why: missing, and it is required")
        ts = self.clock()
        now = _utc(ts)
        self._inject(run, ts)
        clears, left = [], len(run.pending())
        for inc_id in run.incidents:
            for f in self.desk._incident(inc_id).faults.values():
                if f.active and drill_of(f.agent) == run.id:
                    offset = (now - run.started_at).total_seconds()
                    clears.append(Injection(
                        due=offset, offset=offset, branch=f.branch, agent=f.agent,
                        check=f.check, kind="flapping_end" if f.flapping else "state",
                        state="ok", reason=why, event=f"{run.id}/end/{len(clears)}",
                        injected_at=now))
        self._send(clears, ts)
        run.injections += clears
        for inc_id in run.incidents:
            if self.desk._incident(inc_id).status == "open":
                self.desk.act("resolve", inc_id, who, why, force=True)
            if self.desk._incident(inc_id).status == "resolved":
                self.desk.act("close", inc_id, who, why)
        # Ended once its incidents are closed: the last entry of its timeline.
        run.status, run.ended_at, run.ended_by, run.end_why = "ended", _utc(self.clock()), who, why
        self.store.put_drill(run, ts, [(ts, "drill.ended", who, {
            "drill": run.id, "why": why, "incidents": run.incidents, "cleared": len(clears),
            "not_injected": left})])
        del self.running[run.id]
        return run

    @_reloads
    def attach_plan(self, drill_id: str, plan: Plan, who: str, source: str) -> DrillRun:
        """Attach (or replace) a drill's plan after it started; refused once archived
        (domain.md §5, 第二十四條: the plan is archived with the drill's records)."""
        run = self._get(drill_id)
        if run.status == "archived":
            raise Refused(f"{drill_id} was archived by {run.archived_by}: it is frozen")
        if plan.scenario not in (None, run.scenario.id):
            raise ValueError(f"plan: it plans scenario {plan.scenario!r}, "
                             f"not {run.scenario.id!r}")
        before = run.plan.title if run.plan else None
        run.plan = plan                   # a running drill's own object: the same run
        ts = self.clock()
        self.store.put_drill(run, ts, [(ts, "drill.plan_attached", who, {
            "drill": drill_id, "plan": plan.title, "owner": plan.owner, "source": source,
            "replaced": before})])
        return run

    # --- the report -------------------------------------------------------------------
    @_reloads
    def edit(self, drill_id: str, changes: dict, who: str) -> DrillRun:
        """Set the report's text a person writes (model.EDITABLE); refused once archived."""
        run = self._get(drill_id)
        if run.status == "archived":
            raise Refused(f"{drill_id} was archived by {run.archived_by}: it is frozen")
        for k, v in changes.items():
            if k not in EDITABLE:
                raise ValueError(f"{k}: not a field a person writes; those are "
                                 f"{', '.join(EDITABLE)}")
            if not isinstance(v, str):
                raise ValueError(f"{k}: expected text")
        changed = {k: v for k, v in changes.items() if run.fields.get(k) != v}
        if changed:
            run.fields.update(changed)
            ts = self.clock()
            self.store.put_drill(run, ts, [(ts, "drill.edited", who,
                                            {"drill": drill_id, "changed": changed})])
        return run

    @_reloads
    def archive(self, drill_id: str, who: str, why: str) -> DrillRun:
        """Freeze an ended drill with its report in every language and format (第二十四條:
        archived); the audit record holds each text's sha256."""
        run = self._get(drill_id)
        if run.status != "ended":
            raise Refused(f"{drill_id} is {run.status}: " + (
                "end it first (branchwatch drill end)" if run.status == "running"
                else f"archived by {run.archived_by}"))
        if not why.strip():
            raise ValueError("why: missing, and it is required")
        ts = self.clock()
        run.status, run.archived_at, run.archived_by, run.archived_why = (
            "archived", _utc(ts), who, why)
        run.archive = {f"{lang}.{fmt}": render(self.data(run, lang), fmt)
                       for lang in LANGUAGES for fmt in FORMATS}
        self.store.put_drill(run, ts, [(ts, "drill.archived", who, {
            "drill": drill_id, "why": why, "sha256": {
                k: hashlib.sha256(v.encode("utf-8")).hexdigest()
                for k, v in sorted(run.archive.items())}})])
        return run

    def data(self, run: DrillRun, language: str | None = None) -> dict:
        """The report's facts (report.build) as of now, or as archived."""
        language = language or self.language
        if language not in LANGUAGES:
            raise ValueError(f"language: expected one of {', '.join(LANGUAGES)}, "
                             f"got {language!r}")
        incs = [i for i in (self.store.incident(x) for x in run.incidents) if i is not None]
        return build(run, incs, run.archived_at or _utc(self.clock()), self.tz, language)

    def report(self, drill_id: str, language: str | None, fmt: str) -> str:
        """The drill report as Markdown or HTML (as archived, once archived)."""
        run = self._get(drill_id)
        language = language or self.language
        if language not in LANGUAGES:
            raise ValueError(f"language: expected one of {', '.join(LANGUAGES)}, "
                             f"got {language!r}")
        if fmt not in FORMATS:
            raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        if run.status == "archived":
            return run.archive[f"{language}.{fmt}"]
        return render(self.data(run, language), fmt)

    # --- reading ------------------------------------------------------------------------
    def _get(self, drill_id: str) -> DrillRun:
        run = self.running.get(drill_id) or self.store.drill(drill_id)
        if run is None:
            raise KeyError(drill_id)
        return run

    def get(self, drill_id: str) -> DrillRun:
        """One run; KeyError when unknown."""
        return self._get(drill_id)

    def plans(self) -> dict:
        """The plan files one can choose (plans/*.yaml beside the scenarios), by name."""
        return plan_files(self.folder)

    def regions(self) -> list[str]:
        """The regions of the enrolled branches (a region drill names one of them)."""
        return sorted({r for r in self.branches.values() if r})

    def list(self) -> list[DrillRun]:
        """Every run, oldest first."""
        return self.store.drills()
