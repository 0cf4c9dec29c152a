"""The web console in a real headless browser (issue 8): Debian's Chromium,
driven by Playwright, against a real collector process on 127.0.0.1.

An operator logs in, sees an incident appear without reloading the page,
acknowledges it, confirms a runbook step, drafts and downloads the report;
a viewer sees no buttons; an idle session expires while the page polls;
every action is in the audit trail under the person's name. Screenshots of
the main pages go to test-output/console/ (or $BRANCHWATCH_TEST_OUTPUT).
"""

from __future__ import annotations

import re

import pytest

from .support.collector import CollectorProcess, audit_records
from .support.notify import HttpSink, notify_yaml
from .support.console import (chromium, console_yaml, fault_batch, heartbeat, login,
                              screenshots)
from .test_collector_api import request
from .test_delivery_e2e import wait_for

TOKENS = {"a1": "console-agent-token-north-1", "a2": "console-agent-token-south-1"}
AGENTS = {"a1": ("BR-N1", "north", TOKENS["a1"]), "a2": ("BR-S1", "south", TOKENS["a2"])}


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    with HttpSink() as hook, CollectorProcess(
            tmp_path_factory.mktemp("console"), AGENTS,
            extra=console_yaml(refresh=1) + notify_yaml(hook.url)) as c:
        yield c


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def send(c, agent: str, body: bytes, path: str = "events") -> None:
    status, data = request(f"{c.url}/api/v1/{path}", body, TOKENS[agent])
    assert status in (200, 204), data


def test_operator_works_an_incident_end_to_end(collector, browser, tmp_path):
    c, shots = collector, screenshots()
    send(c, "a2", heartbeat("a2", "BR-S1", "south", {"ups/main/on_battery": ("ok", "on mains"),
                                                     "line/primary/core": ("ok", "reachable")}),
         "heartbeat")
    context = browser.new_context(accept_downloads=True, locale="zh-CN")
    page = context.new_page()
    page.goto(c.url + "/console/incidents")
    assert "/console/login" in page.url            # not logged in: the login page
    page.screenshot(path=shots / "login.png")
    login(page, c.url, "alice")
    assert page.inner_text("#who").startswith("alice")
    assert page.locator("tr.incident").count() == 0

    # The incident appears live: the same page (no navigation) polls its fragment.
    page.evaluate("window.__stillHere = true")
    send(c, "a1", fault_batch("a1", "BR-N1", "ups/main/on_battery", "critical",
                              "on battery: mains lost"))
    row = page.wait_for_selector("tr.incident", timeout=15000)
    assert page.evaluate("window.__stillHere") is True
    incident = row.get_attribute("data-incident")
    assert "BR-N1" in row.inner_text() and "未确认" in row.inner_text()
    page.screenshot(path=shots / "incidents-zh.png", full_page=True)

    # Acknowledge from the list.
    page.click(f"#row-{incident} button.ack-button")
    page.wait_for_selector(f"#row-{incident} .acked")
    assert "alice" in page.inner_text(f"#row-{incident} .acked")
    assert any(actor == "alice" and incident in str(data)
               for actor, data in audit_records(c, "incident.acknowledged"))

    # The incident page: the power-cut runbook's first step, confirmed with a note.
    page.click(f"a[href='/console/incidents/{incident}']")
    page.wait_for_selector("#runbooks .step.current")
    step = page.get_attribute("#runbooks .step.current", "data-step")
    # What a person types survives the live updates around it.
    page.evaluate("""window.__swaps = 0;
        document.body.addEventListener('htmx:afterSwap', () => window.__swaps++)""")
    page.fill("#runbooks .step.current input[name=note]", "找到原因：市电停电")
    wait_for(lambda: page.evaluate("window.__swaps") >= 2, timeout=15)
    assert page.input_value("#runbooks .step.current input[name=note]") == "找到原因：市电停电"
    page.click("#runbooks .step.current button.confirm")
    page.wait_for_selector(f"#runbooks .step.done[data-step='{step}']")
    done = page.inner_text(f"#runbooks .step.done[data-step='{step}']")
    assert "alice" in done and "市电停电" in done
    assert any(actor == "alice" for actor, _ in audit_records(c, "incident.step_done"))

    # Who was told: the on-duty person's webhook, the chain stopped by the ack.
    page.wait_for_selector("#notifications tr.delivery.sent")
    told = page.inner_text("#notifications")
    assert "李娜" in told and "webhook" in told and "升级停止" in told

    # A note, then the written report: drafted, downloaded.
    page.fill("#note-form textarea", "发电机已就位")
    page.click("#note-form button")
    page.wait_for_selector("#timeline li.note")
    page.click("#draft-report")
    page.wait_for_selector("#reports li.report")
    # The person's part of the written report, filled in on its page.
    page.click("#reports li.report a.edit-report")
    page.fill("#report-form textarea[name=cause_analysis]", "线路被暴雨冲断，市电中断")
    page.click("#report-form button")
    page.wait_for_selector("#report-text:has-text('线路被暴雨冲断')")
    page.screenshot(path=shots / "report-zh.png", full_page=True)
    assert "alice" in [a for a, _ in audit_records(c, "report.edited")]
    page.click(f"a[href='/console/incidents/{incident}']")
    page.wait_for_selector("#reports li.report")
    with page.expect_download() as download:
        page.click("#reports li.report a:text('md')")
    saved = tmp_path / "report.md"
    download.value.save_as(saved)
    text = saved.read_text(encoding="utf-8")
    assert incident in text and "线路被暴雨冲断" in text
    page.screenshot(path=shots / "incident-zh.png", full_page=True)

    # The branches page shows both regions live; English on request.
    page.click("nav a[href='/console/branches']")
    page.wait_for_selector("#branch-BR-S1")
    assert page.get_attribute("#branch-BR-N1", "data-state") in ("critical", "unknown")
    assert page.get_attribute("#branch-BR-S1", "data-state") == "ok"
    page.screenshot(path=shots / "branches-zh.png", full_page=True)
    page.click("a.lang")
    page.wait_for_selector("text=Region: north")
    page.click("nav a[href='/console/incidents']")
    page.wait_for_selector("text=Open incidents")
    page.screenshot(path=shots / "incidents-en.png", full_page=True)
    page.click(f"a[href='/console/incidents/{incident}']")
    page.wait_for_selector("#runbooks")
    page.screenshot(path=shots / "incident-en.png", full_page=True)
    page.click("nav a[href='/console/drills']")
    page.wait_for_selector("#live")
    page.screenshot(path=shots / "drills-en.png", full_page=True)

    # Logging out ends the session at once.
    page.click("header form button")
    page.wait_for_url(re.compile(r".*/console/login.*"))
    page.goto(c.url + f"/console/incidents/{incident}")
    assert "/console/login" in page.url
    assert [a for a, _ in audit_records(c, "console.login")].count("alice") >= 1
    assert "alice" in [a for a, _ in audit_records(c, "console.logout")]
    context.close()


