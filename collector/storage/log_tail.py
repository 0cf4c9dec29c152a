"""The newest log entries, kept in memory for the engine: it applies what ingest
just appended without reading it back from the database.

Entries join the tail when the transaction that appended them commits (a
rolled-back append never shows); the engine takes them only as a run of
consecutive seqs starting right after its cursor, and reads the store
whenever that is not what the tail holds (after a start, or when the tail
overflowed because the engine fell behind): the tail is a shortcut, never
the source of truth.
"""

from __future__ import annotations

import collections
import itertools

from .event_log import LoggedEvent

MOST = 20_000        # entries kept; past it the engine reads the store until it catches up


class LogTail:
    """Committed log entries not yet applied, newest last."""

    def __init__(self, most: int = MOST, shared: bool = False):
        self.most = most
        # shared: other collectors append to the same log (PostgreSQL), so what this
        # process committed last is not the log's head; only runs of consecutive
        # seqs right after the cursor are taken from here, the rest is read.
        self.shared = shared
        self.entries: collections.deque[LoggedEvent] = collections.deque()
        self.staged: list[LoggedEvent] = []
        # The newest seq committed, once this process has appended (seqs are taken
        # under the write lock, so the last one committed is the log's head).
        self.head: int | None = None

    def stage(self, logged: list[LoggedEvent]) -> None:
        """Entries appended in the running transaction."""
        self.staged.extend(logged)

    def mark(self) -> int:
        """Where a savepoint starts."""
        return len(self.staged)

    def back_to(self, mark: int) -> None:
        """A savepoint rolled back: forget what it staged."""
        del self.staged[mark:]

    def committed(self) -> None:
        """The transaction committed: what it staged is in the log."""
        if len(self.entries) + len(self.staged) > self.most:
            self.entries.clear()           # the engine reads the store until it catches up
        self.entries.extend(self.staged)
        if self.staged:
            self.head = self.staged[-1].seq
        self.staged = []

    def rolled_back(self) -> None:
        """The transaction rolled back: nothing it staged is in the log."""
        self.staged = []

    def after(self, cursor: int, limit: int) -> list[LoggedEvent] | None:
        """Up to `limit` entries right after `cursor`, or None if the tail does not
        start there (read the store)."""
        while self.entries and self.entries[0].seq <= cursor:
            self.entries.popleft()
        if self.staged:
            return None                    # appended in this transaction: the store has it
        if not self.shared and self.head is not None and cursor >= self.head:
            return []                      # applied to the head: nothing to read
        if not self.entries or self.entries[0].seq != cursor + 1:
            return None
        out = []
        for expected, e in enumerate(itertools.islice(self.entries, limit), cursor + 1):
            if e.seq != expected:
                break
            out.append(e)
        return out
