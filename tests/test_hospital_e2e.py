"""The hospital end to end (domain.md §2.3): a real collector process with the shipped
hospital config's shape, a real HTTP receiver for every department's webhook, events
through the real ingest API, IT through the real CLI. Time moves by the collector's
clock file (BRANCHWATCH_CLOCK_OFFSET_FILE), never by sleeping for minutes.

The timeline: 2 of the 4 core members go down at 09:00 -> the whole network is out
-> at 09:30 the registration, admission, pharmacy and cashiers hear it, once each
-> IT announces the start of manual work (CLI) -> at 15:00 nurse stations, pharmacy,
operating rooms and medical technology hear it (the cashiers do not, again) -> the
core is back -> IT announces the time to resume -> the re-entry deadlines stand.
The monthly restore test is recorded by the CLI and shows on /metrics.

Then a real agent in the server room probes three real TCP servers (the core): one
down is no outage, two are; a ward's agent falling silent is none either.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess, DrillClock
from .support.console import console_yaml
from .support.notify import HttpSink
from .support.paths import REPO
from .test_collector_api import metric, request
from .test_console_http import Visitor
from .test_delivery_e2e import wait_for

SH = ZoneInfo("Asia/Shanghai")
MONDAY_0900 = datetime(2026, 12, 7, 9, 0, tzinfo=SH)
AGENT = "token-hospital-e2e-h1-xxxxxxxxxxxx"
IT = "token-hospital-e2e-it-xxxxxxxxxxxx"
VIEWER = "token-hospital-e2e-viewer-xxxxxxxx"
CORE = ["tcp/his-db", "tcp/his-app", "switch/core-1/reachable", "switch/core-2/reachable"]
DEPARTMENTS = ["registration", "admission", "pharmacy", "cashiers", "nurse-stations",
               "operating-rooms", "medical-technology", "all-departments"]


def extra(hook: HttpSink) -> str:
    people = "\n".join(f"    - {{name: {d}, roles: [{d}], "
                       f"webhook: 'http://127.0.0.1:{hook.port}/{d}'}}" for d in DEPARTMENTS)
    members = "\n".join(f"      - {{branch: HOSP, check: {c}}}" for c in CORE)
    return f"""operators:
  - {{name: it-zhang, roles: [operator], token_sha256: {token_hash(IT)}}}
  - {{name: vera, roles: [viewer], token_sha256: {token_hash(VIEWER)}}}
incidents: {{window: 120, deadman_grace: 86400}}
grading:
  tables: [hospital]
  calendar: {{timezone: Asia/Shanghai}}
runbooks: {{auto_start: false}}
hospital:
  core:
    share: 0.5
    members:
{members}
notify:
  deadlines: {{remind_before: 0}}
  people:
    - {{name: it-zhang, roles: [execution, leadership], webhook: 'http://127.0.0.1:{hook.port}/it'}}
{people}
  routes:
    - {{name: it, notify: [execution]}}
  retry: {{first: 0.2, max: 1, timeout: 3}}
