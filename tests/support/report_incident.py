"""One fixed incident for the report tests (issue 7), as incident_codec.to_dict
gives it: a mains failure at branch B1 (north) whose core-system outage also
stops B2 (south), graded III -> II by the scope rules and I by a person's
data criterion, with the power-cut runbook (a failed generator start and its
fallback), the agent's uplink failover, acknowledgements, notes, deadlines
met, missed and met late, resolved and closed.

Times are UTC; the reports show them in Asia/Shanghai (09:40 = 01:40Z).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec

from collector.grading import Assertion
from collector.incident_codec import to_dict
from collector.incident_grades import DeadlineState, GradeChange, GradeRecord
from collector.incident_reporter import ReporterChange
from collector.incidents import Action, Fault, Incident
from collector.runbooks.run import AgentAction, Run, StepRecord
from collector.runbooks.schema import Runbook

DAY = datetime(2026, 12, 7, tzinfo=timezone.utc)      # a Monday
ID = "INC-20261207-a1b2c3"


def at(hhmm: str) -> datetime:
    """A moment of the day given in Shanghai time ('09:40' -> 01:40Z)."""
    h, m = map(int, hhmm.split(":"))
    return DAY + timedelta(hours=h - 8, minutes=m)


POWER_CUT = msgspec.convert({
    "id": "power-cut", "title": "Power cut at a branch", "source": "branch plan §5.2",
    "steps": [
        {"id": "find-cause", "kind": "manual", "title": "Find the cause of the power cut",
         "role": "execution", "text": "weather, overload, sabotage?"},
        {"id": "call-power-co", "kind": "manual", "title": "Call the power company",
         "role": "support", "text": "ticket and estimate"},
        {"id": "long-outage", "kind": "decision", "title": "Will the outage be long?",
         "question": "long or short?", "options": {"long": "start-generator",
                                                   "short": "wait-mains"}},
        {"id": "start-generator", "kind": "manual", "title": "Start the generator",
         "role": "execution", "text": "disconnect mains first", "on_fail": "call-vendor"},
        {"id": "call-vendor", "kind": "manual", "title": "Call the generator vendor",
         "role": "support", "text": "on site"},
        {"id": "wait-mains", "kind": "wait", "title": "Wait for mains",
         "until": {"checks": ["ups/*/on_battery"], "for": 60}},
        {"id": "report-back", "kind": "manual", "title": "Report back to leadership",
         "role": "leadership", "text": "summary"},
    ]}, Runbook)

NETWORK = msgspec.convert({
    "id": "network-fault", "title": "Network fault", "source": "branch plan §5.1",
    "steps": [
        {"id": "device-or-line", "kind": "decision", "title": "Device or line?",
         "question": "device or line?", "auto": "diagnosis",
         "options": {"device": "fail-over", "line": "fail-over"}},
        {"id": "fail-over", "kind": "action", "title": "Swap to the backup uplink",
         "action": {"type": "snmp_port", "switch": "funds", "port": "backup", "state": "up"},
         "preauthorised": True, "done_when": "action/failover/fail_over"},
    ]}, Runbook)


def _fault(agent, branch, check, cat, state, reason, start, end, now, diagnosis=None,
           suppressed=False) -> Fault | None:
    if at(start) > now:
        return None
    end = end if end and at(end) <= now else None
    history = [(at(start), "state", state, reason)]
    if end:
        history.append((at(end), "state", "ok", "back"))
    return Fault(agent, branch, check, cat, "ok" if end else state, reason, diagnosis,
                 at(end or start), [[at(start), at(end) if end else None]],
                 suppressed=suppressed, history=history)


def _step(now, step, started, ended, who, note, choice=None, status="done"):
    if at(started) > now:
        return None
    if at(ended) > now:
        return StepRecord(step, "waiting", at(started))
    return StepRecord(step, status, at(started), at(ended), who, note, choice)


def _run(run_id, book, started, ended, now, steps) -> Run:
    records = [r for r in (_step(now, *s) for s in steps) if r is not None]
    run = Run(run_id, book, at(started), "collector", records=records)
    if at(ended) <= now:
        run.status, run.ended_at = "done", at(ended)
    else:
        run.current = records[-1].step
    return run


def _deadline(key, title, rule, cite, due, now, met=None, by=None, what=None, missed=None,
              table="cbrc"):
    d = DeadlineState(table, key, title, rule, cite, at(due))
    if missed and at(missed) <= now:
        d.status, d.missed_at = "missed", at(missed)
    if met and at(met) <= now:
        d.status, d.met_at, d.met_by, d.what = "met", at(met), by, what
    return d


def incident(until: str = "13:40") -> Incident:
    """The incident as it stood at `until` (Shanghai time): closed by 13:30."""
    now = at(until)
    faults = [f for f in (
        _fault("a1", "B1", "ups/rack/on_battery", "on_battery", "critical", "on battery (OB)",
               "09:40", "13:05", now),
        _fault("a1", "B1", "line/primary/gateway", "network", "critical", "no answer over primary",
               "09:41", "12:50", now, diagnosis="line"),
        _fault("a1", "B1", "tcp/core-banking", "service", "critical", "connect timed out",
               "09:41", "13:06", now),
        _fault("a2", "B2", "tcp/core-banking", "service", "critical", "connection refused",
               "09:45", "13:10", now),
        _fault("a1", "B1", "tcp/teller|print", "service", "warning",
               "<script>alert(1)</script> slow", "09:42", "13:06", now, suppressed=True),
    ) if f is not None]
    steps = [GradeChange(None, None, False, None, at("09:40")),
             GradeChange("III", "iii-1-region-30m", False, at("10:11"), at("10:11")),
             GradeChange("II", "ii-2-regions-30m", False, at("10:15"), at("10:15")),
             GradeChange("I", "data-major", False, at("10:40"), at("10:40"))]
    steps = [g for g in steps if g.at <= now]
    last = steps[-1]
    cbrc = GradeRecord("cbrc", last.grade, last.rule, False, last.reached_at,
                       [f"{last.rule}: held"] if last.rule else [], history=steps)
    runs = [
        _run("R1", POWER_CUT, "09:40", "13:20", now, [
            ("find-cause", "09:40", "09:55", "bob", "utility fault on the feeder"),
            ("call-power-co", "09:55", "10:00", "carol", "ticket 8841, estimate 3 h"),
            ("long-outage", "10:00", "10:05", "alice", "3 h", "long"),
            ("start-generator", "10:05", "10:30", "bob", "generator would not start", None,
             "failed"),
            ("call-vendor", "10:30", "10:45", "carol", "vendor on site 11:30"),
            ("wait-mains", "10:45", "13:06", None, "ups/*/on_battery cleared for 60 s"),
            ("report-back", "13:06", "13:20", "alice", "told")]),
        _run("R2", NETWORK, "09:41", "09:43", now, [
            ("device-or-line", "09:41", "09:42", None, "diagnosis: line", "line"),
            ("fail-over", "09:42", "09:43", None, "agent: switch funds port backup: done")]),
    ]
    deadlines = [
        _deadline("regulator-notice", "Report the incident to the regulator",
                  "regulator-notice", "第二十七條", "10:40", now, "10:20", "bob",
                  "phoned the duty desk, ref 17"),
        _deadline("progress-1", "Progress report to the regulator (grade I)", "progress",
                  "第二十七條", "12:40", now, "12:55", "bob", "progress report sent",
                  missed="12:41"),
        _deadline("written-report", "Formal written report to the regulator",
                  "written-report", "第二十八條", "21:40", now),
        # 第三十條: the failed generator start; 第二十六條: the reporter changed.
        _deadline("plan-failed-1", "Report the failed plan to the regulator at once",
                  "plan-failed", "第三十條", "10:30", now, "10:35", "alice",
                  "phoned the regulator's duty desk, ref 21", table="workflow"),
        _deadline("reporter-filing-1", "File the change of reporter with the regulator",
                  "reporter-filing", "第二十六條", "11:40", now, "12:00", "alice",
                  "filing faxed", table="workflow"),
    ]
    deadlines = [d for d in deadlines if d.table == "cbrc" or d.due_at <= now]
    if now < at("10:40"):
        deadlines = deadlines[:1]
    inc = Incident(
        ID, "B1", "power outage", at("09:40"),
        acks=[a for a in [Action("bob", "calling the branch", at("09:48"))] if a.at <= now],
        notes=[a for a in [Action("alice", "customers redirected to B3", at("10:50"))]
               if a.at <= now],
        faults={(f.agent, f.check): f for f in faults}, grades={"cbrc": cbrc},
        assertions=[a for a in [Assertion("data_major", "alice", "customer records corrupted "
                                          "when power was lost", at("10:40"))] if a.at <= now],
        deadlines=sorted(deadlines, key=lambda d: (d.due_at, d.key)), runbooks=runs,
        reporters=[r for r in [
            ReporterChange("bob", "collector", "the designated reporter (reports.reporter)",
                           at("09:40")),
            ReporterChange("alice", "lina", "bob is needed on site at B1", at("11:40"))]
            if r.at <= now],
        actions=[a for a in [AgentAction("action/failover/fail_over", True, at("09:43"),
                                         "switch funds port backup: done"),
                             AgentAction("action/failover/verify_backup", True, at("09:43"),
                                         "backup line answers")] if a.at <= now])
    if now >= at("13:10"):
        inc.status, inc.resolved_at = "resolved", at("13:10")
    if now >= at("13:30"):
        inc.status = "closed"
        inc.closed = Action("alice", "mains back, all services verified", at("13:30"))
    return inc


def incident_dict(until: str = "13:40") -> dict:
    """The incident as incident_codec.to_dict gives it, as it stood at `until`."""
    return to_dict(incident(until))


REGIONS = {"B1": "north", "B2": "south"}
