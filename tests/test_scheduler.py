"""The scheduler: async probes on the event loop, and extra reads on request."""

from __future__ import annotations

import asyncio
import time

from agent.config import from_dict
from agent.events import ListSink
from agent.model import Reading
from agent.runner import Agent, Scheduler


class CountingProbe:
    """An async probe that records when it was read."""

    def __init__(self, interval: float):
        self.name, self.interval, self.timeout = "count", interval, 1.0
        self.reads: list[float] = []

    async def aread(self) -> Reading:
        self.reads.append(time.monotonic())
        return Reading(self.name, True)

    def close(self) -> None:
        pass


def test_extra_reads_asked_by_traps_do_not_push_back_the_regular_ones():
    probe = CountingProbe(interval=0.5)
    agent = Agent(from_dict({"agent": {"id": "a", "branch": "b"}}), ListSink())

    async def scenario():
        scheduler = Scheduler(agent, [probe])
        stop = asyncio.Event()
        task = asyncio.create_task(scheduler.run(stop))
        await asyncio.sleep(0.1)
        for _ in range(3):                      # three traps in quick succession
            scheduler.poll_now("count")
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.9)
        stop.set()
        await task
    asyncio.run(scenario())
    start = probe.reads[0]
    offsets = [round(t - start, 2) for t in probe.reads]
    # 3 extra reads near 0.1-0.2 s, and the regular ones still at 0.5, 1.0, 1.5, 2.0.
    assert sum(1 for t in offsets if 0.05 < t < 0.3) == 3, offsets
    assert sum(1 for t in offsets if t > 0.4) >= 3, offsets
