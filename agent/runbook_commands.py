"""Runbook actions the collector hands to this agent (issue 6).

A runbook step that acts on branch equipment (a switch port, a UPS instant
command) and was confirmed by a person at the collector reaches the agent
in the answer to a heartbeat. The agent carries it out with the same code
as its own actions (agent/snmp/actions.py, agent/ups/instcmd.py), which
read the result back, and reports an `action` event with the check the
collector named: ok if done, critical otherwise. The event goes through the
spool like every other, so the result arrives even if the line drops now.

Exactly once: the collector offers a command on every
heartbeat until its result event is ingested. With a `CommandLog` (the
spool's database) the command id is stored before acting and the result
with it; a command offered again is answered with the stored result (the
same event, which the collector dedupes), and one started but never
finished (the agent died mid-action) is answered "interrupted" and never
carried out again. A command whose start cannot be stored (a full disk) is
not carried out now: the collector offers it again.

Pre-authorisation still holds here: a port must be listed in its switch's
`actions.ports`, a UPS command in `ups[].nut.actions.commands`; anything
else is refused ("not_allowed") without touching the device.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from . import wire
from .command_log import CommandLog
from .config import Config
from .spool import SpoolError

log = logging.getLogger("branchwatch.agent")

INTERRUPTED = "interrupted: the agent restarted while carrying this out; check the device"
PRUNE_EVERY = 86_400.0   # seconds between prunes of the command log


class CommandRunner:
    """Carry out each command once, in a task of its own, and report it."""

    def __init__(self, config: Config, emit: Callable[[wire.Event], None],
                 clock: Callable[[], float] = time.time, commands: CommandLog | None = None):
        self.config, self.emit, self.clock = config, emit, clock
        self.log = commands                   # None: remembered in memory only (tests)
        self.running: set[str] = set()        # carried out now, in this process
        self.unstored: dict[str, wire.Event] = {}   # results the log could not take yet
        self.tasks: set[asyncio.Task] = set()
        self._pruned_at: float | None = None

    def handle(self, commands: list[wire.Command]) -> None:
        """Start every new command, answer every known one (called from the sender,
        on the event loop, with each heartbeat's answer)."""
        self._prune()
        for c in commands:
            if c.id in self.running:
                continue
            if (event := self.unstored.get(c.id)) is not None:
                self._store(c.id, event)
                self.emit(event)
                continue
            try:
                known = self.log.lookup(c.id) if self.log is not None else None
                if known is None and self.log is not None:
                    self.log.start(c.id, c.check)       # durable before acting
            except SpoolError as e:
                log.error("runbook command %s not carried out now (%s); the collector "
                          "offers it again", c.id, e)
                continue
            if known is not None:
                event = known.result or self._interrupted(c)
                self.emit(event)                        # the same event: deduped
                continue
            self.running.add(c.id)
            task = asyncio.get_running_loop().create_task(self.run(c))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def run(self, c: wire.Command) -> wire.Event:
        """Carry out one command, store its result and emit it."""
        try:
            ok, message = await self._carry_out(c.action)
        except Exception as e:           # never let one command take the agent down
            log.exception("runbook command %s failed", c.id)
            ok, message = False, f"failed: {type(e).__name__}: {e}"
        event = self._result(c, "ok" if ok else "critical", message)
        self.running.discard(c.id)
        self._store(c.id, event)
        self.emit(event)
        return event

    def _interrupted(self, c: wire.Command) -> wire.Event:
        """The answer to a command started before a restart and never finished:
        critical, stored, so it is answered the same way next time."""
        log.error("runbook command %s was interrupted by a restart; not carrying it out "
                  "again", c.id)
        event = self._result(c, "critical", INTERRUPTED)
        self._store(c.id, event)
        return event

    def _result(self, c: wire.Command, state: str, message: str) -> wire.Event:
        a = self.config.agent
        return wire.Event(id=wire.new_event_id(), kind="action", agent=a.id, branch=a.branch,
                          check=c.check, old_state=None, new_state=state,
                          reason=wire.cut(message), observed_at=wire.utc(self.clock()))

    def _store(self, command_id: str, event: wire.Event) -> None:
        """Keep the result with its command; in memory until the log takes it."""
        if self.log is None:
            self.unstored[command_id] = event
            return
        try:
            self.log.finish(command_id, event)
        except SpoolError as e:
            log.error("result of runbook command %s kept in memory for now: %s", command_id, e)
            self.unstored[command_id] = event
        else:
            self.unstored.pop(command_id, None)

    def _prune(self) -> None:
        now = self.clock()
        if self.log is None or (self._pruned_at is not None
                                and now - self._pruned_at < PRUNE_EVERY):
            return
        self._pruned_at = now
        try:
            self.log.prune()
        except SpoolError as e:
            log.warning("cannot prune the command log now: %s", e)

    async def _carry_out(self, action: dict) -> tuple[bool, str]:
        kind = action.get("type")
        if kind == "snmp_port":
            from .snmp.actions import set_port_admin
            switch, port = self.port_of(action)
            r = await set_port_admin(self.config, switch, port, action.get("state") == "up")
            return r.ok, f"{r.outcome}: switch {switch} port {port} {r.wanted}: {r.message}"
        if kind == "nut_command":
            from .ups.instcmd import ups_command
            ups = self.ups_of(action)
            r = await ups_command(self.config, ups, str(action.get("command")))
            return r.ok, f"{r.outcome}: {r.message}"
        return False, f"not_allowed: this agent carries out no {kind!r} actions"

    def port_of(self, action: dict) -> tuple[str, str]:
        """The switch and port an action names; `{uplink}` with `backup`/`primary`
        means the failover's lines' uplink ports."""
        switch, port = str(action.get("switch")), str(action.get("port"))
        f = self.config.failover
        if switch == "{uplink}" and f is not None and port in ("backup", "primary"):
            name = f.backup if port == "backup" else f.primary
            line = next(ln for ln in self.config.lines if ln.name == name)
            return line.uplink.switch, line.uplink.interface
        return switch, port

    def ups_of(self, action: dict) -> str:
        """The UPS an action names; `{ups}` means the first UPS read through NUT."""
        ups = str(action.get("ups"))
        if ups == "{ups}":
            return next((u.name for u in self.config.ups if u.nut is not None), ups)
        return ups
