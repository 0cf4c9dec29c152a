"""Drills end to end (issue 7, "A drill runs end to end and produces its report";
domain.md §5): a real collector process, a real SMTP server (aiosmtpd), the
`branchwatch` CLI, and the drill clock (BRANCHWATCH_CLOCK_OFFSET_FILE) for the
hour a drill takes, never long sleeps.

- a power-cut drill from `drill run` with a plan: the incident is DRILL, its
  runbook starts, it is graded, the mail says DRILL first, /metrics and
  `incidents list` leave it out; people acknowledge it and confirm two steps
  (one over the plan); the grade-III notice deadline is missed; `drill end`
  closes it with "drill over"; the report renders in both languages with its
  steps against the plan, its failures and the follow-ups a person wrote;
  archived, it is frozen; start, end and archive are in the audit trail;
- a real fault at the same branch during a drill opens its own, real incident,
  and the drill's rehearsed failover report never lands on it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import token_hash
from collector.reports.render import pdf_problem

from .support.collector import CollectorProcess
from .support.collector import audit_records as audit
from .support.console import reports_output
from .support.notify import SmtpSink
from .support.paths import REPO
from .test_collector_api import metric, request
from .test_delivery_e2e import wait_for
from .test_grading_e2e import MONDAY_0900, Drill

AGENT = "token-of-a1-drills-xxxxxxxxxxxxxx"
OPERATOR = "operator-drills-token-xxxxxxxxxxx"
LINA = "lina@example.com"
PLAN = REPO / "config" / "drills" / "plans" / "power-cut-2026.yaml"


def collector(tmp_path, extra: str = "", env: dict | None = None) -> CollectorProcess:
    return CollectorProcess(
        tmp_path / "collector", {"a1": ("BR-0417", "north", AGENT)},
        extra=f"operators:\n  - {{name: alice, roles: [leadership], token_sha256: {token_hash(OPERATOR)}}}\n"
              # The drill clock jumps: no agent may look silent for it.
              "incidents: {window: 120, deadman_grace: 86400}\n"
              "grading:\n  tables: [cbrc]\n"
              "  calendar: {timezone: Asia/Shanghai, weekdays: [0, 1, 2, 3, 4], "
              "hours: ['08:30-17:00']}\n" + extra, env=env)


def bw(c, *args) -> subprocess.CompletedProcess:
    """`branchwatch ARGS --url ...` with the operator's token."""
    return subprocess.run([sys.executable, "-m", "collector.cli", *args, "--url", c.url],
                          cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "BRANCHWATCH_TOKEN": OPERATOR})


def ok(out: subprocess.CompletedProcess) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


def incidents(c, query: str = "") -> list[dict]:
    status, data = request(c.url + "/api/v1/incidents" + query, None, OPERATOR)
    assert status == 200, data
    return json.loads(data)["incidents"]


def api(c, path: str) -> dict:
    status, data = request(c.url + path, None, OPERATOR)
    assert status == 200, data
    return json.loads(data)


def send(c, check: str, at: datetime, diagnosis: str | None = None) -> None:
    """A real fault from the real agent a1 at BR-0417."""
    e = Event(id=new_event_id(), kind="state", agent="a1", branch="BR-0417", check=check,
              old_state=None, new_state="critical", reason=f"{check} down (real)",
              observed_at=at, diagnosis=diagnosis)
    body = encode(Batch(agent="a1", branch="BR-0417", sent_at=at, events=[e]))
    assert request(c.url + "/api/v1/events", body, AGENT)[0] == 200




def row(report: str, *words: str) -> str:
    """The one line of a report holding every word."""
    [found] = [line for line in report.splitlines() if all(w in line for w in words)]
    return found


def section(report: str, heading: str) -> str:
    """A report's section, from its heading to the next heading of its level or above."""
    level = len(heading.split(" ")[0])
    start = report.index(heading)
    body = report.index("\n", start)
    found = re.search(r"^#{1,%d} " % level, report[body:], re.MULTILINE)
    return report[start:body + found.start() if found else None]


