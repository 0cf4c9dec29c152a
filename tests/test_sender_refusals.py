"""Refusals never stop delivery: the real collector (a process on 127.0.0.1,
an 8 KiB body limit) answers 413 to big batches and 400 to an event out of
the wire's bounds; the sender splits, sets the one refused event aside in
the spool's dead letters, and everything behind it arrives exactly once."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from agent import wire
from agent.sender import Sender
from agent.spool import Spool

from .support.collector import CollectorProcess
from .test_collector_api import BRANCH, TOKENS


def event(n: int, reason: str = "r" * 1500, at: float = 1_700_000_000) -> wire.Event:
    return wire.Event(id=f"ev{n:04d}", kind="state", agent="a1", branch=BRANCH["a1"],
                      check=f"tcp/core{n}", old_state="ok", new_state="critical",
                      reason=f"event {n} {reason}", observed_at=wire.utc(at + n))


def stored_ids(c: CollectorProcess) -> list[str]:
    db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        return [r[0] for r in db.execute("SELECT id FROM events WHERE agent = 'a1'")]
    finally:
        db.close()


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    c = CollectorProcess(tmp_path_factory.mktemp("collector"),
                         {a: (BRANCH[a], t) for a, t in TOKENS.items()}, max_body=8192).start()
    yield c
    assert c.stop() == 0


def test_big_batches_are_split_and_refused_events_set_aside(collector, tmp_path):
    told: list[tuple[str, str, str]] = []
    spool = Spool(tmp_path / "spool.db",
                  on_set_aside=lambda d: told.append((d.id, d.check, d.refusal)))
    events = [event(i) for i in range(150)]
    # Out of the time range (the collector's 400 names it), too big alone for
    # this collector (413: 2000 four-byte characters), beyond the reason bound
    # (the agent's own spool sets it aside before sending).
    events[40] = event(40, at=0)
    events[90] = event(90, "𝄞" * 2000)
    events[120] = event(120, "r" * wire.REASON_MAX)
    for e in events:
        spool.put(e)
    sender = Sender(spool, url=collector.url, token=TOKENS["a1"], agent="a1",
                    branch=BRANCH["a1"], heartbeat_interval=None, timeout=5)

    async def drain():
        for _ in range(100):
            if spool.depth() == 0:
                return
            assert await sender.send_batch() == 0.0, "a refusal must not wait"
    asyncio.run(drain())

    assert spool.depth() == 0
    ids = stored_ids(collector)
    assert len(ids) == len(set(ids)) == 147, "an event lost or stored twice"
    assert set(ids) == {e.id for e in events} - {"ev0040", "ev0090", "ev0120"}
    refusals = {d.id: d.refusal for d in spool.dead_letters()}
    assert sorted(refusals) == ["ev0040", "ev0090", "ev0120"]
    assert refusals["ev0040"].startswith("collector answered 400: events[")
    assert ".observed_at: 1970-01-01T00:00:40+00:00 is outside the years 2000..2100" \
        in refusals["ev0040"]
    assert refusals["ev0090"].startswith("collector answered 413: ")
    assert refusals["ev0120"] == ("not a valid wire event: Expected `str` of length <= 2048"
                                  " - at `$.reason`")
    assert sorted(told) == sorted((i, f"tcp/core{i[-3:].lstrip('0')}", refusals[i])
                                  for i in refusals)
    assert spool.dead_letter_count() == 3
    assert sender.limit == sender.batch_size         # caught up: full batches again
    spool.close()


def test_dead_letters_survive_a_reopen_and_are_pruned_after_a_week(tmp_path):
    now = [1_800_000_000.0]
    spool = Spool(tmp_path / "spool.db", wall_clock=lambda: now[0])
    spool.put(event(1))
    spool.put(event(2))
    assert spool.set_aside("ev0001", "collector answered 413: too big")
    assert not spool.set_aside("unknown", "x")
    spool.close()
    again = Spool(tmp_path / "spool.db", wall_clock=lambda: now[0])
    assert again.depth() == 1 and again.dead_letter_count() == 1
    [d] = again.dead_letters()
    assert (d.id, d.refusal, d.at) == ("ev0001", "collector answered 413: too big", now[0])
    now[0] += 7 * 86_400 - 1
    assert again.prune() == 0
    now[0] += 2
    assert again.prune() == 1 and again.dead_letters() == [] and again.dead_letter_count() == 0
