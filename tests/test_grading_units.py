"""Scope units, shares, key sites and channels (domain.md §2.1 "How branchwatch
reads the table"): golden timelines through the collector's Grader at each
rule's boundary, on the shipped cbrc table and the default calendar (the
State Council's holidays from chinese-calendar). No processes, no sleeping:
events go into an IncidentBook and Grader.regrade is called at chosen moments.

Monday 7 December 2026 is an ordinary Monday in Shanghai.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.wire import Event, new_event_id
from collector.config import ConfigError, parse
from collector.grader import Grader
from collector.grading.holidays import public_holidays, stale_warning
from collector.grading.units import UnitScope, unit_outages
from collector.incidents import IncidentBook

SH = ZoneInfo("Asia/Shanghai")


def at(day: str, hhmm: str) -> datetime:
    """Local Shanghai time on that date, as UTC."""
    return datetime.fromisoformat(f"{day} {hhmm}").replace(tzinfo=SH).astimezone(timezone.utc)


MON = "2026-12-07"


def config(branches: list[str], extra: str = "", region: str = "") -> str:
    lines = ["agents:"]
    for n, b in enumerate(branches):
        lines.append(f"  - {{id: a-{b}, branch: {b}, region: '{region}', token_sha256: '{n % 10}{n // 10:063d}'}}")
    scope = "" if "scope:" in extra else "  scope: {unit: 福建}\n"
    return "\n".join(lines) + "\ngrading:\n" + scope + extra


class Unit:
    """Branches reporting into one incident book, graded by the config's Grader."""

    def __init__(self, branches: list[str], extra: str = ""):
        self.grader = Grader.from_config(parse(config(branches, extra)))
        self.book = IncidentBook(cause_of=self.grader.cause_of)

    def out(self, when: datetime, *branches: str, state: str = "critical") -> None:
        for b in branches:
            self.book.apply_event(Event(
                id=new_event_id(), kind="state", agent=f"a-{b}", branch=b, check="tcp/core",
                old_state=None, new_state=state, reason="core unreachable", observed_at=when,
                diagnosis=None), now=when)

    def grade(self, when: datetime) -> tuple:
        [inc] = [i for i in self.book.incidents()]
        self.grader.regrade(inc, when)
        r = inc.grades["cbrc"]
        return r.grade, r.provisional, r.reached_at

    def reasons(self) -> tuple[list[str], list[str]]:
        [inc] = self.book.incidents()
        return inc.grades["cbrc"].reasons, inc.grades["cbrc"].reasons_zh


FOUR = ["B1", "B2", "B3", "B4"]
FIVE = FOUR + ["B5"]


def test_two_of_four_branches_is_half_the_unit_graded_iii_at_exactly_30_00():
    u = Unit(FOUR)
    u.out(at(MON, "10:10"), "B1", "B2")
    assert u.grade(at(MON, "10:39:59")) == (None, False, None)
    assert u.grade(at(MON, "10:40")) == ("III", False, at(MON, "10:40"))
    en, zh = u.reasons()
    assert en[0] == "2 of 4 branches in 福建 cannot do business since 10:10 (business time 30 min)"
    assert zh[0] == "福建 4 个网点中 2 个自 10:10 起无法正常营业(营业时间 30分钟)"


def test_one_of_four_branches_is_below_half_a_fault_but_no_scope():
    u = Unit(FOUR)
    u.out(at(MON, "09:00"), "B1")
    assert u.grade(at(MON, "17:00")) == (None, False, None)      # 8 business hours, one branch


def test_half_is_rounded_up_two_of_five_is_not_enough_three_is():
    u = Unit(FIVE)
    u.out(at(MON, "09:00"), "B1", "B2")
    assert u.grade(at(MON, "12:00"))[0] is None
    u.out(at(MON, "12:00"), "B3")
    assert u.grade(at(MON, "12:29:59"))[0] is None
    assert u.grade(at(MON, "12:30")) == ("III", False, at(MON, "12:30"))
    assert u.reasons()[0][0].startswith("3 of 5 branches in 福建 cannot do business since 12:00")


