"""Drills (issue 7; domain.md §5): scenarios and plans as data; the incident
book keeping a drill and the real world apart; the drill desk over a real
SQLite store with an injected clock (a whole-region outage, a rehearsed
action that fails, a restart in the middle, the archive frozen). The real
collector process and the CLI: tests/test_drills_e2e.py.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from agent.config import ConfigError
from agent.wire import Event, new_event_id
from collector.config import parse
from collector.drills.desk import DrillDesk
from collector.drills.plan import parse_plan
from collector.drills.scenario import branches_for, expand, load_scenarios, parse_scenario
from collector.grader import Grader
from collector.incident_codec import from_dict, to_dict
from collector.incident_desk import IncidentDesk
from collector.incident_runbooks import Runbooks
from collector.incidents import IncidentBook, Refused
from collector.runbooks.select import choose
from collector.store import SqliteStore
from tests.support.store_backend import backend, pg_server  # noqa: F401

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)      # Monday 09:00 in Shanghai
KNOWN = {"B1": "north", "B2": "north", "B3": "south"}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


# --- scenarios and plans -------------------------------------------------------------
def test_shipped_scenarios_load_and_exercise_shipped_runbooks():
    scenarios = load_scenarios()
    assert set(scenarios) == {"power-cut", "line-cut", "ups-failure", "region-outage"}
    runbooks = Runbooks.from_folder(None).runbooks
    for s in scenarios.values():
        assert s.runbook in runbooks, s.id
        assert all(e.reason.startswith("DRILL") for e in s.events), s.id
    assert scenarios["region-outage"].scope == "region"


def test_every_shipped_scenario_and_the_report_templates_are_packaged():
    """pyproject lists them all (an installed collector finds them)."""
    import tomllib
    from collector.drills.scenario import shipped_dir
    data = tomllib.loads((shipped_dir().parents[1] / "pyproject.toml").read_text())
    packaged = data["tool"]["setuptools"]["data-files"]["share/branchwatch/drills"]
    assert {p.split("/")[-1] for p in packaged} == {p.name for p in shipped_dir().glob("*.yaml")}
    assert "drills/templates/*.j2" in data["tool"]["setuptools"]["package-data"]["collector"]


def test_expand_strikes_the_branch_or_every_branch_of_the_region_staggered():
    s = load_scenarios()
    [x] = [x for x in expand(s["power-cut"], "R1", ["B1"]) if x.offset == 0]
    assert (x.agent, x.branch, x.check, x.state) == ("drill:R1:B1", "B1",
                                                     "ups/rack-ups/on_battery", "critical")
    region = expand(s["region-outage"], "R1", branches_for(s["region-outage"], None, "north",
                                                           KNOWN), speed=10)
    assert [(x.branch, x.offset, x.due) for x in region if "core" in x.check] == [
        ("B1", 0, 0), ("B2", 20, 2)]                    # stagger 20 s, --speed 10
    assert [x.check for x in region if x.branch == "B2"][-1] == "agent/drill:R1:B2/silent"


@pytest.mark.parametrize("scenario, branch, region, problem", [
    ("power-cut", None, None, "branch: scenario 'power-cut' strikes one branch"),
    ("power-cut", "B9", None, "branch: no enrolled agent at branch 'B9'"),
    ("power-cut", "B1", "south", "region: branch 'B1' is in region 'north'"),
    ("region-outage", None, None, "region: scenario 'region-outage' strikes a whole region"),
    ("region-outage", None, "west", "region: no enrolled branch in region 'west'; "
                                    "regions: north, south"),
])
def test_wrong_parameters_are_named(scenario, branch, region, problem):
    with pytest.raises(ValueError, match=problem):
        branches_for(load_scenarios()[scenario], branch, region, KNOWN)


def test_a_scenario_file_is_checked_like_a_config():
    with pytest.raises(ConfigError, match=r"clears\[0\]\.check: 'ups/x/alarm' is not a check"):
        parse_scenario("id: x\ntitle: X\nevents: [{at: 0, check: ups/x/on_battery}]\n"
                       "clears: [{at: 5, check: ups/x/alarm}]\n")
    with pytest.raises(ConfigError, match=r"events\[0\]\.at"):
        parse_scenario("id: x\ntitle: X\nevents: [{at: -1, check: ups/x/on_battery}]\n")


def test_plan_durations_and_milestones():
    plan = parse_plan("title: T\ntime: '2026-06-15 14:00'\ncontent: C\nbasis: B\n"
                      "purpose: P\nowner: O\npartners: [power company]\n"
                      "steps: {power-cut: {find-cause: 10m, call-power-company: 90s, x: 2}}\n"
                      "milestones: {notified: 1.5h, 'deadline:regulator-notice': 60m}\n")
    assert plan.steps == {"power-cut": {"find-cause": 600, "call-power-company": 90, "x": 2}}
    assert plan.milestones == {"notified": 5400, "deadline:regulator-notice": 3600}
    with pytest.raises(ConfigError, match="milestones.soon: expected one of opened"):
        parse_plan("title: T\ntime: t\ncontent: C\nbasis: B\npurpose: P\nowner: O\n"
                   "milestones: {soon: 1m}\n")
    with pytest.raises(ConfigError, match="plan: owner"):
        parse_plan("title: T\ntime: t\ncontent: C\nbasis: B\npurpose: P\n", "plan")
    with pytest.raises(ConfigError, match="steps"):
        parse_plan("title: T\ntime: t\ncontent: C\nbasis: B\npurpose: P\nowner: O\n"
                   "steps: {power-cut: {find-cause: soon}}\n")


def test_the_config_keeps_drill_ids_for_drills():
    with pytest.raises(ConfigError, match=r"agents\[0\]\.id: ids starting with 'drill:'"):
        parse("agents:\n  - {id: 'drill:x', branch: B1, token_sha256: " + "a" * 64 + "}\n")


# --- the book: a drill and the real world never mix ------------------------------------
def ev(t: float, check: str, state: str = "critical", agent: str = "a1", branch: str = "b1",
       diagnosis: str | None = None) -> Event:
    return Event(id=new_event_id(), kind="state", agent=agent, branch=branch, check=check,
                 old_state=None, new_state=state, reason=f"{check} {state}",
                 observed_at=at(t), diagnosis=diagnosis)


def test_drill_and_real_faults_at_one_branch_never_share_an_incident():
    book = IncidentBook(window=120)
    d1, d2 = "drill:R1:b1", "drill:R2:b1"
    [c] = book.apply_event(ev(0, "line/primary/gw", agent=d1, diagnosis="line"), at(1))
    drill = book.get(c.incident_id)
    assert c.kind == "opened" and drill.drill and drill.title == "DRILL: network outage (line)"
    # A real port fault behind the drill's line outage: not suppressed, its own incident.
    [c] = book.apply_event(ev(10, "switch/funds/if/access3/link"), at(11))
    real = book.get(c.incident_id)
    assert (c.kind, c.alert, real.drill) == ("opened", True, False)
    assert not real.title.startswith("DRILL")
    # The same check as the drill's, for real: joins the real incident.
    changes = book.apply_event(ev(20, "line/primary/gw", diagnosis="line"), at(21))
    assert {x.incident_id for x in changes} == {real.id}
    # A drill fault joins its drill, even right after the real one.
    changes = book.apply_event(ev(30, "ups/rack/on_battery", agent=d1), at(31))
    assert changes[0].incident_id == drill.id and drill.title == "DRILL: power outage"
    # A drill's port fault is suppressed by its own outage, never by the real one.
    [c] = book.apply_event(ev(40, "switch/funds/if/access4/link", agent=d1), at(41))
    assert (c.kind, c.incident_id) == ("suppressed", drill.id)
    # Another drill at the same branch: its own incident too.
    [c] = book.apply_event(ev(50, "line/primary/gw", agent=d2, diagnosis="line"), at(51))
    assert c.kind == "opened" and c.incident_id not in (drill.id, real.id)
    assert {f.agent for f in real.faults.values()} == {"a1"}
    assert {f.agent for f in drill.faults.values()} == {d1}
    assert book.drill_run(drill) == "R1" and book.drill_run(real) is None


def test_one_cause_at_many_branches_joins_only_its_own_side():
    grader = Grader.from_config(parse(""))
    book = IncidentBook(window=120, cause_of=grader.cause_of)
    a = book.apply_event(ev(0, "tcp/core-system", agent="drill:R1:b1"), at(1))[0].incident_id
    b = book.apply_event(ev(5, "tcp/core-system", agent="a2", branch="b2"), at(6))[0].incident_id
    c = book.apply_event(ev(9, "tcp/core-system", agent="drill:R1:b3", branch="b3"), at(9))
    assert a != b and c[0].incident_id == a
    assert book.get(a).title == "DRILL: core system unreachable: 2 branches"
    assert book.get(b).title == "service fault"


def test_the_drill_flag_is_stored_and_the_runbook_sees_through_the_title():
    book = IncidentBook(window=120)
    book.apply_event(ev(0, "ups/rack/on_battery", agent="drill:R1:b1"), at(1))
    book.apply_event(ev(5, "line/primary/gw", agent="drill:R1:b1", diagnosis="line"), at(6))
    [inc] = book.incidents()
    assert from_dict(json.loads(json.dumps(to_dict(inc), default=str))).drill is True
    assert to_dict(inc)["drill"] is True and inc.title == "DRILL: power outage"
    assert choose(Runbooks.from_folder(None).runbooks, inc).id == "power-cut"


# --- the drill desk over a real store ---------------------------------------------------
class Clock:
    def __init__(self):
        self.t = T0.timestamp()

    def __call__(self) -> float:
        return self.t

    def to(self, seconds: float) -> None:
        self.t = T0.timestamp() + seconds


def desks(path, clock, runbooks=True, store=None):
    config = parse("agents:\n" + "".join(
        f"  - {{id: a{i}, branch: {b}, region: {r}, token_sha256: {'abc'[i - 1] * 64}}}\n"
        for i, (b, r) in enumerate(KNOWN.items(), 1)))
    store = store or SqliteStore(path / "collector.db")
    desk = IncidentDesk(store, clock, grader=Grader.from_config(config),
                        runbooks=Runbooks.from_folder(None) if runbooks else None)
    return store, desk, DrillDesk(store, desk, load_scenarios(), KNOWN, clock,
                                  "Asia/Shanghai", "en")


def step(store, *jobs):
    """Run writer jobs the way the API does: each in the store's transaction."""
    with store.group():
        return [job() for job in jobs]


