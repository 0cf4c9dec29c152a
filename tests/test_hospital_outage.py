"""The hospital's whole-network outage (domain.md §2.3; hospital §3, §4, §6.4) as
timelines on an injected clock: a real incident desk over a real SQLite store, the
hospital table and the notify pipeline (what it would send is read from the desk's
outbox; tests/test_hospital_e2e.py sends it to a real receiver).

- observed on the core: 2 of 4 members down is the outage (share 0.5, exactly
  half), 1 of 4 is not, and a silent agent alone never is;
- the milestones tell the departments named, each once, at 30:00 and 6:00:00
  (pharmacy at both, cashiers at 30 min only), never before;
- IT declares an outage, announces the start of manual work and the time to resume;
- after recovery the re-entry deadlines: the same day and the next day.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from agent.wire import Event, Heartbeat, new_event_id
from collector.config import ConfigError, parse
from collector.grader import Grader
from collector.hospital.outage import OUTAGE_CHECK, read_core
from collector.hospital.settings import Core, CoreMember
from collector.incident_desk import IncidentDesk
from collector.incident_runbooks import Runbooks
from collector.incidents import Fault, Refused
from collector.notify.notifier import Notifier
from collector.store import SqliteStore

from .support.store_backend import backend, pg_server  # noqa: F401

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=SH).astimezone(timezone.utc)   # Monday 09:00
TOKEN = "c" * 64
MEMBERS = ["tcp/his-db", "tcp/his-app", "switch/core-1/reachable", "switch/core-2/reachable"]
DEPARTMENTS = ["registration", "admission", "pharmacy", "cashiers", "nurse-stations",
               "operating-rooms", "medical-technology", "all-departments"]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def config_text(share: float = 0.5) -> str:
    people = "\n".join(f"    - {{name: {d}, roles: [{d}], webhook: 'http://127.0.0.1:9/{d}'}}"
                       for d in DEPARTMENTS)
    members = "\n".join(f"      - {{branch: HOSP, check: {c}}}" for c in MEMBERS)
    return f"""agents:
  - {{id: h1, branch: HOSP, token_sha256: "{"a" * 64}"}}
  - {{id: w1, branch: WARD, token_sha256: "{"b" * 64}"}}
incidents: {{window: 120, deadman_grace: 60}}
grading:
  tables: [hospital]
  calendar: {{timezone: Asia/Shanghai}}
hospital:
  core:
    share: {share}
    members:
{members}
notify:
  language: en
  deadlines: {{remind_before: 0}}
  people:
    - {{name: it, roles: [execution, leadership], webhook: 'http://127.0.0.1:9/it'}}
{people}
  routes:
    - {{name: all, notify: [execution]}}
