"""The shipped Grafana dashboard's shape, read as Grafana reads it: rows repeat
per branch, UPS and switch; one branch by default; tables are instant queries;
info metrics show their labels; ratios are percent; stats have thresholds.
(Grafana itself is not packaged for Debian, so its rendering is not run here;
tests/test_prometheus_rules.py evaluates every panel's query in a real
Prometheus scraping a real agent.)"""

from __future__ import annotations

import json
import re

from .support.paths import REPO

DASHBOARD = json.loads((REPO / "config" / "grafana" / "dashboards" / "branchwatch.json").read_text())
VARS = {v["name"]: v for v in DASHBOARD["templating"]["list"]}


def _rows() -> list[tuple[dict, list[dict]]]:
    """Each row with the panels under it (a flat, uncollapsed layout)."""
    rows, current = [], None
    for p in DASHBOARD["panels"]:
        if p["type"] == "row":
            current = (p, [])
            rows.append(current)
        elif current is not None:
            current[1].append(p)
    return rows


def _exprs(panel: dict) -> list[str]:
    return [t["expr"] for t in panel.get("targets", [])]


def test_rows_that_name_a_variable_repeat_by_it_and_their_panels_use_it():
    repeated = {}
    for row, panels in _rows():
        names = re.findall(r"\$(\w+)", row["title"])
        if not names:
            assert "repeat" not in row
            continue
        assert row.get("repeat") == names[0], row["title"]
        repeated[names[0]] = row["title"]
        for p in panels:
            assert all(f"${names[0]}" in e for e in _exprs(p)), (row["title"], p["title"])
    assert set(repeated) == {"branch", "ups", "switch"}
    for name in repeated:
        assert VARS[name]["multi"] is True


def test_one_branch_by_default_and_the_fleet_shows_problems_only():
    branch = VARS["branch"]
    assert branch["includeAll"] is False and not branch.get("current")
    fleet = next(panels for row, panels in _rows() if row["title"] == "Fleet overview")
    problems = next(p for p in fleet if p["type"] == "table")
    assert "> 0" in problems["targets"][0]["expr"]


def test_tables_are_instant_and_info_metrics_show_labels():
    for p in DASHBOARD["panels"]:
        if p["type"] == "table":
            for t in p["targets"]:
                assert t.get("instant") is True and t.get("format") == "table", p["title"]
        if any(re.search(r"_info\b", e) for e in _exprs(p)) and p["type"] != "table":
            # An info metric as a stat would show its value, always "1".
            raise AssertionError(f"{p['title']}: info metric in a {p['type']}")


def test_ratios_are_percent_and_stats_have_thresholds_or_mappings():
    for p in DASHBOARD["panels"]:
        defaults = p.get("fieldConfig", {}).get("defaults", {})
        exprs = _exprs(p)
        if exprs and all(re.search(r"_ratio\b", e) for e in exprs):
            assert defaults.get("unit") == "percentunit", p["title"]
            assert not any("* 100" in e for e in exprs), p["title"]
        if p["type"] == "stat" and not any(e.startswith("region:branchwatch_branches") for e in exprs):
            assert defaults.get("thresholds") or defaults.get("mappings") or defaults.get("unit"), p["title"]
        if p["type"] == "state-timeline":
            assert defaults.get("mappings"), p["title"]
