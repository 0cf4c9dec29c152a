"""Every word in zh-CN and en: the console's catalogue (WORDS), the keys templates
and modules use, and the shipped data files (runbooks, grading tables, drill
scenarios) carrying both languages; the loaders refuse a bad Chinese text."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.config import ConfigError
from collector import incident_rules
from collector.drills.scenario import load_scenarios, parse_scenario
from collector.grading.table import TableError, load_table, parse_table, shipped_tables
from collector.person_reports import CAUSES, KINDS
from collector.reports.model import EDITABLE
from collector.roles import ROLES as CONSOLE_ROLES
from collector.runbooks.schema import load_runbook, load_runbooks
from collector.texts import HAN, ROLES, TITLES, TRADITIONAL, role_name, zh_problem
from collector.web.i18n import WORDS, translate

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "collector" / "web" / "templates"

# t("prefix_" ~ value): every value a template may join on, from the code that makes it.
DYNAMIC = {
    "status_": ("open", "resolved", "closed"),
    "drill_": ("running", "ended", "archived"),
    "runbook_": ("running", "done", "failed"),
    "report_": ("draft", "issued"),
    "kind_": ("written", "progress", "summary", *KINDS),
    "lang_": ("zh", "en"),
    "diag_": ("line", "device", "local"),
    "field_": tuple(sorted({f for fs in EDITABLE.values() for f in fs})),
    "cause_": CAUSES,
    "rpt_kind_": ("written", "progress", "summary"),
    "rpt_lang_": ("zh", "en"),
    "rpt_status_": ("draft", "issued"),
    "drill_status_": ("running", "ended", "archived"),
    "drill_scope_": ("branch", "region"),
    # the departments config/grading/hospital.yaml names (a department of a site's own
    # shows under its own name)
    "dept_": ("registration", "admission", "pharmacy", "cashiers", "nurse-stations",
              "operating-rooms", "medical-technology", "all-departments"),
    # why the demo's inbox received a message (the notifier's triggers)
    "inbox_reason_": ("opened", "joined", "reopened", "graded", "agent_action", "plan_failed",
                      "deadline_missed", "reminder", "escalation", "resolved"),
    "reading_": ("battery_charge", "battery_runtime", "load"),
    "unit_": ("battery_charge", "battery_runtime", "load"),
    "short_": ("ups", "uplinks", "services", "host"),
}
# t(value) with a value from a closed set: step and fault states, timeline kinds,
# delivery statuses, branch-tile groups.
VALUES = ("waiting", "running", "done", "skipped", "failed", "pending",
          "ok", "warning", "critical", "unknown", "silent",
          "opened", "fault_entry", "acked", "note", "graded", "step_entry", "deadline_met",
          "deadline_missed", "resolved", "closed", "queued", "sent",
          "ups", "uplinks", "services", "host",
          "login_failed", "login_throttled", "login_busy",
          "event_flapping", "event_flapping_end", "event_action")


def test_every_key_has_both_languages_in_simplified_chinese():
    for key, words in WORDS.items():
        assert set(words) == {"zh", "en"}, key
        assert words["en"].strip() and words["zh"].strip(), key
        old = {c for c in words["zh"] if c in TRADITIONAL}
        assert not old, f"{key}: Traditional {old} in {words['zh']!r}"
        # the zh text is Chinese, unless it is a proper name or a device word
        if key not in ("language", "ups", "unit_battery_charge", "unit_load"):   # "%"
            assert HAN.search(words["zh"]), f"{key}: no Chinese in {words['zh']!r}"
        assert not HAN.search(words["en"]) or key == "language", f"{key}: Chinese in en"


def _keys_used() -> set[str]:
    used = set()
    for p in TEMPLATES.glob("*.html"):
        text = p.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\bt\(\s*["']([a-z0-9_]+)["']\s*\)""", text))
        for prefix in re.findall(r"""\bt\(\s*["']([a-z0-9_]+_)["']\s*~""", text):
            assert prefix in DYNAMIC, f"{p.name}: t({prefix!r} ~ ...) has no known values"
            used |= {prefix + v for v in DYNAMIC[prefix]}
    return used | set(VALUES)


def test_every_key_a_template_uses_is_in_the_catalogue():
    missing = sorted(k for k in _keys_used() if k not in WORDS)
    assert not missing, f"keys used but not in WORDS: {missing}"
    t = translate("zh")
    assert t("status_open") == "处置中" and translate("en")("status_open") == "open"


