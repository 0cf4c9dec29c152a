"""The notification core as timelines on an injected clock (issue 7): the pure
pipeline (route -> suppress -> dedup -> send -> record) and escalation
planning over a real incident book and the real grading, no I/O.

Each test reads as a timeline: `at(minutes)` moves the clock, runs grading
and the notifier's once-a-second round, and returns who got what.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Event, new_event_id
from collector.config import parse
from collector.grader import Grader
from collector.incident_codec import from_dict, to_dict
from collector.incidents import Change, IncidentBook
from collector.notify.notifier import Notifier

# Monday 7 December 2026, 09:00 in Shanghai: business hours.
T0 = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
TOKEN = "a" * 64

PEOPLE = """
  email: "mailto://127.0.0.1:2525?from=bw@example.com"
  ack_secret: "0123456789abcdef-secret"
  public_url: "https://collector.example:9812"
  people:
    - {name: 李娜, roles: [execution], email: lina@example.com, webhook: "http://127.0.0.1:9/hook"}
    - {name: 张伟, roles: [leadership], email: zhangwei@example.com}
    - {name: wang, roles: [support], email: wang@example.com}
"""
ROUTES = """
  routes:
    - name: serious
      match: {at_least: {cbrc: III}}
      notify: [execution, leadership]
    - name: any
      notify: [execution]
      escalate: [{after: 15, roles: [leadership]}, {after: 30, roles: [support]}]
