"""Grading wired into incidents, without processes or sleeping (issue 5;
domain.md §2 and §3): wire events go into an IncidentBook built with the
grader's `cause_of`, and Grader.regrade / Grader.act are called at chosen
moments. Times are read on the branches' wall clock (Asia/Shanghai, the
default calendar: Monday to Friday, 08:30-17:00).

Monday 7 December 2026 is an ordinary Monday; `mon("09:00")` is 09:00 that
day in Shanghai, `tue("09:00")` the next morning.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from agent.wire import Event, new_event_id
from collector.config import BusinessStop, parse
from collector.deadman import REASONS, Silence
from collector.grader import Grader
from collector.incident_codec import encode, from_dict, to_dict
from collector.incident_facts import cause_lookup, outages
from collector.incidents import Change, Fault, Incident, IncidentBook, Refused, category

SH = ZoneInfo("Asia/Shanghai")

# branch -> (agent, region); "" = no region configured: the deployment's one unit
# (domain.md §2.1), here B3 and B4; a unit of 1 or 2 branches is out with one.
BRANCHES = {"B1": ("a1", "north"), "B2": ("a2", "south"), "B3": ("a3", ""),
            "B4": ("a4", ""), "B5": ("a5", "north")}


def mon(hhmm: str, day: int = 7) -> datetime:
    """That local time in Shanghai on Monday 2026-12-07 (or `day`), as UTC."""
    parts = [int(p) for p in hhmm.split(":")] + [0]
    return datetime(2026, 12, day, parts[0], parts[1], parts[2], tzinfo=SH).astimezone(timezone.utc)


def tue(hhmm: str) -> datetime:
    return mon(hhmm, day=8)


def config_text(tables=("cbrc",), grading_extra: str = "") -> str:
    lines = ["agents:"]
    for n, (branch, (agent, region)) in enumerate(BRANCHES.items()):
        lines.append(f"  - {{id: {agent}, branch: {branch}, region: '{region}', "
                     f"token_sha256: '{str(n) * 64}'}}")
    lines += ["grading:", f"  tables: [{', '.join(tables)}]"]
    return "\n".join(lines) + "\n" + grading_extra


def make_grader(tables=("cbrc",), grading_extra: str = "") -> Grader:
    return Grader.from_config(parse(config_text(tables, grading_extra)))


class Branches:
    """The branches' agents reporting to one incident book, on the grader's causes."""

    def __init__(self, grader: Grader):
        self.grader = grader
        self.book = IncidentBook(cause_of=grader.cause_of)

    def report(self, at: datetime, branch: str, check: str, state: str = "critical",
               diagnosis: str | None = None) -> list[Change]:
        agent = BRANCHES[branch][0]
        e = Event(id=new_event_id(), kind="state", agent=agent, branch=branch, check=check,
                  old_state=None, new_state=state, reason=f"{check} {state}",
                  observed_at=at, diagnosis=diagnosis)
        return self.book.apply_event(e, now=at)

    def incident_of(self, branch: str, check: str) -> Incident:
        [inc] = [i for i in self.book.incidents()
                 if (BRANCHES[branch][0], check) in i.faults]
        return inc

    def only(self) -> Incident:
        [inc] = self.book.incidents()
        return inc


def grade(inc: Incident, table: str = "cbrc"):
    r = inc.grades[table]
    return r.grade, r.rule, r.provisional, r.reached_at


def deadlines(inc: Incident) -> dict:
    return {d.key: d for d in inc.deadlines}


def kinds(changes: list[Change]) -> list[str]:
    return [c.kind for c in changes]


# --- cross-branch joining (domain.md §2.1: one cause at many branches is one incident)

def test_core_lost_at_two_branches_in_two_regions_is_one_incident():
    g = make_grader()
    w = Branches(g)
    assert kinds(w.report(mon("09:00"), "B1", "tcp/core")) == ["opened"]
    changes = w.report(mon("09:05"), "B2", "tcp/core")
    assert kinds(changes) == ["joined", "retitled"]
    assert changes[0].alert and changes[1].detail.endswith("-> core system unreachable: 2 branches")
    inc = w.only()
    assert inc.title == "core system unreachable: 2 branches"
    assert sorted(f.branch for f in inc.faults.values()) == ["B1", "B2"]
    assert inc.started_at == mon("09:00")
    # The same cause through another check (line/*/core*) joins it too: a third branch.
    assert kinds(w.report(mon("09:07"), "B3", "line/primary/core", diagnosis="line")) == [
        "joined", "retitled"]
    assert w.only().title == "core system unreachable: 3 branches"
    assert sorted((o.region, o.start) for o in g.facts(w.only()).outages) == [
        ("", mon("09:07")), ("north", mon("09:00")), ("south", mon("09:05"))]


def test_a_fault_that_does_not_stop_business_does_not_join_another_branch():
    w = Branches(make_grader())
    w.report(mon("09:00"), "B1", "tcp/core")
    # Within the grouping window, but at another branch and not a business stop.
    assert kinds(w.report(mon("09:01"), "B2", "ups/main/on_battery")) == ["opened"]
    assert kinds(w.report(mon("09:01:30"), "B2", "tcp/teller")) == ["joined", "retitled"]
    core = w.incident_of("B1", "tcp/core")
    assert {f.branch for f in core.faults.values()} == {"B1"}
    assert core.title == "service fault"
    b2 = w.incident_of("B2", "ups/main/on_battery")
    assert b2 is not core and ("a2", "tcp/teller") in b2.faults
    # A core fault at B2 while B1's still holds joins B1's incident, not B2's own.
    w.report(mon("09:02"), "B2", "tcp/core")
    assert ("a2", "tcp/core") in core.faults and ("a2", "tcp/core") not in b2.faults
    # ...and B1's core fault cleared by then: B2's is not the same outage any more.
    w2 = Branches(make_grader())
    w2.report(mon("09:00"), "B1", "tcp/core")
    w2.report(mon("09:03"), "B1", "tcp/core", "ok")
    w2.report(mon("09:04"), "B2", "tcp/core")
    assert len(w2.book.incidents()) == 2


def test_blockers_are_per_branch_even_inside_a_cross_branch_incident():
    w = Branches(make_grader())
    w.report(mon("09:00"), "B1", "tcp/core")
    w.report(mon("09:01"), "B2", "tcp/core")
    core = w.only()
    # B3's primary line is cut: its port faults are consequences, kept in its own incident.
    assert kinds(w.report(mon("09:02"), "B3", "line/primary/gw", diagnosis="line")) == ["opened"]
    line = w.incident_of("B3", "line/primary/gw")
    assert line is not core and line.title == "network outage (line)"
    [c] = w.report(mon("09:03"), "B3", "switch/funds/if/7/oper")
    assert (c.kind, c.incident_id, c.alert) == ("suppressed", line.id, False)
    assert line.faults[("a3", "switch/funds/if/7/oper")].suppressed
    # The same port fault at B1 and a service at B2, at the same moment: not blocked by B3.
    [c] = w.report(mon("09:03"), "B1", "switch/funds/if/7/oper")
    assert (c.kind, c.incident_id, c.alert) == ("joined", core.id, True)
    [c] = w.report(mon("09:03"), "B2", "tcp/teller")
    assert (c.kind, c.incident_id, c.alert) == ("joined", core.id, True)
    # B1's line goes too, inside the two-branch incident: it blocks B1 only.
    w.report(mon("09:04"), "B1", "line/primary/gw", diagnosis="line")
    assert ("a1", "line/primary/gw") in core.faults
    [c] = w.report(mon("09:05"), "B1", "switch/nonfunds/if/3/oper")
    assert (c.kind, c.incident_id) == ("suppressed", core.id)
    [c] = w.report(mon("09:05"), "B2", "switch/nonfunds/if/3/oper")
    assert (c.kind, c.incident_id, c.alert) == ("joined", core.id, True)
    assert not core.faults[("a2", "switch/nonfunds/if/3/oper")].suppressed
    # A silent agent blocks its own branch only.
    w.book.apply_silence(silence("a4", "B4", mon("09:05")), mon("09:06"))
    [c] = w.report(mon("09:06"), "B4", "tcp/teller")
    assert (c.kind, c.alert) == ("suppressed", False)
    [c] = w.report(mon("09:06"), "B2", "listen/8080")
    assert (c.kind, c.incident_id, c.alert) == ("joined", core.id, True)


def test_core_fault_joins_the_core_outage_not_a_line_outage_at_a_third_branch():
    g = make_grader()
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/core")
    w.report(mon("09:06"), "B3", "line/primary/gw", diagnosis="line")
    [c] = w.report(mon("09:08"), "B3", "tcp/core")     # B3 cannot reach the core: its line
    assert c.kind == "suppressed"
    w.report(mon("09:09"), "B2", "tcp/core")
    core = w.incident_of("B1", "tcp/core")
    assert ("a2", "tcp/core") in core.faults
    assert core.title == "core system unreachable: 2 branches"


# --- from faults to outages (collector/incident_facts.py) --------------------------------

def fault(branch: str, check: str, *spans, state: str = "critical") -> Fault:
    """A fault with these active spans (end None = still active)."""
    agent = BRANCHES[branch][0]
    history = [(s, "state", state, "down") for s, _ in spans]
    history += [(e, "state", "ok", "up") for _, e in spans if e is not None]
    still = spans[-1][1] is None
    return Fault(agent=agent, branch=branch, check=check, category=category(check),
                 state=state if still else "ok", reason="", diagnosis=None,
                 last_at=max(h[0] for h in history), spans=[list(s) for s in spans],
                 history=sorted(history, key=lambda h: h[0]))


CORE = BusinessStop(name="core system unreachable", checks=["tcp/core*", "line/*/core*"])
BOTH_UPLINKS = BusinessStop(name="both uplinks down", all_of=["line/primary/*", "line/backup/*"])
UPS = BusinessStop(name="UPS exhausted", checks=["ups/*/battery_low"], states=["critical"])


def region_of(branch: str) -> str:
    return BRANCHES[branch][1] or f"branch {branch}"


def spans_of(found) -> list[tuple]:
    return sorted((o.region, o.start, o.end, o.cause) for o in found)


def test_checks_stop_is_the_union_of_spans_per_branch():
    faults = [fault("B1", "tcp/core", (mon("09:00"), mon("09:20")), (mon("09:50"), None)),
              fault("B1", "line/primary/core", (mon("09:10"), mon("09:40"))),
              fault("B1", "tcp/teller", (mon("08:00"), None)),          # not a business stop
              fault("B2", "tcp/core-db", (mon("09:05"), mon("09:15")))]
    n, s = "branch B1: core system unreachable", "branch B2: core system unreachable"
    assert spans_of(outages(faults, [CORE], region_of)) == [
        ("north", mon("09:00"), mon("09:40"), n), ("north", mon("09:50"), None, n),
        ("south", mon("09:05"), mon("09:15"), s)]


def test_all_of_stop_is_only_when_both_uplinks_were_down_at_the_same_branch():
    faults = [fault("B1", "line/primary/gw", (mon("09:00"), mon("09:40")), (mon("09:50"), None)),
              fault("B1", "line/backup/gw", (mon("09:20"), mon("10:00"))),
              # B2 lost its primary, B4 its backup: two branches, never both at one.
              fault("B2", "line/primary/gw", (mon("09:00"), None)),
              fault("B4", "line/backup/gw", (mon("09:00"), None))]
    why = "branch B1: both uplinks down"
    assert spans_of(outages(faults, [BOTH_UPLINKS], region_of)) == [
        ("north", mon("09:20"), mon("09:40"), why), ("north", mon("09:50"), mon("10:00"), why)]
    # One uplink down at two branches is not one cause: all_of stops never join branches.
    assert cause_lookup([BOTH_UPLINKS])("line/primary/gw") is None
    assert cause_lookup([CORE, BOTH_UPLINKS])("line/backup/core-gw") == "core system unreachable"


def test_states_say_which_faults_stop_business():
    warn = [fault("B1", "ups/main/battery_low", (mon("09:00"), None), state="warning")]
    crit = [fault("B1", "ups/main/battery_low", (mon("09:00"), None), state="critical")]
    assert outages(warn, [UPS], region_of) == ()
    assert spans_of(outages(crit, [UPS], region_of)) == [
        ("north", mon("09:00"), None, "branch B1: UPS exhausted")]
    # The default states are critical and unknown: a slow (warning) core is not an outage.
    assert outages([fault("B1", "tcp/core", (mon("09:00"), None), state="warning")],
                   [CORE], region_of) == ()
    # A cleared fault still counts for the time it was critical.
    assert len(outages([fault("B1", "tcp/core", (mon("09:00"), mon("09:10")))],
                       [CORE], region_of)) == 1


def test_an_outage_starts_when_the_fault_reaches_a_stopping_state():
    g = make_grader()
    w = Branches(g)
    w.report(mon("09:00"), "B1", "ups/main/battery_low", "warning")
    w.report(mon("09:20"), "B1", "ups/main/battery_low", "critical")
    inc = w.only()
    assert [(o.region, o.start) for o in g.facts(inc).outages] == [("north", mon("09:20"))]
    g.regrade(inc, mon("09:49:59"))
    assert grade(inc)[0] is None


def test_units_come_from_the_agents_and_branches_without_one_are_the_deployments_unit():
    g = make_grader()
    assert g.regions == {"B1": "north", "B2": "south", "B5": "north"}
    # domain.md §2.1: the deployment is ONE unit unless its branches are mapped.
    assert [g.region_of(b) for b in ("B1", "B3", "B9")] == ["north", "", ""]
    # B1 and B5 are both north: one unit, so 30 min gives III, never II.
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/core")
    w.report(mon("09:00"), "B5", "tcp/core")
    g.regrade(w.only(), mon("10:00"))
    assert grade(w.only())[:2] == ("III", "iii-1-region-30m")
    # B3 and B4 have no region: one unit of two branches, so 30 min gives III too.
    w = Branches(g)
    w.report(mon("09:00"), "B3", "tcp/core")
    w.report(mon("09:00"), "B4", "tcp/core")
    assert {(o.region, o.out_of) for o in g.facts(w.only()).outages} == {("", (2, 2))}
    g.regrade(w.only(), mon("09:30"))
    assert grade(w.only()) == ("III", "iii-1-region-30m", False, mon("09:30"))
    assert w.only().grades["cbrc"].reasons[0] == (
        "2 of 2 branches cannot do business since 09:00 (business time 30 min)")


# --- grading at exact moments (domain.md §2.1) ------------------------------------------

def test_one_region_is_ungraded_at_29_59_and_grade_iii_at_30_00():
    g = make_grader()
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/core")
    inc = w.only()
    [c] = g.regrade(inc, mon("09:29:59"))
    assert (c.kind, c.alert) == ("graded", False)
    assert grade(inc) == (None, None, False, None)
    assert inc.deadlines == []
    changes = g.regrade(inc, mon("09:30:00"))
    assert kinds(changes) == ["graded", "deadline_set", "deadline_set"]
    assert changes[0].alert and "III" in changes[0].detail
    assert grade(inc) == ("III", "iii-1-region-30m", False, mon("09:30"))
    due = deadlines(inc)
    assert due["regulator-notice"].due_at == mon("10:00")
    assert due["written-report"].due_at == mon("21:00")
    # Looking again changes nothing, and the moment does not move with the look.
    assert g.regrade(inc, mon("09:30:01")) == []
    assert grade(inc)[3] == mon("09:30")


def test_a_grade_never_drops_when_the_outage_ends():
    g = make_grader()
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/core")
    w.report(mon("09:05"), "B2", "tcp/core")
    inc = w.only()
    g.regrade(inc, mon("09:35"))
    assert grade(inc) == ("II", "ii-2-regions-30m", False, mon("09:35"))
    w.report(mon("09:40"), "B2", "tcp/core", "ok")          # the scope shrinks
    assert g.regrade(inc, mon("09:45")) == []
    w.report(mon("09:50"), "B1", "tcp/core", "ok")          # and the outage ends
    assert inc.status == "resolved"
    assert "graded" not in kinds(g.regrade(inc, mon("13:00")))
    assert grade(inc) == ("II", "ii-2-regions-30m", False, mon("09:35"))
    assert [h.grade for h in inc.grades["cbrc"].history] == ["II"]


def test_outside_business_hours_provisional_grades_rise_with_unrepaired_time():
    g = make_grader()
    w = Branches(g)
    w.report(mon("22:00"), "B1", "tcp/core")                # Monday night, unrepaired
    inc = w.only()
    g.regrade(inc, mon("22:29:59"))
    assert grade(inc)[0] is None
    changes = g.regrade(inc, mon("22:30"))
    assert changes[0].kind == "graded" and "(provisional)" in changes[0].detail
    assert grade(inc) == ("III", "after-hours-1-region", True, mon("22:30"))
    # domain.md §2.1: a provisional grade is a grade, deadlines run from it.
    assert deadlines(inc)["regulator-notice"].due_at == mon("23:00")
    # domain.md §2.1 criterion 3: the same thresholds on unrepaired wall-clock time.
    g.regrade(inc, tue("00:59:59"))
    assert grade(inc)[:3] == ("III", "after-hours-1-region", True)
    g.regrade(inc, tue("01:00"))
    assert grade(inc) == ("II", "after-hours-1-region-3h", True, tue("01:00"))
    g.regrade(inc, tue("03:59:59"))
    assert grade(inc)[0] == "II"
    g.regrade(inc, tue("04:00"))
    assert grade(inc) == ("I", "after-hours-1-region-6h", True, tue("04:00"))
    assert deadlines(inc)["progress-1"].due_at == tue("06:00")
    # Tuesday morning: firm III at 09:00 does not lower the provisional I.
    g.regrade(inc, tue("09:00"))
    assert grade(inc) == ("I", "after-hours-1-region-6h", True, tue("04:00"))
    assert [(h.grade, h.provisional) for h in inc.grades["cbrc"].history] == [
        (None, False), ("III", True), ("II", True), ("I", True)]
    assert deadlines(inc)["regulator-notice"].due_at == mon("23:00")


def test_outside_business_hours_two_regions_give_provisional_ii():
    g = make_grader()
    w = Branches(g)
    w.report(mon("22:00"), "B1", "tcp/core")
    w.report(mon("22:10"), "B2", "tcp/core")
    inc = w.only()
    g.regrade(inc, mon("22:39:59"))
    assert grade(inc)[:3] == ("III", "after-hours-1-region", True)
    g.regrade(inc, mon("22:40"))
    assert grade(inc) == ("II", "after-hours-2-regions", True, mon("22:40"))


# --- what people do (Grader.act) ------------------------------------------------------

def core_out_at_b1(g: Grader) -> tuple[Branches, Incident]:
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/core")
    return w, w.only()


def test_data_major_gives_grade_i_at_once_with_the_notice_due_then():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    g.regrade(inc, mon("09:05"))
    changes = g.act(inc, "criterion", "alice", "ledger of 300 accounts lost", "data_major",
                    mon("09:10"))
    assert changes[0].kind == "criterion_set"
    assert changes[0].detail == "data_major by alice: ledger of 300 accounts lost"
    assert grade(inc) == ("I", "data-major", False, mon("09:10"))
    [a] = inc.assertions
    assert (a.criterion, a.who, a.why, a.at, a.withdrawn) == (
        "data_major", "alice", "ledger of 300 accounts lost", mon("09:10"), False)
    due = deadlines(inc)
    # domain.md §3: "Immediately for the grade-I data/damage criterion".
    assert due["regulator-notice"].due_at == mon("09:10")
    assert "at once" in due["regulator-notice"].reason
    assert due["progress-1"].due_at == mon("11:10")
    assert due["written-report"].due_at == mon("21:00")


def test_a_notice_due_immediately_is_not_missed_in_the_same_instant():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    changes = g.act(inc, "criterion", "alice", "ledger lost", "data_major", mon("09:10"))
    assert "deadline_missed" not in kinds(changes)
    assert deadlines(inc)["regulator-notice"].status == "due"


def test_the_notice_is_missed_only_after_its_60_minutes():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    g.regrade(inc, mon("09:30"))
    assert g.regrade(inc, mon("10:00")) == []
    assert deadlines(inc)["regulator-notice"].status == "due"


def test_withdrawing_a_criterion_judges_the_grade_afresh():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    g.act(inc, "criterion", "alice", "ledger lost", "data_major", mon("09:10"))
    assert grade(inc)[0] == "I"
    changes = g.act(inc, "withdraw", "bob", "ledger restored from backup, nothing lost",
                    "data_major", mon("09:20"))
    assert kinds(changes) == ["criterion_withdrawn", "graded"]
    assert changes[0].detail == "data_major by bob: ledger restored from backup, nothing lost"
    assert changes[1].detail.endswith("I 特别重大 -> ungraded by bob: "
                                      "ledger restored from backup, nothing lost")
    assert grade(inc) == (None, None, False, None)       # down: a person's act, not by itself
    assert [a.withdrawn for a in inc.assertions] == [True]
    h = inc.grades["cbrc"].history[-1]
    assert (h.grade, h.who, h.why) == (None, "bob", "ledger restored from backup, nothing lost")
    # The facts still count: 30 min of the core out is grade III.
    g.regrade(inc, mon("09:30"))
    assert grade(inc) == ("III", "iii-1-region-30m", False, mon("09:30"))
    with pytest.raises(Refused, match="'data_major' is not set on inc-1"):
        g.act(inc, "withdraw", "bob", "again", "data_major", mon("09:31"))


def test_an_unknown_criterion_is_refused_naming_the_known_ones():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    with pytest.raises(Refused) as e:
        g.act(inc, "criterion", "alice", "x", "data_huge", mon("09:10"))
    assert str(e.value) == ("unknown criterion 'data_huge'; the tables in use know: "
                            "data_larger, data_major, data_serious")
    both = make_grader(("cbrc", "hospital"))
    with pytest.raises(Refused, match="data_major, data_serious, force_majeure, operator_misuse"):
        both.act(inc, "criterion", "alice", "x", "fire", mon("09:10"))
    assert inc.assertions == []


def test_a_grade_set_lower_by_hand_stands_until_the_facts_give_more():
    g = make_grader()
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/core")
    w.report(mon("09:05"), "B2", "tcp/core")
    inc = w.only()
    g.regrade(inc, mon("09:35"))
    assert grade(inc)[0] == "II"
    why = "south back on the backup line at once; impact limited"
    [c] = g.act(inc, "grade", "carol", why, "III", mon("09:40"))
    assert c.detail == f"cbrc: II 重大 -> III 较大 by carol: {why}" and not c.alert
    assert grade(inc) == ("III", "person", False, mon("09:40"))
    # The facts keep giving II (2 regions 30 min, then 1 region 3 h at 12:00): it stands.
    for now in (mon("10:00"), mon("12:00"), mon("12:04:59")):
        assert [x for x in g.regrade(inc, now) if x.kind == "graded"] == []
        assert grade(inc)[0] == "III"
    # 12:05: two regions for 3 h: grade I, more than the facts gave when carol decided.
    [c] = [x for x in g.regrade(inc, mon("12:05")) if x.kind == "graded"]
    assert c.alert and "III 较大 -> I 特别重大 by rule i-2-regions-3h" in c.detail
    assert grade(inc) == ("I", "i-2-regions-3h", False, mon("12:05"))
    assert [(h.grade, h.who) for h in inc.grades["cbrc"].history] == [
        ("II", None), ("III", "carol"), ("I", None)]
    # Lowering to ungraded by hand; an unknown grade or table is refused.
    g.act(inc, "grade", "dave", "drill, not a real outage", "none", mon("12:10"))
    assert grade(inc)[0] is None
    with pytest.raises(Refused, match=r"cbrc has no grade 'IV'; it has: I, II, III"):
        g.act(inc, "grade", "dave", "x", "IV", mon("12:11"))
    with pytest.raises(Refused, match=r"no grading table 'pbc'; in use: cbrc"):
        g.act(inc, "grade", "dave", "x", "III", mon("12:11"), table="pbc")


def test_a_grade_set_higher_by_hand_is_not_lowered_by_the_facts_catching_up():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    g.regrade(inc, mon("09:05"))
    g.act(inc, "grade", "carol", "leadership: treat it as II from the start", "II", mon("09:10"))
    assert grade(inc) == ("II", "person", False, mon("09:10"))
    # 09:30: the facts give III, more than the nothing they gave at 09:10, but below II.
    assert [c for c in g.regrade(inc, mon("09:30")) if c.kind == "graded"] == []
    assert grade(inc)[:2] == ("II", "person")
    assert deadlines(inc)["regulator-notice"].due_at == mon("10:00")
    # 12:00: one region for 3 h gives II by rule: the same grade, now on a firm rule.
    g.regrade(inc, mon("12:00"))
    assert grade(inc) == ("II", "ii-1-region-3h", False, mon("12:00"))


def test_withdrawing_a_criterion_in_one_table_keeps_a_hand_set_grade_in_another():
    g = make_grader(("cbrc", "hospital"))
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/his-db")             # a server: hospital class 2
    inc = w.only()
    g.regrade(inc, mon("09:01"))
    assert grade(inc, "hospital")[0] == "2"
    g.act(inc, "grade", "bob", "only the training HIS", "3", mon("09:02"), table="hospital")
    g.act(inc, "criterion", "carol", "some records wrong", "data_larger", mon("09:03"))
    g.act(inc, "withdraw", "carol", "records were fine", "data_larger", mon("09:04"))
    assert grade(inc, "hospital")[:2] == ("3", "person")


def test_a_deadline_met_records_who_and_what_and_only_once():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    g.regrade(inc, mon("09:30"))
    [c] = g.act(inc, "deadline", "dave", "phoned the regulator's duty officer, ref 0412",
                "regulator-notice", mon("09:45"))
    assert c.kind == "deadline_met"
    assert c.detail == "regulator-notice by dave: phoned the regulator's duty officer, ref 0412"
    d = deadlines(inc)["regulator-notice"]
    assert (d.status, d.met_by, d.met_at, d.what) == (
        "met", "dave", mon("09:45"), "phoned the regulator's duty officer, ref 0412")
    with pytest.raises(Refused, match=r"regulator-notice was already met by dave at "):
        g.act(inc, "deadline", "erin", "sent again", "regulator-notice", mon("09:50"))
    with pytest.raises(Refused, match=r"has no deadline 'notice'; it has: regulator-notice, "
                                      r"written-report"):
        g.act(inc, "deadline", "erin", "x", "notice", mon("09:50"))
    # Met in time: never missed later.
    assert "deadline_missed" not in kinds(g.regrade(inc, mon("10:30")))
    assert deadlines(inc)["regulator-notice"].status == "met"


def test_a_missed_deadline_is_raised_exactly_once():
    g = make_grader()
    _, inc = core_out_at_b1(g)
    changes = []
    for now in (mon("09:30"), mon("09:59:59"), mon("10:00:01"), mon("10:00:02"), mon("11:00"),
                mon("16:00")):
        changes += g.regrade(inc, now)
    missed = [c for c in changes if c.kind == "deadline_missed"]
    assert len(missed) == 1 and missed[0].alert
    assert missed[0].detail.startswith("regulator-notice was due 2026-12-07T02:00:00+00:00")
    d = deadlines(inc)["regulator-notice"]
    assert (d.status, d.missed_at) == ("missed", mon("10:00:01"))
    # Sent late: recorded as met, and the record says late.
    [c] = g.act(inc, "deadline", "dave", "fax sent", "regulator-notice", mon("16:05"))
    assert c.detail == "regulator-notice (late) by dave: fax sent"
    assert deadlines(inc)["regulator-notice"].status == "met"
    assert "deadline_missed" not in kinds(g.regrade(inc, mon("16:10")))


# --- the hospital table (domain.md §2.2, §2.3) -------------------------------------------

HOSPITAL_OBSERVED = """  observed:
    - {kind: server_down, checks: ["tcp/pacs-db", "tcp/his-*"]}
    - {kind: service_down, checks: ["tcp/*"]}
