"""Report fields and rendering (issue 7): what a person may edit, HTML escaping
of anything a person or an agent wrote, Markdown tables that cannot be broken,
both languages and formats, and the rules of drafting (第三十三條, 第三十四條)."""

from __future__ import annotations

import re

import pytest

from collector.reports.model import EDITABLE, NotYet, build, carried_text, edit
from collector.reports.render import render
from collector.reports.settings import ReportSettings

from .support.report_incident import ID, at, incident_dict
from .test_reports_golden import SCOPE, report_fields

META = {"id": f"{ID}-W1", "status": "draft", "issued_at": None, "issued_by": None,
        "supersedes": None}
EVIL = "<script>alert('x')</script> & <img src=x onerror=alert(1)> | pipe\nnew line"


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("kind", ["written", "progress", "summary"])
def test_html_escapes_every_text_a_person_or_an_agent_wrote(kind, lang):
    fields = report_fields(kind, lang)
    changes = {k: EVIL for k in EDITABLE[kind]}
    fields, _ = edit(fields, changes)
    html = render(META, fields, "html")
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &lt;img" in html
    # The agent's reason in the fixture holds a tag too.
    if kind != "progress":
        assert "&lt;script&gt;alert(1)&lt;/script&gt; slow" in html
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert f'lang="{"zh-CN" if lang == "zh" else "en"}"' in html


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_markdown_keeps_tables_whole_and_opens_no_tag(lang):
    fields, _ = edit(report_fields("written", lang), {"unit": EVIL, "cause_analysis": EVIL})
    md = render(META, fields, "md")
    assert "<" not in md                         # every < is &lt;: no HTML in a viewer
    for line in md.splitlines():
        if line.startswith("|"):
            # every row of a table has its columns: a | in a cell is escaped
            assert len(re.findall(r"(?<!\\)\|", line)) >= 3
    assert "pipe new line" in md                 # a cell folds its line break


def test_only_fields_a_person_fills_are_editable_and_only_with_text():
    fields = report_fields("written", "en")
    with pytest.raises(ValueError, match=r"^symptoms: not a field a person fills"):
        edit(fields, {"symptoms": "nothing happened"})
    with pytest.raises(ValueError, match=r"^consequences: expected text, got int"):
        edit(fields, {"consequences": 3})
    with pytest.raises(ValueError, match="over the limit"):
        edit(fields, {"other": "x" * 20_001})
    new, changed = edit(fields, {"consequences": "none", "other": fields["other"]})
    assert changed == {"consequences": "none"} and new["consequences"] == "none"
    assert fields["consequences"].startswith("Two branches")   # the old dict is untouched


def test_a_summary_waits_for_the_end_of_the_incident():
    # 第三十三條: the incident ends when service is back; 第三十四條: then the summary.
    with pytest.raises(NotYet, match="still open: the closing summary"):
        build("summary", incident_dict("11:00"), SCOPE, ReportSettings(), "en", at("11:00"))
    fields = build("summary", incident_dict("13:15"), SCOPE, ReportSettings(), "en",
                   at("13:15"))
    assert fields["incident"]["status"] == "resolved"


def test_a_new_draft_keeps_the_persons_text_and_takes_the_contact_from_settings():
    old, _ = edit(report_fields("written", "en"), {"cause_analysis": "feeder cut",
                                                   "phone": "by hand"})
    new = build("written", incident_dict("12:00"), SCOPE, ReportSettings(phone="110"), "en",
                at("12:00"), carried=carried_text(old))
    assert new["cause_analysis"] == "feeder cut" and new["phone"] == "110"


def test_fields_are_plain_json_that_renders_the_same_after_a_round_trip():
    import json
    fields = report_fields("summary", "zh")
    again = json.loads(json.dumps(fields, ensure_ascii=False))
    assert render(META, again, "md") == render(META, fields, "md")
    assert fields["as_of"] == "2026-12-07T05:40:00Z"


def test_a_bad_format_is_refused():
    with pytest.raises(ValueError, match="format: expected one of md, html"):
        render(META, report_fields("written", "en"), "docx")


def test_settings_are_checked_like_the_rest_of_the_config():
    import msgspec
    s = msgspec.convert({"language": "en", "unit": "RCC", "timezone": "Asia/Shanghai"},
                        ReportSettings)
    assert (s.language, s.unit, s.contact) == ("en", "RCC", "")
    with pytest.raises(msgspec.ValidationError, match="timezone: expected an IANA time zone"):
        msgspec.convert({"timezone": "Mars/Olympus"}, ReportSettings)
    with pytest.raises(msgspec.ValidationError, match="unknown field `email`"):
        msgspec.convert({"email": "x@y"}, ReportSettings)
    with pytest.raises(msgspec.ValidationError, match="Expected `str` matching|Invalid enum"):
        msgspec.convert({"language": "fr"}, ReportSettings)


def test_a_new_draft_carries_what_the_person_wrote_not_the_record_s_old_words():
    fields = report_fields("written", "zh")
    # The prefilled words of a section the person left as they were are not carried:
    # a new draft draws them afresh (with what happened since).
    fields, _ = edit(fields, {"consequences": "两个网点停业", "measures_text":
                              fields["measures_text"] + "\n11. 网点启用手工登记。"})
    carried = carried_text(fields)
    assert set(carried) == {"cause_analysis", "consequences", "coordination",
                            "measures_text"}          # cause, coordination: the golden TEXT
    later = build("written", incident_dict("12:52"), SCOPE, ReportSettings(language="zh"),
                  "zh", at("12:52"), carried=carried)
    assert later["measures_text"].endswith("网点启用手工登记。")
    assert later["symptoms_text"] == later["prefilled"]["symptoms_text"] != \
        fields["symptoms_text"]                        # 12:50: the line came back


def test_a_report_drafted_before_the_sections_existed_still_renders():
    fields = report_fields("written", "en")
    for name in ("time_text", "measures_text", "signer", "prefilled"):
        del fields[name]
    md = render(META, fields, "md")
    assert "*to be completed: measures taken*" in md and "- **Signed by**: ________" in md


def test_texts_in_a_language_from_every_shape_the_data_files_use():
    from types import SimpleNamespace as NS

    from collector.reports.texts import text_of
    assert text_of(NS(title={"zh": "停电", "en": "Power cut"}), "title", "zh") == "停电"
    assert text_of(NS(title={"en": "Power cut"}), "title", "zh") == "Power cut"
    assert text_of(NS(title="Power cut", title_zh="停电"), "title", "zh") == "停电"
    assert text_of(NS(title="Power cut", title_zh="停电"), "title", "en") == "Power cut"
    assert text_of({"title": "Power cut"}, "title", "zh") == "Power cut"
    assert text_of(NS(role=None), "role", "zh") == ""
