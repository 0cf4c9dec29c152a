"""Uplink failover: the pure policy as timelines and properties, the config
section, and the runner with its I/O (SET, probes) faked.

domain.md §4.1: a line fault → the backup line; the primary back → swap
back; no flapping (hold-down timers, a limit of swaps per rolling hour).
The real thing (an agent process, snmpsim, a collector) is in
test_failover_e2e.py.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import ConfigError, parse
from agent.failover import (BLOCKED, CRITICAL, FAIL_OVER, HOUR, NOTHING, OK, SWAP_BACK, UNKNOWN,
                            WARNING, FailoverPolicy, Limits, line_state)
from agent.failover_runner import FailoverRunner
from agent.lines.ping import PingResult
from agent.model import State
from agent.snmp.actions import ActionResult

from .support.paths import REPO

# --------------------------------------------------------------------------
# The policy, as timelines: "at T STATE -> WHAT" (a swap settles as done
# unless the line ends with "(failed)").


def play(timeline: str, limits: Limits = Limits(hold=30, return_after=600, max_swaps_per_hour=4)):
    """Feed a timeline to a fresh policy; assert each decision; return the policy."""
    policy = FailoverPolicy(limits)
    for n, line in enumerate(filter(None, map(str.strip, timeline.splitlines())), 1):
        said, want = line.split("->")
        _, at, state = said.split()
        failed = "(failed)" in want
        want = want.replace("(failed)", "").strip()
        decision = policy.observe(state, float(at))
        assert decision.action == want, f"line {n} ({line}): got {decision}"
        if decision.action in (FAIL_OVER, SWAP_BACK):
            assert decision.reason
            policy.settle(not failed)
    return policy


def test_fails_over_after_hold_seconds_of_fault():
    policy = play("""
        at 0 critical   -> nothing
        at 29 critical  -> nothing
        at 30 critical  -> fail_over
        at 31 critical  -> nothing
        at 500 critical -> nothing
    """)
    assert policy.on_backup


def test_any_break_in_the_fault_restarts_the_hold():
    play("""
        at 0 critical   -> nothing
        at 20 warning   -> nothing
        at 21 critical  -> nothing
        at 50 critical  -> nothing
        at 51 critical  -> fail_over
    """)
    play("""
        at 0 critical   -> nothing
        at 25 unknown   -> nothing
        at 40 critical  -> nothing
        at 69 critical  -> nothing
        at 70 critical  -> fail_over
    """)


def test_warning_or_unknown_never_fails_over():
    play("""
        at 0 warning    -> nothing
        at 1000 warning -> nothing
        at 1001 unknown -> nothing
        at 5000 unknown -> nothing
    """)


def test_swaps_back_after_return_after_seconds_healthy():
    policy = play("""
        at 0 critical   -> nothing
        at 30 critical  -> fail_over
        at 100 ok       -> nothing
        at 699 ok       -> nothing
        at 700 ok       -> swap_back
        at 701 ok       -> nothing
    """)
    assert not policy.on_backup


def test_a_relapse_restarts_return_after():
    play("""
        at 0 critical   -> nothing
        at 30 critical  -> fail_over
        at 100 ok       -> nothing
        at 600 warning  -> nothing
        at 601 ok       -> nothing
        at 1200 ok      -> nothing
        at 1201 ok      -> swap_back
    """)


def test_healthy_primary_on_the_primary_does_nothing():
    play("""
        at 0 ok         -> nothing
        at 5000 ok      -> nothing
    """)


def test_the_hourly_limit_holds_swaps_back_and_says_so_once():
    limits = Limits(hold=10, return_after=20, max_swaps_per_hour=2)
    policy = play("""
        at 0 critical    -> nothing
        at 10 critical   -> fail_over
        at 15 ok         -> nothing
        at 35 ok         -> swap_back
        at 40 critical   -> nothing
        at 50 critical   -> blocked
        at 51 critical   -> nothing
        at 900 critical  -> nothing
        at 3609 critical -> nothing
        at 3610 critical -> fail_over
    """, limits)
    assert policy.on_backup


def test_blocked_is_said_again_in_a_new_run_of_the_fault():
    limits = Limits(hold=10, return_after=20, max_swaps_per_hour=1)
    play("""
        at 0 critical   -> nothing
        at 10 critical  -> fail_over
        at 11 ok        -> nothing
        at 31 ok        -> blocked
        at 40 ok        -> nothing
        at 41 warning   -> nothing
        at 42 ok        -> nothing
        at 62 ok        -> blocked
    """, limits)


def test_blocked_decision_names_the_wanted_swap_and_when_the_next_is_allowed():
    policy = FailoverPolicy(Limits(hold=10, return_after=20, max_swaps_per_hour=1))
    policy.observe(CRITICAL, 0)
    policy.observe(CRITICAL, 10)
    policy.settle(True)
    policy.observe(OK, 100)
    d = policy.observe(OK, 120)
    assert (d.action, d.wanted) == (BLOCKED, SWAP_BACK)
    assert "swap back held back" in d.reason and "limit 1" in d.reason
    assert "next is allowed in 3490 s" in d.reason


def test_a_failed_swap_is_not_retried_until_the_state_changes():
    play("""
        at 0 critical   -> nothing
        at 30 critical  -> fail_over (failed)
        at 60 critical  -> nothing
        at 600 critical -> nothing
        at 601 ok       -> nothing
        at 602 critical -> nothing
        at 632 critical -> fail_over
    """)


def test_failed_attempts_count_towards_the_limit():
    limits = Limits(hold=1, return_after=1, max_swaps_per_hour=2)
    play("""
        at 0 critical   -> nothing
        at 1 critical   -> fail_over (failed)
        at 2 ok         -> nothing
        at 3 critical   -> nothing
        at 4 critical   -> fail_over (failed)
        at 5 ok         -> nothing
        at 6 critical   -> nothing
        at 7 critical   -> blocked
    """, limits)


def test_nothing_is_decided_while_a_swap_is_under_way():
    policy = FailoverPolicy(Limits(hold=1, return_after=1, max_swaps_per_hour=4))
    policy.observe(CRITICAL, 0)
    assert policy.observe(CRITICAL, 1).action == FAIL_OVER
    assert policy.observe(CRITICAL, 50).action == NOTHING
    assert policy.busy == FAIL_OVER
    policy.settle(True)
    assert policy.on_backup and policy.busy is None


@pytest.mark.parametrize("states, want", [
    ([CRITICAL, CRITICAL], CRITICAL),
    ([OK, OK], OK),
    ([CRITICAL, OK], WARNING),
    ([WARNING, OK], WARNING),
    ([CRITICAL, UNKNOWN], UNKNOWN),
    ([], UNKNOWN),
])
def test_line_state_is_down_only_when_no_target_answers(states, want):
    assert line_state(states) == want


# --------------------------------------------------------------------------
# Properties: for any flapping sequence, the limit and the hold-down hold.

steps = st.lists(st.tuples(st.floats(min_value=0, max_value=900, allow_nan=False),
                           st.sampled_from([OK, WARNING, CRITICAL, UNKNOWN]),
                           st.booleans()), max_size=150)
limits_st = st.builds(Limits, hold=st.floats(min_value=0.5, max_value=120),
                      return_after=st.floats(min_value=0.5, max_value=900),
                      max_swaps_per_hour=st.integers(min_value=1, max_value=6))


def run_steps(limits: Limits, script):
    """Feed (gap, state, SET ok) steps; [(t, state, decision, on_backup before)]."""
    policy, now, seen = FailoverPolicy(limits), 0.0, []
    for gap, state, ok in script:
        now += gap
        before = policy.on_backup
        d = policy.observe(state, now)
        if d.action in (FAIL_OVER, SWAP_BACK):
            policy.settle(ok)
        seen.append((now, state, d, before))
    return seen


@settings(max_examples=300, deadline=None)
@given(limits_st, steps)
def test_never_more_swaps_in_any_rolling_hour_than_the_limit(limits, script):
    swaps = [t for t, _, d, _ in run_steps(limits, script) if d.action in (FAIL_OVER, SWAP_BACK)]
    for t in swaps:   # the densest hour window ends at a swap
        assert sum(1 for u in swaps if t - HOUR < u <= t) <= limits.max_swaps_per_hour


@settings(max_examples=300, deadline=None)
@given(limits_st, steps)
def test_never_fails_over_before_hold_seconds_of_continuous_fault(limits, script):
    seen = run_steps(limits, script)
    for i, (t, state, d, on_backup) in enumerate(seen):
        run_start = t
        for u, s, _, _ in reversed(seen[:i]):   # when this run of critical began
            if s != CRITICAL:
                break
            run_start = u
        if d.action == FAIL_OVER:
            assert state == CRITICAL and not on_backup
            assert t - run_start >= limits.hold
        if d.action == SWAP_BACK:
            assert state == OK and on_backup


@settings(max_examples=200, deadline=None)
@given(limits_st, steps)
def test_blocked_is_said_at_most_once_per_run_of_the_state(limits, script):
    seen = run_steps(limits, script)
    said = 0
    for i, (_, state, d, _) in enumerate(seen):
        if i and seen[i - 1][1] != state:
            said = 0
        if d.action in (FAIL_OVER, SWAP_BACK):
            said = 0
        said += d.action == BLOCKED
        assert said <= 1


# --------------------------------------------------------------------------
# The config section: one line naming the file and the key.

BASE = """\
agent: {id: a1, branch: BR-1}
switches:
  - name: funds
    host: 127.0.0.1
    snmp: {community: c}
    interfaces:
      - {name: gi1, id: primary, role: uplink-primary}
      - {name: gi9, id: backup, role: uplink-backup}
    actions: {ports: [backup]}
