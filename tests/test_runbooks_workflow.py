"""The runbooks the seed names, on the running desk (domain.md
§3, §4), as timelines on an injected clock: events in, the desk's incident,
its runbook and its audit trail out.

- a power cut is not over while the branch runs on the generator: the UPS
  seeing input again does not resolve the incident; mains back does;
- core banking unreachable gets the central-system runbook, not "other equipment";
- what no runbook covers gets none, and the leadership is told so at once;
- a branch without a pre-wired backup port gets the cable swap by hand.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Event, new_event_id
from collector.incident_desk import IncidentDesk
from collector.incident_runbooks import Runbooks
from collector.store import SqliteStore

T0 = datetime(2026, 12, 7, 2, 0, tzinfo=timezone.utc)


class Desk:
    """A desk over a fresh store, on a clock the test moves."""

    def __init__(self, tmp_path, no_backup_port=()):
        self.path = tmp_path / "collector.db"
        self.now = [T0.timestamp()]
        self.store = SqliteStore(self.path)
        self.desk = IncidentDesk(self.store, lambda: self.now[0],
                                 runbooks=Runbooks.from_folder(None,
                                                               no_backup_port=no_backup_port))

    def at(self, seconds: float) -> None:
        self.now[0] = T0.timestamp() + seconds

    def event(self, seconds: float, check: str, new: str, old: str = "ok",
              branch: str = "B1", diagnosis: str | None = None) -> None:
        self.at(seconds)
        e = Event(id=new_event_id(), kind="state", agent=f"a-{branch}", branch=branch,
                  check=check, old_state=old, new_state=new, reason=f"{check} {new}",
                  diagnosis=diagnosis, observed_at=T0 + timedelta(seconds=seconds))
        with self.store.group():
            self.desk.ingest(f"a-{branch}", branch, [e], self.now[0])
            self.desk.advance_runbooks()

    def tick(self, seconds: float) -> None:
        self.at(seconds)
        with self.store.group():
            self.desk.advance_runbooks()

    def person(self, seconds: float, action: str, step: str, note: str,
               choice: str | None = None) -> None:
        self.at(seconds)
        with self.store.group():
            self.desk.runbook_act(self.incident().id, action, step, "wang", note, None, choice)

    def incident(self, branch: str = "B1"):
        [inc] = [i for i in self.desk.book.incidents() if i.branch == branch]
        return inc

    def audit(self, kind: str) -> list[dict]:
        conn = sqlite3.connect(self.path)
        try:
            rows = conn.execute("SELECT data FROM audit WHERE kind = ? ORDER BY seq", (kind,))
            return [json.loads(d) for (d,) in rows]
        finally:
            conn.close()


@pytest.fixture
def desk(tmp_path):
    d = Desk(tmp_path)
    yield d
    d.store.close()


def test_a_power_cut_stays_open_while_the_branch_runs_on_the_generator(desk):
    desk.event(0, "ups/rack/on_battery", "critical")
    inc = desk.incident()
    [run] = inc.runbooks
    assert run.runbook.id == "power-cut"
    for t, step, choice in ((60, "find-cause", None), (120, "call-power-company", None),
                            (180, "long-outage", "long"), (240, "disconnect-mains", None),
                            (300, "start-generator", None)):
        desk.person(t, "confirm", step, "done", choice)
    held = inc.faults[("collector", "power/generator")]
    assert held.active and held.reason == "the branch runs on the generator; mains is not back"
    assert [d["detail"] for d in desk.audit("incident.held")] == [
        "power/generator: the branch runs on the generator; mains is not back"]
    desk.tick(300 + 180)
    desk.person(500, "confirm", "connect-loads", "UPS input 221 V")
    # The generator feeds the UPS: it sees input again. Not the end (domain.md §4).
    desk.event(510, "ups/rack/on_battery", "ok", "critical")
    assert inc.status == "open" and run.current == "mains-back"
    desk.tick(5000)
    assert inc.status == "open" and run.current == "mains-back"
    desk.person(7200, "confirm", "mains-back", "ATS on mains; power company ticket 77")
    assert inc.status == "open"
    desk.person(7260, "confirm", "back-to-mains", "loads on mains, generator stopped")
    assert inc.status == "resolved" and inc.resolved_at == T0 + timedelta(seconds=7260)
    assert not held.active and run.current == "wait-ups"
    desk.tick(7260 + 300)
    assert run.current == "review"


def test_a_short_power_cut_ends_when_the_ups_is_on_mains_again(desk):
    desk.event(0, "ups/rack/on_battery", "critical")
    for t, step, choice in ((60, "find-cause", None), (120, "call-power-company", None),
                            (180, "long-outage", "short")):
        desk.person(t, "confirm", step, "done", choice)
    desk.event(600, "ups/rack/on_battery", "ok", "critical")
    assert desk.incident().status == "resolved"
    assert not [f for f in desk.incident().faults if f[0] == "collector"]


def test_core_banking_unreachable_gets_the_central_system_runbook(desk):
    desk.event(0, "tcp/core-banking", "critical")
    [run] = desk.incident().runbooks
    assert run.runbook.id == "central-system-loss" and run.current == "confirm-data-centre"
    assert [s.id for s in run.runbook.steps][:3] == [
        "confirm-data-centre", "start-fallback", "tell-reporter"]
    assert desk.audit("incident.not_covered") == []


def test_what_no_runbook_covers_gets_none_and_the_leadership_is_told_once(desk):
    desk.event(0, "tcp/loan-archive", "critical")
    inc = desk.incident()
    assert inc.runbooks == []
    [told] = desk.audit("incident.not_covered")
    assert told["alert"] is True and told["incident"] == inc.id
    assert told["detail"] == ("no runbook covers service fault (tcp/loan-archive); the "
                              "leadership group decides what to do")
    desk.event(30, "tcp/loan-report", "critical")              # joins: still not covered
    assert len(desk.audit("incident.not_covered")) == 1 and inc.runbooks == []
    desk.event(60, "disk/data", "critical")                   # equipment: now a plan applies
    assert [r.runbook.id for r in inc.runbooks] == ["other-equipment"]


@pytest.mark.parametrize("branch, runbook", [("B07", "cable-swap"), ("B1", "network-fault")])
def test_a_branch_without_a_backup_port_swaps_the_cables_by_hand(tmp_path, branch, runbook):
    d = Desk(tmp_path, no_backup_port=("B0*",))
    try:
        d.event(0, "line/primary/gw", "critical", branch=branch, diagnosis="line")
        [run] = d.incident(branch).runbooks
        assert run.runbook.id == runbook
        if runbook == "cable-swap":
            assert run.current == "call-county-it"
            assert [s.kind for s in run.runbook.steps[:3]] == ["manual"] * 3  # a person, no SET
    finally:
        d.store.close()


def test_a_runbook_whose_incident_resolved_ends_its_waiting_step_as_not_needed(desk):
    from collector.web.views import checklist
    desk.event(0, "ups/rack/on_battery", "critical")
    [run] = desk.incident().runbooks
    assert run.current == "find-cause" and run.record().status == "waiting"
    desk.event(40, "ups/rack/on_battery", "ok", "critical")       # mains back at once
    assert desk.incident().status == "resolved"
    desk.tick(41)
    rec = run.record("find-cause")
    assert run.status == "done" and run.current is None
    assert rec.status == "not_needed" and rec.note == "incident resolved"
    assert [d["detail"] for d in desk.audit("incident.step_not_needed")] == [
        "R1: find-cause not needed: incident resolved"]
    assert desk.audit("incident.runbook_done")
    # Stored so: read back from the store after a restart.
    [again] = [i for i in desk.store.list_incidents() if i.id == desk.incident().id]
    assert again.runbooks[0].record("find-cause").status == "not_needed"
    # The checklist: the branches never reached are "not taken", none "pending".
    shown = {s["step"].id: s["status"] for s in checklist(run)["steps"]}
    assert shown["find-cause"] == "not_needed" and "pending" not in shown.values()
    assert shown["review"] == "not_taken"


def test_a_step_for_after_recovery_still_waits_for_its_person(desk):
    desk.event(0, "ups/rack/on_battery", "critical")
    for t, step, choice in ((60, "find-cause", None), (120, "call-power-company", None),
                            (180, "long-outage", "short")):
        desk.person(t, "confirm", step, "done", choice)
    desk.event(600, "ups/rack/on_battery", "ok", "critical")
    desk.tick(600 + 300)
    [run] = desk.incident().runbooks
    assert desk.incident().status == "resolved"
    assert run.current == "review" and run.status == "running"   # the review is after recovery
