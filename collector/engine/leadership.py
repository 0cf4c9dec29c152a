"""Whether this collector runs the engine, and what changes when that changes.

Every collector ingests (the shared log), stores heartbeats and serves reads.
Only the one holding the lease (engine/lease.py) runs the engine's steps, the
once-a-second rounds (dead-man, grading and deadlines, runbooks,
notifications) and the outbox senders; every one of those writes checks the
lease's fencing token in its own transaction (`fence`).

Taking over starts from what is stored, never from this node's memory: the
book is rebuilt from the stored open incidents, outbox claims of the old
leader go back to pending (their keys make a retry the same request), the
dead-man's view comes from the stored heartbeats, and the engine resumes at
the stored cursor.

Heartbeats may arrive at any collector: on a shared store each node only
stores them, and the leader's rounds hand every heartbeat stored since its
last look to the book (`absorb_heartbeats`), so the dead-man and the
rebuilt truth do not depend on which collector an agent reached.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from agent.wire import Heartbeat

from .lease import RENEW_EVERY, Fenced, SoleLease

log = logging.getLogger("branchwatch.collector.lease")


class Leadership:
    """Ticks the lease off the event loop; `on_lead`/`on_follow` on a change."""

    def __init__(self, lease, store, on_lead: Callable[[], Awaitable[None]],
                 on_follow: Callable[[], Awaitable[None]] | None = None,
                 every: float = RENEW_EVERY):
        self.lease, self.store, self.every = lease, store, every
        self.on_lead, self.on_follow = on_lead, on_follow
        self.shared = not isinstance(lease, SoleLease)    # other collectors on the store
        self._was = False
        # Taken over: the book rebuilt from the store (on_lead sets it); until then
        # the engine waits even with the lease in hand. The sole collector is ready.
        self.ready = not self.shared
        self._task: asyncio.Task | None = None
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")
        self.changes = 0                                # times the role changed (tests)

    def leading(self) -> bool:
        """True while this node may run the engine: its lease is current and it has
        taken over (the book rebuilt from what is stored)."""
        return self.ready and self.lease.leading()

    def fence(self, conn) -> None:
        """Inside an engine write's transaction: Fenced unless the lease is ours."""
        self.lease.check(conn)

    def fenced(self, job: Callable) -> Callable:
        """`job`, run only after the fence passed, in the same transaction."""
        if not self.shared:
            return job

        def run(*args):
            with self.store.transaction() as conn:
                self.fence(conn)
                return job(*args)
        run.__name__ = getattr(job, "__name__", "job")
        return run

    def start(self) -> None:
        """Start ticking (the sole collector leads at once, without a task)."""
        self._task = asyncio.create_task(self._run(), name="lease")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                now = await loop.run_in_executor(self._thread, self.lease.tick)
            except Exception:            # a bug in a tick: never the end of the loop
                log.exception("lease tick failed")
                now = False
            now = now and self.lease.leading()
            if now != self._was:
                self._was = now
                self.changes += 1
                self.ready = False
                try:
                    if now:
                        await self.on_lead()
                    elif self.on_follow is not None:
                        await self.on_follow()
                except Fenced as e:      # lost again while taking over
                    log.warning("%s", e)
                    self._was = False
                except Exception:
                    log.exception("taking %s the engine failed", "over" if now else "leave of")
                    # Not taken over: the book is not rebuilt, so try again next tick
                    # (the engine's steps wait: `leading` alone does not let them run).
                    self._was = False
            await asyncio.sleep(self.every)

    async def stop(self) -> None:
        """Stop ticking and let the lease go (a standby takes over at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(self._thread, self.lease.close)
        self._thread.shutdown(wait=False)


def take_over(desk) -> None:
    """On the writer, when this node starts leading: the book, the dead-man's view and
    the outbox's claims from what is stored (the old leader's memory is gone)."""
    store = desk.store
    store.release_outbox()
    desk.lasts.clear()
    desk.heard_mark = 0.0
    desk.reload()
    desk.actions.waiting.update({k: len(store.outbox_waiting(k)) for k in desk.actions.waiting})
    absorb_heartbeats(desk)


def absorb_heartbeats(desk) -> int:
    """On the leader's writer: every heartbeat stored (by any collector) since the
    last look goes to the book; stale agent commands of those branches withdrawn."""
    from ..store import read_agents
    mark = desk.heard_mark
    newest, n, branches = mark, 0, set()
    with desk.store.transaction() as conn:       # only rows heard since: no full decode
        heard = read_agents(conn, mark or None)
    for a in heard:
        if a.heartbeat_at is None or a.interval is None or a.heartbeat_at.timestamp() <= mark:
            continue
        hb = Heartbeat(agent=a.agent, branch=a.branch, region=a.region,
                       sent_at=a.heartbeat_sent_at or a.heartbeat_at, interval=a.interval,
                       spool_depth=a.spool_depth or 0, checks=a.checks)
        at = a.heartbeat_at.timestamp()
        desk.heard(hb, at)
        newest, n = max(newest, at), n + 1
        branches.add(a.branch)
    for branch in branches:
        desk.commands_for(branch)        # withdraws what no longer waits
    desk.heard_mark = newest
    return n


def offered_commands(desk, branch: str, leading: bool):
    """The agent actions a heartbeat's answer carries: the leader's view (stale ones
    withdrawn); a standby offers what the outbox holds undone (the leader withdraws
    stale ones within a round; the agent answers a known id with its stored result)."""
    if leading:
        return desk.commands_for(branch)
    return desk.actions.for_agent(branch, lambda x: True)
