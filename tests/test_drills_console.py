"""The drills page of the console in a real browser (Debian's Chromium through
Playwright) against a real collector process, in Chinese and in English
(domain.md §5): the form names every field, asks for the region a region
scenario needs, refuses a mistake in the page's language inside the console,
and a drill is ended, given its plan and archived from the console, audited
under the person's name. Screenshots: test-output/console/drill-*.png.
"""

from __future__ import annotations

import json

import pytest

from .support.collector import CollectorProcess, audit_records
from .support.console import USERS, chromium, console_yaml, login, screenshots
from .support.paths import REPO
from .test_collector_api import request
from collector.api import token_hash

AGENTS = {"n1": ("BR-N1", "north", "drills-console-token-north-1xxxx"),
          "n2": ("BR-N2", "north", "drills-console-token-north-2xxxx"),
          "s1": ("BR-S1", "south", "drills-console-token-south-1xxxx")}
OPERATOR, VIEWER = "drills-console-operator-token-xxxx", "drills-console-viewer-token-xxxxxx"
PLAN = REPO / "config" / "drills" / "plans" / "power-cut-2026.yaml"
WORDS = {
    "zh": {"labels": ["场景", "网点", "区域", "演练计划", "或上传计划文件（YAML）", "演练速度"],
           "need_region": "该场景针对整个区域：请选择区域", "bad_plan": "计划文件有误",
           "running": "进行中", "ended": "已结束", "archived": "已归档",
           "end_first": "请先结束演练再归档", "why": "请填写说明", "no_plan": "尚未附计划",
           "no_drill": "没有这个演练"},
    "en": {"labels": ["Scenario", "Branch", "Region", "Drill plan",
                      "or upload a plan file (YAML)", "Speed"],
           "need_region": "This scenario strikes a whole region: choose the region",
           "bad_plan": "The plan file is not valid", "running": "running", "ended": "ended",
           "archived": "archived", "end_first": "end it before archiving", "why": "Write why",
           "no_plan": "no plan attached", "no_drill": "No such drill"},
}


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    with CollectorProcess(tmp_path_factory.mktemp("drills-console"), AGENTS,
                          extra=console_yaml(refresh=1)
                          + "incidents: {window: 120, deadman_grace: 86400}\n"
                          + "operators:\n"
                          f"  - {{name: ops, roles: [operator], token_sha256: {token_hash(OPERATOR)}}}\n"
                          f"  - {{name: eve, roles: [viewer], token_sha256: {token_hash(VIEWER)}}}\n"
                          ) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def _page(browser, c, lang: str, user: str = "boss"):
    context = browser.new_context(locale="zh-CN" if lang == "zh" else "en-GB",
                                  viewport={"width": 1366, "height": 768})
    page = context.new_page()
    login(page, c.url, user)
    page.goto(c.url + f"/console/lang/{lang}?next=/console/drills")
    page.wait_for_selector("#drill-form")
    return context, page


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_form_names_its_fields_and_asks_for_the_region(collector, browser, lang):
    c, w, shots = collector, WORDS[lang], screenshots()
    context, page = _page(browser, c, lang)
    try:
        form = page.locator("#drill-form")
        # Every field has a visible label, in order, above its control.
        labels = form.locator("label")
        assert [labels.nth(i).inner_text().strip() for i in range(labels.count())] \
            == w["labels"]
        for i in range(labels.count()):
            label = labels.nth(i)
            control = page.locator("#" + label.get_attribute("for"))
            assert label.is_visible()
            assert label.bounding_box()["y"] + label.bounding_box()["height"] \
                <= control.bounding_box()["y"] + 1, label.inner_text()
        # The form sits under the page's title, not above it.
        assert page.locator("h1").first.bounding_box()["y"] < \
            page.locator("#drill-scenario").bounding_box()["y"]
        # The regions come from the fleet; a region scenario shows the region field.
        region_options = page.locator("#drill-region option").all_inner_texts()
        assert [o.split(" ")[0] for o in region_options[1:]] == ["north", "south"]
        assert "2" in region_options[1]          # north: two branches
        page.select_option("#drill-scenario", "power-cut")
        assert not page.locator("#drill-region").is_visible()
        page.select_option("#drill-scenario", "region-outage")
        assert page.locator("#drill-region").is_visible()
        assert page.locator("#drill-region").get_attribute("required") is not None
        page.screenshot(path=shots / f"drill-form-{lang}.png", full_page=True)

        # Without the region (a browser without script sends the form anyway): the
        # page again, 400, the reason in the page's language, the scenario kept.
        page.evaluate("document.getElementById('drill-region').required = false")
        with page.expect_navigation() as nav:
            page.click("#drill-form button[type=submit]")
        assert nav.value.status == 400
        assert page.locator("header.top").is_visible()          # inside the console
        error = page.inner_text("#drill-error")
        assert w["need_region"] in error and "--region" not in error
        assert page.input_value("#drill-scenario") == "region-outage"
        assert page.locator("#drill-region[aria-invalid=true]").count() == 1
        page.screenshot(path=shots / f"drill-refused-{lang}.png", full_page=True)

        # A plan that is not a plan: refused in the page's language, naming the key.
        bad = {"name": "plan.yaml", "mimeType": "text/yaml",
               "buffer": b"title: x\nowner: [not, text]\n"}
        page.set_input_files("#drill-plan-upload", bad)
        page.select_option("#drill-scenario", "power-cut")
        page.select_option("#drill-branch", "BR-N1")
        with page.expect_navigation() as nav:
            page.click("#drill-form button[type=submit]")
        assert nav.value.status == 400
        assert w["bad_plan"] in page.inner_text("#drill-error")

        # A drill that does not exist: the drills page, 404, said in the page's language.
        answer = page.goto(c.url + "/console/drills/DRILL-nope")
        assert answer.status == 404 and page.locator("#drill-form").count() == 1
        assert w["no_drill"] in page.inner_text("#drill-error")
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_region_drill_is_started_planned_ended_and_archived(collector, browser, lang):
    c, w, shots = collector, WORDS[lang], screenshots()
    context, page = _page(browser, c, lang)
    try:
        page.select_option("#drill-scenario", "region-outage")
        page.select_option("#drill-region", "north")
        page.select_option("#drill-speed", "10")
        with page.expect_navigation():
            page.click("#drill-form button[type=submit]")
        assert "/console/drills/DRILL-" in page.url
        did = page.url.rsplit("/", 1)[1]
        assert page.inner_text("#drill-status") == w["running"]
        assert "BR-N1, BR-N2" in page.inner_text("table.drill-facts")
        assert "10" in page.inner_text("#drill-speed-shown")
        assert w["no_plan"] in page.inner_text("#drill-plan-title")
        # The page follows the running drill by itself: its incident shows up in place.
        page.evaluate("window.__stillHere = true")
        page.wait_for_selector("#live table.incidents tr.incident", timeout=15000)
        assert page.evaluate("window.__stillHere") is True

        # Archive before it ended: refused (409), said in the page's language.
        assert page.locator("#archive-form").count() == 0     # not offered while running
        # Attach the plan uploaded from a file (a plan for another scenario is refused).
        page.set_input_files("#plan-upload", str(PLAN))
        with page.expect_navigation() as nav:
            page.click("#plan-form button[type=submit]")
        assert nav.value.status == 400        # the shipped plan plans power-cut
        page.set_input_files("#plan-upload", {
            "name": "north-2026.yaml", "mimeType": "text/yaml",
            "buffer": ("title: 北区全网点中断演练\ntime: '2026-11-20 15:00'\ncontent: 核心系统中断\n"
                       "basis: 第十五條\npurpose: 检验区域应急\nowner: 科技部 张伟\n"
                       "scenario: region-outage\n").encode()})
        with page.expect_navigation():
            page.click("#plan-form button[type=submit]")
        assert "北区全网点中断演练" in page.inner_text("#drill-plan-title")

        # End it, then archive (the why is required).
        page.fill("#end-why", "north drill over" if lang == "en" else "演练完毕")
        with page.expect_navigation():
            page.click("#end-form button[type=submit]")
        assert page.inner_text("#drill-status") == w["ended"]
        # Its incident (one cause at the region's branches), closed by the end.
        assert page.locator("table.incidents tr.incident").count() == 1
        with page.expect_navigation() as nav:
            page.click("#archive-form button[type=submit]")
        assert nav.value.status == 400 and w["why"] in page.inner_text("#drill-error")
        page.fill("#archive-why", "reviewed" if lang == "en" else "已在例会复盘")
        with page.expect_navigation():
            page.click("#archive-form button[type=submit]")
        assert page.inner_text("#drill-status") == w["archived"]
        assert page.locator("#end-form, #plan-form, #archive-form").count() == 0
        page.screenshot(path=shots / f"drill-archived-{lang}.png", full_page=True)

        # The list shows it archived, in the page's language.
        page.goto(c.url + "/console/drills")
        assert page.inner_text(f"tr[data-drill='{did}'] .drill-status") == w["archived"]
    finally:
        context.close()

    # Audited under the person's name, as the CLI's acts are.
    for kind in ("drill.started", "drill.plan_attached", "drill.ended", "drill.archived"):
        mine = [(a, d) for a, d in audit_records(c, kind) if d["drill"] == did]
        assert [a for a, _ in mine] == ["boss"], (kind, mine)
    [(_, started)] = [(a, d) for a, d in audit_records(c, "drill.started") if d["drill"] == did]
    assert started["speed"] == 10 and started["region"] == "north"
    [(_, attached)] = [(a, d) for a, d in audit_records(c, "drill.plan_attached")
                       if d["drill"] == did]
    assert attached["plan"] == "北区全网点中断演练" and attached["source"].startswith("uploaded")


