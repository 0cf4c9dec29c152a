"""The engine's loop over the event log: read from the stored cursor, apply, move it.

One step reads up to `chunk` entries after the cursor, audits each batch
("events.received", every event in the chain), hands it to `apply` (the
incident book, its runbooks, grades and notifications) and stores the new
cursor, all in ONE transaction: a crash anywhere in a step leaves the
cursor where it was and the step is replayed whole, never half (the
incident changes, audit records and outbox entries it wrote are rolled
back with it).

A batch whose application raises is rolled back alone (a savepoint),
recorded as "events.not_applied" with the error, and the book is rebuilt
from the store (`on_failure`): one bad event must not stop every later one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from agent.wire import Event

from ..storage.event_log import LoggedEvent

log = logging.getLogger("branchwatch.collector.engine")

CURSOR = "engine"
CHUNK = 500     # entries per step: bounds how long an acknowledgement can wait behind one

Apply = Callable[[str, str, list[Event], float, "datetime | None"], None]


class LogStore(Protocol):
    """What the engine needs of the store."""

    def transaction(self): ...

    def savepoint(self): ...

    def log_after(self, cursor: int, limit: int) -> list[LoggedEvent]: ...

    def log_head(self) -> int: ...

    def cursor(self, name: str) -> int: ...

    def set_cursor(self, name: str, seq: int) -> None: ...

    def record(self, at: float, kind: str, actor: str, data: dict) -> int: ...

    def events_seen(self, agent: str, branch: str, at: float) -> None: ...


def batches(entries: list[LoggedEvent]):
    """Consecutive entries of one request (same agent, receive and send time)."""
    run: list[LoggedEvent] = []
    for e in entries:
        if run and (e.event.agent, e.received_at, e.sent_at) != (
                run[0].event.agent, run[0].received_at, run[0].sent_at):
            yield run
            run = []
        run.append(e)
    if run:
        yield run


class LogEngine:
    """Applies the event log in seq order from a cursor kept in the store."""

    def __init__(self, store: LogStore, apply: Apply,
                 on_failure: Callable[[], None] | None = None, chunk: int = CHUNK,
                 fence: Callable[[object], None] = lambda conn: None):
        self.store, self.apply, self.on_failure, self.chunk = store, apply, on_failure, chunk
        # Raises (engine/lease.py Fenced) unless this node's lease epoch is current:
        # checked first inside every step's transaction, on its connection.
        self.fence = fence
        self.applied = 0          # entries applied since start (benchmark, /metrics)
        self.oldest: float | None = None   # the last step's earliest receive time

    def step(self) -> int:
        """Apply the next chunk of the log in one transaction; entries applied."""
        with self.store.transaction() as conn:
            self.fence(conn)
            entries = self.store.log_after(self.store.cursor(CURSOR), self.chunk)
            self.oldest = min((e.received_at for e in entries), default=None)
            for run in batches(entries):
                self._apply(run)
            if entries:
                self.store.set_cursor(CURSOR, entries[-1].seq)
        self.applied += len(entries)
        return len(entries)

    def catch_up(self) -> int:
        """Steps until the log is applied to its head; entries applied."""
        total = 0
        while n := self.step():
            total += n
            if n < self.chunk:
                break
        return total

    def lag(self) -> int:
        """Entries in the log not yet applied."""
        return self.store.log_head() - self.store.cursor(CURSOR)

    def _apply(self, run: list[LoggedEvent]) -> None:
        first = run[0]
        agent, branch = first.event.agent, first.event.branch
        events = [e.event for e in run]
        # One record per batch, not per event: every event is in the chain all
        # the same, at a hundredth of the hashing.
        self.store.record(first.received_at, "events.received", agent,
                          {"branch": branch, "events": events})
        self.store.events_seen(agent, branch, first.received_at)
        try:
            with self.store.savepoint():
                self.apply(agent, branch, events, first.received_at, first.sent_at)
        except Exception as e:
            log.exception("applying %d events from %s failed", len(events), agent)
            self.store.record(first.received_at, "events.not_applied", "collector", {
                "agent": agent, "ids": [x.id for x in events],
                "error": f"{type(e).__name__}: {e}"})
            if self.on_failure is not None:
                self.on_failure()
