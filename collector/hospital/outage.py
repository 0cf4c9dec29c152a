"""Whole-network outage (網絡整體故障, domain.md §2.3; hospital §3): pure.

"信息科一旦確定": IT declares it, or it is observed when the configured core
(the HIS servers, the core switches) is down: at least `core.share` of its
members at once. One silent agent alone is never one: an agent that stopped
talking says nothing about the servers it probes.

Either way the outage is a fault of check OUTAGE_CHECK at the hospital's branch:
the collector's (agent OBSERVER) while the core is down, a person's (agent
PERSON) from IT's declaration until IT says it is over. The hospital table reads
that check as the observed kind `network_down_whole`, and its milestones and
re-entry deadlines run from it (collector/grading/deadlines.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agent.wire import Event, new_event_id

from ..incident_facts import stopping_spans
from ..incidents import Fault
from ..person_reports import PERSON
from .settings import Core

OUTAGE_CHECK = "network/whole"
OBSERVER = "collector"        # the agent of an observed outage (incidents.HOLDER)
DECLARER = PERSON             # the agent of a declared one: a person said so


@dataclass(frozen=True)
class CoreReading:
    """Which core members are down now, since when, and how many make an outage."""

    down: tuple[tuple[str, datetime], ...]   # (member label, down since), oldest first
    needed: int
    total: int

    @property
    def out(self) -> bool:
        """Whether the whole network is out."""
        return self.total > 0 and len(self.down) >= self.needed

    @property
    def since(self) -> datetime | None:
        """The moment the share was reached: when the needed-th member went down."""
        return self.down[self.needed - 1][1] if self.out else None

    def reason(self) -> str:
        """One line a person reads: how many of the core, which ones."""
        names = ", ".join(label for label, _ in self.down)
        return (f"{len(self.down)} of {self.total} core members down (an outage from "
                f"{self.needed}): {names or 'none'}")


def down_since(f: Fault, states: Iterable[str]) -> datetime | None:
    """When a member's current stretch in a down state began; None when it is up."""
    if not f.active:
        return None
    spans = stopping_spans(f, states)
    return spans[-1][0] if spans and spans[-1][1] is None else None


def read_core(core: Core, faults: Iterable[Fault]) -> CoreReading:
    """The core's state from the faults of its members (other faults are ignored)."""
    members = {(m.branch, m.check): m for m in core.members}
    down: dict[tuple[str, str], datetime] = {}
    for f in faults:
        key = (f.branch, f.check)
        if key in members and (since := down_since(f, core.states)) is not None:
            down[key] = min(since, down.get(key, since))
    ordered = sorted(down.items(), key=lambda kv: kv[1])
    return CoreReading(tuple((members[k].label(), t) for k, t in ordered), core.needed(),
                       len(core.members))


def back_at(core: Core, faults: Iterable[Fault], since: datetime) -> datetime | None:
    """The first moment after `since` at which fewer than the needed members were down
    (a member cleared, or left the down states), by the members' fault spans."""
    members = {(m.branch, m.check) for m in core.members}
    spans = [(s, e) for f in faults if (f.branch, f.check) in members
             for s, e in stopping_spans(f, core.states)]
    for t in sorted({e for _, e in spans if e is not None and e >= since}):
        if sum(1 for s, e in spans if s <= t and (e is None or t < e)) < core.needed():
            return t
    return None


def outage_event(agent: str, branch: str, on: bool, reason: str, at: datetime) -> Event:
    """The outage fault's start (on) or end, as the incident book applies it."""
    return Event(id=new_event_id(), kind="state", agent=agent, branch=branch,
                 check=OUTAGE_CHECK, old_state="ok" if on else "critical",
                 new_state="critical" if on else "ok", reason=reason, observed_at=at)
