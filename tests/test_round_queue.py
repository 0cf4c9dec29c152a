"""The once-a-second rounds look only at what is due (collector/round_queue.py):
changed incidents, those whose state moves by itself, those whose time came.
Counted by the grader's and runbooks' look-ups, never by time."""

from __future__ import annotations


from collections import Counter
from datetime import datetime, timedelta, timezone

from agent.wire import Event, new_event_id
from collector.grader import Grader
from collector.grading.facts import IncidentFacts, Outage
from collector.incident_desk import IncidentDesk
from collector.incident_grades import DeadlineState
from collector.incident_runbooks import Runbooks
from collector.incidents import Incident
from collector.round_queue import EVERY_ROUND, RoundQueue, next_grading
from collector.store import SqliteStore

from .test_grading_incidents import config_text, mon
from collector.config import parse

T = datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)


def test_a_queue_gives_what_changed_what_moves_and_what_fell_due_once_each():
    q = RoundQueue()
    q.touch(["a", "b", "c"])
    assert q.take(T) == ["a", "b", "c"]
    assert q.take(T) == []                          # looked at: waits as settled
    q.settle("a", EVERY_ROUND)
    q.settle("b", T + timedelta(minutes=5))
    q.settle("c", None)
    assert q.take(T + timedelta(seconds=1)) == ["a"]
    q.settle("a", EVERY_ROUND)
    assert q.take(T + timedelta(minutes=5)) == ["a", "b"]
    q.settle("a", EVERY_ROUND)
    q.settle("b", T + timedelta(hours=1))
    q.touch(["b", "c"])                             # changed before its time: now
    assert q.take(T + timedelta(minutes=6)) == ["a", "b", "c"]
    assert q.take(T + timedelta(hours=2)) == []     # the older time went with that look
    assert len(q) == 0


def test_grading_waits_for_an_outage_in_progress_every_round_else_for_its_deadline():
    inc = Incident("i", "B1", "t", T)
    due = T + timedelta(hours=2)
    inc.deadlines = [DeadlineState("cbrc", "k", "report", "r", "why", due),
                     DeadlineState("cbrc", "m", "met", "r", "why", T, status="met")]
    going = IncidentFacts(T, None, outages=(Outage("north", T, None),))
    over = IncidentFacts(T, T + timedelta(hours=1),
                         outages=(Outage("north", T, T + timedelta(hours=1)),))
    assert next_grading(inc, going) == EVERY_ROUND
    assert next_grading(inc, over) == due
    inc.deadlines = []
    assert next_grading(inc, over) is None


def event(t: datetime, check: str, state: str) -> Event:
    return Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=check,
                 old_state=None, new_state=state, reason=state, observed_at=t)


def test_rounds_never_look_at_resolved_incidents_waiting_for_nothing(tmp_path, monkeypatch):
    grader = Grader.from_config(parse(config_text()))
    now = [mon("09:00").timestamp()]
    store = SqliteStore(tmp_path / "collector.db")
    desk = IncidentDesk(store, lambda: now[0], grader=grader,
                        runbooks=Runbooks.from_folder(None))
    looks = Counter()
    facts, advance = Grader.facts, Runbooks.advance

    def counted_facts(self, inc):
        looks["grade " + inc.status] += 1
        return facts(self, inc)

    def counted_advance(self, inc, at):
        looks["runbook " + inc.status] += 1
        return advance(self, inc, at)
    monkeypatch.setattr(Grader, "facts", counted_facts)
    monkeypatch.setattr(Runbooks, "advance", counted_advance)

    def at(t: datetime, check: str, state: str) -> None:
        now[0] = t.timestamp()
        with store.group():
            desk.ingest("a1", "B1", [event(t, check, state)], now[0])

    def round_at(t: datetime) -> Counter:
        now[0] = t.timestamp()
        looks.clear()
        with store.group():
            desk.grade_all()
            desk.advance_runbooks()
        return +looks

    start = mon("09:00")
    for n in range(30):                       # core lost for ten minutes, 30 times
        t = start + timedelta(hours=n)
        at(t, "tcp/core", "critical")
        at(t + timedelta(minutes=10), "tcp/core", "ok")
    t = start + timedelta(hours=30)
    at(t, "tcp/core", "critical")             # one outage in progress
    assert desk.book.count("resolved") == 30 and desk.book.count("open") == 1
    first = round_at(t + timedelta(seconds=1))
    assert first["grade resolved"] == 30      # each once, after its last change
    for s in (2, 3, 4):
        assert round_at(t + timedelta(seconds=s))["grade resolved"] == 0
    # The outage in progress is looked at every round, the resolved ones never.
    later = round_at(t + timedelta(seconds=5))
    assert later["grade open"] == 1 and later["grade resolved"] == 0
    store.close()
