"""Grading actions over the collector's API and the `incidents` CLI (issue 5;
domain.md §2, §3): one real collector process for the whole module, on the
drill clock (BRANCHWATCH_CLOCK_OFFSET_FILE), with agents a1 (B1, north) and
a2 (B2, south), an operator, and the cbrc and hospital tables. Faults are
posted as event batches over HTTP (no agent processes): fast, and exact
about observation times.

POST /api/v1/incidents/{id}/{action}: criterion|withdraw {criterion, why},
grade {grade, why, table?}, deadline {key, what}. Who acted is the token's
operator, recorded in the audit trail.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import token_hash

from .support.collector import CollectorProcess
from .support.collector import DrillClock as Drill
from .support.paths import REPO
from .test_collector_api import request

OPERATOR = "operator-grading-api-token-xxxxxxxxxx"
TOKENS = {"a1": "token-grading-api-a1-xxxxxxxxxxxx", "a2": "token-grading-api-a2-xxxxxxxxxxxx"}
BRANCH = {"a1": "B1", "a2": "B2"}
# Monday 7 December 2026, 10:00 in Shanghai: inside business hours.
MONDAY_1000 = datetime(2026, 12, 7, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai"))




@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("grading-api")
    drill = Drill(folder / "clock-offset")
    drill.set(MONDAY_1000)
    extra = ("operators:\n"
             f"  - {{name: alice, roles: [leadership], token_sha256: {token_hash(OPERATOR)}}}\n"
             "incidents: {window: 120, deadman_grace: 86400}\n"
             "grading:\n  tables: [cbrc, hospital]\n")
    c = CollectorProcess(folder / "collector",
                         {"a1": ("B1", "north", TOKENS["a1"]), "a2": ("B2", "south", TOKENS["a2"])},
                         extra=extra, env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(drill.path)})
    c.start()
    c.drill = drill
    try:
        yield c
    finally:
        if c.proc.poll() is None:
            assert c.stop() == 0


_ages = itertools.count(1)


def open_incident(c, check: str, agent: str = "a1") -> dict:
    """A fault observed some minutes ago (apart from every other test's: no grouping)."""
    now = c.drill.now()
    e = Event(id=new_event_id(), kind="state", agent=agent, branch=BRANCH[agent], check=check,
              old_state="ok", new_state="critical", reason=f"{check} down",
              observed_at=now - timedelta(minutes=5 * next(_ages)))
    body = encode(Batch(agent=agent, branch=BRANCH[agent], sent_at=now, events=[e]))
    status, data = request(c.url + "/api/v1/events", body, TOKENS[agent])
    assert status == 200, data
    [inc] = [i for i in incidents(c) if any(f["check"] == check for f in i["faults"])]
    return inc


def incidents(c) -> list[dict]:
    status, data = request(c.url + "/api/v1/incidents", None, OPERATOR)
    assert status == 200, data
    return json.loads(data)["incidents"]


def act(c, inc_id: str, action: str, body, token: str = OPERATOR) -> tuple[int, dict]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, data = request(f"{c.url}/api/v1/incidents/{inc_id}/{action}", raw, token,
                           method="POST")
    return status, json.loads(data) if data else {}


def audit(c, kind: str, inc_id: str) -> list[tuple[str, dict]]:
    conn = sqlite3.connect(c.folder / "data" / "collector.db")
    try:
        rows = conn.execute("SELECT actor, data FROM audit WHERE kind = ? ORDER BY seq", (kind,))
        return [(a, d) for a, d in ((a, json.loads(d)) for a, d in rows)
                if d["incident"] == inc_id]
    finally:
        conn.close()


def cli(c, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, BRANCHWATCH_TOKEN=OPERATOR)
    return subprocess.run([sys.executable, "-m", "collector.cli", "incidents", *args,
                           "--url", c.url], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=30)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# --- the actions, and who did them ------------------------------------------------------

def test_actions_answer_with_the_incident_and_audit_the_operator(collector):
    c = collector
    inc = open_incident(c, "tcp/his-app")                # a server: hospital class 2
    start = when(inc["started_at"])

    code, got = act(c, inc["id"], "criterion",
                    {"criterion": "data_serious", "why": "customers double charged"})
    assert code == 200, got
    assert got["id"] == inc["id"]
    g = got["grades"]["cbrc"]
    assert (g["grade"], g["rule"], g["provisional"]) == ("II", "data-serious", False)
    [a] = got["assertions"]
    assert (a["criterion"], a["who"], a["why"], a["withdrawn"]) == (
        "data_serious", "alice", "customers double charged", False)
    assert got["grades"]["hospital"]["grade"] == "2"
    due = {d["key"]: d for d in got["deadlines"]}
    # 第二十七條(六): every data criterion is reported at once, not within 60 min.
    assert when(due["regulator-notice"]["due_at"]) == when(g["reached_at"])
    assert start < when(g["reached_at"]) < start + timedelta(minutes=60)
    assert due["regulator-notice"]["status"] in ("due", "missed")

    code, got = act(c, inc["id"], "deadline",
                    {"key": "regulator-notice", "what": "phoned the regulator, ref 17"})
    assert code == 200, got
    d = {d["key"]: d for d in got["deadlines"]}["regulator-notice"]
    assert (d["status"], d["met_by"], d["what"]) == ("met", "alice", "phoned the regulator, ref 17")

    code, got = act(c, inc["id"], "withdraw",
                    {"criterion": "data_serious", "why": "a display error, nobody charged"})
    assert code == 200, got
    assert got["grades"]["cbrc"]["grade"] is None            # judged afresh: nothing holds
    assert [a["withdrawn"] for a in got["assertions"]] == [True]

    code, got = act(c, inc["id"], "grade",
                    {"grade": "3", "why": "the training HIS only", "table": "hospital"})
    assert code == 200, got
    assert (got["grades"]["hospital"]["grade"], got["grades"]["hospital"]["rule"]) == (
        "3", "person")
    code, got = act(c, inc["id"], "grade", {"grade": "III", "why": "regulator asked for III"})
    assert code == 200, got                                  # the first table by default
    assert (got["grades"]["cbrc"]["grade"], got["grades"]["cbrc"]["rule"]) == ("III", "person")
    assert got["grades"]["hospital"]["grade"] == "3"

    # The audit trail names alice, never the collector, for each of her acts.
    for kind, text in (("incident.criterion_set",
                        "data_serious by alice: customers double charged"),
                       ("incident.deadline_met",
                        "regulator-notice by alice: phoned the regulator, ref 17"),
                       ("incident.criterion_withdrawn",
                        "data_serious by alice: a display error, nobody charged")):
        [(actor, data)] = audit(c, kind, inc["id"])
        assert (actor, data["detail"]) == ("alice", text), kind
    graded = [(actor, d["detail"]) for actor, d in audit(c, "incident.graded", inc["id"])
              if "by alice:" in d["detail"]]
    assert graded == [
        ("alice", "cbrc: II 重大 -> ungraded by alice: a display error, nobody charged"),
        ("alice", "hospital: 2 二类故障 -> 3 三类故障 by alice: the training HIS only"),
        ("alice", "cbrc: ungraded -> III 较大 by alice: regulator asked for III")]
    # What the collector does by itself is the collector's.
    assert audit(c, "incident.opened", inc["id"])[0][0] == "collector"


# --- refusals --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def target(collector) -> dict:
    """One incident for the refusals, with a deadline to name."""
    inc = open_incident(collector, "disk/ledger", agent="a2")
    code, got = act(collector, inc["id"], "criterion",
                    {"criterion": "data_larger", "why": "some statements misprinted"})
    assert code == 200, got
    return got


@pytest.mark.parametrize("action, body, field", [
    ("criterion", {"why": "x"}, "criterion"),
    ("criterion", {"criterion": "data_serious"}, "why"),
    ("criterion", {"criterion": "  ", "why": "x"}, "criterion"),
    ("criterion", {"criterion": 5, "why": "x"}, "criterion"),
    ("withdraw", {"why": "x"}, "criterion"),
    ("withdraw", {"criterion": "data_larger", "why": ""}, "why"),
    ("deadline", {"what": "x"}, "key"),
    ("deadline", {"key": "regulator-notice"}, "what"),
    ("deadline", {"key": "regulator-notice", "why": "the field is what"}, "what"),
    ("grade", {"why": "x"}, "grade"),
    ("grade", {"grade": "III"}, "why"),
    ("grade", {"grade": "III", "why": "x", "table": 3}, "table"),
])
def test_a_bad_body_is_400_naming_the_field(collector, target, action, body, field):
    code, got = act(collector, target["id"], action, body)
    assert code == 400, got
    assert got["error"].startswith(f"{field}: "), got


def test_a_body_that_is_not_a_json_object_is_400(collector, target):
    code, got = act(collector, target["id"], "criterion", b"{criterion")
    assert code == 400 and got["error"].startswith("body is not valid JSON"), got
    code, got = act(collector, target["id"], "grade", ["III"])
    assert code == 400 and got["error"] == "(body): expected a JSON object", got


@pytest.mark.parametrize("action, body", [
    ("criterion", {"criterion": "data_major", "why": "x"}),
    ("withdraw", {"criterion": "data_major", "why": "x"}),
    ("grade", {"grade": "I", "why": "x"}),
    ("deadline", {"key": "regulator-notice", "what": "x"}),
])
def test_an_unknown_incident_is_404(collector, action, body):
    code, got = act(collector, "INC-20261207-nope00", action, body)
    assert (code, got) == (404, {"error": "no incident 'INC-20261207-nope00'"})


@pytest.mark.parametrize("action, body, error", [
    ("criterion", {"criterion": "fire", "why": "x"},
     "unknown criterion 'fire'; the tables in use know: correct_to_1, correct_to_2, "
     "correct_to_3, correct_to_4, data_larger, data_lost_main, data_major, data_serious, "
     "force_majeure, operator_misuse, record_error"),
    ("withdraw", {"criterion": "data_major", "why": "x"}, "'data_major' is not set on "),
    ("grade", {"grade": "IV", "why": "x"}, "cbrc has no grade 'IV'; it has: I, II, III"),
    ("grade", {"grade": "III", "why": "x", "table": "hospital"},
     "hospital has no grade 'III'; it has: 1, 2, 3, 4"),
    ("grade", {"grade": "III", "why": "x", "table": "pbc"},
     "no grading table 'pbc'; in use: cbrc, hospital"),
    ("deadline", {"key": "notice", "what": "x"}, "has no deadline 'notice'; it has: "),
])
def test_what_the_tables_do_not_know_is_409_with_the_reason(collector, target, action, body,
                                                           error):
    code, got = act(collector, target["id"], action, body)
    assert code == 409, got
    assert error in got["error"], got
    # Nothing changed on the incident.
    [now] = [i for i in incidents(collector) if i["id"] == target["id"]]
    assert now["assertions"] == target["assertions"]
    assert now["grades"]["cbrc"]["grade"] == "III"


def test_meeting_a_deadline_twice_is_409(collector):
    inc = open_incident(collector, "disk/archive")
    act(collector, inc["id"], "criterion", {"criterion": "data_larger", "why": "x"})
    code, got = act(collector, inc["id"], "deadline", {"key": "written-report", "what": "fax"})
    assert code == 200, got
    code, got = act(collector, inc["id"], "deadline", {"key": "written-report", "what": "again"})
    assert code == 409 and got["error"].startswith("written-report was already met by alice at ")
    assert len(audit(collector, "incident.deadline_met", inc["id"])) == 1


@pytest.mark.parametrize("action, body", [
    ("criterion", {"criterion": "data_major", "why": "x"}),
    ("withdraw", {"criterion": "data_larger", "why": "x"}),
    ("grade", {"grade": "I", "why": "x"}),
    ("deadline", {"key": "regulator-notice", "what": "x"}),
])
def test_an_agent_token_may_not_grade(collector, target, action, body):
    code, got = act(collector, target["id"], action, body, token=TOKENS["a2"])
    assert code == 403 and "operator token" in got["error"], got
    assert act(collector, target["id"], action, body, token="nobody-knows-this")[0] == 401


# --- the CLI ------------------------------------------------------------------------------

def test_the_cli_shows_grades_and_deadlines_and_acts(collector):
    c = collector
    inc = open_incident(c, "tcp/his-db", agent="a2")
    iid = inc["id"]
    out = cli(c, "criterion", iid, "data_serious", "--why", "refunds owed to 40 customers")
    assert out.returncode == 0, out.stderr
    shown = cli(c, "show", iid)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith(iid) and "open" in lines[0]
    assert any(x.startswith("  grade cbrc: II since ") and x.endswith(" by data-serious")
               for x in lines), shown.stdout
    assert any(x.startswith("  grade hospital: 2 since ") and x.endswith(" by class-2-observed")
               for x in lines), shown.stdout
    assert any(x.startswith("  criterion data_serious ")
               and x.endswith(" alice: refunds owed to 40 customers") for x in lines)
    # At once (第二十七條(六)): due, or missed a moment later.
    notice = [x for x in lines if x.startswith(("  deadline regulator-notice due ",
                                                "  deadline regulator-notice missed "))]
    assert len(notice) == 1 and "Report the incident to the regulator" in notice[0]
    assert any(x.startswith("  deadline written-report due ") for x in lines), shown.stdout

    out = cli(c, "deadline", iid, "regulator-notice", "--what", "phoned, ref 99")
    assert out.returncode == 0, out.stderr
    assert any(x.startswith("  deadline regulator-notice met ")
               and x.endswith(" by alice: phoned, ref 99") for x in out.stdout.splitlines())
    out = cli(c, "grade", iid, "3", "--table", "hospital", "--why", "test HIS only")
    assert out.returncode == 0, out.stderr
    assert "  grade hospital: 3 since " in out.stdout and " by person" in out.stdout
    out = cli(c, "withdraw", iid, "data_serious", "--why", "refunds were a test batch")
    assert out.returncode == 0, out.stderr
    assert "  grade cbrc: ungraded" in out.stdout
    assert "criterion data_serious (withdrawn) " in out.stdout
    [(actor, _)] = audit(c, "incident.criterion_withdrawn", iid)
    assert actor == "alice"

    # Refused: exit 1, one line naming the reason, no traceback.
    for args, reason in (
            (("criterion", iid, "fire", "--why", "x"), "409: unknown criterion 'fire'"),
            (("grade", iid, "IV", "--why", "x"), "409: cbrc has no grade 'IV'"),
            (("deadline", iid, "regulator-notice", "--what", "x"),
             "409: regulator-notice was already met by alice"),
            (("withdraw", iid, "data_serious", "--why", "x"), "409: 'data_serious' is not set"),
            (("criterion", "INC-20261207-nope00", "data_major", "--why", "x"),
             "404: no incident 'INC-20261207-nope00'")):
        out = cli(c, *args)
        assert out.returncode == 1, (args, out.stdout, out.stderr)
        assert out.stdout == ""
        [line] = out.stderr.splitlines()
        assert line.startswith("branchwatch: incidents: ") and reason in line, line
        assert "Traceback" not in out.stderr
