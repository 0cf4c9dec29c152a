"""The console at phone width (390 px) and on a laptop (1366 px), in Chinese
and English, in Debian's Chromium through Playwright, against a real
collector with 80 branches in 4 regions.

Every page is checked for what a person reads (not only that it loads) and
fails on horizontal overflow (document.scrollingElement.scrollWidth >
innerWidth). At 390 px: tables are cards, nav words sit on one line (no
事/件 stacked), 中文 and 退出 stay on the header, Acknowledge stays on
screen at the bottom of a long incident page. Screenshots go to
test-output/console/ (or $BRANCHWATCH_TEST_OUTPUT) for a person to look at.
"""

from __future__ import annotations

import pytest

from .support.collector import CollectorProcess
from .support.console import chromium, console_yaml, fault_batch, heartbeat, login, screenshots
from .test_collector_api import request
from .test_delivery_e2e import wait_for

REGIONS = ("north", "south", "east", "west")
AGENTS = {f"a{n:02d}": (f"BR-{REGIONS[n % 4][0].upper()}{n:02d}", REGIONS[n % 4],
                        f"responsive-agent-token-{n:02d}-xxxx") for n in range(80)}
GRAFANA = "http://127.0.0.1:3000"
WIDTHS = {"phone": (390, 844), "laptop": (1366, 768)}

OVERFLOW = "document.scrollingElement.scrollWidth - window.innerWidth"


def send(c, agent: str, body: bytes, path: str = "events") -> None:
    status, data = request(f"{c.url}/api/v1/{path}", body, AGENTS[agent][2])
    assert status in (200, 204), data


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    with CollectorProcess(tmp_path_factory.mktemp("responsive"), AGENTS,
                          extra=console_yaml(refresh=5) + f"  grafana_url: {GRAFANA}\n") as c:
        for agent, (branch, region, _) in AGENTS.items():
            checks = {"ups/main/on_battery": ("ok", "on mains"),
                      "ups/main/battery_charge": ("ok", "battery charge 96%"),
                      "ups/main/battery_runtime": ("ok", "battery runtime 38.0 min"),
                      "ups/main/load": ("ok", "load 27%"),
                      "line/primary/core": ("ok", "reachable, 4 ms"),
                      "switch/funds/if/1/oper": ("ok", "up")}
            send(c, agent, heartbeat(agent, branch, region, checks), "heartbeat")
        # Three branches in trouble: a power cut (runbook with person steps), a core
        # system out of reach, a UPS that cannot be seen.
        send(c, "a05", fault_batch("a05", AGENTS["a05"][0], "ups/main/on_battery", "critical",
                                   "on battery: mains lost (ups.status OB DISCHRG)"))
        send(c, "a10", fault_batch("a10", AGENTS["a10"][0], "tcp/core-system", "critical",
                                   "connection to the core system refused"))
        send(c, "a33", fault_batch("a33", AGENTS["a33"][0], "ups/main/comm", "critical",
                                   "cannot see the UPS: upsd did not answer in time"))
        yield c


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def no_sideways_scroll(page, name: str) -> None:
    over = page.evaluate(OVERFLOW)
    assert over <= 0, f"{name}: the page scrolls sideways by {over} px"


def header_fits(page, name: str, width: int) -> None:
    """Nav words on one line each; the language switch and logout inside the header."""
    boxes = page.evaluate("""() => {
        const r = e => { const b = e.getBoundingClientRect(); return [b.left, b.top, b.right, b.bottom]; };
        const lh = parseFloat(getComputedStyle(document.querySelector('header.top nav a')).lineHeight)
                   || 22;
        return {nav: [...document.querySelectorAll('header.top nav a')].map(a => [a.textContent, r(a)]),
                lang: r(document.querySelector('a.lang')),
                logout: r(document.querySelector('header.top form button')),
                header: r(document.querySelector('header.top')), lh};
    }""")
    for text, (left, top, right, bottom) in boxes["nav"]:
        assert bottom - top < 1.6 * boxes["lh"], f"{name}: nav {text!r} wraps ({bottom - top} px)"
    hx0, hy0, hx1, hy1 = boxes["header"]
    for what in ("lang", "logout"):
        x0, y0, x1, y1 = boxes[what]
        assert hy0 <= y0 and y1 <= hy1 and 0 <= x0 and x1 <= width, \
            f"{name}: {what} is off the header: {boxes[what]} in {boxes['header']}"


