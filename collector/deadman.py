"""Dead-man: which agents have gone silent, and what their UPS last said.

Pure: fed each agent's last heartbeat facts and a time, returns decisions.
No clock, no store; the collector's loop calls `silent_agents` with its
injected clock and hands each new `Silence` to the incident book
(`IncidentBook.apply_silence`), and each agent heard again to
`IncidentBook.clear_silence`.

issue 4: "an agent silent for longer than its expected interval plus grace
raises 'branch unreachable' (with the last known UPS state: on battery with
low runtime -> likely power exhausted)".
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from agent.wire import Heartbeat

# Grace when none is configured: twice the interval, never under a minute
# (a 5 s interval must not raise an alarm over one slow POST).
MIN_GRACE_S = 60.0
GRACE_INTERVALS = 2.0

FAULT_STATES = frozenset({"warning", "critical"})

# Power verdicts, worst first. Each is (name, reason shown to people).
EXHAUSTED = "exhausted"
ON_BATTERY = "on_battery"
NOT_ON_BATTERY = "mains"
REASONS = {
    EXHAUSTED: "likely power exhausted at the branch",
    ON_BATTERY: "on battery when last heard",
    NOT_ON_BATTERY: "line or agent down",
}

# Checks that say the battery is running out (warning or critical).
LOW_BATTERY_CHECKS = ("ups/*/battery_low", "ups/*/battery_runtime", "ups/*/battery_charge")


@dataclass(frozen=True)
class AgentLast:
    """What the collector last heard from one agent."""

    agent: str
    branch: str
    region: str
    last_heard: datetime          # corrected observation time of the last heartbeat
    interval: float               # heartbeat interval the agent announced (s)
    checks: Mapping[str, str] = field(default_factory=dict)   # check id -> state

    @classmethod
    def from_heartbeat(cls, hb: Heartbeat, heard_at: datetime | None = None) -> AgentLast:
        """Facts from a heartbeat; `heard_at` overrides its sent_at (clock correction)."""
        return cls(agent=hb.agent, branch=hb.branch, region=hb.region,
                   last_heard=heard_at or hb.sent_at, interval=hb.interval,
                   checks={c.check: c.state for c in hb.checks})


@dataclass(frozen=True)
class Silence:
    """One agent silent past its deadline, with what its UPS last said."""

    agent: str
    branch: str
    region: str
    last_heard: datetime
    deadline: datetime            # last_heard + interval + grace
    silent_for: float             # seconds since last_heard, at `now`
    power: str                    # EXHAUSTED | ON_BATTERY | NOT_ON_BATTERY
    reason: str                   # REASONS[power], with the UPS checks behind it


def grace_for(interval: float, grace: float | None = None) -> float:
    """The grace allowed past the interval: `grace` if set, else max(2×interval, 60 s)."""
    if grace is not None:
        return grace
    return max(GRACE_INTERVALS * interval, MIN_GRACE_S)


def power_verdict(checks: Mapping[str, str]) -> tuple[str, list[str]]:
    """From last check states: (EXHAUSTED | ON_BATTERY | NOT_ON_BATTERY, checks that decided it).

    Per UPS (an agent may watch several): on battery and any of battery_low,
    battery_runtime, battery_charge warning/critical -> exhausted. A runtime
    check that is critical alone on battery is covered by the same rule.
    The worst UPS wins.
    """
    worst, evidence = NOT_ON_BATTERY, []
    for check, state in sorted(checks.items()):
        if not fnmatch.fnmatchcase(check, "ups/*/on_battery") or state not in FAULT_STATES:
            continue
        ups = check.rsplit("/", 1)[0]
        low = [c for c, s in sorted(checks.items())
               if c.startswith(ups + "/") and s in FAULT_STATES
               and any(fnmatch.fnmatchcase(c, p) for p in LOW_BATTERY_CHECKS)]
        if low:
            return EXHAUSTED, [check, *low]
        worst, evidence = ON_BATTERY, [check]
    return worst, evidence


def silent_agents(agents: Iterable[AgentLast], now: datetime,
                  grace: float | None = None) -> list[Silence]:
    """The agents silent at `now`: now - last_heard > interval + grace (strictly)."""
    out = []
    for a in agents:
        allowed = a.interval + grace_for(a.interval, grace)
        silent_for = (now - a.last_heard).total_seconds()
        if silent_for <= allowed:
            continue
        power, evidence = power_verdict(a.checks)
        reason = REASONS[power] + (f" ({', '.join(evidence)})" if evidence else "")
        out.append(Silence(
            agent=a.agent, branch=a.branch, region=a.region, last_heard=a.last_heard,
            deadline=a.last_heard + timedelta(seconds=allowed), silent_for=silent_for,
            power=power, reason=reason))
    return sorted(out, key=lambda s: (s.branch, s.agent))


def silence_changes(previously_silent: Iterable[str], silences: Iterable[Silence]
                    ) -> tuple[list[Silence], list[str]]:
    """Compare with the last round: (newly silent, agents heard again), by agent id."""
    before = set(previously_silent)
    now_silent = {s.agent: s for s in silences}
    started = [s for a, s in sorted(now_silent.items()) if a not in before]
    ended = sorted(before - now_silent.keys())
    return started, ended

