"""`branchwatch demo` (the README's first command): the collector, three
simulated branches and a data centre in one province, in one process, no root and no installed servers. The
demo runs headless to the end of its story; then what it printed, what the
collector stored (collector.db) and the reports it saved are checked.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import signal
import subprocess
import sys
import threading
from datetime import datetime

import pytest

from .support.console import chromium, screenshots
from .support.paths import REPO, terminate

SPEED = 8


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo to the end of its story; then, with its console still up (as a
    visitor finds it), the console in a real browser; then Ctrl-C."""
    data = tmp_path_factory.mktemp("demo") / "data"
    proc = subprocess.Popen([sys.executable, "-m", "agent.cli", "demo", "--port", "0",
                             "--speed", str(SPEED), "--no-browser", "--data-dir", str(data)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    lines, timer = [], threading.Timer(240, proc.kill)     # a hung demo fails, never hangs
    timer.start()
    errors: list[str] = []                   # drained as it comes: a full pipe would block
    drain = threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)
    drain.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Everything keeps running"):     # the story and its summary
                break
        console = "".join(lines)
        seen = browse(re.search(r"console  (http://\S+)/console/", console)[1]) \
            if "story over" in console else {}
        proc.send_signal(signal.SIGINT)
        # Read on from the same file object: lines it has buffered are not in the pipe.
        out = proc.stdout.read()
        proc.wait(timeout=60)
        drain.join(10)
        err = "".join(errors)
    finally:
        timer.cancel()
        terminate(proc)
    r = subprocess.CompletedProcess(proc.args, proc.returncode, console + out, err)
    return r, data, seen


def browse(url: str) -> dict:
    """Log in as the demo's user; screenshots of the main pages (test-output/console/)."""
    try:
        browser_cm = chromium()
        browser = browser_cm.__enter__()
    except pytest.skip.Exception as e:
        return {"skipped": str(e)}
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/console/incidents")
        page.fill("input[name=user]", "demo")
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        page.wait_for_selector("#who")
        shots = screenshots()
        page.screenshot(path=shots / "demo-incidents.png", full_page=True)
        resolved = page.inner_text("#live")
        page.click("tr.incident a")
        page.wait_for_selector("#runbooks")
        page.screenshot(path=shots / "demo-incident.png", full_page=True)
        incident = page.inner_text("#live")
        page.goto(url + "/console/branches")
        page.wait_for_selector(".tile")
        page.screenshot(path=shots / "demo-branches.png", full_page=True)
        return {"incidents": resolved, "incident": incident,
                "tiles": page.locator(".tile").count()}
    finally:
        browser_cm.__exit__(None, None, None)


def stored(data) -> tuple[list[dict], list[tuple], list[tuple]]:
    """Incidents (as the collector keeps them), action events and reports."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'collector.db'}?mode=ro",
                                            uri=True)) as db:
        incidents = [json.loads(body) for (body,) in
                     db.execute("SELECT body FROM incidents ORDER BY opened_at")]
        for inc in incidents:           # faults are rows of their own
            inc["faults"] = [json.loads(b) for (b,) in db.execute(
                "SELECT body FROM incident_faults WHERE incident = ? ORDER BY pos",
                (inc["id"],))]
        actions = db.execute("SELECT agent, check_name, new_state FROM events "
                             "WHERE kind = 'action' ORDER BY observed_at").fetchall()
        reports = db.execute("SELECT id, incident, kind, status FROM reports "
                             "ORDER BY created_at").fetchall()
    return incidents, actions, reports


def with_fault(incidents: list[dict], check: str, branch: str) -> dict:
    [inc] = [i for i in incidents
             if any(f["check"] == check and f["branch"] == branch for f in i["faults"])]
    return inc


def steps(run: dict) -> dict[str, dict]:
    return {r["step"]: r for r in run["records"]}


def test_the_story_plays_to_the_end(demo):
    r, _, _ = demo
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr
    out = r.stdout
    assert re.search(r"console  http://127\.0\.0\.1:\d+/console/  \(user demo, password demo\)",
                     out), out[:2000]
    # One progress line per scene, readable in a pipe, and the end of the story.
    scenes = re.findall(r"^\[\s*(\d+)/12\] \[[#.]{24}\] \d+:\d\d  (.+)$", out, re.M)
    assert [int(n) for n, _ in scenes] == list(range(1, 13)), scenes
    assert scenes[-1][1] == "story over"
    for said in (r"UPS on battery", r"runbook power-cut .* started",
                 r"generator-stable done by itself: 180 s passed",
                 r"agent-south-01: fail_over ok: .*admin up: done",
                 r"switch sw-br-south-01 now: gi2 admin up, oper up",
                 r"agent-south-01: swap_back ok", r"gi2 admin down, oper down",
                 r"grade III 较大 \(rule iii-1-region-30m", r"grade II 重大 \(rule ii-1-region-3h",
                 r"grade I 特别重大 \(rule i-1-region-6h",
                 # domain.md §2.1: by a share of the province's branches, then its key site.
                 r"why: 2 of 3 branches in 四川 cannot do business since \S+ \(business time 30 min",
                 r"why: (2 of 3 branches in 四川 and )?the key site DC-01 of 四川 cannot do business",
                 r"deadline regulator-notice: .*due", r"deadline written-report: .*due",
                 r"grades went none -> III -> II -> I"):
        assert re.search(said, out), f"not printed: {said}\n{out}"
    # Each story line carries the time it happened.
    assert re.search(r"^\d\d:\d\d:\d\d ◆ collector: incident INC-\S+ opened", out, re.M)


def test_the_power_cut_ran_the_generator_runbook(demo):
    r, data, _ = demo
    incidents, _, _ = stored(data)
    inc = with_fault(incidents, "ups/main/on_battery", "BR-north-01")
    assert inc["status"] == "closed" and inc["closed"]["who"] == "demo"
    [run] = inc["runbooks"]
    assert (run["runbook"]["id"], run["status"]) == ("power-cut", "done")
    done = steps(run)
    assert done["long-outage"]["choice"] == "long"
    assert done["generator-stable"]["status"] == "done" and done["generator-stable"]["who"] is None
    # domain.md §4: held open on the generator; mains back (a person) ended it.
    assert done["on-generator"]["status"] == done["off-generator"]["status"] == "done"
    assert done["wait-ups"]["status"] == "done" and "wait-mains" not in done
    assert all(done[s]["who"] == "demo" for s in ("find-cause", "start-generator", "mains-back",
                                                   "review"))
    [held] = [f for f in inc["faults"] if f["check"] == "power/generator"]
    assert held["agent"] == "collector" and held["spans"][-1][1] is not None
    # It resolved when mains came back, not when the UPS saw the generator's output.
    ups = next(f for f in inc["faults"] if f["check"] == "ups/main/on_battery")
    assert datetime.fromisoformat(inc["resolved_at"]) == datetime.fromisoformat(
        held["spans"][-1][1]) > datetime.fromisoformat(ups["spans"][-1][1])


def test_the_line_cut_failed_over_and_back(demo):
    r, data, _ = demo
    incidents, actions, _ = stored(data)
    inc = with_fault(incidents, "line/primary/gw", "BR-south-01")
    assert inc["title"] == "network outage (line)"
    [run] = inc["runbooks"]
    assert run["runbook"]["id"] == "network-fault"
    done = steps(run)
    assert done["diagnose"]["choice"] == "line"
    assert done["backup-line"]["status"] == "done"
    assert done["backup-line"]["note"].startswith("agent: ")
    # The swap back came after the repaired line resolved the incident: it still
    # completed the runbook (no person, no false plan failure).
    assert done["swap-back"]["status"] == "done" and done["swap-back"]["who"] is None
    assert run["status"] == "done" and not [s for s in run["records"] if s["status"] == "failed"]
    # The agent's own steps, stored as events: over to the backup and back, each verified.
    south = [(check.rsplit("/", 1)[1], state) for agent, check, state in actions
             if agent == "agent-south-01" and check.startswith("action/failover/")]
    assert south == [("fail_over", "ok"), ("verify_backup", "ok"), ("swap_back", "ok"),
                     ("verify_primary", "ok")]
    assert not [a for a in actions if a[0] != "agent-south-01"]


def test_the_province_outage_was_graded_upwards_with_deadlines_and_reports(demo):
    r, data, _ = demo
    incidents, _, reports = stored(data)
    inc = with_fault(incidents, "tcp/core", "DC-01")
    assert {f["branch"] for f in inc["faults"]} == {"BR-north-01", "BR-north-02", "DC-01"}
    assert inc["title"] == "core system unreachable: 3 branches"
    assert inc["status"] == "resolved"
    grade = inc["grades"]["cbrc"]
    assert [h["grade"] for h in grade["history"]] == [None, "III", "II", "I"]
    # One province (domain.md §2.1): 30 min, 3 h and 6 h of it out, never "2 regions".
    assert [h["rule"] for h in grade["history"][1:]] == ["iii-1-region-30m", "ii-1-region-3h",
                                                         "i-1-region-6h"]
    due = {d["key"]: d for d in inc["deadlines"]}
    assert (due["regulator-notice"]["status"], due["regulator-notice"]["met_by"]) == ("met", "demo")
    assert due["written-report"]["status"] == "met"
    # Grade I planned a progress report 2 h on (printed while it was open); the
    # incident ended before it was due, so it may be gone now (domain.md §3).
    assert re.search(r"deadline progress-1: .*due .*\[due\]", r.stdout)
    assert due.get("progress-1", {"status": "due"})["status"] == "due"
    mine = [(rid, kind, status) for rid, incident, kind, status in reports
            if incident == inc["id"]]
    assert mine == [(f"{inc['id']}-W1", "written", "issued"),
                    (f"{inc['id']}-P1", "progress", "draft"),
                    (f"{inc['id']}-S1", "summary", "draft")]
    for rid, _, _ in mine:
        for fmt in ("md", "html"):
            path = data / "reports" / f"{rid}.{fmt}"
            text = path.read_text(encoding="utf-8")
            assert inc["id"] in text and len(text) > 500, path
            assert str(path) in r.stdout
    assert "（演示）核心系统" in (data / "reports" / f"{inc['id']}-W1.md").read_text("utf-8")
    # Only the story's three incidents: nothing else went wrong on the way.
    assert len(incidents) == 3, [(i["title"], i["branch"]) for i in incidents]


def test_the_console_shows_what_the_story_left(demo):
    _, _, seen = demo
    if "skipped" in seen:
        pytest.skip(seen["skipped"])
    assert seen["tiles"] == 4
    assert "核心系统不可达：3 个网点" in seen["incidents"]          # the zh console
    assert re.search(r"cbrc I 特别重大", seen["incidents"]), seen["incidents"]
    # Its page: the reports the story drafted, ready to download.
    assert all(f"-{r}" in seen["incident"] for r in ("W1", "P1", "S1")), seen["incident"]


def test_a_data_dir_in_use_is_refused(tmp_path):
    (tmp_path / "collector.db").write_bytes(b"")
    r = subprocess.run([sys.executable, "-m", "agent.cli", "demo", "--port", "0",
                        "--no-browser", "--data-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=60, cwd=REPO,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 2
    assert "already holds a collector's data" in r.stderr