def test_a_viewer_cannot_run_or_end_drills(collector, browser):
    c = collector
    context = browser.new_context()
    page = context.new_page()
    try:
        login(page, c.url, "vera")
        page.goto(c.url + "/console/drills")
        assert page.locator("#drill-form").count() == 0
        csrf = page.evaluate("document.querySelector('input[name=csrf]').value")
        answer = page.request.post(c.url + "/console/drills",
                                   form={"csrf": csrf, "scenario": "region-outage",
                                         "region": "north"})
        assert answer.status == 403
    finally:
        context.close()
    assert USERS["vera"][0] == ["viewer"]


def test_the_api_attaches_a_plan_by_file_name(collector):
    """POST /api/v1/drills/{id}/plan {plan_file}: a file of plans/ by name, never a path;
    the operator's role as for the CLI."""
    def post(path: str, body: dict, token: str = OPERATOR):
        return request(collector.url + path, json.dumps(body).encode(), token)
    status, data = post("/api/v1/drills", {"scenario": "power-cut", "branch": "BR-S1"})
    assert status == 201, data
    did = json.loads(data)["id"]
    status, data = post(f"/api/v1/drills/{did}/plan", {"plan_file": "../power-cut.yaml"})
    assert status == 400 and b"no plan '../power-cut.yaml'" in data
    status, data = post(f"/api/v1/drills/{did}/plan", {"plan_file": "power-cut-2026.yaml"},
                        VIEWER)
    assert status == 403, data
    status, data = post(f"/api/v1/drills/{did}/plan", {"plan_file": "power-cut-2026.yaml"})
    assert status == 200, data
    assert json.loads(data)["plan"]["title"] == "2026 年度网点停电应急演练"
    assert [a for a, d in audit_records(collector, "drill.plan_attached")
            if d["drill"] == did] == ["ops"]
    # Once archived, the plan is frozen with the rest (第二十四條).
    assert post(f"/api/v1/drills/{did}/end", {})[0] == 200
    assert post(f"/api/v1/drills/{did}/archive", {"why": "done"})[0] == 200
    status, data = post(f"/api/v1/drills/{did}/plan", {"plan_file": "power-cut-2026.yaml"})
    assert status == 409 and b"archived" in data, data


