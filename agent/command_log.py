"""The agent's durable record of the runbook commands it was handed.

Runbook commands are carried out exactly once: the collector offers a command on every heartbeat until the agent's `action`
result for it has been ingested, so the agent must recognise a command it
has already seen, across restarts. Before acting, `start` stores the
command id in the spool's database (same file, same fsync'd commits as the
events); when done, `finish` stores the result event with it. `lookup`
then tells the runner what to do with a command offered again: re-emit the
stored result (same event id: the collector dedupes it), or, for a command
started but never finished (the agent died mid-action), answer that it was
interrupted, without acting twice. Rows are pruned after a week.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import msgspec

from . import wire
from .spool import KEEP_SECONDS, Spool

_SCHEMA = """
CREATE TABLE IF NOT EXISTS commands (
    id         TEXT PRIMARY KEY,       -- the collector's command id
    check_id   TEXT NOT NULL,          -- action/runbook/INCIDENT/RUN/STEP
    started_at REAL NOT NULL,          -- epoch s, stored before acting
    result     BLOB                    -- the result wire.Event as JSON, once done
)
"""

_decode = msgspec.json.Decoder(wire.Event).decode


@dataclass(frozen=True)
class CommandRecord:
    """What the agent knows of one command it was handed."""

    id: str
    check: str
    started_at: float
    result: wire.Event | None     # None: started, never finished


class CommandLog:
    """Commands started and their results, in the spool's database."""

    def __init__(self, spool: Spool, clock: Callable[[], float] = time.time):
        self.spool, self.clock = spool, clock
        self._ready = False

    def _ensure(self) -> None:
        # Created at first use, not at start: a full disk at start must not
        # keep the agent from running (the runner then acts on nothing).
        if not self._ready:
            with self.spool.transaction() as db:
                db.execute(_SCHEMA)
            self._ready = True

    def lookup(self, command_id: str) -> CommandRecord | None:
        """The record of a command handed out before, or None if it is new."""
        self._ensure()
        rows = self.spool.query("SELECT id, check_id, started_at, result FROM commands "
                                "WHERE id = ?", (command_id,))
        if not rows:
            return None
        id_, check, started, result = rows[0]
        return CommandRecord(id_, check, started, _decode(result) if result else None)

    def start(self, command_id: str, check: str) -> None:
        """Store, durably, that this command is being carried out (before acting)."""
        self._ensure()
        with self.spool.transaction() as db:
            db.execute("INSERT INTO commands (id, check_id, started_at) VALUES (?, ?, ?)",
                       (command_id, check, self.clock()))

    def finish(self, command_id: str, result: wire.Event) -> None:
        """Store the command's result event with it."""
        self._ensure()
        with self.spool.transaction() as db:
            db.execute("INSERT INTO commands (id, check_id, started_at, result) "
                       "VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET result = excluded.result",
                       (command_id, result.check, self.clock(), wire.encode(result)))

    def prune(self, older_than: float = KEEP_SECONDS) -> int:
        """Forget commands started more than `older_than` seconds ago."""
        self._ensure()
        with self.spool.transaction() as db:
            return db.execute("DELETE FROM commands WHERE started_at < ?",
                              (self.clock() - older_than,)).rowcount
