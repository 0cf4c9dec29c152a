"""Deadlines of the workflow (domain.md §3), as timelines in
minutes from the incident's start T0:

- every data criterion is reported at once (第二十七條(六)), whatever its grade;
- a failed plan (第三十條) is a regulator deadline due at that moment;
- the reporter (報告責任人, 第二十六條) and each change of them are recorded,
  and a change is filed with the regulator (a deadline at once);
- the table's re-planning never drops these.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Event, new_event_id
from collector.config import parse
from collector.grader import Grader
from collector.grading import load_tables, plan_deadlines
from collector.grading.deadlines import plan_failure, regulator_table, reporter_filing
from collector.incident_desk import IncidentDesk
from collector.incident_runbooks import Runbooks
from collector.incidents import Refused
from collector.store import SqliteStore

TABLES = load_tables(["cbrc", "hospital"])
CBRC = TABLES["cbrc"]
T0 = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)       # Monday 10:00 in Shanghai


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def notice(history, now) -> float | None:
    got = {d.key: d for d in plan_deadlines(CBRC, T0, None,
                                            [(g, at(m), r) for g, m, r in history], at(now))}
    d = got.get("regulator-notice")
    return None if d is None else (d.due_at - T0).total_seconds() / 60


@pytest.mark.parametrize("desc, history, want", [
    ("scope grade III at 30:00: within 60 min of the start", [("III", 30, "iii-1-region-30m")], 60),
    ("data criterion III set at 10 min: at once", [("III", 10, "data-larger")], 10),
    ("data criterion II set at 5 min: at once", [("II", 5, "data-serious")], 5),
    ("data criterion I set at 0:01: at once", [("I", 1 / 60, "data-major")], 1 / 60),
    ("scope III at 30 then data II at 45: at 45, earlier than 60",
     [("III", 30, "iii-1-region-30m"), ("II", 45, "data-serious")], 45),
    ("data III set at 59:59: at 59:59", [("III", 59 + 59 / 60, "data-larger")], 59 + 59 / 60),
    ("scope III at 20, data III only at 70: the 60-min notice stands",
     [("III", 20, "iii-1-region-30m"), ("III", 70, "data-larger")], 60),
])
def test_every_data_criterion_is_reported_at_once(desc, history, want):
    assert notice(history, 200) == pytest.approx(want), desc


def test_the_workflow_deadlines_are_due_at_their_moment_and_numbered():
    d = plan_failure(2, "R1", "backup-line", "no result within 300 s", at(12))
    assert (d.key, d.rule, d.due_at) == ("plan-failed-2", "plan-failed", at(12))
    assert d.reason.endswith("R1 backup-line failed at 2026-12-07 02:12:00 UTC: no result "
                             "within 300 s (第三十條)")
    r = reporter_filing(1, "bob", "alice", at(40))
    assert (r.key, r.due_at, r.reason) == (
        "reporter-filing-1", at(40),
        "reporter changed from bob to alice at 2026-12-07 02:40:00 UTC (第二十六條)")
    assert regulator_table(TABLES) == "cbrc" and regulator_table({"h": TABLES["hospital"]}) is None


class Desk:
    """A desk with the cbrc table, the shipped runbooks and a designated reporter."""

    def __init__(self, tmp_path, reporter="bob"):
        self.path = tmp_path / "collector.db"
        self.now = [T0.timestamp()]
        self.store = SqliteStore(self.path)
        grader = Grader.from_config(parse("grading: {tables: [cbrc]}\n"))
        self.desk = IncidentDesk(self.store, lambda: self.now[0], grader=grader,
                                 runbooks=Runbooks.from_folder(None, regulator=True),
                                 reporter=reporter)

    def at(self, minutes: float) -> None:
        self.now[0] = at(minutes).timestamp()

    def event(self, minutes: float, check: str, new: str, diagnosis=None) -> None:
        self.at(minutes)
        e = Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=check,
                  old_state="ok", new_state=new, reason=f"{check} {new}", diagnosis=diagnosis,
                  observed_at=at(minutes))
        with self.store.group():
            self.desk.ingest("a1", "B1", [e], self.now[0])
            self.desk.advance_runbooks()
            self.desk.grade_all()

    def tick(self, minutes: float) -> None:
        self.at(minutes)
        with self.store.group():
            self.desk.advance_runbooks()
            self.desk.grade_all()

    def act(self, minutes: float, action: str, who: str, text: str, value=None):
        self.at(minutes)
        with self.store.group():
            return self.desk.act(action, self.incident().id, who, text, False, value)

    def incident(self):
        [inc] = self.desk.book.incidents()
        return inc

    def audit(self, kind: str) -> list[tuple[str, dict]]:
        conn = sqlite3.connect(self.path)
        try:
            rows = conn.execute("SELECT actor, data FROM audit WHERE kind = ? ORDER BY seq",
                                (kind,))
            return [(a, json.loads(d)) for a, d in rows]
        finally:
            conn.close()


@pytest.fixture
def desk(tmp_path):
    d = Desk(tmp_path)
    yield d
    d.store.close()


def test_a_failed_plan_sets_a_regulator_deadline_at_that_moment_kept_by_regrading(desk):
    desk.event(0, "line/primary/gw", "critical", diagnosis="line")
    inc = desk.incident()
    assert inc.runbooks[0].current == "backup-line"
    desk.tick(4 + 59 / 60)
    assert [d.key for d in inc.deadlines] == []
    desk.tick(5)                          # no failover report within 300 s: the plan failed
    [d] = [d for d in inc.deadlines if d.rule == "plan-failed"]
    assert (d.key, d.table, d.due_at, d.status) == ("plan-failed-1", "workflow", at(5), "due")
    desk.tick(5.5)                       # regraded since: still there, and now missed
    [d] = [d for d in inc.deadlines if d.rule == "plan-failed"]
    assert d.status == "missed"
    got = desk.act(6, "deadline", "lina", "phoned the regulator, ref 3", "plan-failed-1")
    assert [d.status for d in got["deadlines"] if d.key == "plan-failed-1"] == ["met"]


def test_the_designated_reporter_is_recorded_and_a_change_is_filed(desk):
    desk.event(0, "tcp/core-banking", "critical")
    inc = desk.incident()
    assert [(r.name, r.by) for r in inc.reporters] == [("bob", "collector")]
    assert not [d for d in inc.deadlines if d.rule == "reporter-filing"]
    got = desk.act(40, "reporter", "lina", "bob is needed on site at B1", "alice")
    assert [(r.name, r.by, r.why) for r in got["reporters"]] == [
        ("bob", "collector", "the designated reporter (reports.reporter)"),
        ("alice", "lina", "bob is needed on site at B1")]
    [d] = [d for d in inc.deadlines if d.rule == "reporter-filing"]
    assert (d.key, d.due_at, d.table) == ("reporter-filing-1", at(40), "workflow")
    trail = desk.audit("incident.reporter")
    assert [(a, d["detail"]) for a, d in trail] == [
        ("collector", "reporter: bob (the designated reporter)"),
        ("lina", "reporter: bob -> alice by lina: bob is needed on site at B1")]
    with pytest.raises(Refused, match="alice is already the reporter"):
        desk.act(41, "reporter", "lina", "again", "alice")
    desk.act(50, "reporter", "lina", "alice went home", "carol")
    assert [d.key for d in inc.deadlines if d.rule == "reporter-filing"] == [
        "reporter-filing-1", "reporter-filing-2"]


def test_without_a_designated_reporter_the_first_one_named_is_no_change(tmp_path):
    d = Desk(tmp_path, reporter=None)
    try:
        d.event(0, "tcp/core-banking", "critical")
        assert d.incident().reporters == []
        d.act(5, "reporter", "lina", "she reports this one", "alice")
        assert [r.name for r in d.incident().reporters] == ["alice"]
        assert not [x for x in d.incident().deadlines if x.rule == "reporter-filing"]
    finally:
        d.store.close()
