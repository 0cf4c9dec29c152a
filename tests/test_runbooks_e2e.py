"""Runbooks in a real collector process (issue 6): the power-cut runbook carried
out through its manual steps from the CLI, with the drill clock for its waits;
webhook and command steps against a real HTTP receiver and a real process;
every step in the audit trail with who and why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import token_hash

from .support.collector import CollectorProcess
from .support.collector import audit_records as audit
from .support.paths import REPO
from .test_collector_api import TOKENS, request
from .test_delivery_e2e import wait_for

OPERATOR = "operator-runbook-token-xxxxxxxxxxxx"


def collector(tmp_path, extra: str = "", env: dict | None = None) -> CollectorProcess:
    return CollectorProcess(
        tmp_path / "collector", {"a1": ("B1", "north", TOKENS["a1"])},
        extra=f"operators:\n  - {{name: wang, token_sha256: {token_hash(OPERATOR)}}}\n"
              "grading: {tables: []}\n" + extra, env=env)


def send(c, check: str, state: str, at: datetime) -> None:
    e = Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=check,
              old_state=None, new_state=state, reason=f"{check} {state}", observed_at=at)
    body = encode(Batch(agent="a1", branch="B1", sent_at=at, events=[e]))
    assert request(c.url + "/api/v1/events", body, TOKENS["a1"])[0] == 200


def the_incident(c) -> dict:
    status, data = request(c.url + "/api/v1/incidents", None, OPERATOR)
    assert status == 200
    [inc] = json.loads(data)["incidents"]
    return inc


def current(c) -> str | None:
    [run] = the_incident(c)["runbooks"]
    return run["current"]


def cli(c, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector.cli", "runbook", *args,
                           "--url", c.url], cwd=REPO, capture_output=True, text=True,
                          timeout=30, env={**os.environ, "BRANCHWATCH_TOKEN": OPERATOR})




def test_power_cut_runbook_through_its_manual_steps_from_the_cli(tmp_path):
    offset = tmp_path / "clock"
    offset.write_text("0")
    c = collector(tmp_path, env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(offset)}).start()
    try:
        now = datetime.now(timezone.utc)
        send(c, "ups/rack/on_battery", "critical", now)
        wait_for(lambda: the_incident(c)["runbooks"], what="the power-cut runbook")
        inc = the_incident(c)
        assert inc["runbooks"][0]["runbook"]["id"] == "power-cut"
        assert current(c) == "find-cause"

        shown = cli(c, "show", inc["id"])
        assert shown.returncode == 0, shown.stderr
        assert "R1 power-cut (running)" in shown.stdout and "find-cause" in shown.stdout

        for step, extra in (("find-cause", ["--note", "storm took the supply line"]),
                            ("call-power-company", ["--note", "power co.: 4 hours"]),
                            ("long-outage", ["--choice", "long", "--note", "4 h > UPS 40 min"]),
                            ("disconnect-mains", ["--note", "photo 17"]),
                            ("start-generator", ["--note", "started 10:02"])):
            out = cli(c, "confirm", inc["id"], step, *extra)
            assert out.returncode == 0, out.stderr
        assert current(c) == "generator-stable"
        # A step that is not the current one: refused in one line, exit 1.
        bad = cli(c, "confirm", inc["id"], "review", "--note", "early")
        assert bad.returncode == 1 and "not the current step" in bad.stderr
        assert "\n" not in bad.stderr.strip() and "Traceback" not in bad.stderr

        # "Wait until the generator is stable (a few minutes)": the drill clock moves on.
        offset.write_text("181")
        wait_for(lambda: current(c) == "connect-loads", what="the generator wait to end")
        assert cli(c, "confirm", inc["id"], "connect-loads", "--note", "UPS in 221 V"
                   ).returncode == 0
        # The UPS sees the generator's output: not the end (domain.md §4).
        later = datetime.now(timezone.utc) + timedelta(seconds=181)
        send(c, "ups/rack/on_battery", "ok", later)
        wait_for(lambda: not any(f["active"] for f in the_incident(c)["faults"]
                                 if f["agent"] != "collector"), what="the UPS on input")
        inc = the_incident(c)
        assert current(c) == "mains-back" and inc["status"] == "open"
        [held] = [f for f in inc["faults"] if f["agent"] == "collector"]
        assert (held["check"], held["active"]) == ("power/generator", True)
        for step, note in (("mains-back", "ATS on mains, photo 18"),
                           ("back-to-mains", "generator stopped 14:20")):
            assert cli(c, "confirm", inc["id"], step, "--note", note).returncode == 0
        assert the_incident(c)["status"] == "resolved"
        offset.write_text(str(181 + 301))
        wait_for(lambda: current(c) == "review", what="the UPS on mains for 5 minutes")
        assert cli(c, "skip", inc["id"], "review", "--why", "review at Monday's meeting"
                   ).returncode == 0
        [run] = the_incident(c)["runbooks"]
        assert run["status"] == "done"
        steps = [(r["step"], r["status"], r["who"]) for r in run["records"]]
        assert steps[:6] == [("find-cause", "done", "wang"), ("call-power-company", "done", "wang"),
                             ("long-outage", "done", "wang"), ("disconnect-mains", "done", "wang"),
                             ("start-generator", "done", "wang"),
                             ("on-generator", "done", None)]
        assert steps[-1] == ("review", "skipped", "wang")
    finally:
        assert c.stop() == 0
    # Every step, with who and why, is in the audit trail.
    done = audit(c, "incident.step_done")
    assert ("wang", "long-outage done by wang: 4 h > UPS 40 min") in [
        (a, d["detail"].split(": ", 1)[1]) for a, d in done]
    assert [a for a, d in audit(c, "incident.step_skipped")] == ["wang"]
    assert len(audit(c, "incident.runbook_done")) == 1


class Receiver:
    """A real HTTP endpoint for webhook steps: records each POST, answers `status`."""

    def __init__(self):
        self.status, self.posts = 200, []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.posts.append((self.path, json.loads(self.rfile.read(length))))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ticket 77")

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


RUNBOOK = """\
id: tell-it
title: Tell IT about a service fault
source: test
applies_to: {{categories: [service], priority: 50}}
steps:
  - id: open-ticket
    kind: action
    title: Open a ticket
    action: {{type: webhook, url: "{url}/ticket", body: {{incident: "{{incident}}", branch: "{{branch}}"}}}}
    preauthorised: {{granted_by: head of IT, granted_at: "2026-11-02", up_to_grade: I}}
    on_fail: phone-it
  - id: mark
    kind: action
    title: Run the allowed script
    action: {{type: command, command: mark}}
    preauthorised: {{granted_by: head of IT, granted_at: "2026-11-02", up_to_grade: I}}
    on_fail: phone-it
  - id: check
    kind: manual
    title: Check the service
    text: Check it answers.
    next: end
  - id: phone-it
    kind: manual
    title: Phone IT
    text: The ticket could not be opened; phone the IT desk.
    next: end
