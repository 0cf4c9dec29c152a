"""Roles on every interface (domain.md §4, 第四條): operator
tokens carry the console's roles. One real collector process, three tokens
(viewer, operator, leadership), faults posted as event batches over HTTP.

Lowering or setting a grade, setting or withdrawing a data criterion,
declaring the response over (resolve) and closing are leadership's: 403 with
the reason for anyone else, on the API and through the `incidents` CLI, and
nothing recorded; done by leadership, with a reason, audited under its name.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import token_hash
from collector.config import ConfigError, parse

from .support.collector import CollectorProcess
from .support.paths import REPO
from .test_collector_api import request

AGENT = "token-roles-http-agent-xxxxxxxxxxxxx"
TOKENS = {"viewer": "token-roles-http-viewer-xxxxxxxxxxx",
          "operator": "token-roles-http-operator-xxxxxxxxx",
          "leadership": "token-roles-http-leadership-xxxxxxx"}
NAMES = {"viewer": "vera", "operator": "otto", "leadership": "lina"}


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("roles-http")
    people = "".join(f"  - {{name: {NAMES[r]}, roles: [{r}], token_sha256: "
                     f"{token_hash(TOKENS[r])}}}\n" for r in TOKENS)
    c = CollectorProcess(folder / "collector", {"a1": ("B1", "north", AGENT)},
                         extra="operators:\n" + people
                         + "reports: {reporter: lina}\n"
                         + "incidents: {window: 120, deadman_grace: 86400}\n"
                           "grading: {tables: [cbrc]}\n")
    c.start()
    try:
        yield c
    finally:
        if c.proc.poll() is None:
            assert c.stop() == 0


def post_fault(c, check: str, state: str = "critical", minutes_ago: float = 1) -> None:
    now = datetime.now(timezone.utc)
    e = Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=check,
              old_state="ok", new_state=state, reason=f"{check} {state}",
              observed_at=now - timedelta(minutes=minutes_ago))
    status, data = request(c.url + "/api/v1/events",
                           encode(Batch(agent="a1", branch="B1", sent_at=now, events=[e])), AGENT)
    assert status == 200, data


def incident_of(c, check: str) -> dict:
    status, data = request(c.url + "/api/v1/incidents", None, TOKENS["viewer"])
    assert status == 200, data
    [inc] = [i for i in json.loads(data)["incidents"]
             if any(f["check"] == check for f in i["faults"])]
    return inc


def act(c, inc_id: str, action: str, body: dict, role: str) -> tuple[int, dict]:
    status, data = request(f"{c.url}/api/v1/incidents/{inc_id}/{action}",
                           json.dumps(body).encode(), TOKENS[role], method="POST")
    return status, json.loads(data) if data else {}


def audit(c, inc_id: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(c.folder / "data" / "collector.db")
    try:
        rows = conn.execute("SELECT kind, actor, data FROM audit ORDER BY seq").fetchall()
    finally:
        conn.close()
    return [(k, a) for k, a, d in rows if json.loads(d).get("incident") == inc_id]


LEADERSHIP_ACTS = [
    ("grade", {"grade": "III", "why": "the regulator asked for III"}),
    ("criterion", {"criterion": "data_larger", "why": "customers charged twice"}),
    ("withdraw", {"criterion": "data_larger", "why": "it was a display error"}),
    ("resolve", {"why": "service back", "force": True}),
    ("close", {"why": "reviewed"}),
    ("reporter", {"name": "otto", "why": "I will report it"}),
]


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize("action,body", LEADERSHIP_ACTS, ids=[a for a, _ in LEADERSHIP_ACTS])
def test_leadership_acts_are_403_with_the_reason_for_other_roles(collector, role, action, body):
    check = f"tcp/core-{role}-{action}"
    post_fault(collector, check)
    inc = incident_of(collector, check)
    before = audit(collector, inc["id"])
    code, got = act(collector, inc["id"], action, body, role)
    assert code == 403, got
    assert got["error"] == (f"{NAMES[role]} ({role}) may not {action}; it is the leadership "
                            "role's act (domain.md §4, 第四條)")
    assert audit(collector, inc["id"]) == before          # nothing happened, nothing recorded
    assert incident_of(collector, check)["status"] == "open"


def test_a_viewer_reads_but_may_not_acknowledge(collector):
    post_fault(collector, "tcp/core-viewer-ack")
    inc = incident_of(collector, "tcp/core-viewer-ack")
    code, got = act(collector, inc["id"], "ack", {"why": "seen"}, "viewer")
    assert (code, got["error"]) == (403, "vera (viewer) may not ack; it is the operator "
                                         "role's act")
    code, got = act(collector, inc["id"], "ack", {"why": "seen"}, "operator")
    assert code == 200 and [a["who"] for a in got["acks"]] == ["otto"]


def test_leadership_lowers_sets_and_ends_with_a_reason_audited_under_its_name(collector):
    c = collector
    post_fault(c, "tcp/core-leadership")
    inc = incident_of(c, "tcp/core-leadership")
    code, got = act(c, inc["id"], "criterion",
                    {"criterion": "data_serious", "why": "customers double charged"}, "leadership")
    assert code == 200 and got["grades"]["cbrc"]["grade"] == "II", got
    code, got = act(c, inc["id"], "grade", {"grade": "III"}, "leadership")
    assert (code, got["error"]) == (400, "why: missing, and it is required")
    code, got = act(c, inc["id"], "grade", {"grade": "III", "why": "damage smaller than feared"},
                    "leadership")
    assert code == 200 and got["grades"]["cbrc"]["grade"] == "III", got
    code, got = act(c, inc["id"], "resolve", {"why": "core banking back", "force": True},
                    "leadership")
    assert code == 200 and got["resolved_by"]["who"] == "lina", got
    code, got = act(c, inc["id"], "close", {"why": "reviewed with the regulator"}, "leadership")
    assert code == 200 and got["closed"]["who"] == "lina", got
    trail = audit(c, inc["id"])
    for kind in ("incident.graded", "incident.resolved", "incident.closed"):
        assert (kind, "lina") in trail


def test_the_cli_says_the_refusal_in_one_line(collector):
    post_fault(collector, "tcp/core-cli")
    inc = incident_of(collector, "tcp/core-cli")
    env = dict(os.environ, BRANCHWATCH_TOKEN=TOKENS["operator"])
    r = subprocess.run([sys.executable, "-m", "collector.cli", "incidents", "grade", inc["id"],
                        "I", "--why", "looks bad", "--url", collector.url], cwd=REPO,
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 2
    assert r.stderr == ("branchwatch: incidents: 403: otto (operator) may not grade; it is the "
                        "leadership role's act (domain.md §4, 第四條)\n")
    env["BRANCHWATCH_TOKEN"] = TOKENS["leadership"]
    r = subprocess.run([sys.executable, "-m", "collector.cli", "incidents", "grade", inc["id"],
                        "I", "--why", "two provinces' core banking", "--url", collector.url],
                       cwd=REPO, capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 0, r.stderr
    assert "grade cbrc: I" in r.stdout


def test_an_operator_token_without_roles_is_an_operator_and_a_bad_role_is_one_line():
    h = "ab" * 32
    c = parse(f"operators:\n  - {{name: otto, token_sha256: {h}}}\n")
    assert c.operators[0].roles == ["operator"]
    with pytest.raises(ConfigError) as e:
        parse(f"operators:\n  - {{name: otto, roles: [boss], token_sha256: {h}}}\n", "c.yaml")
    assert str(e.value) == ("c.yaml: operators[0].roles[0]: invalid value 'boss' (expected "
                            "one of: viewer, operator, leadership)")


def test_leadership_names_another_reporter_and_the_filing_is_due(collector):
    post_fault(collector, "tcp/core-reporter")
    inc = incident_of(collector, "tcp/core-reporter")
    assert [r["name"] for r in inc["reporters"]] == ["lina"]        # reports.reporter
    code, got = act(collector, inc["id"], "reporter", {"why": "on leave"}, "leadership")
    assert (code, got["error"]) == (400, "name: missing, and it is required")
    code, got = act(collector, inc["id"], "reporter", {"name": "vera", "why": "lina on leave"},
                    "leadership")
    assert code == 200, got
    assert [(r["name"], r["by"]) for r in got["reporters"]] == [("lina", "collector"),
                                                               ("vera", "lina")]
    [d] = [d for d in got["deadlines"] if d["key"] == "reporter-filing-1"]
    assert d["title"] == "File the change of reporter with the regulator"
    assert ("incident.reporter", "lina") in audit(collector, inc["id"])


def test_the_runbooks_say_who_pre_authorised_what_up_to_which_grade(collector):
    status, data = request(collector.url + "/api/v1/runbooks", None, TOKENS["viewer"])
    assert status == 200, data
    books = {b["id"]: b for b in json.loads(data)["runbooks"]}
    assert books["network-fault"]["preauthorised"] == [
        {"step": step, "granted_by": "emergency leadership group", "granted_by_zh": "应急领导小组",
         "granted_at": "2026-12-01", "up_to_grade": "II", "table": "cbrc"}
        for step in ("backup-line", "swap-back")]
    assert books["power-cut"]["preauthorised"] == []
