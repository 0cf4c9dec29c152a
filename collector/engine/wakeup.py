"""Run the engine's steps on the writer thread whenever the log grows.

Ingest wakes it after every append it acknowledged, so an event reaches the
incident book one step after its acknowledgement (no polling interval in
between); each step is a transaction of its own (`Writer.run_alone`), so
acknowledgements never wait for more than the step already running. A step's
commit is not fsync'd by itself: the log it replays from is, and the next
acknowledgement's fsync carries the step with it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

log = logging.getLogger("branchwatch.collector.engine")

RETRY_AFTER = 1.0      # seconds before trying again after a step failed (the store)


class EngineWakeup:
    """An asyncio task that catches the engine up each time `wake` is called."""

    def __init__(self, writer, step: Callable[[], int], chunk: int,
                 after: Callable[[], None] = lambda: None,
                 applied: Callable[[int], None] = lambda n: None,
                 retry_after: float = RETRY_AFTER):
        self.writer, self.step, self.chunk, self.after = writer, step, chunk, after
        self.on_applied, self.retry_after = applied, retry_after
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.idle = asyncio.Event()         # set whenever the log is applied to its head
        self.applied = 0                    # entries applied and committed since start

    def start(self) -> None:
        """Start the task, caught up once at once (what a crash left unapplied)."""
        self._task = asyncio.create_task(self._run(), name="engine")
        self.wake()

    def wake(self) -> None:
        """The log grew: apply it."""
        self.idle.clear()
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                while True:
                    n = await self.writer.run_alone(self.step, durable=False)
                    self.applied += n
                    if n:
                        self.on_applied(n)
                    self.after()
                    if n < self.chunk:
                        break
            except Exception:
                # The store failed (disk full, locked): the cursor did not move,
                # so nothing is lost; try again shortly.
                log.exception("engine step failed; retrying in %.0f s", self.retry_after)
                await asyncio.sleep(self.retry_after)
                self._wake.set()
                continue
            if not self._wake.is_set():
                self.idle.set()

    async def caught_up(self, timeout: float = 1.0) -> bool:
        """Wait (at most `timeout`) until the log is applied to its head: a read
        then sees every event acknowledged before it. False if it timed out."""
        if self.idle.is_set() or self._task is None:
            return True
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        """Cancel the task (the log keeps what it did not apply)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
