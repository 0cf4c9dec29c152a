"""What no runbook covers is told to the leadership group at once (第二十七條(二);
domain.md §3): the `not_covered` change is routed like a failed plan, in the
leadership's language. The notification pipeline's own timeline helper
(tests/test_notify_pipeline.py) drives it."""

from __future__ import annotations

from collector.incidents import Change

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
