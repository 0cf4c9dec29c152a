"""Runbooks as data and the pure run state machine (issue 6), as timelines:
`at 0 the runbook starts; at 10 the agent reports; at 20 a person confirms`.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.config import ConfigError
from collector.incident_runbooks import shipped_dir
from collector.runbooks.run import (AgentAction, Context, Fact, NotNow, advance, confirm, fail,
                                    report, skip, start)
from collector.runbooks.schema import load_runbook, load_runbooks

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
BOOKS = load_runbooks(shipped_dir())


def at(seconds: float, diagnosis: str | None = None, faults=(), actions=()) -> Context:
    return Context(T0 + timedelta(seconds=seconds), diagnosis, tuple(faults), tuple(actions))


def kinds(effects) -> list[tuple[str, str | None]]:
    return [(e.kind, e.step) for e in effects]


def test_every_shipped_runbook_loads_and_covers_domain_section_4():
    assert set(BOOKS) == {"network-fault", "power-cut", "ups-fault", "other-equipment",
                          "hospital-recovery", "central-system-loss", "cable-swap",
                          "restore-test"}
    for rb in BOOKS.values():
        assert rb.source and rb.steps
        # every path ends: each step's successors exist (the loader checks names)
        for s in rb.steps:
            assert s.kind in ("action", "manual", "wait", "decision")


@pytest.mark.parametrize("text, expected", [
    ("id: x\ntitle: t\nsource: s\nsteps: []\n", "steps: expected a list of length >= 1"),
    ("id: x\ntitle: t\nsource: s\nsteps:\n  - {id: a, kind: manual, title: A}\n",
     "steps[0].text: missing, and a manual step needs it"),
    ("id: x\ntitle: t\nsource: s\nsteps:\n  - {id: a, kind: manual, title: A, text: t, next: nowhere}\n",
     "steps[0].next: no step 'nowhere'"),
    ("id: x\ntitle: t\nsource: s\nsteps:\n  - {id: a, kind: wait, title: A}\n",
     "steps[0]: expected exactly one of seconds or until"),
    ("id: x\ntitle: t\nsource: s\nsteps:\n  - {id: a, kind: action, title: A, action: {type: snmp_port, switch: s}}\n",
     "steps[0].action.port: missing, and a snmp_port action needs it"),
    ("id: x\ntitle: t\nsource: s\nsteps:\n  - {id: a, kind: action, title: A, action: {type: telnet}}\n",
     "steps[0].action.type: invalid value 'telnet'"),
    ("id: x\ntitle: t\nsource: s\nsteps:\n  - {id: a, kind: manual, title: A, text: t}\n"
     "  - {id: a, kind: manual, title: B, text: t}\n", "steps[1].id: duplicate step id 'a'"),
], ids=["no-steps", "manual-text", "bad-next", "wait-what", "action-port", "action-type", "dup-id"])
def test_a_bad_runbook_is_one_line_naming_file_and_key(tmp_path, text, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_runbook(path)
    assert str(e.value).startswith(f"{path}: ") and expected in str(e.value)
    assert "\n" not in str(e.value)


def test_line_fault_follows_the_agents_failover_then_swaps_back():
    """domain.md §4.1: line -> backup line (pre-authorised, done by the agent) ->
    IT called -> primary healthy 10 min -> swap back -> review."""
    line = Fact("line/primary/gw", True, "critical", T0)
    run, eff = start("R1", BOOKS["network-fault"], "collector", at(0, "line", [line]))
    assert run.current == "backup-line"          # the diagnosis answered the decision
    assert ("step_done", "diagnose") in kinds(eff) and run.record("diagnose").choice == "line"
    assert advance(run, at(5, "line", [line])) == []        # waiting for the agent's report
    up = AgentAction("action/failover/verify_backup", True, T0 + timedelta(seconds=8),
                     "backup line answers")
    eff = advance(run, at(10, "line", [line], [up]))
    assert ("step_done", "backup-line") in kinds(eff) and run.current == "call-it-line"
    confirm(run, "call-it-line", "wang", "IT ticket 4411", at(20, "line", [line], [up]))
    assert run.current == "wait-primary"
    healed = Fact("line/primary/gw", False, "ok", T0 + timedelta(seconds=60))
    assert advance(run, at(60 + 599, None, [healed], [up])) == []
    eff = advance(run, at(60 + 600, None, [healed], [up]))
    assert ("step_done", "wait-primary") in kinds(eff) and run.current == "swap-back"
    back = AgentAction("action/failover/verify_primary", True, T0 + timedelta(seconds=700), "ok")
    advance(run, at(701, None, [healed], [up, back]))
    assert run.current == "review"
    confirm(run, "review", "li", "plan worked", at(800))
    assert run.status == "done" and run.current is None
    assert [r.step for r in run.records] == ["diagnose", "backup-line", "call-it-line",
                                            "wait-primary", "swap-back", "review"]


def test_a_failed_agent_action_raises_plan_failed_and_offers_the_manual_fallback():
    line = Fact("line/primary/gw", True, "critical", T0)
    run, _ = start("R1", BOOKS["network-fault"], "collector", at(0, "line", [line]))
    failed = AgentAction("action/failover/verify_backup", False, T0 + timedelta(seconds=3),
                         "switch refused the SET: notWritable")
    eff = advance(run, at(5, "line", [line], [failed]))
    plan = [e for e in eff if e.kind == "plan_failed"]
    assert len(plan) == 1 and plan[0].alert and "swap-by-hand" in plan[0].detail
    assert run.record("backup-line").status == "failed"
    assert run.current == "swap-by-hand" and run.status == "running"


def test_no_report_from_the_agent_times_out_into_the_fallback():
    line = Fact("line/primary/gw", True, "critical", T0)
    run, _ = start("R1", BOOKS["network-fault"], "collector", at(0, "line", [line]))
    assert advance(run, at(299, "line", [line])) == []
    eff = advance(run, at(300, "line", [line]))
    assert ("plan_failed", "backup-line") in kinds(eff) and run.current == "swap-by-hand"


def test_a_decision_without_a_diagnosis_waits_for_a_person_and_needs_a_choice():
    run, _ = start("R1", BOOKS["network-fault"], "collector", at(0))
    assert run.current == "diagnose"
    with pytest.raises(NotNow, match="needs a choice: one of device, line, local"):
        confirm(run, "diagnose", "wang", "looked", at(5))
    confirm(run, "diagnose", "wang", "switch is dark", at(5), choice="device")
    assert run.current == "spare-device" and run.record("diagnose").who == "wang"


def test_an_action_that_is_not_preauthorised_waits_for_a_person_then_runs():
    """domain.md §4 / 第三條(二): only pre-authorised steps run by themselves."""
    run, _ = start("R1", BOOKS["ups-fault"], "collector", at(0))
    confirm(run, "basic-checks", "wang", "alarm: battery fault", at(10))
    confirm(run, "call-vendor", "wang", "vendor ticket 9", at(20))
    assert run.current == "bypass" and advance(run, at(30)) == []       # not by itself
    eff = confirm(run, "bypass", "li", "vendor allows bypass", at(40))
    [x] = [e for e in eff if e.kind == "execute"]
    assert x.action.type == "nut_command" and x.action.command == "bypass.start"
    assert run.record("bypass").status == "running"
    with pytest.raises(NotNow, match="nothing to confirm"):
        confirm(run, "bypass", "li", "again", at(41))
    report(run, "bypass", True, "upsd: OK", at(45))
    assert run.current == "wait-repaired" and run.record("bypass").note == "upsd: OK"


def test_a_refused_command_goes_to_the_manual_bypass():
    run, _ = start("R1", BOOKS["ups-fault"], "collector", at(0))
    for step in ("basic-checks", "call-vendor", "bypass"):
        confirm(run, step, "wang", "ok", at(10))
    eff = report(run, "bypass", False, "upsd: ERR CMD-NOT-SUPPORTED", at(12))
    assert ("plan_failed", "bypass") in kinds(eff) and run.current == "bypass-by-hand"
    assert report(run, "bypass", True, "late", at(13)) == []     # a late result changes nothing


def test_power_cut_generator_waits_a_few_minutes_then_for_mains_not_the_ups():
    """domain.md §4.2: disconnect mains, start the generator (held: the branch runs
    on it), wait until stable, connect loads; the UPS seeing input again does not
    end it: a person confirms mains (or the transfer switch on mains)."""
    rb = BOOKS["power-cut"]
    run, _ = start("R1", rb, "collector", at(0))
    for step, choice in (("find-cause", None), ("call-power-company", None),
                         ("long-outage", "long"), ("disconnect-mains", None)):
        confirm(run, step, "wang", "done", at(10), choice=choice)
    eff = confirm(run, "start-generator", "wang", "started", at(10))
    [hold] = [e for e in eff if e.kind == "execute"]
    assert (hold.step, hold.action.type, hold.action.check) == (
        "on-generator", "hold", "power/generator")
    report(run, "on-generator", True, "hold power/generator", at(10))
    assert run.current == "generator-stable"
    assert advance(run, at(10 + 179)) == []
    advance(run, at(10 + 180))
    assert run.current == "connect-loads"
    confirm(run, "connect-loads", "wang", "UPS input 221 V", at(200))
    back = Fact("ups/rack/on_battery", False, "ok", T0 + timedelta(seconds=200))
    assert advance(run, at(5000, faults=[back])) == []          # the UPS sees the generator
    assert run.current == "mains-back"
    confirm(run, "mains-back", "wang", "ATS on mains, photo 3", at(6000))
    eff = confirm(run, "back-to-mains", "wang", "generator stopped", at(6100))
    [release] = [e for e in eff if e.kind == "execute"]
    assert (release.step, release.action.type) == ("off-generator", "release")
    report(run, "off-generator", True, "release power/generator", at(6100))
    advance(run, at(6100 + 300, faults=[back]))
    assert run.current == "review"


def test_power_cut_short_outage_waits_for_the_ups_on_mains():
    rb = BOOKS["power-cut"]
    run, _ = start("R1", rb, "collector", at(0))
    for step, choice in (("find-cause", None), ("call-power-company", None),
                         ("long-outage", "short")):
        confirm(run, step, "wang", "done", at(10), choice=choice)
    assert run.current == "wait-mains"
    back = Fact("ups/rack/on_battery", False, "ok", T0 + timedelta(seconds=100))
    assert advance(run, at(399, faults=[back])) == []
    advance(run, at(400, faults=[back]))
    assert run.current == "review"


def test_skip_and_fail_are_recorded_with_who_and_why_and_only_on_the_current_step():
    run, _ = start("R1", BOOKS["other-equipment"], "collector", at(0))
    with pytest.raises(NotNow, match="not the current step"):
        skip(run, "bring-up-spare", "wang", "later", at(1))
    skip(run, "check-cabling", "wang", "cabling labelled", at(2))
    assert run.record("check-cabling").status == "skipped"
    eff = fail(run, "bring-up-spare", "wang", "no spare in stock", at(3))
    assert ("plan_failed", "bring-up-spare") in kinds(eff)
    assert run.status == "failed" and ("runbook_failed", None) in kinds(eff)
    with pytest.raises(NotNow, match="is failed"):
        confirm(run, "wait-healthy", "wang", "x", at(4))


def test_a_runbook_that_loops_by_itself_stops(tmp_path):
    path = tmp_path / "loop.yaml"
    path.write_text("id: loop\ntitle: t\nsource: s\nsteps:\n"
                    "  - {id: a, kind: decision, title: A, question: q, auto: diagnosis,"
                    " options: {line: a}}\n")
    run, eff = start("R1", load_runbook(path), "collector", at(0, "line"))
    assert run.status == "failed" and ("runbook_failed", None) in kinds(eff)


def test_every_shipped_runbook_is_packaged():
    """pyproject's data-files list them all (an installed collector finds them)."""
    import tomllib
    from pathlib import Path
    data = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    packaged = data["tool"]["setuptools"]["data-files"]
    names = {Path(p).name for p in packaged["share/branchwatch/runbooks"]}
    assert names == {p.name for p in shipped_dir().glob("*.yaml")}
    tables = {Path(p).name for p in packaged["share/branchwatch/grading"]}
    assert tables == {p.name for p in (shipped_dir().parent / "grading").glob("*.yaml")}


