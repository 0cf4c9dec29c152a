"""An agent with several collector URLs fails over between them: two real
collector processes, a real agent watching a TCP service the test opens and
closes. The collector in use is paused (SIGSTOP: it hangs), then the other is
killed (SIGKILL): events, heartbeats and their answers move to the one that
answers, and every event the agent produced is stored."""

from __future__ import annotations

import signal
import sqlite3

import msgspec
import pytest

from agent.schema_collector_link import CollectorLink, link_problems, link_urls

from agent.sender import Sender
from agent.spool import Spool

from .support.agent import AgentProcess
from .support.paths import free_port
from .test_collector_api import BRANCH, TOKENS, CollectorProcess
from .test_delivery_e2e import Service, wait_for
from .test_sender import TOKEN, Receiver, event


def stored_ids(c: CollectorProcess) -> list[str]:
    with sqlite3.connect(f"file:{c.folder / 'data'}/collector.db?mode=ro", uri=True) as db:
        return [r[0] for r in db.execute("SELECT id FROM events WHERE agent = 'a1'")]


def heartbeat_at(c: CollectorProcess) -> int:
    with sqlite3.connect(f"file:{c.folder / 'data'}/collector.db?mode=ro", uri=True) as db:
        row = db.execute("SELECT heartbeat_at FROM agents WHERE agent = 'a1'").fetchone()
    return (row or [0])[0] or 0


def flip(agent: AgentProcess, service: Service) -> None:
    """Take the service down and up again; wait until the agent saw both."""
    after = len(agent.events)
    service.down()
    agent.wait_event(after=after, check="tcp/core", new_state="critical")
    service.up()
    agent.wait_event(after=after, check="tcp/core", new_state="ok", old_state="critical")


def test_events_and_heartbeats_follow_the_collector_that_answers(tmp_path):
    first = CollectorProcess(tmp_path / "c1").start()
    second = CollectorProcess(tmp_path / "c2").start()
    service = Service()
    config = {
        "agent": {"id": "a1", "branch": BRANCH["a1"], "region": "north"},
        "state": {"debounce": 1},
        "host": {"tcp": [{"name": "core", "host": "127.0.0.1", "port": service.port,
                          "timeout": 0.5, "interval": 0.3}]},
        "collector": {"urls": [first.url, second.url], "token": TOKENS["a1"],
                      "heartbeat_interval": 1, "timeout": 0.5,
                      "spool": {"path": str(tmp_path / "spool.db")}},
    }
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", config).start()
    try:
        agent.wait_event(check="tcp/core", new_state="ok")
        wait_for(lambda: stored_ids(first), what="the first event at the first collector")
        assert agent.metric("branchwatch_collector_url_active", url=first.url) == 1
        # The first collector hangs: the agent moves to the second.
        first.proc.send_signal(signal.SIGSTOP)
        flip(agent, service)
        produced = {e["id"] for e in agent.events}
        wait_for(lambda: set(stored_ids(first)) | set(stored_ids(second)) >= produced,
                 what="every event at one collector or the other")
        beat = heartbeat_at(second)
        wait_for(lambda: heartbeat_at(second) > beat, what="heartbeats at the second")
        assert agent.metric("branchwatch_collector_url_active", url=second.url) == 1
        assert agent.metric("branchwatch_collector_url_swaps_total") >= 1
        # The first wakes, the second dies: back to the first.
        first.proc.send_signal(signal.SIGCONT)
        second.proc.send_signal(signal.SIGKILL)
        second.proc.wait(10)
        flip(agent, service)
        produced = {e["id"] for e in agent.events}
        wait_for(lambda: set(stored_ids(first)) | set(stored_ids(second)) >= produced,
                 what="every event stored after the second failover")
        beat = heartbeat_at(first)
        wait_for(lambda: heartbeat_at(first) > beat, what="heartbeats at the first again")
        wait_for(lambda: agent.metric("branchwatch_spool_depth") == 0, what="an empty spool")
        for c in (first, second):
            ids = stored_ids(c)
            assert len(ids) == len(set(ids)), "an event stored twice at one collector"
        # Both collectors took part of the agent's events.
        assert stored_ids(second) and set(stored_ids(first)) - set(stored_ids(second))
    finally:
        agent.stop()
        first.proc.send_signal(signal.SIGCONT)
        for c in (first, second):
            if c.proc.poll() is None:
                c.stop()
        service.down()


@pytest.mark.parametrize("link, problem", [
    ({"url": "http://a", "urls": ["http://b"]}, ("collector", "expected exactly one of 'url' or 'urls'")),
    ({}, ("collector", "expected exactly one of 'url' or 'urls'")),
    ({"urls": []}, ("collector.urls", "expected at least one URL")),
    ({"urls": ["http://a", "http://a/"]}, ("collector.urls", "expected each URL once")),
    ({"urls": ["http://a", "ftp://b"]},
     ("collector.urls[1]", "expected an http:// or https:// URL with a host, got 'ftp://b'")),
])
def test_a_bad_url_list_is_named(link, problem):
    link = msgspec.convert({**link, "token": "t"}, CollectorLink)
    assert problem in list(link_problems(link))


def test_one_url_still_works():
    link = msgspec.convert({"url": "http://a:1", "token": "t"}, CollectorLink)
    assert list(link_problems(link)) == []
    assert link_urls(link) == ["http://a:1"]


@pytest.mark.parametrize("mode", ["down", "fail", "refuse"])
def test_the_next_url_is_tried_at_once_and_kept(tmp_path, mode):
    """Unreachable or 5xx: the next URL in the same turn, no backoff; a refusal
    (403: a person must fix it) would be the same everywhere, so it stays."""
    import asyncio

    async def main():
        bad = Receiver(free_port())
        if mode != "down":
            bad.mode = mode
            await bad.start()
        good = await Receiver(free_port()).start()
        spool = Spool(tmp_path / "spool.db")
        for i in range(3):
            spool.put(event(i))
        sender = Sender(spool, urls=[f"http://127.0.0.1:{bad.port}", f"http://127.0.0.1:{good.port}"],
                        token=TOKEN, agent="a1", branch="b1", timeout=0.5, base_delay=5,
                        heartbeat_interval=None)
        delay = await sender.send_batch()
        if mode == "refuse":
            assert delay > 0 and spool.depth() == 3 and sender.active == 0 and not good.stored
        else:
            assert delay == 0 and spool.depth() == 0 and len(good.stored) == 3
            assert sender.active == 1 and sender.url_swaps == 1
            assert await sender.send_heartbeat() and len(good.heartbeats) == 1
            assert sender.url_swaps == 1                 # kept to the one that answers
        await good.stop()
        if mode != "down":
            await bad.stop()
        spool.close()
    asyncio.run(main())


def test_every_url_failing_backs_off(tmp_path):
    import asyncio

    async def main():
        spool = Spool(tmp_path / "spool.db")
        spool.put(event(1))
        sender = Sender(spool, urls=[f"http://127.0.0.1:{free_port()}" for _ in range(3)],
                        token=TOKEN, agent="a1", branch="b1", timeout=0.5, base_delay=5,
                        heartbeat_interval=None, rand=lambda: 1.0)
        assert await sender.send_batch() == 5.0
        assert sender.url_swaps == 2 and sender.consecutive == 1 and spool.depth() == 1
        spool.close()
    asyncio.run(main())
