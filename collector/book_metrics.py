"""The incident book's numbers on /metrics, read without the writer.

design.md (prometheus/client_python): a collector is an object with
`collect()`, rendering a snapshot the engine already holds, so a scrape
never waits behind ingest. Incident counts are the book's own counters
(kept as incidents change status: reading one is a dictionary look-up);
the per-agent clock offsets are a snapshot the engine publishes once a
round, holding only agents heard lately: an agent gone quiet for good, or
taken out of the config, stops having a series instead of keeping its last
value for ever.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily

# An agent's offset series goes away once it has not been heard for this many
# of its heartbeat intervals (and at least STALE_MIN seconds).
STALE_INTERVALS = 10
STALE_MIN = 300.0
STATUSES = ("open", "resolved")


@dataclass(frozen=True)
class BookSnapshot:
    """What /metrics shows of the book, as of one moment."""

    incidents: Mapping[str, int] = field(default_factory=dict)        # real, by status
    drill_incidents: Mapping[str, int] = field(default_factory=dict)  # domain.md §5
    silent: int = 0
    offsets: Mapping[str, float] = field(default_factory=dict)        # agent -> seconds


def fresh_offsets(offsets: Mapping[str, float], lasts: Iterable, now: datetime) -> dict:
    """The offsets of agents heard within their staleness bound (deadman.AgentLast)."""
    recent = {a.agent for a in lasts
              if (now - a.last_heard).total_seconds()
              <= max(STALE_INTERVALS * a.interval, STALE_MIN)}
    return {agent: v for agent, v in offsets.items() if agent in recent}


class BookCollector:
    """prometheus-client collector over `snapshot()` (a BookSnapshot, or None before
    the engine published one)."""

    def __init__(self, snapshot: Callable[[], BookSnapshot | None]):
        self.snapshot = snapshot

    def describe(self):
        """The families this collector yields (without reading the book)."""
        return list(self._families(BookSnapshot()))

    def collect(self):
        """Gauges from the current snapshot."""
        return self._families(self.snapshot() or BookSnapshot())

    @staticmethod
    def _families(s: BookSnapshot):
        incidents = GaugeMetricFamily(
            "branchwatch_collector_incidents",
            "Incidents not yet closed, by status (open, resolved); drills never count here",
            labels=["status"])
        drills = GaugeMetricFamily(
            "branchwatch_collector_drill_incidents",
            "Drill incidents not yet closed, by status (domain.md §5)", labels=["status"])
        for status in STATUSES:
            incidents.add_metric([status], s.incidents.get(status, 0))
            drills.add_metric([status], s.drill_incidents.get(status, 0))
        yield incidents
        yield drills
        yield GaugeMetricFamily(
            "branchwatch_collector_agents_silent",
            "Agents silent past their heartbeat interval plus grace (the dead-man's "
            "'branch unreachable')", value=s.silent)
        offsets = GaugeMetricFamily(
            "branchwatch_collector_agent_clock_offset_seconds",
            "Estimated collector clock minus agent clock (min of recent heartbeat samples; "
            "includes network delay); agents heard lately only", labels=["agent"])
        for agent, value in sorted(s.offsets.items()):
            offsets.add_metric([agent], round(value, 3))
        yield offsets