def test_shipped_runbooks_say_every_text_in_both_languages():
    runbooks = load_runbooks(ROOT / "config" / "runbooks")
    assert len(runbooks) >= 7
    for rb in runbooks.values():
        assert rb.title_zh and zh_problem(rb.title_zh) is None, rb.id
        for s in rb.steps:
            where = f"{rb.id}/{s.id}"
            for key in ("title", "text", "question"):
                en, zh = getattr(s, key), getattr(s, f"{key}_zh")
                assert (en is None) == (zh is None), f"{where}: {key} without {key}_zh"
                assert en is None or not HAN.search(en), f"{where}: Chinese in the English {key}"
                assert zh is None or zh_problem(zh) is None, f"{where}: {zh_problem(zh)}"
            if s.role:
                assert s.role in ROLES and HAN.search(role_name(s.role, "zh")), where
            if s.kind == "decision":
                assert set(s.options_zh) == set(s.options), f"{where}: options_zh"
            if s.action and s.action.reason:
                assert s.action.reason_zh, f"{where}: action.reason_zh"
            if s.preauthorised:
                assert zh_problem(s.preauthorised.granted_by_zh) is None, f"{where}: granted_by_zh"


def test_shipped_grading_tables_name_grades_in_both_languages():
    for p in shipped_tables():
        t = load_table(p)
        assert t.title_zh, p
        for g in t.grades:
            names = t.grade_names[g]
            assert zh_problem(names["zh"]) is None and not HAN.search(names["en"]), (p, g)
        assert not HAN.search(t.title), p
        for r in t.rules:
            assert r.title and r.title_zh and zh_problem(r.title_zh) is None, (p, r.id)
            assert not HAN.search(r.title), (p, r.id)
        for d in t.deadlines:
            assert d.title_zh and zh_problem(d.title_zh) is None, (p, d.key)
            assert not HAN.search(d.title), (p, d.key)
        for g in t.handlers:
            assert zh_problem(t.handlers_zh.get(g)) is None, (p, g)
    cbrc = load_table(ROOT / "config" / "grading" / "cbrc.yaml")
    # Simplified, as the reports and the regulator's zh-CN text write them
    assert dict(cbrc.grade_titles) == {"I": "特别重大", "II": "重大", "III": "较大"}


def test_shipped_drill_scenarios_say_their_texts_in_both_languages():
    for s in load_scenarios().values():
        assert s.title and zh_problem(s.title_zh) is None, s.id
        assert s.source and zh_problem(s.source_zh) is None, s.id
        assert not HAN.search(s.source) and not HAN.search(s.title), s.id     # en is English
        for e in s.events:
            assert e.reason and zh_problem(e.reason_zh) is None, (s.id, e.check)


def test_every_generated_incident_title_and_role_has_chinese():
    for rule in incident_rules.TITLE_RULES:
        base = rule.title.split("{")[0]
        assert base in TITLES, base
    assert incident_rules.FALLBACK_TITLE in TITLES
    for role in CONSOLE_ROLES:
        assert HAN.search(role_name(role, "zh")), role


def test_a_runbook_with_english_in_its_chinese_is_refused_naming_the_key(tmp_path):
    p = tmp_path / "rb.yaml"
    p.write_text("id: x\ntitle: X\ntitle_zh: 预案\nsource: test\nsteps:\n"
                 "  - {id: a, kind: manual, title: Do it, title_zh: Do it, text: t, text_zh: 做}\n",
                 encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_runbook(p)
    assert "steps[0].title_zh" in str(e.value) and "Chinese" in str(e.value)
    assert str(p) in str(e.value)


def test_a_table_in_traditional_chinese_is_refused_naming_the_key():
    table = {"name": "x", "grades": ["I"], "grade_titles": {"I": {"zh": "特別重大", "en": "Top"}},
             "rules": [{"id": "r", "kind": "scope", "grade": "I", "business_minutes": 30}]}
    with pytest.raises(TableError) as e:
        parse_table(table, "config/grading/x.yaml")
    assert str(e.value).startswith("config/grading/x.yaml: grade_titles.I.zh: expected Simplified")
    table["grade_titles"] = {"I": {"zh": "特别重大"}}
    with pytest.raises(TableError, match=r"grade_titles\.I\.en: missing"):
        parse_table(table, "config/grading/x.yaml")


def test_a_scenario_title_not_in_chinese_is_refused():
    with pytest.raises(ConfigError, match="title_zh"):
        parse_scenario("id: s\ntitle: S\ntitle_zh: Power\nevents:\n  - {at: 0, check: line/x}\n",
                       "config/drills/s.yaml")


def test_the_message_templates_speak_their_language():
    from collector.notify.messages import template
    en, zh = template("en"), template("zh")
    for key, text in en["reasons"].items():
        assert not HAN.search(text), f"en reasons.{key}: Chinese in {text!r}"
    for key, text in zh["reasons"].items():
        assert zh_problem(text) is None, f"zh reasons.{key}: {zh_problem(text)}"
    for key in ("states", "statuses", "deadline_statuses"):
        assert all(zh_problem(v) is None for v in zh[key].values()), key
