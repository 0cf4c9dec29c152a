"""classify() and raise_only() (collector/grading/classify.py) against the
tables of domain.md §2: golden cases at every threshold, inside and outside
business hours, across holidays, make-up days, midnight, time zones and DST;
then invariants checked by hypothesis against a minute-by-minute oracle."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.grading import (Assertion, Calendar, Grading, IncidentFacts, Observed, Outage,
                               classify, load_tables, parse_table, raise_only)

TABLES = load_tables(["cbrc", "hospital"])
CBRC, HOSPITAL = TABLES["cbrc"], TABLES["hospital"]
SH, NY = ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York")
UTC = timezone.utc

DEFAULT = Calendar.default()                                   # Mon-Fri 08:30-17:00 Shanghai
# China 2024: Labour Day 1-5 May off; Sat 11 May a make-up working day.
CN = Calendar("Asia/Shanghai", frozenset(range(5)), ((time(8, 30), time(17)),),
              frozenset(date(2024, 5, d) for d in range(1, 6)), frozenset({date(2024, 5, 11)}))
CN_LUNCH = Calendar("Asia/Shanghai", frozenset(range(5)), ((time(8, 30), time(12)), (time(13, 30), time(17))))
NY_WEEK = Calendar("America/New_York", frozenset(range(5)), ((time(9), time(17)),))
NY_NIGHT = Calendar("America/New_York", frozenset(range(7)), ((time(0, 30), time(3, 30)),))


def L(text: str, zone=SH) -> datetime:
    """Local wall time; 'Z' at the end means UTC."""
    if text.endswith("Z"):
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def out(region: str, start: str, end: str | None = None, zone=SH, cause: str = "") -> Outage:
    return Outage(region, L(start, zone), None if end is None else L(end, zone), cause)


def facts(*outages: Outage, assertions=(), observed=()) -> IncidentFacts:
    starts = [o.start for o in outages] + [o.start for o in observed] + [a.at for a in assertions]
    return IncidentFacts(min(starts), None, tuple(outages), tuple(observed), tuple(assertions))


MON = "2024-05-06"
one = lambda start=f"{MON} 09:00", end=None: facts(out("R1", start, end))           # noqa: E731
two = lambda start=f"{MON} 09:00": facts(out("R1", start), out("R2", start))        # noqa: E731

# (description, calendar, facts, now, grade, rule, provisional, reached_at)
GOLDEN = [
    ("1 region 29:59 of business time", DEFAULT, one(), f"{MON} 09:29:59", None, None, False, None),
    ("1 region exactly 30:00 reaches III (含)", DEFAULT, one(), f"{MON} 09:30", "III", "iii-1-region-30m", False, f"{MON} 09:30"),
    ("1 region 30:01", DEFAULT, one(), f"{MON} 09:30:01", "III", "iii-1-region-30m", False, f"{MON} 09:30"),
    ("1 region 2h59m", DEFAULT, one(), f"{MON} 11:59", "III", "iii-1-region-30m", False, f"{MON} 09:30"),
    ("1 region 3h reaches II", DEFAULT, one(), f"{MON} 12:00", "II", "ii-1-region-3h", False, f"{MON} 12:00"),
    ("1 region 5h59m", DEFAULT, one(), f"{MON} 14:59", "II", "ii-1-region-3h", False, f"{MON} 12:00"),
    ("1 region 6h reaches I", DEFAULT, one(), f"{MON} 15:00", "I", "i-1-region-6h", False, f"{MON} 15:00"),
    ("2 regions 29:59", DEFAULT, two(), f"{MON} 09:29:59", None, None, False, None),
    ("2 regions 30:00 reach II", DEFAULT, two(), f"{MON} 09:30", "II", "ii-2-regions-30m", False, f"{MON} 09:30"),
    ("2 regions 2h59m", DEFAULT, two(), f"{MON} 11:59", "II", "ii-2-regions-30m", False, f"{MON} 09:30"),
    ("2 regions 3h reach I", DEFAULT, two(), f"{MON} 12:00", "I", "i-2-regions-3h", False, f"{MON} 12:00"),
    ("2 regions out at different times are not 2 at once", DEFAULT,
     facts(out("R1", f"{MON} 09:00", f"{MON} 09:40"), out("R2", f"{MON} 10:00", f"{MON} 10:40")),
     f"{MON} 11:00", "III", "iii-1-region-30m", False, f"{MON} 09:30"),
    ("2 regions one after the other: one continuous region-out span, not 2 at once", DEFAULT,
     facts(out("R1", f"{MON} 09:00", f"{MON} 09:20"), out("R2", f"{MON} 09:20", f"{MON} 09:40")),
     f"{MON} 11:00", "III", "iii-1-region-30m", False, f"{MON} 09:30"),
    ("2 regions overlapping 29 min", DEFAULT,
     facts(out("R1", f"{MON} 09:00", f"{MON} 10:00"), out("R2", f"{MON} 09:31", f"{MON} 11:00")),
     f"{MON} 12:00", "III", "iii-1-region-30m", False, f"{MON} 09:30"),
    ("2 regions overlapping 30 min", DEFAULT,
     facts(out("R1", f"{MON} 09:00", f"{MON} 10:00"), out("R2", f"{MON} 09:30", f"{MON} 11:00")),
     f"{MON} 12:00", "II", "ii-2-regions-30m", False, f"{MON} 10:00"),
    ("2 branches of one region are one region", DEFAULT,
     facts(out("R1", f"{MON} 09:00", cause="B1"), out("R1", f"{MON} 09:00", cause="B2")),
     f"{MON} 09:30", "III", "iii-1-region-30m", False, f"{MON} 09:30"),
    ("repaired at 20 min, looked at later", DEFAULT, one(end=f"{MON} 09:20"), f"{MON} 17:00", None, None, False, None),
    ("an outage not yet known at now", DEFAULT, one(f"{MON} 10:00"), f"{MON} 09:59", None, None, False, None),
    # domain.md §2.1 criterion 3: outside business hours, 30 wall-clock minutes unrepaired.
    ("evening, 29:59 unrepaired", DEFAULT, one(f"{MON} 20:00"), f"{MON} 20:29:59", None, None, False, None),
    ("evening, 30:00 unrepaired: provisional III", DEFAULT, one(f"{MON} 20:00"), f"{MON} 20:30",
     "III", "after-hours-1-region", True, f"{MON} 20:30"),
    ("evening, 2 regions 30:00: provisional II", DEFAULT, two(f"{MON} 20:00"), f"{MON} 20:30",
     "II", "after-hours-2-regions", True, f"{MON} 20:30"),
    ("evening, 2h59m59s unrepaired: still provisional III", DEFAULT, one(f"{MON} 20:00"),
     f"{MON} 22:59:59", "III", "after-hours-1-region", True, f"{MON} 20:30"),
    ("evening, 3 h unrepaired: provisional II", DEFAULT, one(f"{MON} 20:00"), f"{MON} 23:00",
     "II", "after-hours-1-region-3h", True, f"{MON} 23:00"),
    ("evening, 5h59m59s unrepaired: still provisional II", DEFAULT, one(f"{MON} 20:00"),
     "2024-05-07 01:59:59", "II", "after-hours-1-region-3h", True, f"{MON} 23:00"),
    ("evening, 6 h unrepaired: provisional I", DEFAULT, one(f"{MON} 20:00"), "2024-05-07 02:00",
     "I", "after-hours-1-region-6h", True, "2024-05-07 02:00"),
    ("evening, 2 regions 29:59: ungraded", DEFAULT, two(f"{MON} 20:00"), f"{MON} 20:29:59",
     None, None, False, None),
    ("evening, 2 regions 2h59m59s: still provisional II", DEFAULT, two(f"{MON} 20:00"),
     f"{MON} 22:59:59", "II", "after-hours-2-regions", True, f"{MON} 20:30"),
    ("evening, 2 regions 3 h: provisional I", DEFAULT, two(f"{MON} 20:00"), f"{MON} 23:00",
     "I", "after-hours-2-regions-3h", True, f"{MON} 23:00"),
    ("out at 07:00: the wall clock keeps counting after opening (3 h at 10:00)", DEFAULT,
     one(f"{MON} 07:00"), f"{MON} 10:00", "II", "after-hours-1-region-3h", True, f"{MON} 10:00"),
    ("a whole Saturday out: provisional I at 6 h, not II at most", DEFAULT,
     one("2024-05-11 02:00"), "2024-05-11 22:00", "I", "after-hours-1-region-6h", True, "2024-05-11 08:00"),
    ("evening, repaired at 29:59", DEFAULT, one(f"{MON} 20:00", f"{MON} 20:29:59"), f"{MON} 23:00",
     None, None, False, None),
    ("evening, repaired at exactly 30:00 (含), learnt late", DEFAULT, one(f"{MON} 20:00", f"{MON} 20:30"),
     f"{MON} 23:00", "III", "after-hours-1-region", True, f"{MON} 20:30"),
    ("16:45 out: 15 business minutes, 30 wall minutes at 17:15", DEFAULT, one(f"{MON} 16:45"),
     f"{MON} 17:15", "III", "after-hours-1-region", True, f"{MON} 17:15"),
    ("16:45 out, 17:14:59", DEFAULT, one(f"{MON} 16:45"), f"{MON} 17:14:59", None, None, False, None),
    ("out at 08:00: 30 unrepaired minutes, part before opening: provisional III", DEFAULT,
     one(f"{MON} 08:00"), f"{MON} 08:30", "III", "after-hours-1-region", True, f"{MON} 08:30"),
    ("out at 08:00: then 30 business minutes", DEFAULT, one(f"{MON} 08:00"), f"{MON} 09:00",
     "III", "iii-1-region-30m", False, f"{MON} 09:00"),
    ("out at 07:50: provisional at 08:20 still counts after opening", DEFAULT, one(f"{MON} 07:50"),
     f"{MON} 08:35", "III", "after-hours-1-region", True, f"{MON} 08:20"),
    ("Saturday, ordinary calendar", DEFAULT, one("2024-05-11 10:00"), "2024-05-11 10:30",
     "III", "after-hours-1-region", True, "2024-05-11 10:30"),
    ("Saturday make-up working day", CN, one("2024-05-11 10:00"), "2024-05-11 10:30",
     "III", "iii-1-region-30m", False, "2024-05-11 10:30"),
    ("Saturday make-up working day, 29:59", CN, one("2024-05-11 10:00"), "2024-05-11 10:29:59",
     None, None, False, None),
    ("Labour Day holiday on a Wednesday", CN, one("2024-05-01 09:00"), "2024-05-01 09:30",
     "III", "after-hours-1-region", True, "2024-05-01 09:30"),
    ("Labour Day holiday: 5h59m59s out stays provisional II", CN, one("2024-05-01 09:00"),
     "2024-05-01 14:59:59", "II", "after-hours-1-region-3h", True, "2024-05-01 12:00"),
    ("Labour Day holiday: 6 h out reaches provisional I", CN, one("2024-05-01 09:00"), "2024-05-01 15:00",
     "I", "after-hours-1-region-6h", True, "2024-05-01 15:00"),
    ("the same Wednesday without the holiday", DEFAULT, one("2024-05-01 09:00"), "2024-05-01 09:30",
     "III", "iii-1-region-30m", False, "2024-05-01 09:30"),
    ("lunch break is outside business hours", CN_LUNCH, one(f"{MON} 11:45"), f"{MON} 12:15",
     "III", "after-hours-1-region", True, f"{MON} 12:15"),
    ("lunch break does not count as business time", CN_LUNCH, one(f"{MON} 11:45"), f"{MON} 13:45",
     "III", "iii-1-region-30m", False, f"{MON} 13:45"),
    ("UTC input: 00:00Z is 08:00 in Shanghai", DEFAULT, facts(out("R1", f"{MON}T00:00Z")), f"{MON}T01:00Z",
     "III", "iii-1-region-30m", False, f"{MON}T01:00Z"),
    ("UTC date Sunday, Shanghai Monday 07:00", DEFAULT, facts(out("R1", "2024-05-05T23:00Z")),
     "2024-05-05T23:30Z", "III", "after-hours-1-region", True, "2024-05-05T23:30Z"),
    ("New York: fall-back night has 4 business hours", NY_NIGHT,
     facts(out("R1", "2024-11-03 00:00", zone=NY)), "2024-11-03T09:00Z",
     "II", "ii-1-region-3h", False, "2024-11-03T07:30Z"),
]

# Business-time arithmetic across nights, holidays and DST, on the firm rules
# alone (with the after-hours rules these stretches are graded provisionally
# by wall-clock time first: see GOLDEN).
GOLDEN_FIRM = [
    ("overnight into the morning: firm III replaces provisional III", DEFAULT, one(f"{MON} 16:45"),
     "2024-05-07 08:45", "III", "iii-1-region-30m", False, "2024-05-07 08:45"),
    ("across midnight, 2h59m59s of business time", DEFAULT, one(f"{MON} 16:00"), "2024-05-07 10:29:59",
     "III", "iii-1-region-30m", False, f"{MON} 16:30"),
    ("across midnight, 3h of business time", DEFAULT, one(f"{MON} 16:00"), "2024-05-07 10:30",
     "II", "ii-1-region-3h", False, "2024-05-07 10:30"),
    ("Friday into the make-up Saturday", CN, one("2024-05-10 15:00"), "2024-05-11 10:00",
     "II", "ii-1-region-3h", False, "2024-05-11 09:30"),
    ("the same without the make-up day: on to Monday", DEFAULT, one("2024-05-10 15:00"), "2024-05-13 10:00",
     "II", "ii-1-region-3h", False, "2024-05-13 09:30"),
    ("the Labour Day holidays do not count", CN, one("2024-04-30 16:00"), "2024-05-06 11:00",
     "II", "ii-1-region-3h", False, "2024-05-06 10:30"),
    ("New York: Friday to Monday across the spring DST change", NY_WEEK,
     facts(out("R1", "2024-03-08 16:00", zone=NY)), "2024-03-11T14:59:59Z",
     "III", "iii-1-region-30m", False, "2024-03-08T21:30Z"),
    ("New York: 3 h reached at Monday 11:00 EDT = 15:00Z", NY_WEEK,
     facts(out("R1", "2024-03-08 16:00", zone=NY)), "2024-03-11T15:00Z",
     "II", "ii-1-region-3h", False, "2024-03-11T15:00Z"),
    ("New York: spring-forward night has only 2", NY_NIGHT,
     facts(out("R1", "2024-03-10 00:00", zone=NY)), "2024-03-10T12:00Z",
     "III", "iii-1-region-30m", False, "2024-03-10T06:00Z"),

]


def _check(g: Grading, grade, rule, provisional, reached: datetime | None, table):
    assert (g.table, g.grade, g.rule, g.provisional) == (table.name, grade, rule, provisional)
    assert g.reached_at == reached
    # domain.md §2.1: reasons in a person's words, zh and en, no rule ids.
    assert g.reasons and len(g.reasons_zh) == len(g.reasons)
    assert not any(r.id in line for r in table.rules for line in g.reasons + g.reasons_zh)


@pytest.mark.parametrize("desc, cal, f, now, grade, rule, provisional, reached", GOLDEN,
                         ids=[g[0] for g in GOLDEN])
def test_cbrc_golden(desc, cal, f, now, grade, rule, provisional, reached):
    zone = NY if cal.timezone == "America/New_York" else SH
    g = classify(f, CBRC, cal, L(now, zone))
    _check(g, grade, rule, provisional, None if reached is None else L(reached, zone), CBRC)


FIRM = parse_table({"name": "cbrc", "grades": ["I", "II", "III"],
                    "rules": [{k: v for k, v in vars(r).items() if k in ("id", "kind", "grade", "regions_at_least", "business_minutes")}
                              for r in CBRC.rules if r.kind == "scope"]}, "firm.yaml")


@pytest.mark.parametrize("desc, cal, f, now, grade, rule, provisional, reached", GOLDEN_FIRM,
                         ids=[g[0] for g in GOLDEN_FIRM])
def test_business_time_golden(desc, cal, f, now, grade, rule, provisional, reached):
    zone = NY if cal.timezone == "America/New_York" else SH
    g = classify(f, FIRM, cal, L(now, zone))
    _check(g, grade, rule, provisional, None if reached is None else L(reached, zone), FIRM)


def test_reasons_say_who_since_when_and_how_long_in_zh_and_en():
    f = facts(Outage("福建", L(f"{MON} 10:10"), None, out_of=(2, 4)),
              Outage("广东", L(f"{MON} 10:20"), None, key_site="DC-GZ"))
    g = classify(f, CBRC, DEFAULT, L(f"{MON} 10:50"))
    assert g.grade == "II" and g.reached_at == L(f"{MON} 10:50")
    assert g.reasons[0] == ("2 of 4 branches in 福建 and the key site DC-GZ of 广东 cannot do "
                            "business at the same time since 10:10 (business time 30 min)")
    assert g.reasons_zh[0] == "福建 4 个网点中 2 个、广东关键站点 DC-GZ自 10:10 起同时无法正常营业(营业时间 30分钟)"
    assert g.reasons[1] == "2 of 4 branches in 福建 and the key site DC-GZ of 广东 cannot do business since 10:10 (business time 40 min)"
    assert {m.rule for m in g.matches} == {"ii-2-regions-30m", "iii-1-region-30m"}


def test_provisional_reason_says_unrepaired_and_provisional():
    g = classify(facts(Outage("福建", L(f"{MON} 20:00"), None, out_of=(3, 4))), CBRC, DEFAULT,
                 L("2024-05-07 01:05:09.866"))
    assert g.reasons[0] == ("3 of 4 branches in 福建 cannot do business since 2024-05-06 20:00, "
                            "unrepaired for 5 hr, 5 min, partly outside business hours (provisional)")
    assert g.reasons_zh[0] == ("福建 4 个网点中 3 个自 2024-05-06 20:00 起无法正常营业,"
                               "5小时5分钟未修复,部分在营业时间以外(暂定等级)")


def _a(criterion, at, withdrawn=False, who="wang", why="checked the ledgers"):
    return Assertion(criterion, who, why, L(at), withdrawn)


@pytest.mark.parametrize("desc, f, now, grade, rule, reached", [
    ("data_larger alone", facts(assertions=[_a("data_larger", f"{MON} 09:10")]), f"{MON} 09:20",
     "III", "data-larger", f"{MON} 09:10"),
    ("data_major", facts(assertions=[_a("data_major", f"{MON} 09:10")]), f"{MON} 09:20",
     "I", "data-major", f"{MON} 09:10"),
    ("withdrawn is ignored", facts(assertions=[_a("data_major", f"{MON} 09:10", withdrawn=True)]),
     f"{MON} 09:20", None, None, None),
    ("set after now is not known yet", facts(assertions=[_a("data_major", f"{MON} 09:30")]),
     f"{MON} 09:20", None, None, None),
    ("scope II beats data III", facts(out("R1", f"{MON} 09:00"), out("R2", f"{MON} 09:00"),
                                      assertions=[_a("data_larger", f"{MON} 09:05")]),
     f"{MON} 10:00", "II", "ii-2-regions-30m", f"{MON} 09:30"),
    ("data II beats scope III", facts(out("R1", f"{MON} 09:00"), assertions=[_a("data_serious", f"{MON} 11:00")]),
     f"{MON} 11:00", "II", "data-serious", f"{MON} 11:00"),
])
def test_cbrc_data_criteria(desc, f, now, grade, rule, reached):
    _check(classify(f, CBRC, DEFAULT, L(now)), grade, rule, False, reached and L(reached), CBRC)


def _o(kind, start, end=None, detail=""):
    return Observed(kind, L(start), None if end is None else L(end), detail)


@pytest.mark.parametrize("desc, f, now, grade, rule, reached", [
    ("server down is class 2", facts(observed=[_o("server_down", f"{MON} 09:00", detail="his-db")]),
     f"{MON} 09:01", "2", "class-2-observed", f"{MON} 09:00"),
    ("one terminal is class 3", facts(observed=[_o("terminal_down", f"{MON} 09:00")]), f"{MON} 09:01",
     "3", "class-3-observed", f"{MON} 09:00"),
    ("a switch joining makes it class 2", facts(observed=[_o("terminal_down", f"{MON} 09:00"),
                                                          _o("switch_down", f"{MON} 09:05")]),
     f"{MON} 09:10", "2", "class-2-observed", f"{MON} 09:05"),
    ("the switch not yet seen", facts(observed=[_o("terminal_down", f"{MON} 09:00"), _o("switch_down", f"{MON} 09:05")]),
     f"{MON} 09:04", "3", "class-3-observed", f"{MON} 09:00"),
    ("force majeure is class 1", facts(observed=[_o("server_down", f"{MON} 09:00")],
                                       assertions=[_a("force_majeure", f"{MON} 09:20", why="lightning")]),
     f"{MON} 09:30", "1", "force-majeure", f"{MON} 09:20"),
    ("operator misuse is a cause for the whole incident: class 4 over observation",
     facts(observed=[_o("server_down", f"{MON} 09:00")], assertions=[_a("operator_misuse", f"{MON} 09:20")]),
     f"{MON} 09:30", "4", "operator-misuse", f"{MON} 09:20"),
    ("misuse withdrawn: observation again", facts(observed=[_o("server_down", f"{MON} 09:00")],
                                                  assertions=[_a("operator_misuse", f"{MON} 09:20", True)]),
     f"{MON} 09:30", "2", "class-2-observed", f"{MON} 09:00"),
    ("a correction, then another: the latest stands",
     facts(observed=[_o("server_down", f"{MON} 09:00")],
           assertions=[_a("correct_to_3", f"{MON} 10:00"), _a("correct_to_2", f"{MON} 11:00")]),
     f"{MON} 11:30", "2", "correct-to-2", f"{MON} 11:00"),
    ("... before the second one", facts(observed=[_o("server_down", f"{MON} 09:00")],
                                        assertions=[_a("correct_to_3", f"{MON} 10:00"), _a("correct_to_2", f"{MON} 11:00")]),
     f"{MON} 10:30", "3", "correct-to-3", f"{MON} 10:00"),
    ("an unknown kind grades nothing", facts(observed=[_o("coffee_machine_down", f"{MON} 09:00")]),
     f"{MON} 10:00", None, None, None),
])
def test_hospital_classes(desc, f, now, grade, rule, reached):
    _check(classify(f, HOSPITAL, DEFAULT, L(now)), grade, rule, False, reached and L(reached), HOSPITAL)


# ---- raise_only: domain.md §2.1 the grade only goes up by itself --------------------

def _g(grade, rule=None, provisional=False, table=CBRC):
    return Grading(table.name, grade, rule, provisional, L(f"{MON} 09:00") if grade else None, ("x",))


@pytest.mark.parametrize("prev, new, want", [
    (None, _g("III", "iii-1-region-30m"), "new"),
    (_g("II", "ii-1-region-3h"), _g("III", "iii-1-region-30m"), "prev"),
    (_g("II", "ii-1-region-3h"), _g(None), "prev"),
    (_g("III", "iii-1-region-30m"), _g("II", "ii-1-region-3h"), "new"),
    (_g("II", "after-hours-2-regions", True), _g("II", "ii-2-regions-30m"), "new"),
    (_g("II", "ii-2-regions-30m"), _g("II", "after-hours-2-regions", True), "prev"),
    (_g("II", "after-hours-2-regions", True), _g("III", "iii-1-region-30m"), "prev"),
])
def test_raise_only(prev, new, want):
    assert raise_only(prev, new, CBRC) is (prev if want == "prev" else new)


def test_raise_only_lets_a_persons_correction_down():
    prev = _g("2", "class-2-observed", table=HOSPITAL)
    assert raise_only(prev, _g("4", "operator-misuse", table=HOSPITAL), HOSPITAL).grade == "4"
    assert raise_only(prev, _g("3", "class-3-observed", table=HOSPITAL), HOSPITAL) is prev


# ---- invariants, against a minute-by-minute oracle ------------------------------------

BASE = L("2024-05-09 00:00")                       # a Thursday: covers Friday, the weekend, Monday
SPAN = 5 * 1440
ORACLE_CALENDARS = [DEFAULT, CN, CN_LUNCH]


def _open_minute(cal: Calendar, m: int) -> bool:
    """Independent of Calendar's own code: Shanghai has no DST, so minutes are local minutes."""
    day = BASE.date() + timedelta(days=m // 1440)
    if not (day in cal.workdays or (day.weekday() in cal.weekdays and day not in cal.holidays)):
        return False
    t = (m % 1440)
    return any(a.hour * 60 + a.minute <= t < b.hour * 60 + b.minute for a, b in cal.hours)


def oracle(cal: Calendar, outs, asserts, now_m):
    """Every cbrc rule that holds, with its reached minute, by brute force."""
    regions = {r for r, _, _ in outs}
    count = [sum(any(s <= m < min(now_m, e) for rr, s, e in outs if rr == r) for r in regions)
             for m in range(now_m)]
    held = {}
    for rule in CBRC.rules:
        if rule.kind == "scope":
            acc = 0
            for m in range(now_m):
                if count[m] >= rule.regions_at_least and _open_minute(cal, m):
                    acc += 1
                    if acc == rule.business_minutes:
                        held[rule.id] = m + 1
                        break
        elif rule.kind == "provisional":
            # Unrepaired wall-clock minutes; reached once the run lasted wall_minutes
            # and met a closed minute before its repair (the later of the two).
            t, wall = 0, int(rule.wall_minutes)
            while t < now_m:
                if count[t] < rule.regions_at_least:
                    t += 1
                    continue
                r = t
                while t < now_m and count[t] >= rule.regions_at_least:
                    t += 1
                closed = next((m for m in range(r, t) if not _open_minute(cal, m)), None)
                if closed is not None and t - r >= wall and max(r + wall, closed) <= t:
                    held[rule.id] = max(r + wall, closed)
                    break
        else:
            ats = [at for c, at in asserts if c == rule.criterion and at <= now_m]
            if ats:
                held[rule.id] = min(ats)
    return held


outage_st = st.tuples(st.sampled_from("ABC"), st.integers(0, SPAN - 1), st.integers(1, 900) | st.none())
assert_st = st.tuples(st.sampled_from(["data_larger", "data_serious", "data_major"]), st.integers(0, SPAN))


def _facts(outs, asserts):
    at = lambda m: BASE + timedelta(minutes=m)                      # noqa: E731
    os_ = tuple(Outage(r, at(s), None if d is None else at(s + d)) for r, s, d in outs)
    as_ = tuple(Assertion(c, "p", "r", at(m)) for c, m in asserts)
    return IncidentFacts(BASE, None, os_, (), as_)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(ORACLE_CALENDARS), st.lists(outage_st, max_size=4),
       st.lists(assert_st, max_size=2), st.integers(0, SPAN))