"""


def config(notify_extra: str = "", routes: str = ROUTES, top: str = ""):
    return parse(f"agents:\n  - {{id: a1, branch: BR-1, region: north, token_sha256: {TOKEN}}}\n"
                 f"  - {{id: a2, branch: BR-2, region: south, token_sha256: {'b' * 64}}}\n"
                 + top + "notify:" + PEOPLE + routes + notify_extra)


class Timeline:
    """A book, the grader and the notifier, moved along by minutes."""

    def __init__(self, cfg=None):
        self.cfg = cfg or config()
        self.grader = Grader.from_config(self.cfg)
        self.notifier = Notifier.from_config(self.cfg, self.grader.tables)
        self.book = IncidentBook()
        self.now = T0
        self.sent: list = []          # (minute, to, channel, reason)
        self.records: list = []

    def minute(self) -> float:
        return (self.now - T0).total_seconds() / 60

    def _take(self, batch) -> list:
        got = [(self.minute(), o.to, o.channel, o) for o in batch.outbox]
        self.sent += got
        self.records += batch.records
        return got

    def event(self, check: str, state: str, branch: str = "BR-1", agent: str = "a1") -> list:
        e = Event(id=new_event_id(), kind="state", agent=agent, branch=branch, check=check,
                  old_state=None, new_state=state, reason=f"{check} {state}",
                  observed_at=self.now)
        return self.changes(self.book.apply_event(e, self.now))

    def changes(self, changes: list[Change]) -> list:
        return self._take(self.notifier.on_changes(changes, self.book.get, self.now))

    def at(self, minutes: float) -> list:
        """Move the clock; one grading and notifier round."""
        self.now = T0 + timedelta(minutes=minutes)
        got = []
        for inc in self.book.incidents():
            got += self.changes(self.grader.regrade(inc, self.now))
        return got + self._take(self.notifier.tick(self.book.incidents(), self.now))

    def ack(self, who: str) -> None:
        self.book.ack(self.incident().id, who, "on it", self.now)

    def incident(self):
        [inc] = self.book.incidents()
        return inc


def people(got) -> set[str]:
    return {to for _, to, channel, _ in got if channel == "email"}


def test_escalation_timeline_execution_then_leadership_then_ack_stops_it():
    t = Timeline()
    opened = t.event("tcp/teller", "critical")      # not business-stopping: stays ungraded
    assert people(opened) == {"李娜"}                        # execution group first
    assert {c for _, _, c, _ in opened} == {"email", "webhook"}
    first = opened[0][3]
    assert first.subject.startswith(f"{t.incident().id} 未定级 服务故障")   # zh: the title too
    assert "/api/v1/ack/" in first.text and "by=%E6%9D%8E%E5%A8%9C" in first.text
    assert t.at(14.9) == []                                  # not yet
    assert people(t.at(15)) == {"张伟"}                       # leadership at minute 15
    assert t.at(16) == []                                    # once
    t.ack("张伟")
    assert t.at(31) == [] and t.at(45) == []                  # support never: acknowledged
    state = t.incident().notify
    assert state.level == 1 and state.roles == ["execution", "leadership"]
    assert [r[1]["reason"] for r in t.records if r[0] == "notify.queued"] == ["opened",
                                                                              "escalation"]


def test_without_ack_every_level_in_turn_then_nothing_more():
    t = Timeline()
    t.event("tcp/teller", "critical")
    assert people(t.at(15)) == {"张伟"}
    assert people(t.at(30)) == {"wang"}
    assert t.at(60) == [] and t.at(600) == []


def test_grade_rises_deadline_reminder_15_min_before_the_60_min_notice_and_missed():
    t = Timeline()
    t.event("tcp/core-banking", "critical")    # business-stopping: core system unreachable
    t.ack("李娜")
    assert t.at(20) == []
    graded = t.at(30)                          # grade III after 30 min in business hours
    assert people(graded) == {"李娜", "张伟"}     # the serious route: execution + leadership
    assert "III 较大" in graded[0][3].subject
    assert t.at(44.9) == []
    reminder = t.at(45)                        # 15 min before regulator-notice (due at 60)
    assert people(reminder) == {"李娜", "张伟"}
    assert "regulator-notice" in reminder[0][3].text and "剩余 15 分钟" in reminder[0][3].text
    assert t.at(50) == [] and t.at(60) == []   # "within 60 minutes": 60:00 is on time
    missed = t.at(60.5)
    assert "张伟" in people(missed)             # a missed deadline reaches leadership
    assert "regulator-notice" in missed[0][3].text
    assert t.at(61) == []


def test_missed_deadline_escalates_to_leadership_even_when_only_execution_was_told():
    cfg = config(routes="\n  routes:\n    - {name: any, notify: [execution]}\n")
    t = Timeline(cfg)
    t.event("tcp/core-banking", "critical")
    t.ack("李娜")
    for m in range(1, 60):
        got = t.at(m)
        assert "张伟" not in people(got), m
    assert people(t.at(61)) == {"李娜", "张伟"}


def test_plan_failed_is_notified_at_once_to_leadership():
    t = Timeline()
    t.event("tcp/core-banking", "critical")
    inc = t.incident()
    got = t.changes([Change("plan_failed", inc.id, t.now, "R1: plan failed at swap-uplink",
                            None, True)])
    assert people(got) == {"李娜", "张伟"}
    assert "第三十条" in got[0][3].text and "swap-uplink" in got[0][3].text


def test_joined_fault_with_the_same_title_is_not_sent_again_a_new_title_is():
    t = Timeline()
    t.event("ups/rack/on_battery", "critical")
    assert t.incident().title == "UPS on battery"
    assert t.event("ups/rack/battery_low", "critical") == []          # same title: dedup
    got = t.event("line/primary/gw", "critical")                      # -> power outage
    assert t.incident().title == "power outage" and people(got) == {"李娜"}


def test_silence_holds_fault_alerts_until_it_ends():
    cfg = config("  silences:\n    - {branches: [BR-1], starts: 2026-12-07T08:00:00+08:00,"
                 " ends: 2026-12-07T09:10:00+08:00, why: line works}\n")
    t = Timeline(cfg)
    assert t.event("tcp/core-banking", "critical") == []
    assert [r[0] for r in t.records] == ["notify.held"]
    assert "line works" in t.records[0][1]["why"]
    assert t.at(5) == []
    assert people(t.at(10)) == {"李娜"}         # the silence ended: sent now
    assert t.at(11) == []


def test_maintenance_window_by_region_and_other_regions_unaffected():
    cfg = config("  maintenance:\n    - name: nightly\n      regions: [south]\n"
                 "      when: {timezone: Asia/Shanghai, weekdays: [mon], hours: ['08:00-10:00']}\n")
    t = Timeline(cfg)
    assert t.event("tcp/core-banking", "critical", branch="BR-2", agent="a2") == []
    assert t.event("tcp/core-banking", "critical") != []    # BR-1 is north


def test_warning_faults_notify_only_during_heightened_watch():
    t = Timeline()
    assert t.event("line/primary/gw", "warning") == []       # below the threshold
    assert t.records[-1][0] == "notify.held"
    assert t.at(5) == []
    watch = config("  watch:\n    - {name: year-end, starts: 2026-12-07T08:00:00+08:00,"
                   " ends: 2026-12-08T08:00:00+08:00}\n")
    t2 = Timeline(watch)
    assert people(t2.event("line/primary/gw", "warning")) == {"李娜"}


def test_routes_by_grade_class_branch_region_and_change():
    cfg = config(routes="""
  routes:
    - {name: hospital-serious, match: {at_least: {hospital: "2"}}, notify: [leadership]}
    - {name: south, match: {regions: [south]}, notify: [support]}
    - {name: failures, match: {changes: [agent_action]}, notify: [support, execution]}
    - {name: br1, match: {branches: ["BR-1*"]}, notify: [execution]}