def test_power_cut_drill_end_to_end_from_the_cli(tmp_path):
    clock = Drill(tmp_path / "clock-offset")
    # Stopped, and moved only by the test: the durations below are exact.
    clock.freeze(MONDAY_0900)
    with SmtpSink() as smtp:
        c = collector(tmp_path, f"""notify:
  email: "{smtp.url()}"
  people:
    - {{name: 李娜, roles: [execution], email: {LINA}}}
    - {{name: 张伟, roles: [leadership], email: zhangwei@example.com}}
  routes:
    - {{name: any, notify: [execution], escalate: [{{after: 15, roles: [leadership]}}]}}
  retry: {{first: 0.2, max: 1, timeout: 3}}
""", env={"BRANCHWATCH_CLOCK_OFFSET_FILE": str(clock.path)}).start()
        try:
            out = ok(bw(c, "drill", "run", "power-cut", "--branch", "BR-0417",
                        "--plan", str(PLAN)))
            drill_id = re.search(r"DRILL-\d{8}-[0-9a-f]{6}", out)[0]
            assert "DRILL: UPS on battery" in out and "drill end" in out

            # The real pipeline ran, marked DRILL.
            inc = wait_for(lambda: [i for i in incidents(c, "?drill=only")
                                    if "cbrc" in i["grades"]], what="the drill incident, graded")[0]
            assert inc["drill"] is True and inc["title"] == "DRILL: UPS on battery"
            assert inc["runbooks"][0]["runbook"]["id"] == "power-cut"
            assert inc["faults"][0]["agent"] == f"drill:{drill_id}:BR-0417"
            [mail] = wait_for(lambda: smtp.to(LINA), what="the execution group's mail")
            assert mail["subject"].startswith("DRILL")
            assert mail.get_body(("plain",)).get_content().split()[0] == "DRILL"
            # Never a real incident: not in the real gauges, not in `incidents list`.
            assert metric(c, "branchwatch_collector_incidents", status="open") == 0
            assert metric(c, "branchwatch_collector_drill_incidents", status="open") == 1
            assert incidents(c) == []
            assert ok(bw(c, "incidents", "list")).strip() == "no incidents"
            assert inc["id"] in ok(bw(c, "incidents", "list", "--drill"))

            # People carry it out: an ack at 2 min, find-cause at 12 (plan: 10),
            # the power company called by 15 (plan: 5 min).
            start = datetime.fromisoformat(api(c, f"/api/v1/drills/{drill_id}")["started_at"])
            clock.freeze(start + timedelta(minutes=2))
            ok(bw(c, "incidents", "ack", inc["id"], "--why", "drill: on it"))
            clock.freeze(start + timedelta(minutes=12))
            ok(bw(c, "runbook", "confirm", inc["id"], "find-cause", "--note", "drill: storm"))
            clock.freeze(start + timedelta(minutes=15))
            ok(bw(c, "runbook", "confirm", inc["id"], "call-power-company",
                  "--note", "drill: power co. says 4 h"))
            # An hour on: the battery ran low at 10 min (business stopped), grade III
            # at 40 min, and nobody sent the regulator's notice (due at 60 min).
            clock.freeze(start + timedelta(minutes=61))
            inc = wait_for(lambda: (lambda i: i if i["grades"]["cbrc"]["grade"] == "III" and any(
                d["key"] == "regulator-notice" and d["status"] == "missed"
                for d in i["deadlines"]) else None)(incidents(c, "?drill=only")[0]),
                what="grade III and the missed notice")
            assert incidents(c) == []

            out = ok(bw(c, "drill", "end", drill_id))
            assert "ended" in out and "drill end" not in out
            inc = api(c, f"/api/v1/incidents/{inc['id']}")
            assert inc["status"] == "closed" and inc["closed"]["why"] == "drill over"
            assert inc["closed"]["who"] == "alice"
            assert metric(c, "branchwatch_collector_drill_incidents", status="open") == 0
            assert bw(c, "drill", "end", drill_id).returncode == 1     # 409: ended

            # The report: steps and milestones against the plan, what failed.
            data = api(c, f"/api/v1/drills/{drill_id}/report?format=json&lang=en")
            steps = {s["step"]: s for s in data["steps"]}
            assert steps["find-cause"]["actual"] == 720
            assert (steps["find-cause"]["planned"], steps["find-cause"]["verdict"]) == (600, "over")
            assert steps["call-power-company"]["actual"] == 180
            assert steps["call-power-company"]["verdict"] == "ok"
            en = ok(bw(c, "drill", "report", drill_id, "--lang", "en"))
            assert en.startswith("# Drill report: Power cut at a branch")
            assert "DRILL - not a real incident" in en
            plan = section(en, "## 1. Plan")
            assert "2026 年度网点停电应急演练" in plan and "科技部 张伟" in plan
            steps_md = section(en, "### 3.1 Runbook steps")
            assert "OVER PLAN" in row(steps_md, "find-cause") and \
                "10 min 00 s" in row(steps_md, "find-cause")
            assert "within plan" in row(steps_md, "call-power-company", "5 min 00 s")
            assert "UNFINISHED" in row(steps_md, "long-outage")
            assert "NOT REACHED" in row(steps_md, "disconnect-mains")
            marks = section(en, "### 3.2 Milestones")
            assert "within plan" in row(marks, "first acknowledgement", "2 min 0")
            assert "within plan" in row(marks, "first message delivered")
            assert "NOT REACHED" in row(marks, "deadline met: Report to the regulator")
            failed = section(en, "## 4. What failed")
            for what in ("reporting deadline missed", "step took longer than planned",
                         "step unfinished when the drill ended", "planned step never reached"):
                assert what in failed, what
            assert "deadline met: Report to the regulator" in row(failed, "milestone not reached")
            assert "- **Region**: north" in en and "- **Branches**: BR-0417" in en
            timeline = section(en, "### 2.2 Timeline")
            for what in ("drill started", "injected", "incident began", "runbook started",
                         "acknowledged", "graded", "deadline missed", "message",
                         "incident closed", "drill ended"):
                assert f"| {what} |" in timeline, what
            assert "| drill ended |" in timeline.strip().splitlines()[-1]
            assert "DRILL" in row(timeline, "| message |", "| opened |")
            assert "*to be completed: follow-up fixes" in section(en, "## 6. Follow-ups")

            # Follow-ups are a person's text; then the report is archived, frozen.
            ok(bw(c, "drill", "edit", drill_id, "--set",
                  "followups=Replace the <b>UPS batteries</b> by July.",
                  "--set", "assessment=The plan worked; the notice was forgotten."))
            en = ok(bw(c, "drill", "report", drill_id, "--lang", "en"))
            assert "Replace the &lt;b>UPS batteries&lt;/b> by July." in section(
                en, "## 6. Follow-ups")
            html = ok(bw(c, "drill", "report", drill_id, "--lang", "en", "--format", "html"))
            assert html.startswith("<!DOCTYPE html>") and "<table>" in html
            assert "Replace the &lt;b&gt;UPS batteries&lt;/b&gt; by July." in html
            zh = ok(bw(c, "drill", "report", drill_id, "--lang", "zh"))
            assert zh.startswith("# 应急演练报告：网点停电")
            assert "超出方案" in row(section(zh, "### （一）预案步骤用时"), "find-cause")
            assert "报告超时" in section(zh, "## 四、存在的问题")
            assert "The plan worked" in section(zh, "## 五、演练评估")
            assert "Replace the" in section(zh, "## 六、整改措施")
            ok(bw(c, "drill", "archive", drill_id, "--why", "reviewed at the June meeting"))
            # The archived report as PDF too, by the incident reports' renderer.
            if pdf_problem() is None:
                saved = tmp_path / f"{drill_id}.zh.pdf"
                ok(bw(c, "drill", "report", drill_id, "--lang", "zh", "--format", "pdf",
                      "-o", str(saved)))
                text = subprocess.run(["pdftotext", "-layout", str(saved), "-"],
                                      capture_output=True, text=True, check=True).stdout
                assert "应急演练报告：网点停电" in text and "Replace the" in text
                shutil.copy(saved, reports_output() / saved.name)   # for a person to look at
            refused = bw(c, "drill", "edit", drill_id, "--set", "followups=later")
            assert refused.returncode == 1 and "frozen" in refused.stderr
            assert "archived" in row(ok(bw(c, "drill", "list")), drill_id)
            # From now on `report` gives the archived text, whatever the clock says.
            kept = ok(bw(c, "drill", "report", drill_id, "--lang", "en"))
            assert "- **State**: ended and archived" in kept and "by alice" in row(
                kept, "**Archived**") and section(kept, "## 4.") == section(en, "## 4.")
            clock.freeze(start + timedelta(hours=3))
            assert ok(bw(c, "drill", "report", drill_id, "--lang", "en")) == kept
        finally:
            assert c.stop() == 0
    for kind in ("drill.started", "drill.ended", "drill.archived", "drill.edited"):
        [(actor, data)] = audit(c, kind)
        assert actor == "alice" and data["drill"] == drill_id, kind
    assert audit(c, "drill.started")[0][1]["plan"] == "2026 年度网点停电应急演练"
    assert set(audit(c, "drill.archived")[0][1]["sha256"]) == {"zh.md", "zh.html", "en.md",
                                                               "en.html"}
    assert any(d["detail"].endswith("alice: drill over") for _, d in audit(c, "incident.closed"))


