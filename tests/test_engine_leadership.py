"""Leadership (collector/engine/leadership.py) over a lease the test drives: the
engine waits until the take-over has rebuilt the book, a failed take-over is
tried again, losing the lease stops it at once. A fake lease stands in for
PostgreSQL here (a pure unit); tests/test_engine_lease.py runs the real one."""

from __future__ import annotations

import asyncio

from collector.engine.lease import SoleLease
from collector.engine.leadership import Leadership


class DrivenLease:
    """A lease the test grants and takes away."""

    def __init__(self):
        self.held, self.epoch, self.closed = False, None, False

    def tick(self) -> bool:
        self.epoch = 1 if self.held else None
        return self.held

    def leading(self) -> bool:
        return self.held

    def check(self, conn) -> None:
        pass

    def close(self) -> None:
        self.closed = True


async def turns(lead: Leadership, n: int = 3) -> None:
    """Let the ticking task run a few rounds (each yields to the loop)."""
    for _ in range(n):
        await asyncio.sleep(lead.every * 2)


def test_the_sole_collector_leads_without_a_task():
    lead = Leadership(SoleLease(), store=None, on_lead=None)
    assert not lead.shared and lead.ready and lead.leading()
    assert lead.fenced(len) is len               # no fence to check on SQLite


def test_leading_waits_for_the_take_over_and_a_failed_one_is_retried():
    async def main():
        lease, calls = DrivenLease(), []

        async def on_lead():
            calls.append("lead")
            assert not lead.leading()            # the lease is held, the book not yet built
            if len(calls) == 1:
                raise RuntimeError("the store went away while rebuilding")
            lead.ready = True

        lead = Leadership(lease, store=None, on_lead=on_lead, every=0.005)
        lead.start()
        await turns(lead)
        assert not lead.leading() and calls == []
        lease.held = True
        for _ in range(200):
            if lead.leading():
                break
            await asyncio.sleep(0.005)
        assert lead.leading() and calls == ["lead", "lead"]   # failed once, then taken over
        lease.held = False                        # lost: at once, before any tick
        assert not lead.leading()
        await lead.stop()
        assert lease.closed
    asyncio.run(main())
