"""The event log's methods of SqliteStore (a mixin: it uses the store's connection,
`_transaction` and `_tail`): ingest appends, the engine reads from its cursor."""

from __future__ import annotations

from datetime import datetime

from agent.wire import Event

from . import event_log
from .event_log import LoggedEvent


class LogRows:
    """Append to the event log, read it after a cursor, keep the cursor."""

    def add_events(self, agent: str, branch: str, events: list[Event], received_at: float,
                   sent_at: datetime | None = None) -> tuple[list[str], list[str]]:
        """Append the events not seen before (by id alone) to the log; nothing else:
        the engine audits and applies them from its cursor."""
        with self._transaction() as c:
            accepted, duplicates, logged = event_log.append(c, events, received_at, sent_at)
            self._tail.stage(logged)
        return accepted, duplicates

    def log_after(self, cursor: int, limit: int) -> list[LoggedEvent]:
        """Log entries after seq `cursor`, oldest first (from memory when the newest
        appended are what is asked for)."""
        found = self._tail.after(cursor, limit)
        return event_log.after(self._conn, cursor, limit) if found is None else found

    def log_head(self) -> int:
        """The newest seq in the event log."""
        return event_log.head(self._conn)

    def cursor(self, name: str) -> int:
        """A log consumer's stored cursor."""
        return event_log.cursor(self._conn, name)

    def set_cursor(self, name: str, seq: int) -> None:
        """Move a log consumer's cursor (inside the transaction that applied it)."""
        with self._transaction() as c:
            event_log.set_cursor(c, name, seq)

    def events_seen(self, agent: str, branch: str, at: float) -> None:
        """Note when an agent's events were last applied (agents.last_event_at)."""
        rx = event_log.us(at)
        with self._transaction() as c:
            c.execute("INSERT INTO agents (agent, branch, first_seen_at, last_event_at) "
                      "VALUES (?, ?, ?, ?) ON CONFLICT(agent) DO UPDATE SET "
                      "last_event_at = excluded.last_event_at", (agent, branch, rx, rx))
