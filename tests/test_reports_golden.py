"""The reports in both languages against golden files (issue 7; domain.md §3):
a fixed incident (tests/support/report_incident.py) -> the exact Markdown in
tests/golden/reports/KIND.LANG.md and HTML body in KIND.LANG.html. After a deliberate change of a template,
regenerate them with

    BRANCHWATCH_REGEN_GOLDEN=1 python3 -m pytest tests/test_reports_golden.py

(the Markdown, and the HTML bodies of the written report and the summary)

and review the diff before committing it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

from collector.grading import Calendar
from collector.reports.facts import Scope
from collector.reports.model import build, edit
from collector.reports.render import body, render
from collector.reports.settings import ReportSettings

from .support.report_incident import ID, REGIONS, at, incident_dict

GOLDEN = Path(__file__).parent / "golden" / "reports"
REGEN = os.environ.get("BRANCHWATCH_REGEN_GOLDEN") == "1"
SCOPE = Scope(REGIONS, calendar=Calendar.default(), timezone="Asia/Shanghai")
SETTINGS = {
    "zh": ReportSettings(language="zh", unit="某县农村信用合作联社科技信息部",
                         contact="张三", phone="0839-1234567"),
    "en": ReportSettings(language="en", unit="County Rural Credit Cooperative, IT department",
                         contact="Zhang San", phone="+86 839 1234567"),
}
# What a person wrote before issuing (written report) - multi-line, with Markdown.
TEXT = {
    "zh": {"cause_analysis": "市电中断系供电线路故障所致（供电公司工单8841）。\n\n"
                             "发电机未能启动，核心系统随之中断。",
           "consequences": "两个网点约3小时无法办理业务。",
           "coordination": "请协调供电公司优先恢复网点供电。"},
    "en": {"cause_analysis": "Mains failed on the feeder (power company ticket 8841).\n\n"
                             "The generator did not start, so the core system went down.",
           "consequences": "Two branches could not do business for about 3 h.",
           "coordination": "Please ask the power company to restore the branches first."},
}
# (kind, the incident as it stood at, report meta)
CASES = {
    "written": ("11:00", {"status": "issued", "issued_at": at("11:05"), "issued_by": "alice",
                          "supersedes": None}),
    "progress": ("12:52", {"status": "draft", "issued_at": None, "issued_by": None,
                           "supersedes": None}),
    "summary": ("13:40", {"status": "draft", "issued_at": None, "issued_by": None,
                          "supersedes": f"{ID}-S1"}),
}
LETTER = {"written": "W", "progress": "P", "summary": "S"}


def report_fields(kind: str, lang: str) -> dict:
    """The fields of the golden report of `kind` in `lang`."""
    until, _meta = CASES[kind]
    # The progress report follows the written one, issued at 11:05 as of 11:00.
    since = at("11:00") if kind == "progress" else None
    fields = build(kind, incident_dict(until), SCOPE, SETTINGS[lang], lang, at(until),
                   since=since, since_report=f"{ID}-W1" if since else None)
    if kind == "written":
        fields, _ = edit(fields, TEXT[lang])
    return fields


def report_text(kind: str, lang: str, fmt: str = "md") -> str:
    """The golden report rendered."""
    _until, meta = CASES[kind]
    number = 2 if kind == "summary" else 1
    return render({"id": f"{ID}-{LETTER[kind]}{number}", **meta}, report_fields(kind, lang),
                  fmt)


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/reports/NAME (rewrite it with BRANCHWATCH_REGEN_GOLDEN=1)."""
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run with BRANCHWATCH_REGEN_GOLDEN=1"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True),
                                            str(path), "rendered"))
        pytest.fail(f"{name} differs from the golden file (BRANCHWATCH_REGEN_GOLDEN=1 "
                    f"rewrites it after review):\n{diff}")


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", ["written", "progress", "summary"])
def test_report_matches_its_golden_markdown(kind, lang):
    check_golden(f"{kind}.{lang}.md", report_text(kind, lang))


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", ["written", "summary"])
def test_report_matches_its_golden_html_body(kind, lang):
    # The markup the console previews and the PDF prints (the page around it is
    # html/page.j2 and the style sheet): what is marked unfilled, the sign-off block,
    # the annex.
    _until, meta = CASES[kind]
    number = 2 if kind == "summary" else 1
    check_golden(f"{kind}.{lang}.html", body({"id": f"{ID}-{LETTER[kind]}{number}", **meta},
                                             report_fields(kind, lang), "html"))


