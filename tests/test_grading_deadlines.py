"""plan_deadlines() (collector/grading/deadlines.py) against domain.md §3 and
§2.3, read as timelines: minutes from the incident's start T0."""

from __future__ import annotations

from zoneinfo import ZoneInfo
from datetime import datetime, timedelta, timezone

import pytest

from collector.grading import (Calendar, IncidentFacts, Observed, Outage, classify, history_from,
                               load_tables, observed_span_lists, observed_spans, plan_deadlines)

TABLES = load_tables(["cbrc", "hospital"])
CBRC, HOSPITAL = TABLES["cbrc"], TABLES["hospital"]
T0 = datetime(2024, 5, 6, 1, 0, tzinfo=timezone.utc)       # Monday 09:00 in Shanghai


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def plan(history, now, ended=None, table=CBRC, **kw):
    """{key: due minute} of the plan, for reading as a timeline."""
    got = plan_deadlines(table, T0, None if ended is None else at(ended),
                         [(g, at(m), *rest) for g, m, *rest in history], at(now), **kw)
    assert got == sorted(got, key=lambda d: (d.due_at, d.key))
    return {d.key: (d.due_at - T0).total_seconds() / 60 for d in got}


H = 60


@pytest.mark.parametrize("desc, history, now, ended, want", [
    ("ungraded: nothing is due", [], 500, None, {}),
    ("grade III at 30 min: notice within 60 min of the start, written report within 12 h",
     [("III", 30, "iii-1-region-30m")], 40, None, {"regulator-notice": 60, "written-report": 12 * H}),
    ("III reached exactly at 60 min", [("III", 60, "iii-1-region-30m")], 60, None,
     {"regulator-notice": 60, "written-report": 12 * H}),
    ("III reached after its 60 min had passed: notice due at the moment it is reached",
     [("III", 125, "after-hours-1-region")], 130, None, {"regulator-notice": 125, "written-report": 12 * H}),
    ("grade I by the data criterion: notice due at once",
     [("I", 20, "data-major")], 20, None,
     {"regulator-notice": 20, "written-report": 12 * H, "progress-1": 20 + 2 * H}),
    ("the data criterion after the notice was due: the notice stays, progress starts",
     [("III", 30, "iii-1-region-30m"), ("I", 3 * H, "data-major")], 3 * H, None,
     {"regulator-notice": 60, "written-report": 12 * H, "progress-1": 5 * H}),
    ("grade I by scope: not at once", [("I", 6 * H, "i-1-region-6h")], 6 * H, None,
     {"regulator-notice": 6 * H, "written-report": 12 * H, "progress-1": 8 * H}),
    ("upgrades recompute from the original start",
     [("III", 30, "iii-1-region-30m"), ("II", 3 * H, "ii-1-region-3h"), ("I", 6 * H, "i-1-region-6h")],
     6 * H + 1, None, {"regulator-notice": 60, "written-report": 12 * H, "progress-1": 8 * H}),
    ("grade I progress every 2 h: all due so far and the next",
     [("I", H, "i-2-regions-3h")], 5 * H, None,
     {"regulator-notice": H, "written-report": 12 * H, "progress-1": 3 * H, "progress-2": 5 * H,
      "progress-3": 7 * H}),
    ("... until the end: none due at or after it",
     [("I", H, "i-2-regions-3h")], 9 * H, 7 * H,
     {"regulator-notice": H, "written-report": 12 * H, "progress-1": 3 * H, "progress-2": 5 * H}),
    ("... one minute later, the 7 h one was still due",
     [("I", H, "i-2-regions-3h")], 9 * H, 7 * H + 1,
     {"regulator-notice": H, "written-report": 12 * H, "progress-1": 3 * H, "progress-2": 5 * H,
      "progress-3": 7 * H}),
    ("grade reached after 12 h: the written report is due at once too",
     [("III", 13 * H, "after-hours-1-region")], 13 * H, None,
     {"regulator-notice": 13 * H, "written-report": 13 * H}),
    ("history not yet known at now is ignored", [("III", 30, "x"), ("I", 90, "data-major")], 45, None,
     {"regulator-notice": 60, "written-report": 12 * H}),
    ("history as (grade, reached_at) pairs", [("II", 10)], 10, None,
     {"regulator-notice": 60, "written-report": 12 * H}),
])
def test_cbrc_deadlines(desc, history, now, ended, want):
    assert plan(history, now, ended) == want


def test_reasons_and_rules():
    got = plan_deadlines(CBRC, T0, None, [("III", at(125), "x"), ("I", at(200), "data-major")], at(200))
    by = {d.key: d for d in got}
    assert by["regulator-notice"].rule == "regulator-notice" and by["progress-1"].rule == "progress"
    assert "after the 1 h had passed" in by["regulator-notice"].reason
    assert "(第二十七條)" in by["regulator-notice"].reason
    assert by["progress-1"].reason.startswith("1 × 2 h after grade I was reached at 2024-05-06 04:20:00 UTC")


@pytest.mark.parametrize("desc, now, outage_end, ended, want", [
    ("whole network out, ongoing: every milestone planned", 10, None, None,
     {"manual-30m": 30, "manual-6h": 6 * H, "manual-24h": 24 * H}),
    ("back at 45 min: only the 30 min milestone", 50, 45, None, {"manual-30m": 30}),
    ("back at exactly 30 min: restored within 30 min, no milestone", 50, 30, None, {}),
    ("incident ended at 7 h, outage end not given: up to the end", 8 * H, None, 7 * H,
     {"manual-30m": 30, "manual-6h": 6 * H}),
])
def test_hospital_manual_operation_milestones(desc, now, outage_end, ended, want):
    got = plan([], now, ended, table=HOSPITAL, whole_network_outage_start=T0,
               whole_network_outage_end=None if outage_end is None else at(outage_end))
    assert {k: v for k, v in got.items() if k.startswith("manual")} == want