def visit(page, url: str, name: str, width: int, shots, lang: str) -> None:
    page.goto(url)
    page.wait_for_selector("main")
    no_sideways_scroll(page, name)
    header_fits(page, name, width)
    page.screenshot(path=shots / f"{name}.png", full_page=True)


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("size", list(WIDTHS))
def test_every_page_reads_at_this_width(fleet, browser, size, lang):
    c, shots = fleet, screenshots()
    width, height = WIDTHS[size]
    context = browser.new_context(viewport={"width": width, "height": height},
                                  locale="zh-CN" if lang == "zh" else "en-US")
    context.add_cookies([{"name": "bw_lang", "value": lang, "url": c.url + "/console/"}])
    page = context.new_page()
    page.goto(c.url + "/console/login")
    no_sideways_scroll(page, f"login-{size}-{lang}")
    login(page, c.url, "boss")
    words = {"zh": {"incidents": "未结事件", "ack": "确认收到", "branches": "网点",
                    "problems": "仅看有问题的", "history": "历史事件", "charge": "电池电量",
                    "changes": "全部状态变化", "closed": "已关闭", "on_battery": "电池供电",
                    "on_mains": "市电供电"},
             "en": {"incidents": "Open incidents", "ack": "Acknowledge", "branches": "Branches",
                    "problems": "Problems only", "history": "History", "charge": "Battery charge",
                    "changes": "Every state change", "closed": "closed", "on_battery": "on battery",
                    "on_mains": "on mains"}}[lang]
    tag = f"{size}-{lang}"

    # Incidents: three open, most severe first; cards on a phone.
    visit(page, c.url + "/console/incidents", f"incidents-{tag}", width, shots, lang)
    wait_for(lambda: page.locator("tr.incident").count() == 3 or page.reload() and False,
             timeout=20)
    assert words["incidents"] in page.inner_text("h1")
    thead = page.locator("table.incidents thead").first
    assert thead.is_visible() == (size == "laptop")
    power = page.locator(f"tr.incident:has-text('{AGENTS['a05'][0]}')")
    assert power.count() == 1
    incident = power.get_attribute("data-incident")

    # One incident: long on a phone, Acknowledge stays on the screen while scrolling.
    visit(page, f"{c.url}/console/incidents/{incident}", f"incident-{tag}", width, shots, lang)
    assert page.locator("#runbooks .step").count() >= 2
    bar = page.locator("#action-bar")
    if size == "phone":
        page.mouse.wheel(0, 20000)
        wait_for(lambda: page.evaluate("window.scrollY") > 0, timeout=10)
        box = bar.bounding_box()
        assert box and box["y"] + box["height"] <= height + 1 and box["y"] >= height - 120
        assert words["ack"] in bar.inner_text()
        page.screenshot(path=shots / f"incident-scrolled-{tag}.png")
        if lang == "en":
            # Confirming the current step from the bar, far below the runbook.
            step = page.get_attribute("#runbooks .step.current", "data-step")
            page.click("#bar-confirm")
            page.wait_for_selector(f"#runbooks .step.done[data-step='{step}']")
            assert "boss" in page.inner_text(f"#runbooks .step.done[data-step='{step}']")
            assert page.get_attribute("#runbooks .step.current", "data-step") != step
    else:
        assert not bar.is_visible()          # the aside beside the page holds the actions
        assert page.locator("#ack-form button").is_visible()
    grade = page.locator("select[name=grade]").first
    assert grade.input_value() == ""         # no grade chosen in advance

    # The branches grid: 80 tiles by region; problems only leaves the three.
    visit(page, c.url + "/console/branches", f"branches-{tag}", width, shots, lang)
    assert page.locator("a.tile").count() == 80
    assert page.locator("section.region").count() == 4
    assert page.inner_text("#branch-count").strip() == "80 / 80"
    if size == "laptop":
        # Reads at 80: every tile on one screen and a half at most.
        last = page.locator("a.tile").last.bounding_box()
        assert last["y"] + last["height"] < 1.5 * height, last
    page.click("#problems-only")
    page.wait_for_selector("#show-all")
    assert page.locator("a.tile").count() == 3
    assert {page.locator("a.tile").nth(i).get_attribute("data-state") for i in range(3)} \
        <= {"critical", "warning", "unknown", "silent"}
    no_sideways_scroll(page, f"branches-problems-{tag}")
    page.screenshot(path=shots / f"branches-problems-{tag}.png", full_page=True)

    # The branch page from its tile.
    page.click(f"#branch-{AGENTS['a05'][0]}")
    page.wait_for_selector("#ups")
    no_sideways_scroll(page, f"branch-{tag}")
    ups = page.inner_text("#ups")
    assert words["charge"] in ups and "96%" in ups and "27%" in ups
    # The power cut came after the last heartbeat: the page says so, not "on mains".
    assert words["on_battery"] in ups and words["on_mains"] not in ups
    assert words["changes"] in page.inner_text("#changes")
    assert "mains lost" in page.inner_text("#changes")
    assert page.get_attribute("#grafana-link", "href").startswith(
        GRAFANA + "/d/branchwatch/branchwatch?")
    page.screenshot(path=shots / f"branch-{tag}.png", full_page=True)

    # History: everything, searched.
    visit(page, c.url + "/console/history", f"history-{tag}", width, shots, lang)
    assert words["history"] in page.inner_text("h1")
    assert page.locator("tr.incident").count() == 3
    page.fill("input[name=q]", "core")
    page.click("#history-form button[type=submit]")
    page.wait_for_url("**q=core**")
    assert page.locator("tr.incident").count() == 1
    no_sideways_scroll(page, f"history-search-{tag}")

    # The drills page fits too.
    visit(page, c.url + "/console/drills", f"drills-{tag}", width, shots, lang)
    context.close()


