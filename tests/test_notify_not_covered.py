"""What no runbook covers is told to the leadership group at once (第二十七條(二);
domain.md §3): the `not_covered` change is routed like a failed plan, in the
leadership's language. A fault a person reports takes the route an agent's
would, and its message says who reported what, where. The notification
pipeline's own timeline helper (tests/test_notify_pipeline.py) drives it."""

from __future__ import annotations

from collector.incidents import Change
from collector.person_reports import PersonReport, fault_event

from .test_notify_pipeline import Timeline, people


def test_not_covered_by_the_plan_is_notified_at_once_to_leadership():
    t = Timeline()
    t.event("tcp/core-banking", "critical")
    inc = t.incident()
    got = t.changes([Change("not_covered", inc.id, t.now,
                            "no runbook covers service fault (tcp/loan-archive); the leadership "
                            "group decides what to do", None, True)])
    assert people(got) == {"李娜", "张伟"}
    text = got[0][3].text
    assert "预案未覆盖，须立即报告应急领导小组（第二十七条（二））" in text
    assert "tcp/loan-archive" in text


def test_a_fault_a_person_reports_is_notified_as_reported_by_a_person():

    t = Timeline()
    r = PersonReport("BR-1", "service_down", "ward 3", "HIS will not save orders", "wang",
                     "nurse Li, 8021")
    got = t.changes(t.book.apply_event(fault_event(r, t.now), t.now))
    assert people(got) == {"李娜"}                    # the same route as an agent's fault
    # zh (notify.language's default): branchwatch's words in Chinese, the person's as typed
    assert ("tcp/reported-service 严重: 系统无法启动或无法保存（ward 3）：HIS will not save orders"
            "（wang 报告，联系方式：nurse Li, 8021）") in got[0][3].text