def test_a_share_set_per_deployment_and_per_unit():
    assert Unit(FOUR, "  scope: {unit: 福建, share: 0.25}\n").grader.scope.need("福建", 4) == 1
    u = Unit(FOUR, "  scope: {unit: 福建, share: 0.75}\n")
    u.out(at(MON, "09:00"), "B1", "B2")
    assert u.grade(at(MON, "12:00"))[0] is None                   # 2 of 4 < 3
    u = Unit(FOUR, "  scope: {unit: 福建, units: {福建: {share: 0.25}}}\n")
    u.out(at(MON, "09:00"), "B1")
    assert u.grade(at(MON, "09:30")) == ("III", False, at(MON, "09:30"))


def test_a_key_site_alone_puts_its_unit_out():
    u = Unit(FOUR + ["DC"], "  scope: {unit: 福建, key_sites: [DC]}\n")
    u.out(at(MON, "09:00"), "DC")
    assert u.grade(at(MON, "09:29:59"))[0] is None
    assert u.grade(at(MON, "09:30")) == ("III", False, at(MON, "09:30"))
    assert u.reasons()[0][0] == ("the key site DC of 福建 cannot do business since 09:00 "
                                 "(business time 30 min)")
    # The key site does not count among the branches of the share.
    assert u.grader.scope.members("福建", "") == set(FOUR)


CHANNELS = """\
  channels:
    counter: {}
    weekend-counter: {weekdays: [mon, tue, wed, thu, fri, sat, sun]}
    atm: {around_the_clock: true}
  default_channels: [counter]
  branch_channels:
    B1: [weekend-counter]
"""
SAT = "2026-12-12"


def test_a_channel_open_on_saturday_counts_business_time_there():
    u = Unit(["B1"], CHANNELS)
    u.out(at(SAT, "10:00"), "B1")
    assert u.grade(at(SAT, "10:29:59"))[0] is None
    assert u.grade(at(SAT, "10:30")) == ("III", False, at(SAT, "10:30"))


def test_the_same_branch_on_ordinary_counters_is_graded_provisionally_on_saturday():
    u = Unit(["B1"], CHANNELS.replace("    B1: [weekend-counter]\n", "    B1: [counter]\n"))
    u.out(at(SAT, "10:00"), "B1")
    assert u.grade(at(SAT, "10:30")) == ("III", True, at(SAT, "10:30"))


def test_atms_around_the_clock_count_at_night_on_the_branches_that_have_them():
    u = Unit(["B1", "B2"], CHANNELS.replace("    B1: [weekend-counter]\n", "    B1: [counter, atm]\n"))
    u.out(at(MON, "22:00"), "B1")
    # B1 is the only branch with an ATM: the ATM channel is out, and open.
    assert u.grade(at(MON, "22:30")) == ("III", False, at(MON, "22:30"))
    assert u.grade(at("2026-12-08", "04:00"))[:2] == ("I", False)


def test_a_public_holiday_from_the_package_is_outside_business_hours():
    # 2026-10-01, a Thursday: National Day, from chinese-calendar.
    u = Unit(FOUR)
    u.out(at("2026-10-01", "09:00"), "B1", "B2")
    assert u.grade(at("2026-10-01", "09:29:59"))[0] is None
    assert u.grade(at("2026-10-01", "09:30")) == ("III", True, at("2026-10-01", "09:30"))
    assert u.reasons()[0][0].endswith("partly outside business hours (provisional)")


def test_a_make_up_sunday_from_the_package_is_a_business_day():
    # 2026-09-20, a Sunday: a make-up working day (調休) before National Day.
    u = Unit(FOUR)
    u.out(at("2026-09-20", "09:00"), "B1", "B2")
    assert u.grade(at("2026-09-20", "09:30")) == ("III", False, at("2026-09-20", "09:30"))


def test_a_deployment_overrides_the_package():
    u = Unit(FOUR, "  calendar: {workdays: [2026-10-01]}\n")
    u.out(at("2026-10-01", "09:00"), "B1", "B2")
    assert u.grade(at("2026-10-01", "09:30")) == ("III", False, at("2026-10-01", "09:30"))
    off = Unit(FOUR, "  calendar: {public_holidays: false}\n")
    assert off.grader.calendar.is_open_day(datetime(2026, 10, 1).date())


