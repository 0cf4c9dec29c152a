"""Pre-authorisations (預授權, domain.md §4; 第三條(二)) as timelines: a grant
records who granted it, when, and up to which grade it holds; above that
grade the step waits for a person. Pure: the run state machine with a Context.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.config import ConfigError
from collector.incident_runbooks import shipped_dir
from collector.runbooks.run import (AgentAction, Context, Fact, NotNow, advance, confirm,
                                    grant_text, runs_by_itself, start)
from collector.runbooks.schema import load_runbook, load_runbooks

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
BOOKS = load_runbooks(shipped_dir())
RANKS = {"cbrc": ["I", "II", "III"]}
LINE = Fact("line/primary/gw", True, "critical", T0)


def at(seconds: float, grade: str | None, actions=()) -> Context:
    return Context(T0 + timedelta(seconds=seconds), "line", (LINE,), tuple(actions), T0,
                   {"cbrc": grade}, RANKS)


def failover(seconds: float) -> AgentAction:
    return AgentAction("action/failover/verify_backup", True, T0 + timedelta(seconds=seconds),
                       "backup line up")


def test_the_shipped_line_failover_grant_says_who_when_and_up_to_which_grade():
    step = BOOKS["network-fault"].step("backup-line")
    assert grant_text(step) == ("pre-authorised by emergency leadership group "
                                "on 2026-12-01 up to grade II (cbrc)")


@pytest.mark.parametrize("grade, by_itself", [(None, True), ("III", True), ("II", True),
                                              ("I", False)])
def test_a_grant_holds_up_to_its_grade_and_not_above(grade, by_itself):
    step = BOOKS["network-fault"].step("backup-line")
    assert runs_by_itself(step, at(0, grade)) is by_itself


def test_within_the_grant_the_agents_failover_completes_the_step_by_itself():
    run, _ = start("R1", BOOKS["network-fault"], "collector", at(0, "II"))
    assert run.current == "backup-line"
    advance(run, at(20, "II", [failover(10)]))
    assert run.record("backup-line").status == "done" and run.current == "call-it-line"


def test_above_the_grant_the_step_waits_for_a_person_then_runs():
    run, effects = start("R1", BOOKS["network-fault"], "collector", at(0, "I"))
    [waiting] = [e for e in effects if e.kind == "step_waiting" and e.step == "backup-line"]
    assert waiting.detail.endswith(
        "waits for a person (pre-authorised by emergency leadership group on "
        "2026-12-01 up to grade II (cbrc); the incident is graded cbrc I)")
    assert run.record("backup-line").held
    # The agent's report alone does not move it: a person decides at grade I.
    assert advance(run, at(20, "I", [failover(10)])) == []
    assert run.current == "backup-line"
    confirm(run, "backup-line", "lina", "leadership orders the backup line", at(30, "I",
                                                                            [failover(10)]))
    rec = run.record("backup-line")
    assert (rec.status, rec.who, rec.confirmed) == ("done", "lina", True)


def test_within_the_grant_there_is_nothing_to_confirm():
    run, _ = start("R1", BOOKS["network-fault"], "collector", at(0, "III"))
    with pytest.raises(NotNow, match="runs by itself"):
        confirm(run, "backup-line", "otto", "go", at(5, "III"))


def test_a_bare_true_is_refused_in_one_line_naming_what_a_grant_records(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("id: x\ntitle: t\nsource: s\nsteps:\n  - {id: a, kind: action, title: A, "
                    "action: {type: command, command: c}, preauthorised: true}\n")
    with pytest.raises(ConfigError) as e:
        load_runbook(path)
    assert str(e.value) == (f"{path}: steps[0].preauthorised: expected a grant {{granted_by, "
                            "granted_at, up_to_grade} (domain.md §4: who granted it, when, up "
                            "to which grade), not true")