def audit(store, kind: str) -> list[dict]:
    return [json.loads(d) for (d,) in store._conn.execute(
        "SELECT data FROM audit WHERE kind = ? ORDER BY seq", (kind,))]


def test_region_outage_is_one_drill_incident_counted_apart_and_ends_closed(tmp_path):
    clock = Clock()
    store, desk, drills = desks(tmp_path, clock)
    [run] = step(store, lambda: drills.start("region-outage", None, "north", None, 2.0, "alice"))
    assert run.branches == ["B1", "B2"] and len(run.incidents) == 1
    clock.to(15)                             # B2's core loss (20 s / speed 2) is due
    step(store, drills.tick)
    store.close()
    # A restart in the middle: the running drill goes on injecting.
    store, desk, drills = desks(tmp_path, clock)
    assert list(drills.running) == [run.id]
    clock.to(60)
    step(store, drills.tick, desk.advance_runbooks, desk.grade_all)
    [inc] = desk.book.incidents()
    assert inc.title == "DRILL: core system unreachable: 2 branches"
    assert {f.check.split("/")[-1] for f in inc.faults.values()} == {"core", "silent"}
    assert "cbrc" in inc.grades and inc.runbooks[0].runbook.id == "network-fault"
    assert desk.counts()["incidents"] == {"open": 0, "resolved": 0}
    assert desk.counts()["drill_incidents"] == {"open": 1, "resolved": 0}
    assert desk.counts()["silent"] == 0      # a drill's silence is no real silent agent
    assert desk.list() == [] and [i["id"] for i in desk.list(drill="only")] == [inc.id]
    clock.to(90)
    [ended] = step(store, lambda: drills.end(run.id, "alice"))
    assert ended.status == "ended" and not drills.running
    closed = store.incident(inc.id)
    assert (closed.status, closed.closed.who, closed.closed.why) == ("closed", "alice",
                                                                     "drill over")
    with pytest.raises(Refused, match="ended at"):
        step(store, lambda: drills.end(run.id, "alice"))
    [started] = audit(store, "drill.started")
    assert (started["scenario"], started["branches"], started["speed"]) == (
        "region-outage", ["B1", "B2"], 2.0)
    [done] = audit(store, "drill.ended")
    assert done == {"drill": run.id, "why": "drill over", "incidents": [inc.id],
                    "cleared": 4, "not_injected": 0}
    assert store.verify_audit() == []


