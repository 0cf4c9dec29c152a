"""When a scope unit cannot do business (pure): from each branch's
business-stopping spans to the unit outages classify() reads.

domain.md §2.1 ("How branchwatch reads the table"):
- the unit is the regulation's province; a deployment is ONE unit unless its
  branches are mapped to provinces (an agent's `region`);
- a unit "cannot do business normally" while a business-stopping fault holds
  at no fewer than its share of enrolled branches (default half, rounded up)
  or at a key site carrying the whole unit (data centre, core system probe);
- business hours are a calendar per channel (counter, ATM, e-banking): a
  unit is out in business hours while an open channel of it is out. Each
  channel is judged on the branches that have it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import MappingProxyType

from .calendar import Calendar
from .facts import Outage

# Open ends are swept as "never": a moment no outage can reach.
_NEVER = datetime.max.replace(tzinfo=timezone.utc)

StopSpan = tuple[datetime, "datetime | None", str]   # (start, end or None = still out, cause)


def _frozen(d: Mapping | None) -> Mapping:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class UnitScope:
    """Which unit each branch is in, the share and key sites, and the channels."""

    units: Mapping[str, str] = field(default_factory=dict)     # enrolled branch -> unit
    default_unit: str = ""                 # the unit of a branch not mapped ("" = the deployment)
    share: float = 0.5                     # of the unit's enrolled branches, rounded up
    shares: Mapping[str, float] = field(default_factory=dict)  # unit -> its own share
    key_sites: frozenset[str] = frozenset()                    # branches carrying their unit
    channels: Mapping[str, Calendar] = field(default_factory=dict)   # name -> business hours
    default_channels: tuple[str, ...] = ()                     # a branch's channels unless listed
    branch_channels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("units", "shares", "channels", "branch_channels"):
            object.__setattr__(self, name, _frozen(getattr(self, name)))
        # Graded every second for every changing incident: who is in which unit
        # and channel is worked out once.
        members: dict[tuple[str, str], set[str]] = {}
        for b in self.units:
            if b not in self.key_sites:
                for c in self.channels_of(b):
                    members.setdefault((self.unit_of(b), c), set()).add(b)
        object.__setattr__(self, "_members", {k: frozenset(v) for k, v in members.items()})

    def unit_of(self, branch: str) -> str:
        """The branch's unit (the deployment's one unit unless it is mapped)."""
        return self.units.get(branch) or self.default_unit

    def channels_of(self, branch: str) -> tuple[str, ...]:
        """The channels a branch has; ("",) = the one calendar classify is given."""
        if not self.channels:
            return ("",)
        return self.branch_channels.get(branch) or self.default_channels or tuple(self.channels)

    def need(self, unit: str, branches: int) -> int:
        """How many branches out put the unit out: its share, rounded up, at least one."""
        share = self.shares.get(unit, self.share)
        return max(1, math.ceil(share * branches - 1e-9))

    def members(self, unit: str, channel: str) -> frozenset[str]:
        """The enrolled branches of a unit having this channel (key sites count apart)."""
        return self._members.get((unit, channel), frozenset())


def unit_outages(stopped: Mapping[str, list[StopSpan]], scope: UnitScope) -> tuple[Outage, ...]:
    """Unit outages, one per unit, channel and stretch, from each branch's
    business-stopping spans (branch -> [(start, end | None, cause)])."""
    out: list[Outage] = []
    units = sorted({scope.unit_of(b) for b in stopped})
    for unit in units:
        here = {b: spans for b, spans in stopped.items() if scope.unit_of(b) == unit and spans}
        for site in sorted(b for b in here if b in scope.key_sites):
            for channel in _unit_channels(scope, unit):
                for s, e, cause in here[site]:
                    out.append(Outage(unit, s, e, f"key site {site}: {cause}",
                                      scope.channels.get(channel), channel, (0, 0), site))
        for channel in _unit_channels(scope, unit):
            members = scope.members(unit, channel) | {
                b for b in here if b not in scope.key_sites and channel in scope.channels_of(b)}
            need = scope.need(unit, len(members))
            spans = {b: here[b] for b in members if b in here}
            for s, e, worst, causes in _share_spans(spans, need):
                out.append(Outage(unit, s, None if e == _NEVER else e, causes,
                                  scope.channels.get(channel), channel, (worst, len(members))))
    return tuple(out)


def _unit_channels(scope: UnitScope, unit: str) -> tuple[str, ...]:
    """Every channel any branch of the unit has."""
    if not scope.channels:
        return ("",)
    found = {c for u, c in scope._members if u == unit}
    return tuple(sorted(found or set(scope.default_channels or scope.channels)))


def _share_spans(spans: Mapping[str, list[StopSpan]], need: int):
    """Stretches during which at least `need` branches were stopped at once:
    (start, end or _NEVER, most branches out at once, causes)."""
    events = []
    for branch, items in spans.items():
        for s, e, cause in _joined(items):
            events.append((s, 1, branch, cause))
            events.append((e, -1, branch, cause))
    events.sort(key=lambda ev: (ev[0], ev[1]))          # ends first: [s, e) spans
    count, opened, worst, causes = 0, None, 0, {}
    for t, delta, branch, cause in events:
        count += delta
        if delta > 0:
            causes.setdefault(f"branch {branch}: {cause}", None)
        if opened is None and count >= need:
            opened, worst = t, count
        elif opened is not None:
            worst = max(worst, count)
            if count < need:
                if opened < t:
                    yield opened, t, worst, "; ".join(causes)
                opened, causes = None, {}
    if opened is not None:
        yield opened, _NEVER, worst, "; ".join(causes)


def _joined(items: list[StopSpan]) -> list[tuple[datetime, datetime, str]]:
    """One branch's spans, overlapping ones joined (open ends as _NEVER)."""
    out: list[list] = []
    for s, e, c in sorted(((s, e or _NEVER, c) for s, e, c in items), key=lambda x: x[0]):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
            if c and c not in out[-1][2].split("; "):
                out[-1][2] = f"{out[-1][2]}; {c}" if out[-1][2] else c
        else:
            out.append([s, e, c])
    return [(s, e, c) for s, e, c in out]