def test_a_real_fault_at_the_branch_during_a_drill_opens_its_own_incident(tmp_path):
    c = collector(tmp_path).start()
    try:
        out = ok(bw(c, "drill", "run", "line-cut", "--branch", "BR-0417", "--speed", "10"))
        drill_id = re.search(r"DRILL-\d{8}-[0-9a-f]{6}", out)[0]
        [drill] = incidents(c, "?drill=only")
        assert drill["title"] == "DRILL: network outage (line)"
        # A real service fault behind the drill's line outage: not suppressed, real.
        now = datetime.now().astimezone()
        send(c, "tcp/teller", now)
        [real] = wait_for(lambda: incidents(c), what="the real incident")
        assert real["drill"] is False and not real["title"].startswith("DRILL")
        assert [(f["agent"], f["suppressed"]) for f in real["faults"]] == [("a1", False)]
        # The drill's very check, for real: it joins the real incident.
        send(c, "line/primary/gateway", now + timedelta(seconds=1), diagnosis="line")
        wait_for(lambda: len(incidents(c)[0]["faults"]) == 2, what="the real line fault")
        # The drill's rehearsed failover report (at 40 s / 10) moves only the drill's runbook.
        wait_for(lambda: incidents(c, "?drill=only")[0]["runbooks"][0]["current"]
                 == "call-it-line", what="the drill's backup-line step done")
        [drill] = incidents(c, "?drill=only")
        assert {f["agent"] for f in drill["faults"]} == {f"drill:{drill_id}:BR-0417"}
        assert [a["check"] for a in drill["actions"]] == ["action/failover/fail_over",
                                                          "action/failover/verify_backup"]
        [real] = incidents(c)
        assert real["actions"] == [] and {f["agent"] for f in real["faults"]} == {"a1"}
        assert metric(c, "branchwatch_collector_incidents", status="open") == 1
        assert metric(c, "branchwatch_collector_drill_incidents", status="open") == 1
        assert len(incidents(c, "?drill=1")) == 2

        # Refusals: one line each, naming what is wrong.
        post = lambda body, token=OPERATOR: request(   # noqa: E731
            c.url + "/api/v1/drills", json.dumps(body).encode(), token)
        assert post({"scenario": "line-cut", "branch": "BR-0417"}, AGENT)[0] == 403
        assert request(c.url + "/api/v1/drills/DRILL-nope", None, OPERATOR)[0] == 404
        for body, problem in (
                ({"scenario": "region-outage"}, "region: scenario 'region-outage' strikes"),
                ({"scenario": "power-cut", "branch": "BR-9999"}, "branch: no enrolled agent"),
                ({"scenario": "power-cut", "branch": "BR-0417", "speed": 0}, "speed:"),
                ({"scenario_yaml": "id: x\ntitle: X\nevents: []\n", "branch": "BR-0417"},
                 "scenario: events")):
            status, data = post(body)
            assert status == 400 and problem in json.loads(data)["error"], data
        bad = bw(c, "drill", "run", "no-such-drill", "--branch", "BR-0417")
        assert bad.returncode == 2 and "scenario: no scenario 'no-such-drill'" in bad.stderr
        assert "Traceback" not in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

        ok(bw(c, "drill", "end", drill_id))
        assert api(c, f"/api/v1/incidents/{drill['id']}")["status"] == "closed"
        [real] = incidents(c)
        assert real["status"] == "open"            # ending a drill ends only the drill
        assert metric(c, "branchwatch_collector_incidents", status="open") == 1
    finally:
        assert c.stop() == 0