def test_the_written_report_has_every_item_of_article_28_in_order():
    # 第二十八條: time, place, symptoms, affected business, cause analysis, preliminary
    # consequences, measures taken, next steps, unit, contact, anything else, coordination.
    zh = report_text("written", "zh")
    heads = ["一、事件发生时间", "二、发生地点", "三、事件现象", "四、影响的业务", "五、原因分析",
             "六、初步后果", "七、已采取的措施", "八、下一步工作建议", "九、报告单位及联系人",
             "十、其他事项", "十一、需要监管部门协调的事项"]
    places = [zh.index(f"## {h}\n") for h in heads]
    assert places == sorted(places)
    for needed in ("II级（重大）", "2026-12-07 10:15", "B1、B2", "north、south",
                   "core system unreachable", "线路故障", "R1 start-generator", "失败",
                   "张三", "0839-1234567", "请协调供电公司", "已签发（alice，2026-12-07 11:05）"):
        assert needed in zh
    en = report_text("written", "en")
    assert [en.index(f"## {n}. ") for n in range(1, 12)] == sorted(
        en.index(f"## {n}. ") for n in range(1, 12))


def test_the_summary_timeline_is_in_time_order_and_covers_article_34():
    fields = report_fields("summary", "en")
    times = [e["at"] for e in fields["timeline"]]
    assert times == sorted(times)
    kinds = {e["kind"] for e in fields["timeline"]}
    assert {"fault", "cleared", "graded", "deadline_met", "deadline_missed", "step", "ack",
            "action", "resolved", "closed"} <= kinds
    assert [s["step"] for s in fields["failed_steps"]] == ["start-generator"]
    assert [d["key"] for d in fields["late_deadlines"]] == ["progress-1"]
    assert fields["handling"]["minutes_to_ack"] == 8
    assert fields["handling"]["minutes_to_resolve"] == 210


def test_the_progress_report_tells_what_changed_since_the_last_report():
    fields = report_fields("progress", "en")
    assert fields["since"] == "2026-12-07T03:00:00Z" and fields["since_report"] == f"{ID}-W1"
    assert fields["new_faults"] == []                          # all began before 11:00
    assert [c["check"] for c in fields["cleared"]] == ["line/primary/gateway"]   # 12:50
    assert fields["grade_changes"] == []                       # I since 10:40
    assert fields["measures"] == []                            # nothing done 11:00-12:52
    assert [(d["key"], d["status"]) for d in fields["deadlines"]] == [
        ("progress-1", "missed"), ("written-report", "due")]


@pytest.mark.parametrize("lang, none, todo", [("zh", "无", "待填写：损失情况"),
                                              ("en", "None.", "to be completed: losses")])
def test_only_an_unfilled_field_is_marked_and_none_is_an_answer(lang, none, todo):
    written = report_text("written", lang, "html")
    assert f'<p class="none">{none}</p>' in written            # 十、其他事项: nothing else
    assert 'class="todo"' not in written                         # every section filled
    summary = report_text("summary", lang, "html")
    assert f'<p class="todo">{todo}</p>' in summary              # nobody wrote it yet


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_raw_errors_and_check_ids_are_in_the_annex_not_the_body(lang):
    text = report_text("written", lang)
    head, annex = text.split("\n---\n", 1)
    for raw in ("connection refused", "connect timed out", "tcp/core-banking",
                "ii-2-regions-30m", "switch funds port backup: done", "R1 start-generator"):
        assert raw not in head and raw in annex, raw
