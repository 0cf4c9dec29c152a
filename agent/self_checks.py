"""The agent's checks on itself: agent/spool, agent/delivery, agent/loops.

They are ordinary checks (in `Agent.trackers`), so the heartbeat carries
them to the collector even while the spool cannot be written, /metrics
shows them, and their changes are events like any other. Each is first
reported when something goes wrong: an agent that never had a problem says
nothing about them.
"""

from __future__ import annotations

from .loop_guard import LoopGuard
from .model import State
from .runner import Agent
from .spool import DeadLetter, Spool

SPOOL, DELIVERY, LOOPS = "agent/spool", "agent/delivery", "agent/loops"


def watch_spool(agent: Agent, spool: Spool) -> None:
    """agent/spool critical with the cause while the spool cannot be written
    ("cannot write the spool: No space left on device"), ok once it writes."""
    def health(error: str | None) -> None:
        if error is not None:
            agent.report(SPOOL, State.CRITICAL, error)
        else:
            agent.report(SPOOL, State.OK, "the spool writes again")
    spool.on_health = health


def watch_dead_letters(agent: Agent, spool: Spool) -> None:
    """agent/delivery warning, one event per event the collector refused."""
    def set_aside(letter: DeadLetter) -> None:
        if letter.check == DELIVERY:   # a report about a report: the log has it
            return
        agent.report(DELIVERY, State.WARNING,
                     f"{spool.dead_letter_count()} event(s) set aside, refused for good "
                     f"(see `branchwatch spool dead-letters`); latest: {letter.check}: "
                     f"{letter.refusal}", again=True)
    spool.on_set_aside = set_aside


def watch_loops(agent: Agent, guard: LoopGuard) -> None:
    """agent/loops critical while any loop meets exceptions, naming them."""
    def changed(loop: str, why: str | None) -> None:
        if guard.failing:
            agent.report(LOOPS, State.CRITICAL, "; ".join(
                f"{name} loop failing, retried with backoff: {cause}"
                for name, cause in sorted(guard.failing.items())))
        else:
            agent.report(LOOPS, State.OK, "every loop works again")
    guard.on_change = changed