def test_milestones_name_the_departments():
    got = {d.key: d for d in plan_deadlines(HOSPITAL, T0, None, [("2", T0, "class-2-observed")], at(1),
                                            whole_network_outage_start=at(5))}
    assert got["manual-30m"].due_at == at(35)
    # domain.md §2.3: cashiers (收款員, hospital §4.3(2)) at 30 min; pharmacy again at 6 h.
    assert got["manual-30m"].departments == ("registration", "admission", "pharmacy", "cashiers")
    assert got["manual-6h"].departments == ("nurse-stations", "pharmacy", "operating-rooms",
                                            "medical-technology")
    assert "switch to paper: all-departments" in got["manual-24h"].reason
    assert plan([], 1, table=HOSPITAL) == {}       # no whole-network outage: no milestones


@pytest.mark.parametrize("history, ended, want", [
    ([("2", 0, "class-2-observed")], 3 * H, {"review": 3 * H + 48 * H}),
    ([("1", 0, "force-majeure")], 3 * H, {"review": 3 * H + 48 * H}),
    ([("3", 0, "class-3-observed")], 3 * H, {}),
    ([("2", 0, "class-2-observed")], None, {}),
])
def test_hospital_review_within_2_days_of_the_end(history, ended, want):
    assert plan(history, 4 * H, ended, table=HOSPITAL) == want


def test_planned_from_a_classification():
    f = IncidentFacts(T0, None, (Outage("R1", T0, None), Outage("R2", at(100), None)))
    g = classify(f, CBRC, Calendar.default(), at(4 * H))
    assert g.grade == "II"
    assert plan_deadlines(CBRC, T0, None, history_from(g), at(4 * H)) == plan_deadlines(
        CBRC, T0, None, list(g.matches), at(4 * H))
    assert {d.key: d.due_at for d in plan_deadlines(CBRC, T0, None, history_from(g), at(4 * H))} == {
        "regulator-notice": at(60), "written-report": at(12 * H)}


def test_observed_spans_joins_a_kind_and_stops_at_now():
    f = IncidentFacts(T0, None, observed=(
        Observed("network_down_whole", at(0), at(20)), Observed("network_down_whole", at(20), None),
        Observed("switch_down", at(5), at(9)), Observed("server_down", at(99), None)))
    assert observed_spans(f, at(30)) == {"network_down_whole": (at(0), None), "switch_down": (at(5), at(9))}
    spans = observed_spans(f, at(30))
    got = plan([], 30, table=HOSPITAL, observed=spans)
    assert got == {"manual-30m": 30, "manual-6h": 6 * H, "manual-24h": 24 * H}


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="now: expected an aware datetime"):
        plan_deadlines(CBRC, T0, None, [], datetime(2024, 5, 6, 9, 0))


SH = ZoneInfo("Asia/Shanghai")


def sh(day: int, hhmm: str) -> datetime:
    """A local time in Shanghai in May 2024 (T0 is Monday 6 May, 09:00 there)."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2024, 5, day, h, m, tzinfo=SH)


@pytest.mark.parametrize("back, important, everything", [
    # domain.md §2.3 (hospital §6.4): important data the same day, all data the next,
    # each day ending at local midnight in the calendar's zone.
    (sh(6, "14:10"), sh(7, "00:00"), sh(8, "00:00")),
    (sh(6, "23:59"), sh(7, "00:00"), sh(8, "00:00")),
    (sh(7, "00:00"), sh(8, "00:00"), sh(9, "00:00")),      # just after midnight: a new day
    (sh(31, "20:00"), sh(32 - 31, "00:00").replace(month=6), sh(2, "00:00").replace(month=6)),
])
def test_reentry_deadlines_after_the_network_is_back(back, important, everything):
    got = {d.key: d for d in plan_deadlines(
        HOSPITAL, T0, None, [("2", T0, "class-2-observed")], back + timedelta(minutes=1),
        observed={"network_down_whole": (T0, back)}, zone=SH)}
    assert got["reentry-important"].due_at == important
    assert got["reentry-all"].due_at == everything
    assert "hospital §6.4" in got["reentry-all"].reason


def test_no_reentry_deadline_while_the_network_is_still_out():
    got = plan([("2", 0, "class-2-observed")], 45, table=HOSPITAL,
               observed={"network_down_whole": (T0, None)}, zone=SH)
    assert "reentry-important" not in got and "reentry-all" not in got


def test_each_separate_outage_plans_its_own_milestones_and_reentry():
    spans = [(at(0), at(10)), (at(15), at(60)), (at(100), None)]
    got = plan([("2", 0, "class-2-observed")], 120, table=HOSPITAL,
               observed={"network_down_whole": spans}, zone=SH)
    # The first (10 min) reached no milestone; the second reached 30 min; the third is on.
    assert {k: v for k, v in got.items() if k.startswith("manual")} == {
        "manual-30m-2": 45, "manual-30m-3": 130, "manual-6h-3": 100 + 6 * H,
        "manual-24h-3": 100 + 24 * H}
    assert {k for k in got if k.startswith("reentry")} == {
        "reentry-important", "reentry-all", "reentry-important-2", "reentry-all-2"}


def test_observed_span_lists_keeps_separate_outages_apart():
    f = IncidentFacts(T0, None, observed=(
        Observed("network_down_whole", at(0), at(10)), Observed("network_down_whole", at(5), at(12)),
        Observed("network_down_whole", at(15), None)))
    assert observed_span_lists(f, at(30)) == {
        "network_down_whole": [(at(0), at(12)), (at(15), None)]}