""", top="grading: {tables: [cbrc, hospital]}\n")
    t = Timeline(cfg)
    rules = t.notifier.rules
    got = t.event("tcp/x", "critical", branch="BR-2", agent="a2")
    assert people(got) == {"wang"}
    got = t.event("tcp/x", "critical")
    assert people(got) == {"李娜"}
    inc = next(i for i in t.book.incidents() if i.branch == "BR-1")
    failure = t.changes([Change("agent_action", inc.id, t.now, "a1: action FAILED", "a", True)])
    assert people(failure) == {"李娜", "wang"}
    from collector.incident_grades import GradeRecord
    inc.grades["hospital"] = GradeRecord("hospital", grade="2")
    assert rules.route(inc, "graded")[1].name == "hospital-serious"
    inc.grades["hospital"] = GradeRecord("hospital", grade="3")
    assert rules.route(inc, "graded")[1].name == "br1"
    assert rules.at_least(inc, "hospital", "3") and not rules.at_least(inc, "hospital", "2")


def test_drill_incidents_say_drill_in_their_first_words():
    t = Timeline()
    t.event("tcp/core-banking", "critical")
    inc = t.incident()
    inc.drill = True               # the drill feature sets this flag (issue 7, later)
    got = t.at(15)
    assert got[0][3].subject.startswith("DRILL")
    assert got[0][3].text.split()[0] == "DRILL"


def test_reopening_restarts_the_chain_and_earlier_acks_no_longer_count():
    t = Timeline()
    t.event("tcp/core-banking", "critical")
    t.ack("李娜")
    t.at(1)
    t.event("tcp/core-banking", "ok")
    assert t.incident().status == "resolved"
    t.at(2)
    got = t.event("tcp/core-banking", "critical")
    assert t.incident().status == "open" and people(got) == {"李娜"}
    assert people(t.at(17)) == {"张伟"}        # 15 min after the reopening


def test_resolved_is_told_to_those_who_heard_of_it():
    t = Timeline()
    t.event("tcp/core-banking", "critical")
    t.at(15)
    got = t.event("tcp/core-banking", "ok")
    assert people(got) == {"李娜", "张伟"}
    assert "已恢复" in got[0][3].text


def test_notification_state_survives_a_restart():
    t = Timeline()
    t.event("tcp/teller", "critical")
    t.at(15)
    stored = from_dict(to_dict(t.incident()))
    assert stored.notify == t.incident().notify
    again = Timeline(t.cfg)                   # a new collector: book from the store
    again.book = IncidentBook(incidents=[stored])
    assert again.at(16) == []                 # leadership was told already
    assert people(again.at(30)) == {"wang"}
    queued = again.notifier.pending(again.book.incidents())
    assert {(o.to, o.channel) for o in queued} >= {("李娜", "email"), ("wang", "email")}


def test_delivery_outcomes_are_kept_and_audited():
    t = Timeline()
    [(_, _, _, mail), *_] = t.event("tcp/core-banking", "critical")
    inc, n = t.incident(), t.notifier
    assert n.delivered(inc, mail, False, "connection refused", 1, False, t.now) == [
        ("notify.failed", {"incident": inc.id, "to": "李娜", "channel": mail.channel,
                           "attempts": 1, "message": "M1", "error": "connection refused",
                           "retrying": True})]
    assert n.delivered(inc, mail, False, "again", 2, False, t.now) == []
    [(kind, data)] = n.delivered(inc, mail, True, None, 3, True, t.now)
    assert kind == "notify.sent" and data["attempts"] == 3
    d = inc.notify.delivery(mail.delivery)
    assert d.status == "sent" and d.attempts == 3


@pytest.mark.parametrize("language", ["zh", "en"])
def test_every_shipped_template_has_every_reason(language):
    from collector.notify.messages import template
    from collector.notify.settings import ROUTED
    t = template(language)
    for reason in ROUTED + ("reminder", "escalation", "resolved"):
        assert reason in t["reasons"], reason
    assert t["subject"].startswith("{drill}{id} {grade} {title}")
    assert t["body"][0] == "{subject}"