lines:
  - {name: primary, uplink: {switch: funds, interface: primary},
     targets: [{name: gw, host: 127.0.0.1}]}
  - {name: backup, uplink: {switch: funds, interface: backup},
     targets: [{name: gw, host: 127.0.0.1}]}
  - {name: spare, targets: [{name: gw, host: 127.0.0.1}]}
"""


def test_a_valid_section_loads_with_defaults():
    c = parse(BASE + "failover: {primary: primary, backup: backup}\n")
    f = c.failover
    assert (f.primary, f.backup, f.hold, f.return_after, f.max_swaps_per_hour,
            f.verify_timeout) == ("primary", "backup", 30, 600, 4, 30)
    assert parse(BASE).failover is None


@pytest.mark.parametrize("section, key, says", [
    ("{primary: nope, backup: backup}", "failover.primary",
     "expected the name of a line in lines: (backup, primary, spare), got 'nope'"),
    ("{primary: primary, backup: spare}", "failover.backup",
     "line 'spare' has no uplink: {switch, interface}"),
    ("{primary: primary, backup: primary}", "failover.backup", "expected another line"),
    ("{primary: backup, backup: primary}", "failover.backup",
     "the backup uplink (switch funds port primary) is not pre-authorised (預授權) for actions: "
     "list 'primary' under switches[0].actions.ports"),
    ("{primary: primary, backup: backup, hold: 0}", "failover.hold", "expected float > 0.0"),
    ("{primary: primary, backup: backup, max_swaps_per_hour: 0}", "failover.max_swaps_per_hour",
     "expected int >= 1"),
    ("{primary: primary}", "failover.backup", "missing, and it is required"),
    ("{primary: primary, backup: backup, hold_down: 3}", "failover.hold_down",
     "unknown key (expected one of: primary, backup, hold, return_after, max_swaps_per_hour, "
     "verify_timeout)"),
])
def test_bad_sections_are_one_line_errors(section, key, says):
    with pytest.raises(ConfigError) as e:
        parse(BASE + f"failover: {section}\n", "agent.yaml")
    assert str(e.value).startswith(f"agent.yaml: {key}: "), str(e.value)
    assert says in str(e.value), str(e.value)


def test_a_switch_without_actions_is_not_pre_authorised():
    text = BASE.replace("    actions: {ports: [backup]}\n", "")
    with pytest.raises(ConfigError) as e:
        parse(text + "failover: {primary: primary, backup: backup}\n", "agent.yaml")
    assert "agent.yaml: failover.backup: the backup uplink (switch funds port backup) is not " \
           "pre-authorised" in str(e.value)


def test_check_config_refuses_an_unlisted_port_in_one_line(tmp_path):
    path = tmp_path / "agent.yaml"
    path.write_text(BASE.replace("ports: [backup]", "ports: [primary]")
                    + "failover: {primary: primary, backup: backup}\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "agent.cli", "check-config", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"branchwatch: {path}: failover.backup: the backup uplink (switch funds port backup) is "
        f"not pre-authorised (預授權) for actions: list 'backup' under switches[0].actions.ports"]


# --------------------------------------------------------------------------
# The runner, its SET and probes faked: which events, which metrics.

RUNNER = BASE.replace(
    "interface: primary},\n     targets: [{name: gw, host: 127.0.0.1}]}",
    "interface: primary},\n     targets: [{name: gw, host: 127.0.0.1}, {name: core, host: 127.0.0.1}]}",
) + ("failover: {primary: primary, backup: backup, hold: 2, return_after: 5, "
     "max_swaps_per_hour: 2, verify_timeout: 1}\n")


class Fakes:
    """Line checks the test sets, a SET that answers as told, probes that answer as told."""

    def __init__(self, set_outcome="done", answers=True):
        self.now = 0.0
        self.trackers = {}
        self.events = []
        self.published = []
        self.sets = []
        self.set_outcome = set_outcome
        self.answers = answers
        self.runner = FailoverRunner(parse(RUNNER), lambda: self.trackers, self.events.append,
                                     self.published.append, clock=lambda: self.now,
                                     wall=lambda: 1.7e9 + self.now, set_port=self.set_port,
                                     probe=self.probe)

    def primary(self, state: State, at: float, core: State | None = None):
        self.now = at
        for t, s in (("gw", state), ("core", state if core is None else core)):
            self.trackers[f"line/primary/{t}"] = SimpleNamespace(state=s, reason=f"{s.label}: 0/1")

    async def set_port(self, config, switch, port, up):
        self.sets.append((switch, port, up))
        if isinstance(self.set_outcome, Exception):
            raise self.set_outcome
        ok = self.set_outcome == "done"
        return ActionResult(ok, self.set_outcome, switch, port, "up" if up else "down",
                            "funds/backup (ifIndex 9) is administratively up" if ok
                            else "the switch refused the SET (object not writable)")

    async def probe(self, host, *, count, timeout, method, port, source):
        self.now += 0.5   # each round takes time: verify_timeout runs out
        if self.answers:
            return PingResult("tcp", sent=1, received=1, rtts=[0.001])
        return PingResult("tcp", sent=1, lost_reason="no answer to TCP connect within 1 s")

    def step(self, state: State, at: float, core: State | None = None):
        self.primary(state, at, core)
        return asyncio.run(self.runner.step())

    def steps(self):
        return [(e.check.rsplit("/", 1)[1], e.new_state) for e in self.events]

    def metrics(self):
        return {(s.name, s.labels): s.value for s in self.published[-1]}


def test_runner_fails_over_verifies_and_swaps_back():
    f = Fakes()
    assert f.step(State.CRITICAL, 0).action == NOTHING
    assert f.step(State.CRITICAL, 2).action == FAIL_OVER
    assert f.sets == [("funds", "backup", True)]
    assert f.steps() == [("fail_over", "ok"), ("verify_backup", "ok")]
    fail_over, verify = f.events
    assert fail_over.kind == "action" and fail_over.old_state is None
    assert fail_over.check == "action/failover/fail_over"
    assert "switch funds port backup admin up: done: funds/backup (ifIndex 9)" in fail_over.reason
    assert "line/primary/gw critical: critical: 0/1; line/primary/core critical" in fail_over.reason
    assert "every target answered: gw answered" in verify.reason
    m = f.metrics()
    assert m[("branchwatch_failover_active", ())] == 1
    assert m[("branchwatch_failover_swaps", (("direction", "fail_over"),))] == 1

    f.step(State.OK, 10)
    assert f.step(State.OK, 15).action == SWAP_BACK
    assert f.sets[-1] == ("funds", "backup", False)
    assert f.steps()[2:] == [("swap_back", "ok"), ("verify_primary", "ok")]
    assert f.metrics()[("branchwatch_failover_active", ())] == 0


def test_a_refused_set_raises_plan_failed_with_the_manual_fallback():
    f = Fakes(set_outcome="refused")
    f.step(State.CRITICAL, 0)
    f.step(State.CRITICAL, 2)
    assert f.steps() == [("fail_over", "critical"), ("plan_failed", "critical")]
    assert "refused: the switch refused the SET" in f.events[0].reason
    assert f.events[1].reason.endswith(
        "bring up the backup uplink by hand: switch funds port backup")
    assert f.metrics()[("branchwatch_failover_active", ())] == 0
    f.step(State.CRITICAL, 60)   # not retried: a person has been told
    assert len(f.sets) == 1 and len(f.events) == 2


def test_a_set_that_raises_is_a_failed_step_not_a_crash():
    f = Fakes(set_outcome=RuntimeError("boom"))
    f.step(State.CRITICAL, 0)
    f.step(State.CRITICAL, 2)
    assert f.steps() == [("fail_over", "critical"), ("plan_failed", "critical")]
    assert "failed: RuntimeError: boom" in f.events[0].reason


def test_a_backup_line_that_does_not_answer_fails_the_plan():
    f = Fakes(answers=False)
    f.step(State.CRITICAL, 0)
    f.step(State.CRITICAL, 2)
    assert f.steps() == [("fail_over", "ok"), ("verify_backup", "critical"),
                         ("plan_failed", "critical")]
    assert "gw did not answer (no answer to TCP connect within 1 s)" in f.events[1].reason
    assert "verify_timeout 1 s" in f.events[1].reason
    assert "check the backup line by hand (switch funds port backup is up)" in f.events[2].reason
    assert f.metrics()[("branchwatch_failover_active", ())] == 1   # the port is up


def test_the_limit_is_reported_once_as_blocked_and_counted():
    f = Fakes()
    f.step(State.CRITICAL, 0)
    f.step(State.CRITICAL, 2)          # fail over (1)
    f.step(State.OK, 3)
    f.step(State.OK, 8)                # swap back (2)
    f.step(State.CRITICAL, 9)
    assert f.step(State.CRITICAL, 11).action == BLOCKED
    assert f.step(State.CRITICAL, 12).action == NOTHING
    assert f.steps()[-1] == ("blocked", "warning")
    assert "bring up the backup uplink by hand: switch funds port backup" in f.events[-1].reason
    m = f.metrics()
    assert m[("branchwatch_failover_blocked", ())] == 1
    assert m[("branchwatch_failover_swaps", (("direction", "swap_back"),))] == 1


def test_a_sink_that_fails_does_not_stop_the_plan():
    f = Fakes()

    def broken(event):
        raise KeyError(event.kind)
    f.runner.emit = broken
    f.step(State.CRITICAL, 0)
    f.step(State.CRITICAL, 2)
    assert f.runner.policy.on_backup and len(f.sets) == 1


def test_a_primary_with_one_target_down_is_not_failed_over():
    f = Fakes()
    f.step(State.CRITICAL, 0, core=State.OK)
    assert f.step(State.CRITICAL, 100, core=State.OK).action == NOTHING
    assert f.runner.primary_state()[0] == WARNING and f.sets == []