"""


def test_webhook_and_command_steps_run_by_themselves_and_a_failure_falls_back(tmp_path):
    receiver = Receiver()
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "tell-it.yaml").write_text(RUNBOOK.format(url=receiver.url))
    marker = tmp_path / "marker"
    extra = (f"runbooks:\n  folder: {books}\n  timeout: 5\n"
             f"  commands: {{mark: [/bin/sh, -c, 'echo {{incident}} >> {marker}']}}\n")
    c = collector(tmp_path, extra).start()
    try:
        now = datetime.now(timezone.utc)
        send(c, "tcp/teller", "critical", now)
        wait_for(lambda: current(c) == "check", what="the webhook and the command to run")
        inc = the_incident(c)
        assert receiver.posts == [("/ticket", {"incident": inc["id"], "branch": "B1"})]
        assert marker.read_text().strip() == inc["id"]
        records = {r["step"]: r for r in inc["runbooks"][0]["records"]}
        assert records["open-ticket"]["note"].startswith(
            f"webhook {receiver.url}/ticket: HTTP 200: ticket 77")
        assert records["mark"]["note"] == "/bin/sh exited 0"

        # The same at another branch moment, with IT's endpoint failing: plan failed.
        receiver.status = 500
        assert cli(c, "start", inc["id"], "tell-it", "--why", "again").returncode == 0
        wait_for(lambda: the_incident(c)["runbooks"][1]["current"] == "phone-it",
                 what="the fallback after the failed webhook")
        [(actor, data)] = audit(c, "incident.plan_failed")
        assert actor == "collector" and data["alert"] is True
        assert "open-ticket" in data["detail"] and "HTTP 500" in data["detail"]
        assert "phone-it" in data["detail"]
    finally:
        assert c.stop() == 0
        receiver.close()


def test_runbooks_are_frozen_onto_the_incident_when_they_start(tmp_path):
    """Editing the file later does not change a runbook already running."""
    books = tmp_path / "runbooks"
    books.mkdir()
    original = ("id: check-it\ntitle: Check it\nsource: test\n"
                "applies_to: {categories: [service]}\nsteps:\n"
                "  - {id: look, kind: manual, title: Look, text: look at it}\n"
                "  - {id: fix, kind: manual, title: Fix, text: fix it}\n")
    (books / "check-it.yaml").write_text(original)
    c = collector(tmp_path, f"runbooks: {{folder: {books}}}\n").start()
    try:
        send(c, "tcp/teller", "critical", datetime.now(timezone.utc))
        wait_for(lambda: the_incident(c)["runbooks"], what="the runbook")
        inc_id = the_incident(c)["id"]
        (books / "check-it.yaml").write_text(original.replace("fix it", "replace it"))
        assert c.stop() == 0
        c.start()                     # loads the edited file
        time.sleep(0.5)
        assert cli(c, "confirm", inc_id, "look", "--note", "seen").returncode == 0
        [run] = the_incident(c)["runbooks"]
        assert run["runbook"]["steps"][1]["text"] == "fix it" and run["current"] == "fix"
    finally:
        assert c.stop() == 0
