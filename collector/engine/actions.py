"""Runbook actions through the stored outbox (collector/storage/outbox.py).

The engine decides an action (a runbook step to carry out) in its
transaction and puts it in the outbox under a key fixed by its kind and
step; who carries it out depends on the kind:
- `agent`: the branch's agent, offered on every heartbeat until its result
  event is applied (the command id is the key after the colon, the same
  after a restart); withdrawn once its step no longer waits;
- `execute`: the collector (a webhook or an allowed command), claimed and
  marked done with its result;
- `rehearsal`: a drill's action, answered by the drill desk and never
  carried out (domain.md §5: a drill touches no switch or UPS).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from ..incident_runbooks import AGENT_ACTIONS, Execute

AGENT, EXECUTE, REHEARSAL = "agent", "execute", "rehearsal"
_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Execute)


def command_id(x: Execute) -> str:
    """The id an agent receives for a runbook action (the same after a restart)."""
    return f"{x.incident}/{x.run}/{x.step}"


def outbox_key(kind: str, x: Execute) -> str:
    """An action's idempotency key: its kind and runbook step, fixed when decided."""
    return f"{kind}:{command_id(x)}"


class ActionOutbox:
    """Runbook actions in and out of the store's outbox, for one incident desk."""

    def __init__(self, store, clock: Callable[[], float], is_drill: Callable[[str], bool]):
        self.store, self.clock, self.is_drill = store, clock, is_drill
        # Entries not done, by kind: tells the event loop whether to look (a hint).
        self.waiting = {k: len(store.outbox_waiting(k)) for k in (EXECUTE, REHEARSAL)}

    def kind_of(self, x: Execute) -> str:
        """Who carries the action out."""
        if self.is_drill(x.incident):
            return REHEARSAL
        return AGENT if x.action.type in AGENT_ACTIONS else EXECUTE

    def hand_out(self, executes: list[Execute]) -> None:
        """Into the outbox, in the caller's transaction (a key put before stays as is)."""
        ts = self.clock()
        for x in executes:
            kind = self.kind_of(x)
            if self.store.put_outbox(outbox_key(kind, x), kind, x.branch,
                                     _encoder.encode(x).decode(), ts) and kind in self.waiting:
                self.waiting[kind] += 1

    def for_agent(self, branch: str, still_waits: Callable[[Execute], bool]) -> list[Execute]:
        """The branch agent's unanswered actions; one whose step no longer waits is
        withdrawn (done), never offered: an agent must not act on a stale step."""
        out = []
        for entry in self.store.outbox_waiting(AGENT, branch):
            x = _decoder.decode(entry.body)
            if still_waits(x):
                out.append(x)
            else:
                self.store.outbox_done(entry.key, self.clock(),
                                       "withdrawn: the step no longer waits for the agent")
        return out

    def claim(self, kind: str, limit: int = 100) -> list[Execute]:
        """Claim actions of a kind (EXECUTE, REHEARSAL) to carry out now."""
        found = self.store.claim_outbox(kind, self.clock(), limit)
        self.waiting[kind] = len(self.store.outbox_waiting(kind)) - len(found)
        return [_decoder.decode(e.body) for e in found]

    def done(self, x: Execute, result: str) -> None:
        """An action carried out (or rehearsed): its entry done with the result."""
        self.store.outbox_done(outbox_key(self.kind_of(x), x), self.clock(), result)

    def answered(self, agent_command_id: str, result: str) -> None:
        """The agent's result event for a command: no longer offered."""
        self.store.outbox_done(f"{AGENT}:{agent_command_id}", self.clock(), result)
