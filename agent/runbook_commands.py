"""Runbook actions the collector hands to this agent (issue 6).

A runbook step that acts on branch equipment (a switch port, a UPS instant
command) and was confirmed by a person at the collector reaches the agent
in the answer to a heartbeat. The agent carries it out with the same code
as its own actions (agent/snmp/actions.py, agent/ups/instcmd.py), which
read the result back, and reports an `action` event with the check the
collector named: ok if done, critical otherwise. The event goes through the
spool like every other, so the result arrives even if the line drops now.

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
from .config import Config

log = logging.getLogger("branchwatch.agent")


class CommandRunner:
    """Carry out each command once, in a task of its own, and report it."""

    def __init__(self, config: Config, emit: Callable[[wire.Event], None],
                 clock: Callable[[], float] = time.time):
        self.config, self.emit, self.clock = config, emit, clock
        self.seen: set[str] = set()           # a command handed out twice runs once
        self.tasks: set[asyncio.Task] = set()

    def handle(self, commands: list[wire.Command]) -> None:
        """Start every new command (called from the sender, on the event loop)."""
        for c in commands:
            if c.id in self.seen:
                continue
            self.seen.add(c.id)
            task = asyncio.get_running_loop().create_task(self.run(c))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def run(self, c: wire.Command) -> wire.Event:
        """Carry out one command and emit its result."""
        try:
            ok, message = await self._carry_out(c.action)
        except Exception as e:           # never let one command take the agent down
            log.exception("runbook command %s failed", c.id)
            ok, message = False, f"failed: {type(e).__name__}: {e}"
        a = self.config.agent
        event = wire.Event(id=wire.new_event_id(), kind="action", agent=a.id, branch=a.branch,
                           check=c.check, old_state=None, new_state="ok" if ok else "critical",
                           reason=message, observed_at=wire.utc(self.clock()))
        self.emit(event)
        return event

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
