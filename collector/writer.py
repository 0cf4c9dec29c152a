"""The collector's one writer: a thread that owns the store, with group commit.

Requests queue jobs (a function and its arguments) from the event loop.
The thread takes every job waiting, runs them inside ONE transaction, each
in a savepoint of its own, and commits once: one fsync answers all of them
(design.md "what makes durable ingest fast": group commit doubles
throughput). A job's result is handed back only after the commit, so an
acknowledgement always means "on disk".

A job that raises is rolled back alone (its savepoint) and its caller gets
the exception; the others still commit. If the commit itself fails, every
job in the group gets the error. Either way `on_failure` runs, so state
kept in memory beside the store (the incident book) can be rebuilt from
what is really stored.

`run_alone` queues a job that gets a transaction of its own (the engine's
step): the acknowledgements queued before it are committed and answered
first, never held back by the engine's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("branchwatch.collector")

MAX_GROUP = 512      # jobs per commit; bounds how long one group holds the lock


class GroupStore(Protocol):
    """What the writer needs of a store: a group transaction and savepoints."""

    def group(self, durable: bool = True) -> contextlib.AbstractContextManager: ...

    def savepoint(self) -> contextlib.AbstractContextManager: ...


class _Stop:
    pass


NOT_DURABLE = "not durable"      # a job alone whose commit needs no fsync of its own


class Writer:
    """Run store jobs on one thread, committing everything waiting at once."""

    def __init__(self, store: GroupStore, on_failure: Callable[[], None] | None = None,
                 max_group: int = MAX_GROUP):
        self.store, self.on_failure, self.max_group = store, on_failure, max_group
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._held = None        # a job alone, met while gathering a group: next
        self.groups = 0          # commits done (for the benchmark and tests)
        self.jobs_done = 0
        self._thread = threading.Thread(target=self._loop, name="store-writer", daemon=True)
        self._thread.start()

    async def run(self, fn: Callable[..., Any], *args) -> Any:
        """Queue fn(*args); its result once the group it ran in is committed."""
        return await self._queue(fn, args, False)

    async def run_alone(self, fn: Callable[..., Any], *args, durable: bool = True) -> Any:
        """Like run, but fn gets a commit of its own, after the jobs queued before it;
        durable=False: a commit without its own fsync (see SqliteStore.group)."""
        return await self._queue(fn, args, True if durable else NOT_DURABLE)

    async def _queue(self, fn, args, alone: bool) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._jobs.put((fn, args, fut, loop, alone))
        return await fut

    def waiting(self) -> int:
        """Jobs queued and not yet taken (tests wait on it instead of sleeping)."""
        return self._jobs.qsize() + (self._held is not None)

    def stop(self) -> None:
        """Finish every queued job, then end the thread."""
        self._jobs.put(_Stop)
        self._thread.join()

    def _take(self) -> tuple[list, bool]:
        first, self._held = self._held or self._jobs.get(), None
        if first is _Stop:
            return [], True
        group, stop = [first], False
        while len(group) < self.max_group and not first[4]:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is _Stop:
                stop = True
                break
            if job[4]:                 # alone: after this group is committed
                self._held = job
                break
            group.append(job)
        return group, stop

    def _loop(self) -> None:
        stop = False
        while not stop or self._held is not None:
            group, stopping = self._take()
            stop = stop or stopping
            if group:
                self._run_group(group)

    def _run_group(self, group: list) -> None:
        outcomes: list[tuple[bool, Any]] = []
        failed = False
        try:
            with self.store.group(durable=group[0][4] != NOT_DURABLE):
                for fn, args, _fut, _loop, _alone in group:
                    try:
                        with self.store.savepoint():
                            outcomes.append((True, fn(*args)))
                    except Exception as e:          # this job only; the group goes on
                        outcomes.append((False, e))
                        failed = True
        except Exception as e:                      # the commit failed: nothing is stored
            log.error("store commit failed for %d requests: %s", len(group), e)
            outcomes = [(False, e)] * len(group)
            failed = True
        if failed and self.on_failure is not None:
            try:
                self.on_failure()
            except Exception:
                log.exception("rebuilding state after a failed store job")
        self.groups += 1
        self.jobs_done += len(group)
        for (ok, value), (_fn, _args, fut, loop, _alone) in zip(outcomes, group):
            loop.call_soon_threadsafe(_settle, fut, ok, value)


def _settle(fut: asyncio.Future, ok: bool, value: Any) -> None:
    if fut.cancelled():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)