def test_ups_failure_rehearses_a_failing_bypass_and_touches_no_ups(tmp_path):
    clock = Clock()
    store, desk, drills = desks(tmp_path, clock)
    [run] = step(store, lambda: drills.start("ups-failure", "B1", None, None, 1.0, "alice"))
    [inc_id] = run.incidents
    for s in ("basic-checks", "call-vendor", "bypass"):   # the bypass: a person allows it
        step(store, lambda s=s: desk.runbook_act(inc_id, "confirm", s, "alice", "done"))
    [r0] = desk.book.get(inc_id).runbooks
    # Nothing for an agent or a webhook: the drill's action waits for the drill desk.
    assert store.outbox_waiting("agent") == [] and store.outbox_waiting("execute") == []
    [rehearsal] = store.outbox_waiting("rehearsal")
    assert rehearsal.key == f"rehearsal:{inc_id}/{r0.id}/bypass"
    step(store, drills.tick)
    assert store.outbox_waiting("rehearsal") == []          # answered: done, not dropped
    [r] = desk.book.get(inc_id).runbooks
    assert r.current == "bypass-by-hand"
    rec = r.record("bypass")
    assert rec.status == "failed" and rec.note == "DRILL: nut_command not carried out " \
                                                 "(rehearsed as failed)"
    assert any("bypass" in d["detail"] for d in audit(store, "incident.plan_failed"))


