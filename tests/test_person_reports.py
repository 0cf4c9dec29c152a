"""Faults reported by people: by the API, the CLI and the
console, through the same grading, runbooks and reports, marked as reported
by a person. One real collector process on the drill clock (Monday 10:00 in
Shanghai, business hours), the cbrc and hospital tables, a designated reporter,
one branch B1 (its unit's only branch) and a hospital site H1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from collector.api import token_hash
from collector.person_reports import PersonReport, problems, reason_of

from .support.collector import CollectorProcess, audit_records
from .support.collector import DrillClock
from .support.console import USERS, console_yaml
from .support.paths import REPO
from .test_collector_api import request
from .test_console_http import Visitor

OPERATOR = "token-person-reports-operator-xxxxx"
VIEWER = "token-person-reports-viewer-xxxxxxx"
MONDAY_1000 = datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("person-reports")
    clock = DrillClock(folder / "clock-offset")
    clock.set(MONDAY_1000)
    extra = ("operators:\n"
             f"  - {{name: wang, roles: [operator], token_sha256: {token_hash(OPERATOR)}}}\n"
             f"  - {{name: vera, roles: [viewer], token_sha256: {token_hash(VIEWER)}}}\n"
             "reports: {reporter: li}\n"
             "incidents: {window: 120, deadman_grace: 86400}\n"
             "grading:\n  tables: [cbrc, hospital]\n"
             "  calendar: {timezone: Asia/Shanghai, weekdays: [0, 1, 2, 3, 4], "
             "hours: ['08:30-17:00']}\n" + console_yaml())
    c = CollectorProcess(folder / "collector",
                         {"a1": ("B1", "north", "token-person-reports-a1-xxxxxxxx"),
                          "h1": ("H1", "hospital", "token-person-reports-h1-xxxxxxxx")},
                         extra=extra, env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(clock.path)})
    c.start()
    c.clock = clock
    try:
        yield c
    finally:
        if c.proc.poll() is None:
            assert c.stop() == 0


def post(c, path: str, body: dict, token: str = OPERATOR) -> tuple[int, dict]:
    status, data = request(c.url + path, json.dumps(body).encode(), token, method="POST")
    return status, json.loads(data) if data else {}


def get(c, path: str) -> dict:
    status, data = request(c.url + path, None, OPERATOR)
    assert status == 200, data
    return json.loads(data)


def wait_for(fn, what: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


CORE = {"branch": "B1", "kind": "core_unreachable", "where": "counter 2",
        "sees": "teller screen says host timeout", "contact": "Zhou, 0839-555"}


def test_a_branch_reports_core_banking_down_and_it_is_graded_with_a_runbook(collector):
    c = collector
    code, inc = post(c, "/api/v1/faults", CORE)
    assert code == 201, inc
    [f] = inc["faults"]
    assert (f["agent"], f["check"], f["branch"], f["active"]) == (
        "person", "tcp/core-reported", "B1", True)
    assert f["reason"] == ("the core system does not answer at counter 2: teller screen says "
                           "host timeout - reported by wang (Zhou, 0839-555)")
    # The same runbook an agent's core-system fault gets, and the designated reporter.
    assert [r["runbook"]["id"] for r in inc["runbooks"]] == ["central-system-loss"]
    assert [r["name"] for r in inc["reporters"]] == ["li"]
    [(who, rec)] = [(a, d) for a, d in audit_records(c, "incident.reported")
                    if d["incident"] == inc["id"]]
    assert who == "wang" and rec["detail"] == f["reason"]
    # Graded like any business-stopping fault: 30 business minutes later, III.
    c.clock.set(MONDAY_1000 + timedelta(minutes=31))
    got = wait_for(lambda: (lambda i: i if i["grades"]["cbrc"]["grade"] else None)(
        get(c, f"/api/v1/incidents/{inc['id']}")), "grade III")
    assert got["grades"]["cbrc"]["grade"] == "III"
    assert any(d["key"] == "regulator-notice" for d in got["deadlines"])
    # It clears when a person says so, not by itself; then the incident resolves.
    code, out = post(c, f"/api/v1/incidents/{inc['id']}/clear",
                     {"check": "tcp/core-reported", "why": "counter 2 works again"})
    assert code == 200 and out["status"] == "resolved", out
    code, out = post(c, f"/api/v1/incidents/{inc['id']}/clear",
                     {"check": "tcp/core-reported", "why": "again"})
    assert (code, out["error"]) == (409, f"tcp/core-reported on {inc['id']} is already cleared")


def test_a_ward_reports_with_a_known_cause_and_the_hospital_class_follows(collector):
    c = collector
    code, inc = post(c, "/api/v1/faults", {
        "branch": "H1", "kind": "terminal_fault", "where": "ward 3 nurse station",
        "sees": "HIS workstation dead after the storm", "cause": "force_majeure"})
    assert code == 201, inc
    [a] = inc["assertions"]
    assert (a["criterion"], a["who"], a["why"]) == (
        "force_majeure", "wang", "reported: HIS workstation dead after the storm")
    assert inc["grades"]["hospital"]["grade"] == "1"
    # No runbook covers a terminal: none is made up, the leadership is told at once.
    assert inc["runbooks"] == []
    assert [d["incident"] for _, d in audit_records(c, "incident.not_covered")
            ].count(inc["id"]) == 1


@pytest.mark.parametrize("body, field, what", [
    ({**CORE, "branch": "B9"}, "branch", "no enrolled branch 'B9'; known: B1, H1"),
    ({**CORE, "kind": "meteor"}, "kind", "expected one of core_unreachable, network_down"),
    ({**CORE, "cause": "ghosts"}, "cause", "expected one of force_majeure, operator_misuse"),
    ({k: v for k, v in CORE.items() if k != "sees"}, "sees", "missing, and it is required"),
    ({**CORE, "where": 3}, "where", "expected text, got int 3"),
])
def test_a_bad_report_is_400_naming_the_field(collector, body, field, what):
    code, got = post(collector, "/api/v1/faults", body)
    assert code == 400 and got["error"].startswith(f"{field}: {what}"), got


def test_a_viewer_may_not_report(collector):
    code, got = post(collector, "/api/v1/faults", CORE, token=VIEWER)
    assert (code, got["error"]) == (403, "vera (viewer) may not report; it is the operator "
                                         "role's act")


def test_the_cli_reports_and_shows_the_person_mark(collector):
    env = dict(os.environ, BRANCHWATCH_TOKEN=OPERATOR)
    r = subprocess.run([sys.executable, "-m", "collector.cli", "incidents", "report",
                        "--branch", "H1", "--kind", "power_cut", "--where", "pharmacy",
                        "--sees", "lights out, UPS beeping", "--url", collector.url],
                       cwd=REPO, capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert re.search(r"\* ups/reported/on_battery critical: mains power is out at pharmacy: "
                     r"lights out, UPS beeping - reported by wang \[reported by a person\]",
                     r.stdout), r.stdout
    r = subprocess.run([sys.executable, "-m", "collector.cli", "incidents", "report",
                        "--branch", "H1", "--kind", "power_cut", "--where", "x", "--sees", "y",
                        "--url", collector.url], cwd=REPO, capture_output=True, text=True,
                       env=dict(env, BRANCHWATCH_TOKEN=VIEWER), timeout=30)
    assert r.returncode == 2 and r.stderr.startswith("branchwatch: incidents: 403: vera")


def test_the_console_reports_a_fault_as_the_logged_in_person(collector):
    v = Visitor(collector.url)
    v.login("alice")
    page = v.go("/console/incidents")[2]
    assert 'id="report-form"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    status, headers, _ = v.go("/console/faults", {
        "csrf": csrf, "branch": "B1", "kind": "network_down", "where": "back office",
        "sees": "both switches' lights off", "contact": "", "cause": ""})
    assert status == 303, headers
    iid = headers["Location"].rsplit("/", 1)[1]
    inc = get(collector, f"/api/v1/incidents/{iid}")
    [f] = [f for f in inc["faults"] if f["check"] == "line/reported"]
    assert f["agent"] == "person" and "reported by alice" in f["reason"]
    shown = v.go(f"/console/incidents/{iid}")[2]
    assert 'class="person-report"' in shown and 'id="reporter-now">li<' in shown
    # The network runbook's pre-authorised step says whose grant it is (domain.md §4).
    code, _ = post(collector, f"/api/v1/incidents/{iid}/runbooks",
                   {"runbook": "network-fault", "why": "the line as well"})
    assert code == 200
    shown = v.go(f"/console/incidents/{iid}")[2]
    assert re.search(r'class="muted grant">[^<]*应急领导小组[^<]*'
                     r'2026-12-01[^<]*cbrc II<', shown), shown
    viewer = Visitor(collector.url)
    viewer.login("vera")
    assert 'id="report-form"' not in viewer.go("/console/incidents")[2]


def test_the_console_changes_the_reporter_for_leadership_only(collector):
    iid = post(collector, "/api/v1/faults", {**CORE, "kind": "ups_fault",
                                               "where": "UPS room"})[1]["id"]
    for user, want in (("alice", 403), ("boss", 303)):
        v = Visitor(collector.url)
        v.login(user)
        page = v.go(f"/console/incidents/{iid}")[2]
        assert ('id="reporter-form"' in page) is (user == "boss")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        status, _, body = v.go(f"/console/incidents/{iid}/reporter",
                               {"csrf": csrf, "name": "zhao", "why": "li is away",
                                "next": f"/console/incidents/{iid}"})
        assert status == want, body
    inc = get(collector, f"/api/v1/incidents/{iid}")
    assert [(r["name"], r["by"]) for r in inc["reporters"]] == [("li", "collector"),
                                                               ("zhao", "boss")]
    assert any(d["key"] == "reporter-filing-1" for d in inc["deadlines"])


def test_a_report_reads_in_a_persons_words():
    r = PersonReport("B1", "other", "hall", "smoke from the\nATM", "wang")
    assert reason_of(r) == "something else at hall: smoke from the ATM - reported by wang"
    assert problems(r, {"B1"}) == []
    assert problems(PersonReport("B1", "other", "x" * 501, "y", "wang"), {"B1"}) == [
        ("where", "501 characters is over the limit of 500")]