""" + console_yaml({"it-li": (["operator"], "it-li-password")})


def send(c, check: str, state: str, at: datetime) -> None:
    e = Event(id=new_event_id(), kind="state", agent="h1", branch="HOSP", check=check,
              old_state=None, new_state=state, reason=f"{check} {state}", observed_at=at)
    status, data = request(c.url + "/api/v1/events",
                           encode(Batch(agent="h1", branch="HOSP", sent_at=at, events=[e])),
                           AGENT)
    assert status == 200, data


def cli(c, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "agent.cli", "hospital", *args, "--url", c.url],
                          capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), "BRANCHWATCH_TOKEN": IT})
    assert done.returncode == 0, done.stderr
    return done.stdout


def heard(hook: HttpSink, reason: str) -> Counter:
    """How many messages of this reason each recipient got."""
    return Counter(b["to"] for _, _, b in hook.bodies if b["reason"] == reason)


def rounds(c, n: int = 3) -> None:
    start = metric(c, "branchwatch_collector_deadman_rounds_total")
    wait_for(lambda: metric(c, "branchwatch_collector_deadman_rounds_total") >= start + n,
             what=f"{n} rounds of the once-a-second work")


def get(c, path: str) -> dict:
    status, data = request(c.url + path, None, IT)
    assert status == 200, data
    return json.loads(data)


def post(c, path: str, body: dict, token: str = IT) -> tuple[int, dict]:
    status, data = request(c.url + path, json.dumps(body).encode(), token, method="POST")
    return status, json.loads(data) if data else {}


def refusals(c) -> None:
    """Bad requests are 4xx with one line, never 5xx; nothing is recorded by them."""
    cases = [
        ("/api/v1/hospital/notices", {"kind": "manual", "text": "x"}, IT, 409,
         "no whole-network outage"),
        ("/api/v1/hospital/notices", {"kind": "panic", "text": "x"}, IT, 400, "kind: expected"),
        ("/api/v1/hospital/notices", {"kind": "manual", "text": "x", "departments": "pharmacy"},
         IT, 400, "departments: expected a list"),
        ("/api/v1/hospital/outage/over", {"why": "x"}, IT, 409, "no whole-network outage is "),
        ("/api/v1/hospital/outage/declare", {}, IT, 400, "why: missing"),
        ("/api/v1/hospital/outage/declare", {"why": "x"}, VIEWER, 403, "may not declare"),
        ("/api/v1/hospital/restore-tests", {"restored": "HIS", "result": "passed",
                                            "at": "yesterday"}, IT, 400, "at: expected an ISO"),
        ("/api/v1/hospital/restore-tests", {"restored": "HIS", "result": "passed",
                                            "at": "2030-01-01T00:00:00+08:00"}, IT, 400,
         "in the future"),
        ("/api/v1/hospital/restore-tests", {"restored": "HIS", "result": "ok"}, IT, 400,
         "result: expected one of passed, failed"),
    ]
    for path, body, token, status, says in cases:
        got, data = post(c, path, body, token)
        assert (got, says in data.get("error", "")) == (status, True), (path, body, data)
    assert get(c, "/api/v1/hospital/restore-tests")["tests"] == []


def test_each_department_gets_its_notice_once_at_its_milestone(tmp_path):
    clock = DrillClock(tmp_path / "clock-offset")
    clock.freeze(MONDAY_0900)
    with HttpSink() as hook:
        c = CollectorProcess(tmp_path / "collector", {"h1": ("HOSP", AGENT)}, extra=extra(hook),
                             env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(clock.path)})
        with c:
            refusals(c)
            t0 = clock.now()
            send(c, CORE[0], "critical", t0)
            rounds(c)
            assert get(c, "/api/v1/hospital")["outage"] is None        # 1 of 4: no outage
            send(c, CORE[2], "critical", t0)                            # 2 of 4: exactly half
            status = wait_for(lambda: get(c, "/api/v1/hospital")["outage"], what="the outage")
            assert status["observed"] and not status["declared"]
            assert "2 of 4 core members down" in status["reason"]

            clock.freeze(t0 + timedelta(minutes=29, seconds=59))
            rounds(c)
            assert heard(hook, "milestone") == Counter()

            clock.freeze(t0 + timedelta(minutes=30))
            first = {"registration", "admission", "pharmacy", "cashiers"}
            wait_for(lambda: set(heard(hook, "milestone")) == first, what="the 30-min notices")
            rounds(c)
            assert heard(hook, "milestone") == Counter({d: 1 for d in first})
            [body] = [b for _, p, b in hook.bodies if p == "/cashiers"]
            assert "30分钟未恢复" in body["text"] and "收款员" in body["text"]
            # Once, even across a restart: what was sent is kept with the incident.
            assert c.stop() == 0
            c.start()
            rounds(c)
            assert heard(hook, "milestone") == Counter({d: 1 for d in first})

            out = cli(c, "announce", "manual", "--text", "09:40 起门诊手工挂号、手工收费")
            assert "hospital: whole-network outage" in out
            wait_for(lambda: set(heard(hook, "manual")) == first, what="IT's manual notice")

            clock.freeze(t0 + timedelta(hours=6))
            second = {"nurse-stations", "pharmacy", "operating-rooms", "medical-technology"}
            wait_for(lambda: heard(hook, "milestone")["nurse-stations"] == 1,
                     what="the 6-h notices")
            rounds(c)
            assert heard(hook, "milestone") == Counter(
                {d: 1 for d in first - second} | {d: 2 if d in first else 1 for d in second})
            assert heard(hook, "milestone")["cashiers"] == 1            # not named at 6 h
            assert "it-zhang" not in heard(hook, "milestone")           # departments only

            back = t0 + timedelta(hours=6, minutes=20)                  # 15:20 local
            clock.freeze(back)
            send(c, CORE[2], "ok", back)
            wait_for(lambda: get(c, "/api/v1/hospital")["outage"] is None, what="recovery")
            cli(c, "announce", "resume", "--text", "15:30 恢复上机")
            wait_for(lambda: heard(hook, "resume"), what="IT's resume notice")
            rounds(c)
            assert set(heard(hook, "resume")) == first | second
            [inc] = get(c, "/api/v1/incidents")["incidents"]
            due = {d["key"]: d for d in inc["deadlines"]}
            assert datetime.fromisoformat(due["reentry-important"]["due_at"]) == datetime(
                2026, 12, 8, tzinfo=SH)
            assert datetime.fromisoformat(due["reentry-all"]["due_at"]) == datetime(
                2026, 12, 9, tzinfo=SH)
            assert due["manual-30m"]["status"] == "met"                 # IT's announcement
            assert "manual-24h" not in due
            # The console shows who each milestone told, in the reader's language.
            v = Visitor(c.url)
            v.login("it-li", "it-li-password")
            page = v.go(f"/console/incidents/{inc['id']}")[2]
            assert "通知部门: 门诊挂号, 住院登记, 药房, 收款员" in page
            assert "护士工作站, 药房, 手术室, 医技检查" in page

            # hospital §5.5: due a month after the register began (09:00 today), then a
            # month after the last passed test; overdue is an incident the routes tell IT.
            assert metric(c, "branchwatch_collector_restore_test_overdue") == 0
            assert "no passed restore test on record; next due 2027-01-07" in cli(
                c, "restore-tests")
            out = cli(c, "restore-test", "--restored", "HIS 全库、PACS 影像备份",
                      "--result", "passed", "--at", back.isoformat())
            assert "next due 2027-01-07T07:20:00+00:00" in out
            assert "passed" in cli(c, "restore-tests")
            clock.freeze(back + timedelta(days=32))
            wait_for(lambda: metric(c, "branchwatch_collector_restore_test_overdue") == 1,
                     what="the restore test overdue")
            late = wait_for(lambda: [i for i in get(c, "/api/v1/incidents")["incidents"]
                                     if i["title"] == "hospital: monthly restore test overdue"],
                            what="the overdue incident")
            wait_for(lambda: heard(hook, "opened")["it-zhang"] >= 2, what="IT told")
            cli(c, "restore-test", "--restored", "HIS 全库", "--result", "passed")
            wait_for(lambda: get(c, f"/api/v1/incidents/{late[0]['id']}")["status"] == "resolved",
                     what="a passed test to end the overdue alert")


# --- observed by a real agent on the real core ----------------------------------------------

class Server:
    """A HIS server as the server room's agent reaches it: answers TCP until taken
    down, and answers again on the same port once brought back."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self._serve()

    def _serve(self):
        sock = self.sock

        def accept():
            while True:
                try:
                    conn, _ = sock.accept()
                except OSError:
                    return
                conn.close()
        threading.Thread(target=accept, daemon=True).start()

    def down(self):
        self.sock.close()

    def up(self):
        self.sock = socket.create_server(("127.0.0.1", self.port))
        self._serve()