def test_the_agents_swap_back_completes_the_runbook_of_a_resolved_incident(tmp_path):
    """The repaired line resolves the incident before the agent swaps back (it waits
    return_after); its swap_back/verify_primary still belong to that incident's
    runbook, whose swap-back step they complete, with no false plan failure."""
    from agent.wire import Event, new_event_id
    from collector.incident_desk import IncidentDesk
    from collector.incident_runbooks import Runbooks
    from collector.store import SqliteStore

    now = [T0.timestamp()]
    store = SqliteStore(tmp_path / "collector.db")
    desk = IncidentDesk(store, lambda: now[0], runbooks=Runbooks.from_folder(None))

    def event(seconds, check, kind, new, old, diagnosis=None):
        now[0] = T0.timestamp() + seconds
        e = Event(id=new_event_id(), kind=kind, agent="a1", branch="B1", check=check,
                  old_state=old, new_state=new, reason=check, diagnosis=diagnosis,
                  observed_at=T0 + timedelta(seconds=seconds))
        with store.group():
            desk.ingest("a1", "B1", [e], now[0])
            desk.advance_runbooks()

    event(0, "line/primary/gw", "state", "critical", "ok", "line")
    event(2, "action/failover/fail_over", "action", "ok", None)
    event(3, "action/failover/verify_backup", "action", "ok", None)
    [inc] = desk.book.incidents()
    run = inc.runbooks[0]
    desk.runbook_act(inc.id, "confirm", "call-it-line", "wang", "IT ticket 4411")
    event(60, "line/primary/gw", "state", "ok", "critical")
    assert inc.status == "resolved" and run.current == "wait-primary"
    event(65, "action/failover/swap_back", "action", "ok", None)
    event(66, "action/failover/verify_primary", "action", "ok", None)
    now[0] = T0.timestamp() + 60 + 601
    with store.group():
        desk.advance_runbooks()
    assert run.current == "review", [(r.step, r.status) for r in run.records]
    assert run.record("swap-back").status == "done"
    assert not [r for r in run.records if r.status == "failed"]
    store.close()
