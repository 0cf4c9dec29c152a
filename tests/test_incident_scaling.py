"""The incident book's cost per event does not grow with incidents the event
does not touch (open ones elsewhere, resolved ones long past joining), nor a
fault's span list with the number of times it bounced. Measured by counting
the book's look-ups, never by time.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import Event, new_event_id
from collector.incident_codec import from_dict, to_dict
from collector.incident_index import IncidentIndex
from collector.incidents import SPAN_KEEP, SPAN_SLACK, Fault, IncidentBook

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def event(t: float, check: str, state: str, branch: str = "b1", agent: str | None = None) -> Event:
    return Event(id=new_event_id(), kind="state", agent=agent or f"agent-{branch}",
                 branch=branch, check=check, old_state=None, new_state=state,
                 reason=f"raw {state}", observed_at=at(t))


def fill(book: IncidentBook, open_elsewhere: int, resolved_here: int) -> float:
    """`open_elsewhere` open incidents at other branches, `resolved_here` resolved
    ones at b1 (each an hour apart: none can be joined later); the time after."""
    for n in range(resolved_here):
        t = n * 3600.0
        book.apply_event(event(t, f"tcp/svc{n}", "critical"), at(t))
        book.apply_event(event(t + 10, f"tcp/svc{n}", "ok"), at(t + 10))
    t = resolved_here * 3600.0
    for n in range(open_elsewhere):
        book.apply_event(event(t, "ups/rack/on_battery", "critical", branch=f"o{n}"), at(t))
    return t + 3600.0


class Looks:
    """Counts the book's per-incident look-ups (public methods of its index and faults)."""

    def __init__(self, monkeypatch):
        self.n = Counter()
        for cls, name in ((IncidentIndex, "starts_near"), (IncidentIndex, "device_active"),
                          (IncidentIndex, "notable"), (Fault, "active_at"),
                          (IncidentBook, "drill_run")):
            original = getattr(cls, name)

            def counted(*a, _o=original, _n=name, **kw):
                self.n[_n] += 1
                return _o(*a, **kw)
            monkeypatch.setattr(cls, name, counted)


def cost_of_one_outage(book: IncidentBook, t: float, monkeypatch) -> Counter:
    """Look-ups for a fault start, a join, a suppressed child and the clears at b1."""
    looks = Looks(monkeypatch)
    script = [(t, "line/primary/gw", "critical"), (t + 5, "ups/rack/on_battery", "critical"),
              (t + 6, "tcp/core", "critical"), (t + 60, "line/primary/gw", "ok"),
              (t + 61, "ups/rack/on_battery", "ok"), (t + 62, "tcp/core", "ok")]
    kinds = []
    for s, check, state in script:
        kinds += [c.kind for c in book.apply_event(event(s, check, state), at(s))]
    assert kinds.count("opened") == 1 and "suppressed" in kinds and kinds[-1] == "resolved"
    monkeypatch.undo()
    return looks.n


@pytest.mark.parametrize("open_elsewhere,resolved_here", [(1_000, 0), (0, 300), (2_000, 300)])
def test_an_event_looks_at_the_same_incidents_however_many_others_there_are(
        monkeypatch, open_elsewhere, resolved_here):
    small = IncidentBook(window=120)
    base = cost_of_one_outage(small, fill(small, 10, 0), monkeypatch)
    big = IncidentBook(window=120)
    t = fill(big, open_elsewhere, resolved_here)
    assert big.count("open") == open_elsewhere and big.count("resolved") == resolved_here
    assert cost_of_one_outage(big, t, monkeypatch) == base