def test_a_viewer_sees_and_cannot_act(collector, browser):
    c = collector
    send(c, "a2", fault_batch("a2", "BR-S1", "tcp/core-system", "critical", "core down"))
    context = browser.new_context()
    page = context.new_page()
    login(page, c.url, "vera")
    row = page.wait_for_selector("tr.incident:has-text('BR-S1')", timeout=15000)
    incident = row.get_attribute("data-incident")
    assert page.locator("button.ack-button").count() == 0
    page.goto(f"{c.url}/console/incidents/{incident}")
    assert page.locator("#runbooks button").count() == 0
    assert page.locator("#note-form").count() == 0
    # Even a hand-made POST with the right CSRF token is refused for the role.
    csrf = page.get_attribute("header input[name=csrf]", "value")
    status = page.evaluate("""async ([url, csrf]) => (await fetch(url, {method: 'POST',
        body: new URLSearchParams({csrf, why: 'x'})})).status""",
        [f"/console/incidents/{incident}/ack", csrf])
    assert status == 403
    context.close()


def test_an_idle_session_expires_while_the_page_polls(tmp_path, browser):
    """Live-update polls are not activity: an open tab does not keep a session alive."""
    with CollectorProcess(tmp_path, AGENTS, extra=console_yaml(session_idle=3, refresh=1)) as c:
        context = browser.new_context()
        page = context.new_page()
        login(page, c.url, "alice")
        # The page keeps polling; after 3 s idle the next poll sends it to the login page.
        page.wait_for_url(re.compile(r".*/console/login\?.*expired=1.*"), timeout=15000)
        assert page.locator(".flash.error").count() == 1
        context.close()
