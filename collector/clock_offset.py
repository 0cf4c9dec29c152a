"""Each agent's clock offset, estimated from what it sends (design.md:
"branch clocks drift ... estimate each agent's clock offset from
heartbeats, and order and measure durations on corrected observation
time").

Every heartbeat (and every batch) carries the agent's clock at sending;
the collector notes its own clock on receipt. received - sent is the
offset plus the network delay, and the delay is never negative, so the
smallest recent sample is the best estimate (NTP's minimum filter). A
window of recent samples lets the estimate follow a clock that is stepped;
when the last STEP_SAMPLES samples all sit more than STEP_SECONDS above the
minimum, the offset itself has grown (a stepped clock, a drill moving the
collector's clock forward): the window restarts from them instead of
waiting for the old minimum to age out. (A smaller offset needs no rule:
the minimum takes it at once.)

Offsets within DEAD_BAND are taken as zero: that is network delay and
NTP-level agreement, and correcting by it would only add jitter.
"""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta

WINDOW = 8            # samples kept per agent (2 minutes at a 15 s heartbeat)
DEAD_BAND = 2.0       # seconds
STEP_SAMPLES, STEP_SECONDS = 3, 10.0   # no network delays 10 s longer three times running
MAX_OFFSET = 366 * 86400.0   # beyond a year a clock is broken: its samples are ignored


class ClockOffsets:
    """Per agent, the estimated (collector clock - agent clock) in seconds."""

    def __init__(self, window: int = WINDOW, dead_band: float = DEAD_BAND):
        self.window, self.dead_band = window, dead_band
        self._samples: dict[str, deque[float]] = {}

    def observe(self, agent: str, sent_at: datetime, received_at: float) -> float:
        """Add one sample (the agent's send time, our receive time); the new estimate.
        A clock more than MAX_OFFSET away is broken, not skewed: not a sample."""
        offset = received_at - sent_at.timestamp()
        if abs(offset) <= MAX_OFFSET:
            samples = self._samples.setdefault(agent, deque(maxlen=self.window))
            samples.append(offset)
            recent = list(samples)[-STEP_SAMPLES:]
            if len(samples) > STEP_SAMPLES and min(recent) - min(samples) > STEP_SECONDS:
                samples.clear()
                samples.extend(recent)
        return self.offset(agent)

    def estimate(self, agent: str) -> float | None:
        """The raw estimate (seconds), None before any sample."""
        samples = self._samples.get(agent)
        return min(samples) if samples else None

    def offset(self, agent: str) -> float:
        """The correction to apply: the estimate, or 0 inside the dead band or unknown."""
        est = self.estimate(agent)
        return 0.0 if est is None or abs(est) <= self.dead_band else est

    def correct(self, agent: str, t: datetime) -> datetime:
        """An agent's timestamp on the collector's clock."""
        off = self.offset(agent)
        try:
            return t + timedelta(seconds=off) if off else t
        except OverflowError:          # year 1 or 9999: leave it as the agent said
            return t

    def agents(self) -> dict[str, float]:
        """Every agent's raw estimate (for /metrics)."""
        return {a: min(s) for a, s in self._samples.items() if s}