"""


class Hospital:
    """One desk on a clock the test moves."""

    def __init__(self, tmp_path, share: float = 0.5, runbooks: bool = False, store=None):
        self.path = tmp_path / "collector.db"
        self.now = [T0.timestamp()]
        self.store = store if store is not None else SqliteStore(self.path)
        config = parse(config_text(share))
        grader = Grader.from_config(config)
        self.desk = IncidentDesk(self.store, lambda: self.now[0], window=120,
                                 deadman_grace=60, grader=grader,
                                 notifier=Notifier.from_config(config, grader.tables),
                                 hospital=config.hospital,
                                 runbooks=Runbooks.from_folder(None) if runbooks else None)

    def at(self, minutes: float) -> None:
        self.now[0] = at(minutes).timestamp()

    def event(self, minutes: float, check: str, new: str, agent="h1", branch="HOSP") -> None:
        self.at(minutes)
        e = Event(id=new_event_id(), kind="state", agent=agent, branch=branch, check=check,
                  old_state=None, new_state=new, reason=f"{check} {new}",
                  observed_at=at(minutes))
        with self.store.group():
            self.desk.ingest(agent, branch, [e], self.now[0])
            self.desk.grade_all()

    def tick(self, minutes: float) -> list[tuple[str, str]]:
        """Move to `minutes`, run a round; (recipient, reason) of what it would send."""
        self.at(minutes)
        self.desk.mail.clear()
        with self.store.group():
            self.desk.grade_all()
            self.desk.notify_tick()
        return self.sent()

    def sent(self) -> list[tuple[str, str]]:
        return [(o.to, o.payload["reason"]) for o in self.desk.mail]

    def run(self, minutes: float, fn, *args):
        self.at(minutes)
        self.desk.mail.clear()
        with self.store.group():
            return fn(*args)

    def outage(self):
        found = self.desk.hospital.outage(self.desk.book)
        return found[0] if found else None

    def audit(self, kind: str) -> list[tuple[str, dict]]:
        conn = sqlite3.connect(self.path)
        try:
            return [(a, json.loads(d)) for a, d in conn.execute(
                "SELECT actor, data FROM audit WHERE kind = ? ORDER BY seq", (kind,))]
        finally:
            conn.close()


def told(sent, reason: str) -> list[str]:
    return sorted(to for to, r in sent if r == reason)


# --- the share, as a golden table (pure) --------------------------------------------------

def fault(check: str, start: datetime, state: str = "critical", end=None) -> Fault:
    return Fault("h1", "HOSP", check, "service", state, "", None, start, spans=[[start, end]],
                 history=[(start, "state", state, "")])


@pytest.mark.parametrize("share, down, out", [
    (0.5, 1, False), (0.5, 2, True),          # exactly half of 4 is enough (rounded up: 2)
    (0.75, 2, False), (0.75, 3, True),
    (1.0, 3, False), (1.0, 4, True),
    (0.01, 1, True),                          # at least one member, whatever the share
])
def test_the_share_of_the_core_down_makes_the_outage(share, down, out):
    core = Core(members=[CoreMember(branch="HOSP", check=c) for c in MEMBERS], share=share)
    faults = [fault(c, at(i)) for i, c in enumerate(MEMBERS[:down])]
    reading = read_core(core, faults)
    assert reading.out is out
    assert reading.since == (at(core.needed() - 1) if out else None)


def test_a_member_only_warning_or_cleared_is_not_down():
    core = Core(members=[CoreMember(branch="HOSP", check=c) for c in MEMBERS[:2]], share=1.0)
    assert not read_core(core, [fault(MEMBERS[0], at(0)),
                                fault(MEMBERS[1], at(1), "warning")]).out
    assert not read_core(core, [fault(MEMBERS[0], at(0)),
                                fault(MEMBERS[1], at(1), end=at(2))]).out
    # A fault elsewhere (another branch, another check) is no member.
    other = Fault("w1", "WARD", MEMBERS[1], "service", "critical", "", None, at(1),
                  spans=[[at(1), None]], history=[(at(1), "state", "critical", "")])
    assert not read_core(core, [fault(MEMBERS[0], at(0)), other]).out


# --- timelines on the desk ----------------------------------------------------------------

def test_one_member_or_a_silent_agent_is_no_outage_two_of_four_is(tmp_path):
    h = Hospital(tmp_path)
    hb = Heartbeat(agent="w1", branch="WARD", sent_at=at(0), interval=10.0, checks=[])
    h.at(0)
    with h.store.group():
        h.desk.heartbeat(hb, h.now[0])
    h.event(1, MEMBERS[0], "critical")
    h.at(5)
    with h.store.group():                     # the ward's agent falls silent
        assert h.desk.deadman()
    h.tick(5)
    assert h.outage() is None
    h.event(10, MEMBERS[2], "critical")       # the second of four: exactly half
    inc = h.outage()
    assert inc is not None and inc.title == "hospital: whole-network outage"
    f = inc.faults[("collector", OUTAGE_CHECK)]
    assert f.spans[0][0] == at(10)
    assert "2 of 4 core members down" in f.reason
    due = {d.key: d.due_at for d in inc.deadlines}
    assert due["manual-30m"] == at(40) and due["manual-6h"] == at(370)


def test_each_department_hears_once_at_its_milestone(tmp_path):
    h = Hospital(tmp_path)
    h.event(0, MEMBERS[0], "critical")
    h.event(0, MEMBERS[1], "critical")
    assert told(h.tick(29 + 59 / 60), "milestone") == []             # 29:59: not yet
    first = ["admission", "cashiers", "pharmacy", "registration"]
    assert told(h.tick(30), "milestone") == first                     # 30:00
    assert told(h.tick(31), "milestone") == []                        # once
    assert told(h.tick(359), "milestone") == []
    assert told(h.tick(360), "milestone") == [                        # 6:00:00
        "medical-technology", "nurse-stations", "operating-rooms", "pharmacy"]
    assert told(h.tick(1439), "milestone") == []
    assert told(h.tick(1440), "milestone") == ["all-departments"]
    assert told(h.tick(1500), "milestone") == []
    # The departments' notices reach the departments only: IT's route is not theirs,
    # and a department does not hear the incident's other messages.
    inc = h.outage()
    assert "execution" not in {d.role for d in inc.notify.deliveries
                               if inc.notify.message(d.message).reason == "milestone"}
    assert not set(first) & set(inc.notify.roles)


def test_a_member_falling_to_warning_ends_the_outage_at_that_moment(tmp_path):
    h = Hospital(tmp_path)
    h.event(0, MEMBERS[1], "critical")
    h.event(5, MEMBERS[1], "ok")                  # an older clear, before the outage
    h.event(10, MEMBERS[0], "critical")
    h.event(12, MEMBERS[1], "critical")
    inc = h.outage()
    f = inc.faults[("collector", OUTAGE_CHECK)]
    assert f.spans[-1][0] == at(12)
    h.event(20, MEMBERS[0], "warning")            # not down, not cleared either
    assert h.outage() is None and f.spans[-1][1] == at(20)


def test_a_milestone_the_outage_did_not_reach_is_not_sent(tmp_path):
    h = Hospital(tmp_path)
    h.event(0, MEMBERS[0], "critical")
    h.event(0, MEMBERS[1], "critical")
    h.event(20, MEMBERS[1], "ok")             # back after 20 min
    inc = h.desk.book.incidents()[0]
    assert inc.faults[("collector", OUTAGE_CHECK)].spans[-1][1] == at(20)
    assert told(h.tick(30), "milestone") == [] and told(h.tick(400), "milestone") == []


def test_it_declares_announces_and_the_data_is_reentered_by_the_next_day(tmp_path):
    h = Hospital(tmp_path)
    inc = h.run(0, h.desk.hospital.declare, "it", "HIS 全部终端无法登录")
    assert inc["title"] == "hospital: whole-network outage"
    with pytest.raises(Refused, match="already declared"):
        h.run(1, h.desk.hospital.declare, "it", "again")
    [(who, opened)] = h.audit("incident.opened")                 # audited under IT's name
    assert who == "it" and "declared by it: HIS 全部终端无法登录" in opened["detail"]
    # IT starts manual work early (before 30 min): the first milestone's departments,
    # and that meets the 30-min milestone (it asks for exactly that announcement).
    got = h.run(10, h.desk.hospital.announce, "manual", None, "it", "09:10 起手工挂号")
    assert told(h.sent(), "manual") == ["admission", "cashiers", "pharmacy", "registration"]
    [d] = [d for d in got["deadlines"] if d.key == "manual-30m"]
    assert (d.status, d.met_by, d.met_at) == ("met", "it", at(10))
    assert told(h.tick(30), "milestone") == ["admission", "cashiers", "pharmacy", "registration"]
    # Only to the pharmacy: the 6-h milestone still waits for the others.
    got = h.run(40, h.desk.hospital.announce, "manual", None, "it", "药房按请领单发药",
                ["pharmacy"])
    assert told(h.sent(), "manual") == ["pharmacy"]
    with pytest.raises(Refused, match="nobody holds the department role 'kitchen'"):
        h.run(41, h.desk.hospital.announce, "manual", None, "it", "x", ["kitchen"])
    assert {d.key: d.status for d in got["deadlines"]}["manual-6h"] == "due"
    # Back at 14:10 local: IT says it is over and announces the time to resume.
    h.run(310, h.desk.hospital.over, "it", "核心交换机已更换")
    with pytest.raises(Refused, match="no whole-network outage is declared"):
        h.run(311, h.desk.hospital.over, "it", "again")
    h.run(315, h.desk.hospital.announce, "resume", None, "it", "14:30 恢复上机")
    assert told(h.sent(), "resume") == ["admission", "cashiers", "pharmacy", "registration"]
    h.tick(316)
    inc = h.desk.book.incidents()[0]
    due = {d.key: (d.due_at, d.status) for d in inc.deadlines}
    # hospital §6.4: important data the same day, all of it the next (Shanghai days).
    assert due["reentry-important"] == (datetime(2026, 12, 8, tzinfo=SH), "due")
    assert due["reentry-all"] == (datetime(2026, 12, 9, tzinfo=SH), "due")
    assert "manual-6h" not in due                                 # back before 6 h
    notes = [d for _, d in h.audit("incident.announced")]
    assert [n["detail"].split(" by ")[0] for n in notes] == ["manual", "manual", "resume"]
    assert [a for a, _ in h.audit("incident.announced")] == ["it", "it", "it"]


def test_a_notice_without_an_outage_is_refused(tmp_path):
    h = Hospital(tmp_path)
    with pytest.raises(Refused, match="no whole-network outage"):
        h.run(0, h.desk.hospital.announce, "manual", None, "it", "x")


@pytest.mark.parametrize("extra, line", [
    ("hospital:\n  core:\n    members:\n      - {branch: NOPE, check: tcp/his}\n",
     "hospital.core.members[0].branch: expected the branch of an enrolled agent"),
    ("hospital:\n  core:\n    share: 0\n    members:\n      - {branch: HOSP, check: tcp/his}\n",
     "hospital.core.share"),
    ("hospital:\n  branch: HOSP\n",
     "grading.tables: expected 'hospital' among the tables"),
])
def test_a_bad_hospital_section_is_one_line(extra, line):
    text = f"agents:\n  - {{id: h1, branch: HOSP, token_sha256: {TOKEN}}}\n" + extra
    with pytest.raises(ConfigError, match=line.replace("[", r"\[").replace("]", r"\]")):
        parse(text)


# --- the monthly restore test (hospital §5.5) ----------------------------------------------

from collector.hospital.restore_tests import RestoreTest, add_month, status  # noqa: E402


@pytest.mark.parametrize("done, due", [
    (datetime(2026, 12, 7, 15, 0, tzinfo=SH), datetime(2027, 1, 7, 15, 0, tzinfo=SH)),
    (datetime(2027, 1, 31, 10, 0, tzinfo=SH), datetime(2027, 2, 28, 10, 0, tzinfo=SH)),
    (datetime(2028, 1, 31, 10, 0, tzinfo=SH), datetime(2028, 2, 29, 10, 0, tzinfo=SH)),
    (datetime(2026, 12, 31, 23, 30, tzinfo=SH), datetime(2027, 1, 31, 23, 30, tzinfo=SH)),
])
def test_a_month_after_the_last_passed_test(done, due):
    assert add_month(done, SH) == due


def test_overdue_only_once_a_month_passed_without_a_passed_test():
    began = datetime(2026, 12, 1, 9, 0, tzinfo=SH)
    due = datetime(2027, 1, 1, 9, 0, tzinfo=SH)
    assert not status([], began, due, SH).overdue                     # on the minute: on time
    assert status([], began, due + timedelta(seconds=1), SH).overdue
    failed = RestoreTest("li", datetime(2026, 12, 20, tzinfo=SH), "HIS", "failed")
    st = status([failed], began, due + timedelta(seconds=1), SH)
    assert st.overdue and st.last == failed and st.last_passed is None   # a failure counts not
    passed = RestoreTest("li", datetime(2026, 12, 21, tzinfo=SH), "HIS 全库", "passed")
    st = status([failed, passed], began, due + timedelta(seconds=1), SH)
    assert not st.overdue and st.due_at == datetime(2027, 1, 21, tzinfo=SH)
    # A test recorded for a time still ahead of `now` does not count yet.
    assert status([passed], began, datetime(2026, 12, 20, tzinfo=SH), SH).last is None


def test_the_overdue_test_is_an_incident_until_one_passes(tmp_path):
    h = Hospital(tmp_path)
    h.at(31 * 24 * 60)                                    # 7 Jan 09:00: due, on time
    with h.store.group():
        h.desk.hospital_tick()
    assert h.desk.book.incidents() == []
    h.at(31 * 24 * 60 + 1)
    with h.store.group():
        h.desk.hospital_tick()
        h.desk.hospital_tick()                            # once
    [inc] = h.desk.book.incidents()
    assert inc.title == "hospital: monthly restore test overdue" and inc.status == "open"
    test = RestoreTest("li", at(31 * 24 * 60), "HIS 全库、PACS", "passed")
    got = h.run(31 * 24 * 60 + 5, h.desk.hospital.record_test, test)
    assert not got["overdue"] and inc.status == "resolved"
    [(who, data)] = h.audit("hospital.restore_test")
    assert who == "li" and data["restored"] == "HIS 全库、PACS" and data["result"] == "passed"


def test_the_outage_and_the_overdue_test_get_their_runbooks(tmp_path):
    h = Hospital(tmp_path, runbooks=True)
    h.event(0, MEMBERS[0], "critical")
    h.event(0, MEMBERS[3], "critical")
    # The switch's runbook first (it opened the incident), then the outage's own.
    assert [r.runbook.id for r in h.outage().runbooks] == ["network-fault", "hospital-recovery"]
    h.at(31 * 24 * 60 + 1)
    with h.store.group():
        h.desk.hospital_tick()
    [late] = [i for i in h.desk.book.incidents() if "restore test" in i.title]
    assert [r.runbook.id for r in late.runbooks] == ["restore-test"]


def test_an_outage_again_after_a_recovery_has_its_own_milestones(tmp_path):
    h = Hospital(tmp_path)
    h.event(0, MEMBERS[0], "critical")
    h.event(0, MEMBERS[1], "critical")
    h.event(10, MEMBERS[1], "ok")                 # back after 10 min: no milestone
    h.event(15, MEMBERS[1], "critical")           # out again, in the same incident
    inc = h.outage()
    assert [s for s, _ in inc.faults[("collector", OUTAGE_CHECK)].spans] == [at(0), at(15)]
    assert told(h.tick(30), "milestone") == []    # 30 min after the first start: nothing
    assert told(h.tick(44), "milestone") == []
    sent = h.tick(45)                             # 30 min after the second start
    assert told(sent, "milestone") == ["admission", "cashiers", "pharmacy", "registration"]
    assert "30 min" in next(o.text for o in h.desk.mail if o.to == "cashiers")
    assert {d.key: d.due_at for d in inc.deadlines if d.departments} == {
        "manual-30m-2": at(45), "manual-6h-2": at(375), "manual-24h-2": at(1455)}
    assert told(h.tick(46), "milestone") == []


def test_the_register_and_a_declared_outage_on_both_backends(tmp_path, backend):  # noqa: F811
    h = Hospital(tmp_path, store=backend.open())
    h.run(0, h.desk.hospital.declare, "it", "HIS 全部终端无法登录")
    test = RestoreTest("li", at(5), "HIS 全库", "passed", "", at(5))
    h.run(5, h.desk.hospital.record_test, test)
    # A restart: the register, when it began and the outage come back from the store.
    again = Hospital(tmp_path, store=backend.open())
    reg = again.desk.hospital.register
    assert reg.tests == [test] and reg.began == T0
    assert again.outage() is not None
    due = again.desk.hospital.tests_dict(at(6).timestamp())["due_at"]
    assert datetime.fromisoformat(due) == datetime(2027, 1, 7, 9, 5, tzinfo=SH)