def test_matches_oracle_and_highest_rule_wins(cal, outs, asserts, now_m):
    g = classify(_facts(outs, asserts), CBRC, cal, BASE + timedelta(minutes=now_m))
    flat = [(r, s, SPAN * 2 if d is None else s + d) for r, s, d in outs]
    want = oracle(cal, flat, asserts, now_m)
    assert {m.rule: m.reached_at for m in g.matches} == {
        rid: BASE + timedelta(minutes=m) for rid, m in want.items()}
    if not want:
        assert g.grade is None and g.rule is None
        return
    top = max(CBRC.rank(CBRC.rule(r).grade) for r in want)
    assert CBRC.rank(g.grade) == top
    firm = [r for r in want if CBRC.rank(CBRC.rule(r).grade) == top and not CBRC.rule(r).provisional]
    candidates = firm or [r for r in want if CBRC.rank(CBRC.rule(r).grade) == top]
    assert g.rule == min(candidates, key=[r.id for r in CBRC.rules].index)
    assert g.provisional == CBRC.rule(g.rule).provisional


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ORACLE_CALENDARS), st.lists(outage_st, max_size=4), outage_st,
       st.integers(0, SPAN), st.integers(0, 600))
def test_grade_never_drops_with_more_scope_or_more_time(cal, outs, extra, now_m, later):
    f = _facts(outs, [])
    now = BASE + timedelta(minutes=now_m)
    g = classify(f, CBRC, cal, now)
    more_scope = classify(_facts(outs + [extra], []), CBRC, cal, now)
    more_time = classify(f, CBRC, cal, now + timedelta(minutes=later))
    assert CBRC.rank(more_scope.grade) >= CBRC.rank(g.grade)
    assert CBRC.rank(more_time.grade) >= CBRC.rank(g.grade)
    # Firm grades are never undone by time: a reached moment stays where it was.
    if g.grade is not None and not g.provisional:
        assert any(m.rule == g.rule and m.reached_at == g.reached_at for m in more_time.matches)


def test_equal_grades_firm_beats_provisional_whatever_the_file_order():
    from collector.grading import parse_table
    t = parse_table({"name": "t", "grades": ["A"], "rules": [
        {"id": "night", "kind": "provisional", "grade": "A", "wall_minutes": 30},
        {"id": "day", "kind": "scope", "grade": "A", "business_minutes": 30},
        {"id": "day-too", "kind": "scope", "grade": "A", "business_minutes": 30}]}, "t.yaml")
    g = classify(one(f"{MON} 07:00"), t, DEFAULT, L(f"{MON} 10:00"))
    assert (g.grade, g.rule, g.provisional, g.reached_at) == ("A", "day", False, L(f"{MON} 09:00"))
    assert [m.rule for m in g.matches] == ["night", "day", "day-too"]


def test_raise_only_accepts_a_previous_grade_set_outside_the_table_rules():
    prev = Grading("cbrc", "II", "person", False, L(f"{MON} 09:00"), ("set by a person",))
    assert raise_only(prev, _g("III", "iii-1-region-30m"), CBRC) is prev
    assert raise_only(_g("III", "iii-1-region-30m"), prev, CBRC) is prev
