"""The reporter (報告責任人, 第二十六條), plan failures (第三十條) and faults a
person reported in the reports, zh and en: on the fixed
incident of tests/support/report_incident.py (the golden files show the whole
reports; this says what must be in them).
"""

from __future__ import annotations

import pytest

from collector.grading import Calendar
from collector.incident_codec import to_dict
from collector.incidents import Fault
from collector.reports.facts import Scope
from collector.reports.model import build
from collector.reports.render import render
from collector.reports.settings import ReportSettings

from .support.report_incident import ID, REGIONS, at, incident, incident_dict

SCOPE = Scope(REGIONS, calendar=Calendar.default(), timezone="Asia/Shanghai")
META = {"id": f"{ID}-P1", "status": "draft", "issued_at": None, "issued_by": None,
        "supersedes": None}
WORDS = {"zh": ("报告责任人（第二十六条）：", "本时段预案执行失败情况（第三十条）", "（自2026-12-07 11:40起）"),
         "en": ("Reporter (Art. 26):", "Plan failures in this period (Art. 30)",
                " (since 2026-12-07 11:40)")}
NO_FAILURE = {"zh": "本时段预案执行无失败。", "en": "No runbook step failed in this period."}


def progress(lang: str, until: str = "12:52", progress_since=None) -> str:
    fields = build("progress", incident_dict(until), SCOPE, ReportSettings(language=lang), lang,
                   at(until), since=at("11:00"), since_report=f"{ID}-W1",
                   progress_since=progress_since)
    return render(META, fields, "md")


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_progress_report_names_the_reporter_and_every_change(lang):
    reporter, _, since = WORDS[lang]
    text = progress(lang)
    assert f"**{reporter.rstrip('：:')}**" in text and f"alice{since}" in text
    assert "| 2026-12-07 09:40 | bob |" in text
    assert "| 2026-12-07 11:40 | alice | lina | bob is needed on site at B1 |" in text


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_failed_plan_is_an_entry_in_the_next_progress_report_only(lang):
    _, section, _ = WORDS[lang]
    text = progress(lang)
    part = text[text.index(section):].split("\n## ", 1)[0]
    assert "2026-12-07 10:30" in part and "Start the generator" in part   # the body, in words
    annex = text[text.index("\n---\n"):]
    assert "| 2026-12-07 10:30 | R1 start-generator |" in annex          # the record
    # A progress report issued after the failure carried it: the next one does not.
    later = progress(lang, progress_since=at("11:30"))
    part = later[later.index(section):].split("\n## ", 1)[0]
    assert "Start the generator" not in part and NO_FAILURE[lang] in part
    assert "start-generator" not in later[later.index("\n---\n"):]


def test_the_written_report_before_any_change_names_the_designated_reporter():
    fields = build("written", incident_dict("11:00"), SCOPE, ReportSettings(language="en"),
                   "en", at("11:00"))
    assert [r["name"] for r in fields["reporters"]] == ["bob"]
    text = render({**META, "id": f"{ID}-W1"}, fields, "md")
    assert "- **Reporter (Art. 26)**: bob (since 2026-12-07 09:40)" in text
    assert "| From | Reporter |" not in text          # one reporter: no table of changes


@pytest.mark.parametrize("lang, mark", [("zh", "tcp/reported-service（人工报告）"),
                                        ("en", "tcp/reported-service (reported by a person)")])
def test_a_fault_a_person_reported_is_marked_in_the_reports(lang, mark):
    inc = incident("11:00")
    f = Fault("person", "B1", "tcp/reported-service", "service", "critical",
              "a system will not start or cannot save at counter 1: teller app frozen - "
              "reported by wang", None, at("10:10"), spans=[[at("10:10"), None]])
    inc.faults[("person", f.check)] = f
    fields = build("written", to_dict(inc), SCOPE, ReportSettings(language=lang), lang,
                   at("11:00"))
    text = render({**META, "id": f"{ID}-W1"}, fields, "md")
    assert f"| {mark} |" in text and "teller app frozen - reported by wang" in text
