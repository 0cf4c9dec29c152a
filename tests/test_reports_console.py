"""The report page of the console in a real browser (Debian's Chromium through
Playwright) against a real collector process on 127.0.0.1: the preview is the
rendered report (not Markdown), every section can be edited while a draft,
"已采取的措施" is prefilled with what people did, the raw error is in the annex
and not in the body, "无" is not marked as unfilled, the sign-off block is
there with a line for what is not configured; the page fits 1366 and 390 px in
zh and en; an issued report cannot be edited; the PDF downloads. Screenshots
go to test-output/console/ (or $BRANCHWATCH_TEST_OUTPUT) for a person to see.
"""

from __future__ import annotations

import pytest

from .support.collector import CollectorProcess, audit_records
from .support.console import chromium, console_yaml, fault_batch, login, screenshots
from .test_collector_api import request

TOKEN = "reports-console-agent-token-1"
AGENTS = {"a1": ("B1", "north", TOKEN)}
RAW = "connection to 127.0.0.1:38959 refused"
# No signer configured: the sign-off block gives a line to sign on.
REPORTS = ("reports: {language: zh, unit: 某县农村信用合作联社科技信息部, contact: 张三, "
           "phone: '0839-1234567', timezone: Asia/Shanghai}\n")
WIDTHS = (1366, 390)


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    with CollectorProcess(tmp_path_factory.mktemp("reports-console"), AGENTS,
                          extra=console_yaml() + REPORTS) as c:
        status, body = request(c.url + "/api/v1/events",
                               fault_batch("a1", "B1", "tcp/core-banking", "critical", RAW),
                               TOKEN)
        assert status == 200, body
        yield c


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


def fits(page) -> bool:
    """Nothing of the report page sticks out past the window's right edge."""
    return page.evaluate("""() => {
        const w = window.innerWidth;
        const els = document.querySelectorAll('.report-page, .report-preview, .report-edit');
        return [...els].every(e => e.getBoundingClientRect().right <= w + 1);
    }""")


def shoot(page, name: str) -> None:
    """Screenshots at both widths; each must fit."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=screenshots() / f"{name}-{width}.png", full_page=True)
        assert fits(page), f"{name} at {width} px sticks out sideways"
    page.set_viewport_size({"width": 1366, "height": 900})


def draft(page, base: str) -> str:
    """Draft the written report from the incident page; its page's path."""
    page.goto(base + "/console/incidents")
    page.click("tr.incident a")
    page.click("#draft-report")
    link = page.wait_for_selector("#reports li.report a.edit-report >> nth=-1")
    return link.get_attribute("href")


def test_the_report_page_previews_the_rendered_report_and_edits_every_section(collector,
                                                                              browser):
    c = collector
    page = browser.new_context(locale="zh-CN", accept_downloads=True).new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, c.url, "boss")
    page.goto(c.url + "/console/incidents")
    page.click("tr.incident a")
    page.click("#ack-form button")                 # a person's action: prefills measures
    page.wait_for_selector("#ack-state.acked")
    path = draft(page, c.url)
    page.goto(c.url + path)

    # The preview is the rendered report: headings and paragraphs, not Markdown.
    doc = page.locator("#report-text")
    assert doc.locator("h1").inner_text() == "信息科技突发事件书面报告"
    assert doc.locator("h2").count() >= 11
    text = doc.inner_text()
    assert "## " not in text and "|---" not in text and "**" not in text
    # Technical details in the annex only.
    annex = doc.locator("section.annex")
    assert annex.locator("h2").inner_text() == "附件：技术细节"
    assert RAW in annex.inner_text()
    body = text.split("附件：技术细节")[0]
    assert RAW not in body and "127.0.0.1" not in body
    # Measures taken: prefilled with the acknowledgement, in the report's language.
    measures = page.input_value("#report-form textarea[name=measures_text]")
    assert "boss确认接报" in measures
    # "无" answers a section; only the unfilled ones are marked.
    assert doc.locator("p.none", has_text="无").count() == 2       # 十、十一
    assert doc.locator("p.todo", has_text="初步后果").count() == 1
    # The sign-off block: configured fields, a line for the signer, the seal's box.
    sign = doc.locator(".sign")
    assert "某县农村信用合作联社科技信息部" in sign.inner_text()
    assert sign.locator("tr", has_text="签发人").locator(".blank").count() == 1
    assert "盖章处" in sign.locator(".seal").inner_text()
    shoot(page, "report-zh")

    # Every section is a field; an edit shows in the preview and is audited.
    names = page.eval_on_selector_all("#report-form textarea, #report-form input:not([type=hidden])",
                                      "els => els.map(e => e.name)")
    assert names == ["time_text", "place_text", "symptoms_text", "business_text",
                     "cause_analysis", "consequences", "measures_text", "next_steps", "other",
                     "coordination", "unit", "signer", "contact", "phone"]
    page.fill("#report-form textarea[name=measures_text]",
              measures + "\n2. 联系网点核实，启用手工登记。")
    page.fill("#report-form input[name=signer]", "王五")
    page.click("#report-form button")
    page.wait_for_selector("#report-text:has-text('启用手工登记')")
    assert page.locator("#report-text .sign tr", has_text="签发人").inner_text().endswith("王五")
    edits = [d for _, d in audit_records(c, "report.edited")]
    assert any(set(d["changed"]) == {"measures_text", "signer"} for d in edits)

    # The PDF of the same report downloads from the page.
    with page.expect_download() as got:
        page.click("a[href$='.pdf']")
    assert open(got.value.path(), "rb").read(5) == b"%PDF-"

    # Issued: frozen; the form is gone and an edit is refused with a reason.
    page.fill("#issue-form input[name=why]", "已传真报送监管部门")
    page.click("#issue-form button")
    page.wait_for_selector("#report-status:has-text('已签发')")
    assert page.locator("#report-form").count() == 0
    assert "王五" in page.locator("#report-text .sign").inner_text()


def test_the_english_report_page_at_both_widths(collector, browser):
    c = collector
    page = browser.new_context(locale="en").new_page()
    page.set_viewport_size({"width": 1366, "height": 900})
    login(page, c.url, "boss")
    page.goto(c.url + "/console/lang/en")
    path = draft(page, c.url)
    page.goto(c.url + path)
    doc = page.locator("#report-text")
    assert doc.locator("h1").inner_text() == "Written report of an IT emergency incident"
    assert page.locator("label[for=f-measures_text]").inner_text() == "Measures taken"
    assert RAW in doc.locator("section.annex").inner_text()
    assert RAW not in doc.inner_text().split("Annex: technical details")[0]
    assert doc.locator("p.none", has_text="None.").count() == 2
    shoot(page, "report-en")
