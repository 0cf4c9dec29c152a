"""Runbook commands are carried out exactly once, across restarts: the command
log lives in the spool's SQLite file (real, on disk); a command offered
again is answered with the stored result, one started but never finished is
answered "interrupted" and never carried out again."""

from __future__ import annotations

import asyncio

from agent import wire
from agent.command_log import CommandLog
from agent.config import from_dict
from agent.events import ListSink
from agent.runbook_commands import INTERRUPTED, CommandRunner
from agent.spool import Spool

CONFIG = from_dict({"agent": {"id": "a1", "branch": "B1"}})


def command(n: int = 1) -> wire.Command:
    # An action this agent carries out no kind of: a quick, honest "not_allowed".
    return wire.Command(id=f"INC-1/R1/step{n}", check=f"action/runbook/INC-1/R1/step{n}",
                        action={"type": "teleport"})


class CountingRunner(CommandRunner):
    """The real runner; counts how often it acts on a device."""

    acted = 0

    async def _carry_out(self, action):
        type(self).acted += 1
        return await super()._carry_out(action)


def offer(runner: CommandRunner, *commands: wire.Command) -> None:
    async def main():
        runner.handle(list(commands))
        await asyncio.gather(*runner.tasks)
    asyncio.run(main())


def test_a_command_offered_again_is_answered_with_the_stored_result(tmp_path):
    CountingRunner.acted = 0
    spool = Spool(tmp_path / "spool.db")
    sink = ListSink()
    runner = CountingRunner(CONFIG, sink.emit, commands=CommandLog(spool))
    offer(runner, command())
    [first] = sink.events
    assert first.new_state == "critical" and first.reason.startswith("not_allowed:")
    offer(runner, command())                 # the next heartbeat offers it again
    spool.close()

    # The agent restarts; the collector still offers the command.
    spool = Spool(tmp_path / "spool.db")
    again = CountingRunner(CONFIG, sink.emit, commands=CommandLog(spool))
    offer(again, command())
    assert CountingRunner.acted == 1
    assert [e.id for e in sink.events] == [first.id] * 3     # the same event: deduped
    assert sink.events[2] == first


def test_a_command_interrupted_by_a_restart_is_not_carried_out_again(tmp_path):
    CountingRunner.acted = 0
    spool = Spool(tmp_path / "spool.db")
    CommandLog(spool).start(command().id, command().check)   # received; then the agent died
    spool.close()

    spool = Spool(tmp_path / "spool.db")
    sink = ListSink()
    runner = CountingRunner(CONFIG, sink.emit, commands=CommandLog(spool))
    offer(runner, command(), command(2))
    offer(runner, command())
    assert CountingRunner.acted == 1                      # only the new command
    interrupted = [e for e in sink.events if e.check == command().check]
    assert [e.reason for e in interrupted] == [INTERRUPTED, INTERRUPTED]
    assert interrupted[0].new_state == "critical" and interrupted[0].kind == "action"
    assert interrupted[0].id == interrupted[1].id         # stored, answered the same way


def test_old_commands_are_pruned_after_a_week(tmp_path):
    now = [1_800_000_000.0]
    spool = Spool(tmp_path / "spool.db")
    log = CommandLog(spool, clock=lambda: now[0])
    log.start("old", "action/runbook/x/R1/s")
    now[0] += 7 * 86_400 + 1
    log.start("new", "action/runbook/y/R1/s")
    assert log.prune() == 1
    assert log.lookup("old") is None and log.lookup("new") is not None