def room_agent(folder, agent: str, branch: str, token: str, url: str,
               servers: dict[str, Server]) -> dict:
    return {"agent": {"id": agent, "branch": branch},
            "state": {"debounce": 1},
            "host": {"tcp": [{"name": name, "host": "127.0.0.1", "port": s.port,
                              "timeout": 0.5, "interval": 0.3} for name, s in servers.items()]},
            "collector": {"url": url, "token": token, "heartbeat_interval": 0.5,
                          "timeout": 0.4, "spool": {"path": str(folder / "spool.db")}}}


def test_a_real_agent_sees_the_core_go_and_a_silent_ward_is_no_outage(tmp_path):
    servers = {"his-db": Server(), "his-app": Server(), "his-pacs": Server()}
    ward_token = "token-hospital-e2e-w1-xxxxxxxxxxxx"
    extra_yaml = f"""operators:
  - {{name: it-zhang, roles: [operator], token_sha256: {token_hash(IT)}}}
incidents: {{window: 120, deadman_grace: 1}}
grading:
  tables: [hospital]
  calendar: {{timezone: Asia/Shanghai}}
runbooks: {{auto_start: false}}
hospital:
  core:
    share: 0.5
    members:
      - {{branch: HIS-ROOM, check: tcp/his-db, name: HIS 数据库}}
      - {{branch: HIS-ROOM, check: tcp/his-app, name: HIS 应用}}
      - {{branch: HIS-ROOM, check: tcp/his-pacs, name: PACS}}
"""
    c = CollectorProcess(tmp_path / "collector", {"h1": ("HIS-ROOM", AGENT),
                                                  "w1": ("WARD", ward_token)}, extra=extra_yaml)
    with c:
        folders = [tmp_path / "h1", tmp_path / "w1"]
        for f in folders:
            f.mkdir()
        room = AgentProcess(folders[0], room_agent(folders[0], "h1", "HIS-ROOM", AGENT, c.url,
                                                   servers)).start()
        ward = AgentProcess(folders[1], room_agent(folders[1], "w1", "WARD", ward_token, c.url,
                                                   {})).start()
        try:
            wait_for(lambda: metric(c, "branchwatch_collector_agents_seen") == 2,
                     what="both agents heard")
            ward.stop()                                   # the ward's agent falls silent
            wait_for(lambda: [i for i in get(c, "/api/v1/incidents")["incidents"]
                              if i["branch"] == "WARD"], what="the silent ward")
            servers["his-db"].down()                      # 1 of 3: below the share
            wait_for(lambda: [i for i in get(c, "/api/v1/incidents")["incidents"]
                              if i["branch"] == "HIS-ROOM"], what="the server fault")
            rounds(c)
            assert get(c, "/api/v1/hospital")["outage"] is None
            servers["his-app"].down()                     # 2 of 3 (needed: 2)
            out = wait_for(lambda: get(c, "/api/v1/hospital")["outage"], what="the outage")
            assert out["observed"] and "2 of 3 core members down" in out["reason"]
            assert "HIS 数据库" in out["reason"] and "HIS 应用" in out["reason"]
            servers["his-db"].up()
            wait_for(lambda: get(c, "/api/v1/hospital")["outage"] is None, what="the core back")
            # hospital §6.4: re-entry deadlines once the network is back.
            wait_for(lambda: [i for i in get(c, "/api/v1/incidents")["incidents"]
                              if i["title"] == "hospital: whole-network outage" and
                              {"reentry-important", "reentry-all"} <= {
                                  d["key"] for d in i["deadlines"]}], what="re-entry deadlines")
        finally:
            room.stop()
            ward.stop()
            for s in servers.values():
                s.down()