def test_the_cli_attaches_a_plan(collector, tmp_path):
    """`branchwatch drill plan ID --plan FILE`: the same route, as the operator."""
    import os
    import subprocess
    import sys

    def bw(*args, token=OPERATOR):
        return subprocess.run([sys.executable, "-m", "collector.cli", "drill", *args,
                               "--url", collector.url], cwd=REPO, capture_output=True,
                              text=True, timeout=60, env={**os.environ,
                                                          "BRANCHWATCH_TOKEN": token})
    status, data = request(collector.url + "/api/v1/drills",
                           json.dumps({"scenario": "power-cut", "branch": "BR-N2"}).encode(),
                           OPERATOR)
    did = json.loads(data)["id"]
    out = bw("plan", did, "--plan", str(PLAN))
    assert out.returncode == 0, out.stderr
    assert "plan: 2026 年度网点停电应急演练" in out.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: x\n", encoding="utf-8")
    out = bw("plan", did, "--plan", str(bad))
    assert out.returncode == 2 and "plan: time: missing" in out.stderr, out.stderr
    out = bw("plan", did, "--plan", str(tmp_path / "missing.yaml"))
    assert out.returncode == 2 and "missing.yaml" in out.stderr


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_form_fits_a_phone(collector, browser, lang):
    """At 390 px every label and control of the form is within the screen, one under
    the other (screenshots: drill-form-phone-{zh,en}.png)."""
    context, page = _page(browser, collector, lang)
    try:
        page.set_viewport_size({"width": 390, "height": 844})
        page.select_option("#drill-scenario", "region-outage")
        boxes = [page.locator(sel).bounding_box() for sel in (
            "#drill-scenario", "#drill-branch", "#drill-region", "#drill-plan",
            "#drill-plan-upload", "#drill-speed", "#drill-form button[type=submit]")]
        assert all(b["x"] >= 0 and b["x"] + b["width"] <= 390 for b in boxes), boxes
        assert [b["y"] for b in boxes] == sorted(b["y"] for b in boxes)
        page.screenshot(path=screenshots() / f"drill-form-phone-{lang}.png", full_page=True)
    finally:
        context.close()