def test_resolved_incidents_leave_the_live_indexes_and_closed_ones_every_index():
    book = IncidentBook(window=120)
    book.apply_event(event(0, "tcp/core", "critical"), at(0))
    inc = book.incidents()[0]
    assert list(book.index.open_at("b1")) == [inc]
    book.apply_event(event(10, "tcp/core", "ok"), at(10))
    assert list(book.index.open_at("b1")) == []
    # Joinable until the window after its resolution, not after.
    assert list(book.index.resolved_since("b1", at(10) - timedelta(seconds=120))) == [inc]
    assert list(book.index.resolved_since("b1", at(11))) == []
    book.apply_event(event(100, "tcp/core", "critical"), at(100))       # within the window
    assert inc.status == "open" and list(book.index.open_at("b1")) == [inc]
    book.resolve(inc.id, "wang", "fixed", at(200), force=True)
    book.close(inc.id, "wang", "done", at(300))
    assert list(book.index.open_at("b1")) == [] and book.index.live("b1") == []
    assert (book.count("open"), book.count("resolved"), book.count("closed")) == (0, 0, 1)


def test_the_same_cause_index_holds_open_incidents_only():
    book = IncidentBook(window=120, cause_of=lambda c: "core" if c == "tcp/core" else None)
    for n, branch in enumerate(["b1", "b2", "b3"]):
        book.apply_event(event(n, "tcp/core", "critical", branch=branch), at(n))
    (inc,) = book.incidents()
    assert inc.title == "core: 3 branches"
    assert book.index.with_cause("core") == [inc]
    for n, branch in enumerate(["b1", "b2", "b3"]):
        book.apply_event(event(10 + n, "tcp/core", "ok", branch=branch), at(10 + n))
    assert inc.status == "resolved" and book.index.with_cause("core") == []


def test_a_bouncing_fault_keeps_a_bounded_span_list_with_exact_active_time():
    book = IncidentBook(window=120)
    active, t, long_gaps = 0.0, 0.0, []
    for n in range(1_000):          # down 2 s, then up 8 s (every 50th time: 100 s)
        book.apply_event(event(t, "line/primary/gw", "critical"), at(t))
        book.apply_event(event(t + 2, "line/primary/gw", "ok"), at(t + 2))
        active += 2
        gap = 100.0 if n % 50 == 49 else 8.0
        if gap > 8:
            long_gaps.append(t + 2 + gap / 2)
        t += 2 + gap
    (inc,) = book.incidents()
    (f,) = inc.faults.values()
    assert SPAN_KEEP <= len(f.spans) <= SPAN_KEEP + SPAN_SLACK
    assert f.spans_merged == 1_000 - len(f.spans)
    assert f.spans[0][0] == at(0) and f.spans[-1][1] == at(t - 100)
    assert f.active_seconds(at(10 * t)) == active
    # The shortest gaps went first: the 20 long ones are still gaps; the short
    # ones merged count as active (grading sees a longer outage, never a shorter one).
    assert not any(f.active_at(at(g)) for g in long_gaps[:-1])
    assert f.active_at(at(5.0))
    # Stored and read back: the same, and a later start is still judged as before.
    again = from_dict(to_dict(inc))
    assert again == inc
    reloaded = IncidentBook(window=120, incidents=[again])
    changes = reloaded.apply_event(event(t - 40, "line/primary/gw", "critical"), at(t - 40))
    assert [c.kind for c in changes] == ["reopened"]


def test_counts_follow_every_status_change_for_real_and_drill_incidents():
    book = IncidentBook(window=120)
    book.apply_event(event(0, "tcp/core", "critical"), at(0))
    book.apply_event(event(0, "tcp/core", "critical", agent="drill:r1:b1"), at(0))
    assert (book.count("open"), book.count("open", drill=True)) == (1, 1)
    book.apply_event(event(5, "tcp/core", "ok", agent="drill:r1:b1"), at(5))
    assert (book.count("open", drill=True), book.count("resolved", drill=True)) == (0, 1)
    # A reloaded book counts what it was given.
    again = IncidentBook(window=120, incidents=book.incidents())
    assert (again.count("open"), again.count("resolved", drill=True)) == (1, 1)