def test_a_resolved_incident_reads_finished_and_closes_once(fleet, browser):
    """The core system comes back: the runbook step waiting for a person is not
    needed, the run is done, its other branches are not "pending"; leadership
    closes the incident once, and it is found in the history as closed."""
    c, shots = fleet, screenshots()
    branch = AGENTS["a10"][0]
    send(c, "a10", fault_batch("a10", branch, "tcp/core-system", "ok",
                               "connected to the core system", old="critical"))
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    page = context.new_page()
    login(page, c.url, "boss")
    page.goto(f"{c.url}/console/history?branch={branch}")
    incident = page.get_attribute("tr.incident", "data-incident")
    page.goto(f"{c.url}/console/incidents/{incident}")
    page.wait_for_selector("#runbooks .run.done", timeout=15000)    # the live region updates
    steps = page.locator("#runbooks .step")
    marks = [steps.nth(i).get_attribute("class") for i in range(steps.count())]
    assert any("not_needed" in m for m in marks) and not any("pending" in m for m in marks)
    assert "无需执行" in page.inner_text("#runbooks") and "未执行" in page.inner_text("#runbooks")
    assert "事件已恢复，此步骤无需执行" in page.inner_text("#runbooks")
    # On a phone the primary action of a resolved incident is Close, in reach.
    assert page.locator("#action-bar #to-close").is_visible()
    # The fault says when and why it cleared, beside what it had been.
    faults = page.inner_text("#faults")
    assert "恢复于" in faults and "connected to the core system" in faults
    assert "原故障" in faults and "refused" in faults
    no_sideways_scroll(page, "incident-resolved-phone-zh")
    page.screenshot(path=shots / "incident-resolved-phone-zh.png", full_page=True)
    # Its written report, drafted and read on the phone.
    page.click("#draft-report")
    page.wait_for_selector("#reports li.report")
    page.click("#reports li.report a.edit-report")
    page.wait_for_selector("#report-text")
    assert incident in page.inner_text("#report-text")
    no_sideways_scroll(page, "report-phone-zh")
    page.screenshot(path=shots / "report-phone-zh.png", full_page=True)
    page.goto(f"{c.url}/console/incidents/{incident}")
    # Close, once: afterwards nothing offers it, and the history finds it closed.
    page.fill("#close-form input[name=why]", "核心系统恢复，已复核")
    page.click("#close-form button")
    page.wait_for_selector("#status.closed")
    assert page.locator("#close-form").count() == 0 and page.locator("#action-bar").count() == 0
    # A branch page follows the branch live: a new reading shows without a reload.
    page.goto(f"{c.url}/console/branches/{AGENTS['a05'][0]}")
    page.evaluate("window.__stillHere = true")
    send(c, "a05", fault_batch("a05", AGENTS["a05"][0], "ups/main/battery_charge", "warning",
                               "battery charge 41% below 50%"))
    page.wait_for_selector("#ups [data-reading=battery_charge] .value:has-text('41%')",
                           timeout=15000)
    assert page.evaluate("window.__stillHere") is True
    page.goto(f"{c.url}/console/history?status=closed")
    assert [page.locator("tr.incident").nth(i).get_attribute("data-incident")
            for i in range(page.locator("tr.incident").count())] == [incident]
    assert "已关闭" in page.inner_text("tr.incident")
    context.close()
