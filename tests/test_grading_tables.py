"""Grading tables (collector/grading/table.py): every shipped file loads and
says what domain.md §2 says; a bad table is one line naming file and rule."""

from __future__ import annotations

import pytest

from collector.grading import TableError, load_table, load_tables, shipped_tables
from collector.grading.table import SEARCH_DIR


def test_every_shipped_table_loads():
    files = shipped_tables()
    assert {f.stem for f in files} >= {"cbrc", "hospital"}
    for f in files:
        t = load_table(f)
        assert t.name == f.stem, f"{f}: name should match the file name"
        assert t.rules and t.grades
        # Every grade is reachable by some rule: a table whose grade no rule gives is a typo.
        assert {r.grade for r in t.rules} == set(t.grades), f


def test_cbrc_says_what_domain_2_1_says():
    t = load_tables(["cbrc"])["cbrc"]
    assert t.grades == ("I", "II", "III") and t.source == "config/grading/cbrc.yaml"
    assert [t.rank(g) for g in (None, "III", "II", "I")] == [0, 1, 2, 3]
    scope = {(r.regions_at_least, r.business_minutes): r.grade for r in t.rules if r.kind == "scope"}
    assert scope == {(2, 180): "I", (1, 360): "I", (2, 30): "II", (1, 180): "II", (1, 30): "III"}
    prov = {(r.regions_at_least, r.wall_minutes): r.grade for r in t.rules if r.kind == "provisional"}
    # domain.md §2.1 criterion 3: the same thresholds on unrepaired wall-clock time.
    assert prov == scope
    assert {c: r.grade for c, r in t.criteria().items()} == {
        "data_major": "I", "data_serious": "II", "data_larger": "III"}
    assert {d.key for d in t.deadlines} == {"regulator-notice", "written-report", "progress"}


def test_hospital_says_what_domain_2_2_says():
    t = load_tables([SEARCH_DIR / "hospital.yaml"])["hospital"]
    assert t.grades == ("1", "2", "3", "4")
    assert "duty leader" in t.handler("1") and "alone" in t.handler("4")
    assert t.handler(None) is None
    crit = t.criteria()
    assert crit["force_majeure"].grade == "1" and not crit["force_majeure"].override
    assert crit["operator_misuse"].grade == "4" and crit["operator_misuse"].override
    assert {crit[f"correct_to_{g}"].grade for g in t.grades} == set(t.grades)
    observed = {k: r.grade for r in t.rules if r.kind == "observed" for k in r.kinds_any}
    for k in ("server_down", "uplink_down", "switch_down", "backup_failed", "key_terminal_down",
              "network_down_whole"):
        assert observed[k] == "2", k
    assert observed["terminal_down"] == observed["service_down"] == "3"
    manual = [d for d in t.deadlines if d.kind == "after_observed_start"]
    # domain.md §2.3: pharmacy at 30 min and 6 h; cashiers (收款員, §4.3(2)) at 30 min.
    assert [(d.minutes, d.departments) for d in manual] == [
        (30, ("registration", "admission", "pharmacy", "cashiers")),
        (360, ("nurse-stations", "pharmacy", "operating-rooms", "medical-technology")),
        (1440, ("all-departments",))]
    reentry = [(d.key, d.days) for d in t.deadlines if d.kind == "day_of_observed_end"]
    assert reentry == [("reentry-important", 0), ("reentry-all", 1)]     # hospital §6.4


def test_rank_refuses_an_unknown_grade():
    with pytest.raises(ValueError, match="unknown grade 'IV'"):
        load_table(SEARCH_DIR / "cbrc.yaml").rank("IV")


GOOD_RULE = "  - {id: r1, kind: scope, grade: A, regions_at_least: 1, business_minutes: 30}\n"
HEAD = "name: x\ngrades: [A, B]\nrules:\n"