def test_an_archived_drill_is_frozen_and_kept(backend):
    clock = Clock()
    store, desk, drills = desks(None, clock, runbooks=False, store=backend.open())
    [run] = step(store, lambda: drills.start("power-cut", "B1", None, None, 1.0, "alice"))
    with pytest.raises(Refused, match="end it first"):
        step(store, lambda: drills.archive(run.id, "alice", "too early"))
    clock.to(700)
    step(store, lambda: drills.end(run.id, "alice"),
         lambda: drills.edit(run.id, {"followups": "new batteries"}, "alice"))
    with pytest.raises(ValueError, match="title: not a field a person writes"):
        drills.edit(run.id, {"title": "x"}, "alice")
    [archived] = step(store, lambda: drills.archive(run.id, "alice", "reviewed"))
    assert set(archived.archive) == {"zh.md", "zh.html", "en.md", "en.html"}
    assert "new batteries" in drills.report(run.id, "en", "md")
    [record] = audit(store, "drill.archived")
    assert record["sha256"]["zh.md"] == hashlib.sha256(
        archived.archive["zh.md"].encode()).hexdigest()
    with pytest.raises(Refused, match="frozen"):
        drills.edit(run.id, {"followups": "changed my mind"}, "alice")
    with backend.raw() as conn:           # the database refuses whoever writes
        with pytest.raises(backend.integrity_error, match="archived drill is frozen"):
            conn.execute("UPDATE drills SET body = '{}' WHERE id = ?", (run.id,))
        with pytest.raises(backend.integrity_error, match="drills are kept"):
            conn.execute("DELETE FROM drills WHERE id = ?", (run.id,))