def test_the_holiday_data_warns_in_one_line_when_the_year_is_past_it():
    last = public_holidays().last_year
    assert stale_warning(datetime(last, 12, 31, tzinfo=timezone.utc)) is None
    line = stale_warning(datetime(last + 1, 1, 1, tzinfo=timezone.utc))
    assert "\n" not in line and f"up to {last}, not {last + 1}" in line
    g = Unit(FOUR).grader
    metrics = {m.name: m.samples[0].value for m in g.calendar_metrics(
        lambda: datetime(last + 1, 3, 1, tzinfo=timezone.utc).timestamp()).collect()}
    assert metrics == {"branchwatch_collector_grading_holidays_known_until_year": last,
                       "branchwatch_collector_grading_holidays_stale": 1}


def test_the_collector_warns_at_start_in_one_line_only_when_the_year_is_past_the_data(caplog):
    import logging
    g = Unit(FOUR).grader
    last = public_holidays().last_year
    log = logging.getLogger("test.grading")
    with caplog.at_level(logging.WARNING, "test.grading"):
        assert g.warn_if_stale(datetime(last, 6, 1, tzinfo=timezone.utc).timestamp(), log) is None
        line = g.warn_if_stale(datetime(last + 1, 6, 1, tzinfo=timezone.utc).timestamp(), log)
    assert [r.getMessage() for r in caplog.records] == [line]


@pytest.mark.parametrize("extra, expected", [
    ("  scope: {share: 0}\n", "grading.scope.share: expected"),
    ("  scope: {share: 1.5}\n", "grading.scope.share: expected"),
    ("  scope: {key_sites: [DC9]}\n",
     "grading.scope.key_sites[0]: expected the branch of an enrolled agent (agents[].branch), got 'DC9'"),
    ("  scope: {units: {广东: {share: 0.5}}}\n", "grading.scope.units.广东: expected a unit of the enrolled agents"),
    ("  channels: {atm: {around_the_clock: true, hours: ['08:00-09:00']}}\n",
     "grading.channels.atm.hours: not with around_the_clock: true"),
    ("  channels: {atm: {hours: ['18:00-09:00']}}\n", "grading.channels.atm.hours[0]: expected 'HH:MM-HH:MM'"),
    ("  channels: {atm: {}}\n  default_channels: [counter]\n",
     "grading.default_channels[0]: expected a channel of grading.channels (atm), got 'counter'"),
    ("  channels: {atm: {}}\n  branch_channels: {B9: [atm]}\n",
     "grading.branch_channels.B9: expected the branch of an enrolled agent"),
])
def test_bad_scope_config_is_one_line_naming_file_key_and_expectation(extra, expected):
    text = config(FOUR, extra)
    with pytest.raises(ConfigError) as e:
        parse(text, "collector.yaml")
    message = str(e.value)
    assert message.startswith("collector.yaml: ") and expected in message and "\n" not in message


# ---- the share sweep against brute force ------------------------------------------

BASE = at(MON, "00:00")
span_st = st.tuples(st.sampled_from(["B1", "B2", "B3", "B4", "B5", "DC"]),
                    st.integers(0, 600), st.integers(1, 300) | st.none())


@settings(max_examples=200, deadline=None)
@given(st.lists(span_st, max_size=8), st.sampled_from([0.25, 0.5, 0.75, 1.0]))
def test_unit_out_minutes_match_a_minute_by_minute_count(spans, share):
    scope = UnitScope({b: "U" for b in FIVE + ["DC"]}, share=share, key_sites=frozenset({"DC"}))
    stopped: dict = {}
    for b, s, d in spans:
        stopped.setdefault(b, []).append((BASE + timedelta(minutes=s),
                                          None if d is None else BASE + timedelta(minutes=s + d), "x"))
    horizon = 1000
    got = set()
    for o in unit_outages(stopped, scope):
        end = horizon if o.end is None else int((o.end - BASE).total_seconds() // 60)
        got |= set(range(int((o.start - BASE).total_seconds() // 60), end))
    need = max(1, -(-int(share * 100) * 5 // 100))          # ceil(share * 5)
    want = set()
    for m in range(horizon):
        out = {b for b, s, d in spans if s <= m and (d is None or m < s + d)}
        if "DC" in out or len(out - {"DC"}) >= need:
            want.add(m)
    assert got == want