"""


def test_a_server_down_is_class_2_and_operator_misuse_makes_it_class_4():
    g = make_grader(("hospital",), HOSPITAL_OBSERVED)
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/pacs-db")
    inc = w.only()
    g.regrade(inc, mon("09:01"))
    assert grade(inc, "hospital") == ("2", "class-2-observed", False, mon("09:00"))
    table = g.tables["hospital"]
    assert table.handler(inc.grades["hospital"].grade) == (
        "head of IT reports to hospital leadership; the hospital coordinates recovery")
    assert "server_down: B1: tcp/pacs-db" in inc.grades["hospital"].reasons[0]
    # hospital criteria only: the bank's are unknown here.
    with pytest.raises(Refused, match="unknown criterion 'data_major'"):
        g.act(inc, "criterion", "nurse", "x", "data_major", mon("09:02"))
    # A person knows the cause: a clerk unplugged it. Class 4 replaces observation.
    changes = g.act(inc, "criterion", "it-admin", "clerk unplugged the PACS server",
                    "operator_misuse", mon("09:10"))
    assert kinds(changes)[:2] == ["criterion_set", "graded"]
    assert grade(inc, "hospital") == ("4", "operator-misuse", False, mon("09:10"))
    assert table.handler("4") == "network admin resolves alone and logs it"
    # An ordinary service alone is class 3.
    w2 = Branches(g)
    w2.report(mon("09:00"), "B2", "tcp/printer")
    g.regrade(w2.only(), mon("09:01"))
    assert grade(w2.only(), "hospital")[:2] == ("3", "class-3-observed")


def silence(agent: str, branch: str, last_heard: datetime) -> Silence:
    return Silence(agent=agent, branch=branch, region=BRANCHES[branch][1], last_heard=last_heard,
                   deadline=last_heard + timedelta(seconds=90), silent_for=120.0, power="mains",
                   reason=REASONS["mains"])


def test_one_silent_agent_is_no_whole_network_outage():
    # domain.md §2.3: never one silent agent alone (collector/hospital/outage.py).
    g = make_grader(("hospital",))                     # the default observed mapping
    w = Branches(g)
    [c] = w.book.apply_silence(silence("a1", "B1", mon("09:00")), mon("09:02"))
    assert c.kind == "opened"
    inc = w.only()
    g.regrade(inc, mon("12:00"))
    assert [d.key for d in inc.deadlines if d.departments] == []


def test_a_whole_network_outage_plans_the_manual_operation_milestones():
    g = make_grader(("hospital",))
    w = Branches(g)
    [c] = w.report(mon("09:00"), "B1", "network/whole")
    assert c.kind == "opened"
    inc = w.only()
    assert inc.title == "hospital: whole-network outage"
    g.regrade(inc, mon("09:05"))
    assert grade(inc, "hospital") == ("2", "class-2-observed", False, mon("09:00"))
    assert "network_down_whole" in inc.grades["hospital"].reasons[0]
    got = {d.key: (d.due_at, d.departments, d.status) for d in inc.deadlines}
    # domain.md §2.3: pharmacy at 30 min and again at 6 h, cashiers at 30 min (§4.3(2)).
    assert got == {
        "manual-30m": (mon("09:30"), ["registration", "admission", "pharmacy", "cashiers"],
                       "due"),
        "manual-6h": (mon("15:00"), ["nurse-stations", "pharmacy", "operating-rooms",
                                     "medical-technology"], "due"),
        "manual-24h": (tue("09:00"), ["all-departments"], "due")}


def test_milestones_the_outage_did_not_reach_are_not_raised_as_missed():
    g = make_grader(("hospital",))
    w = Branches(g)
    w.report(mon("09:00"), "B1", "network/whole")
    inc = w.only()
    g.regrade(inc, mon("09:05"))
    w.report(mon("09:20"), "B1", "network/whole", "ok")
    changes = g.regrade(inc, mon("09:21")) + g.regrade(inc, mon("09:31")) + \
        g.regrade(inc, mon("16:00"))
    assert [c.detail for c in changes if c.kind == "deadline_missed" and "manual" in c.detail] \
        == []


def test_a_progress_report_after_the_end_is_not_raised_as_missed():
    g = make_grader()
    w = Branches(g)
    w.report(mon("09:00"), "B1", "disk/data")
    inc = w.only()
    g.act(inc, "criterion", "alice", "ledger lost", "data_major", mon("09:10"))
    assert deadlines(inc)["progress-1"].due_at == mon("11:10")
    w.report(mon("10:00"), "B1", "disk/data", "ok")           # ended before 11:10
    assert inc.status == "resolved"
    changes = g.regrade(inc, mon("10:01")) + g.regrade(inc, mon("11:30"))
    # (the notice, due at once at 09:10 and never sent, is rightly missed)
    assert [c.detail for c in changes if c.kind == "deadline_missed"
            and c.detail.startswith("progress")] == []
    assert "progress-1" not in deadlines(inc)


# --- the codec keeps all of it --------------------------------------------------------

def test_a_graded_incident_round_trips_through_the_codec():
    g = make_grader(("cbrc", "hospital"))
    w = Branches(g)
    w.report(mon("09:00"), "B1", "tcp/core")
    w.report(mon("09:05"), "B2", "tcp/core")
    w.report(mon("09:06"), "B2", "switch/funds/if/2/oper")
    inc = w.only()
    g.regrade(inc, mon("09:35"))
    g.act(inc, "criterion", "alice", "ledger lost", "data_major", mon("09:40"))
    g.act(inc, "withdraw", "bob", "ledger fine", "data_major", mon("09:45"))
    g.act(inc, "criterion", "bob", "customers double charged", "data_serious", mon("09:46"))
    g.act(inc, "grade", "carol", "only the training server", "3", mon("09:47"), table="hospital")
    g.act(inc, "deadline", "dave", "phoned", "progress-1", mon("09:50"))
    g.regrade(inc, mon("10:30"))
    w.book.ack(inc.id, "erin", "on it", mon("10:31"))
    statuses = {d.status for d in inc.deadlines}
    assert {"met", "missed", "due"} <= statuses
    assert inc.grades["hospital"].person_floor is not None
    assert len(inc.assertions) == 2 and inc.grades["cbrc"].history
    back = from_dict(json.loads(encode(to_dict(inc))))
    assert back == inc
    # The datetimes come back as instants: equal, and still aware.
    assert back.grades["cbrc"].reached_at == inc.grades["cbrc"].reached_at
    assert back.deadlines[0].due_at.utcoffset() is not None