@pytest.mark.parametrize("text, message", [
    (HEAD + GOOD_RULE + "  - {id: r2, kind: scope, grade: B, regions_at_least: 1, business_minutes: 30}\n"
     "  - {id: ii-1-region-3h, kind: scope, grade: B, business_minutes: -5}\n",
     "rules[2].business_minutes: expected a positive number, got -5 (rule 'ii-1-region-3h')"),
    (HEAD + "  - {id: r1, kind: scope, grade: C, business_minutes: 30}\n",
     "rules[0].grade: expected one of the grades ['A', 'B'], got 'C' (rule 'r1')"),
    (HEAD + "  - {id: r1, kind: scope, grade: A, business_minutes: 30, buisness_minutes: 3}\n",
     "rules[0].buisness_minutes: unknown key (expected one of business_minutes, grade, id, kind, "
     "regions_at_least, title, title_zh) (rule 'r1')"),
    (HEAD + "  - {id: r1, kind: scope, grade: A}\n",
     "rules[0].business_minutes: missing (a scope rule needs it) (rule 'r1')"),
    (HEAD + "  - {id: r1, kind: magic, grade: A}\n",
     "rules[0].kind: expected one of scope, provisional, observed, asserted, got 'magic' (rule 'r1')"),
    (HEAD + "  - {id: r1, kind: scope, grade: A, regions_at_least: 0, business_minutes: 3}\n",
     "rules[0].regions_at_least: expected a whole number >= 1, got 0 (rule 'r1')"),
    (HEAD + "  - {id: r1, kind: provisional, grade: A, wall_minutes: .inf}\n",
     "rules[0].wall_minutes: expected a positive number, got inf (rule 'r1')"),
    (HEAD + "  - {id: r1, kind: observed, grade: A, kinds_any: []}\n",
     "rules[0].kinds_any: expected at least one observed kind, got [] (rule 'r1')"),
    (HEAD + "  - {id: r1, kind: asserted, grade: A, criterion: c, override: yes please}\n",
     "rules[0].override: expected true or false, got 'yes please' (rule 'r1')"),
    (HEAD + GOOD_RULE + GOOD_RULE, "rules[1].id: duplicate rule id 'r1'"),
    (HEAD + "  - {id: a, kind: asserted, grade: A, criterion: c}\n"
     "  - {id: b, kind: asserted, grade: B, criterion: c}\n",
     "rules[1].criterion: duplicate criterion (one criterion, one rule) 'c'"),
    (HEAD, "rules: expected a list, got None"),
    ("name: x\ngrades: [A, A]\nrules:\n" + GOOD_RULE, "grades[1]: duplicate grade 'A'"),
    ("grades: [A]\nrules:\n" + GOOD_RULE, "name: missing (a table needs name, grades and rules)"),
    (HEAD + GOOD_RULE + "colour: red\n",
     "colour: unknown key (expected one of deadlines, grade_titles, grades, handlers, handlers_zh, name, rules, "
     "source, title, title_zh)"),
    (HEAD + GOOD_RULE + "handlers: {C: someone}\n", "handlers.C: expected one of the grades ['A', 'B']"),
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: n, kind: after_start, title: t, minutes: 60, "
     "at_once_for_rules: [nope]}\n",
     "deadlines[0].at_once_for_rules[0]: expected the id of a rule in this table, got 'nope' (deadline 'n')"),
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: p, kind: every_after_grade, title: t, minutes: 120}\n",
     "deadlines[0].min_grade: missing (a every_after_grade deadline needs it) (deadline 'p')"),
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: m, kind: after_observed_start, title: t, minutes: 30, "
     "observed: x, min_grade: A}\n",
     "deadlines[0].min_grade: unknown key (expected one of cite, departments, key, kind, minutes, "
     "observed, title, title_zh) (deadline 'm')"),
    # day_of_observed_end (hospital §6.4): days, never minutes (due at a day's end).
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: r, kind: day_of_observed_end, title: t, "
     "observed: x, days: 1, minutes: 30}\n",
     "deadlines[0].minutes: unknown key (expected one of cite, days, key, kind, observed, title, title_zh) "
     "(deadline 'r')"),
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: r, kind: day_of_observed_end, title: t, "
     "observed: x, days: -1}\n",
     "deadlines[0].days: expected a whole number of days from 0 to 31, got -1 (deadline 'r')"),
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: r, kind: day_of_observed_end, title: t, "
     "observed: x}\n",
     "deadlines[0].days: missing (a day_of_observed_end deadline needs it) (deadline 'r')"),
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: n, kind: after_start, title: t, minutes: 0}\n",
     "deadlines[0].minutes: expected a positive number, got 0 (deadline 'n')"),
    (HEAD + GOOD_RULE + "deadlines:\n  - {key: n, kind: after_start, title: t, minutes: 5}\n"
     "  - {key: n, kind: after_end, title: t, minutes: 5}\n",
     "deadlines[1].key: duplicate deadline key 'n'"),
    ("name: x\ngrades: [A\n", "not valid YAML at line 3: "),
    ("- just a list\n", "(top level): expected a mapping, got ['just a list']"),
])
def test_bad_table_is_one_line_naming_file_and_rule(tmp_path, text, message):
    f = tmp_path / "x.yaml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(TableError) as e:
        load_table(f)
    line = str(e.value)
    assert "\n" not in line
    assert line.startswith(f"{f}: {message}"), line


def test_missing_file_and_duplicate_names(tmp_path):
    with pytest.raises(TableError, match=r"nope\.yaml: cannot read"):
        load_table(tmp_path / "nope.yaml")
    (tmp_path / "cbrc.yaml").write_text((SEARCH_DIR / "cbrc.yaml").read_text(encoding="utf-8"))
    with pytest.raises(TableError, match=r"name: table 'cbrc' is already loaded from config/grading/cbrc.yaml"):
        load_tables(["cbrc", tmp_path / "cbrc.yaml"])


def test_numbers_as_grade_names_are_read_as_text(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text("name: h\ngrades: [1, 2]\nhandlers: {1: boss}\nrules:\n"
                 "  - {id: r, kind: observed, grade: 2, kinds_any: [x]}\n")
    t = load_table(f)
    assert t.grades == ("1", "2") and t.rules[0].grade == "2" and t.handler("1") == "boss"
