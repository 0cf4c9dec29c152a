"""Turning transitions into wire events, and where events go.

Events go to stdout as JSON lines (the journal picks them up under systemd;
`--events text` prints them for people) and, with a `collector:` section,
through the spool to the collector.
"""

from __future__ import annotations

import sys
from typing import Protocol, TextIO

from . import wire
from .state import Transition


def to_event(t: Transition, agent: str, branch: str) -> wire.Event:
    """A transition as the wire event the collector will receive."""
    return wire.Event(
        id=wire.new_event_id(), kind=t.kind, agent=agent, branch=branch, check=t.check,
        old_state=t.old.label if t.old is not None else None, new_state=t.new.label,
        reason=t.reason, observed_at=wire.utc(t.at), diagnosis=t.diagnosis)


class EventSink(Protocol):
    def emit(self, event: wire.Event) -> None: ...


class JsonLinesSink:
    """One JSON object per line."""

    def __init__(self, out: TextIO = sys.stdout):
        self.out = out

    def emit(self, event: wire.Event) -> None:
        self.out.write(wire.encode(event).decode() + "\n")
        self.out.flush()


class TextSink:
    """One readable line per event, for people watching a terminal."""

    ARROW = {"state": "→", "flapping": "⇄ flapping,", "flapping_end": "→ steady",
             "action": "⚙ did"}

    def __init__(self, out: TextIO = sys.stdout):
        self.out = out

    def emit(self, event: wire.Event) -> None:
        at = event.observed_at.astimezone().strftime("%H:%M:%S")
        old = event.old_state or "new"
        why = f" [{event.diagnosis} fault]" if event.diagnosis else ""
        self.out.write(f"{at}  {event.check:<32} {old:>8} {self.ARROW[event.kind]} "
                       f"{event.new_state:<8}  {event.reason}{why}\n")
        self.out.flush()


class ListSink:
    """Keeps events in memory (tests, --once)."""

    def __init__(self):
        self.events: list[wire.Event] = []

    def emit(self, event: wire.Event) -> None:
        self.events.append(event)

