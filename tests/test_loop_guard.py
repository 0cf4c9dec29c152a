"""LoopGuard: an exception is logged once per cause, counted, retried with a
growing jittered delay, and shown (or not) as the agent/loops check; and a
real Scheduler's probe loop survives a handler that raises."""

from __future__ import annotations

import asyncio
import logging

from agent.config import from_dict
from agent.events import ListSink
from agent.loop_guard import LoopGuard
from agent.model import Reading
from agent.runner import Agent, Scheduler


def test_logged_once_per_cause_counted_and_backed_off(caplog):
    changes = []
    guard = LoopGuard(lambda loop, why: changes.append((loop, why)), rand=lambda: 1.0)
    guard.watch("sender")
    with caplog.at_level(logging.ERROR, logger="branchwatch.agent"):
        delays = [guard.failed("sender", OSError("disk gone")) for _ in range(4)]
        guard.failed("sender", KeyError("x"))
    assert delays == [1.0, 2.0, 4.0, 8.0]
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        "OSError: disk gone", "KeyError: 'x'"]
    assert guard.errors == {"sender": 5}
    assert changes == [("sender", "OSError: disk gone"), ("sender", "KeyError: 'x'")]
    guard.worked("sender")
    assert changes[-1] == ("sender", None) and guard.failing == {}
    assert guard.failed("sender", OSError("disk gone")) == 1.0    # the streak starts again
    guard.failed("heartbeat", OSError("full"), shown=False)
    assert "heartbeat" not in guard.failing and guard.errors["heartbeat"] == 1
    assert {s.labels: s.value for s in guard.samples()} == {
        (("loop", "heartbeat"),): 1, (("loop", "sender"),): 6}


class Ticking:
    """A probe that reads at once; its readings go to a handler that fails twice."""

    name, interval, timeout = "tick", 0.01, 1.0

    def read(self):
        return Reading(self.name, True)

    def close(self):
        pass


def test_a_probe_loop_survives_exceptions_and_reports_them():
    config = from_dict({"agent": {"id": "a1", "branch": "B1"}})
    sink = ListSink()
    agent = Agent(config, sink)
    guard = LoopGuard(rand=lambda: 0.0)
    from agent.self_checks import watch_loops
    watch_loops(agent, guard)
    handled, real = [], agent.handle

    def flaky(reading):
        handled.append(reading)
        if len(handled) <= 2:
            raise RuntimeError("bug in a handler")
        return real(reading)
    agent.handle = flaky

    async def main():
        stop = asyncio.Event()
        scheduler = Scheduler(agent, [Ticking()], guard)
        task = asyncio.create_task(scheduler.run(stop))
        for _ in range(500):
            if len(handled) >= 4:
                break
            await asyncio.sleep(0.01)
        stop.set()
        await task
    asyncio.run(main())
    assert len(handled) >= 4 and guard.errors["probe tick"] == 2
    loops = [(e.new_state, e.reason) for e in sink.events if e.check == "agent/loops"]
    assert loops[0] == ("critical", "probe tick loop failing, retried with backoff: "
                                    "RuntimeError: bug in a handler")
    assert loops[-1] == ("ok", "every loop works again")
