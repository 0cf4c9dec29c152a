"""One line (primary or backup uplink): is the gateway and the core system
reachable over it, and if not, is it the device or the line?

branch plan §5.1 (domain.md §4.1): a network fault is first decided as a
device fault (bring up the backup device) or a line fault (switch to the
backup line). The uplink port's state, which the switch probes keep in
the shared `LinkView`, decides it.
"""

from __future__ import annotations

import asyncio

from ..host.human import ms, pct, pct_limit
from ..links import DEVICE, LINE, LOCAL, LinkView, diagnose_unreachable
from ..model import CheckResult, Reading, Sample, State
from ..schema_network import Line, LineTarget
from .ping import PingResult, probe_target

# Spare time for the event loop on top of the echoes themselves.
_SLACK = 2.0

FAULT_WORDS = {DEVICE: "device fault", LINE: "line fault", LOCAL: "local fault", None: "cause not known"}


def grade(result: PingResult, spec: Line) -> tuple[State, str]:
    """The state of one target and the reason a person reads, before diagnosis."""
    summary = f"{result.received}/{result.sent} answered"
    if result.avg_rtt is not None:
        summary += f", avg {ms(result.avg_rtt)}"
    summary += f" ({result.method})"
    loss = result.loss_ratio
    why = f": {result.lost_reason}" if result.lost_reason else ""
    # A limit of 0 means "any loss": no loss never crosses it.
    if loss > 0 and loss >= spec.loss_critical:
        return State.CRITICAL, f"down: {summary}{why}"
    if loss > 0 and loss >= spec.loss_warning:
        return State.WARNING, (f"degraded: {summary}, {pct(loss)} lost "
                               f"(warning at {pct_limit(spec.loss_warning)}){why}")
    avg = result.avg_rtt
    if avg is not None and avg > spec.latency_warning:
        return State.WARNING, f"degraded: {summary} (warning above {ms(spec.latency_warning)})"
    return State.OK, f"reachable, {summary}"


class LineProbe:
    """Every target of one line, probed concurrently on the event loop."""

    def __init__(self, spec: Line, links: LinkView):
        self.spec = spec
        self.links = links
        self.name = f"line/{spec.name}"
        self.interval = spec.interval
        # Targets run concurrently; each resolves its name (bounded by
        # `timeout`) then sends `count` echoes of up to `timeout` each.
        self.timeout = spec.timeout * (spec.count + 1) + _SLACK

    async def aread(self) -> Reading:
        """Probe all targets at once; an unreachable target is a finding, not a failed read."""
        s = self.spec
        results = await asyncio.gather(*(self._probe(t) for t in s.targets))
        samples, checks, detail = [], [], {}
        diagnosis: tuple[str | None, str] | None = None   # one per line, if needed
        for target, r in zip(s.targets, results):
            check = f"{self.name}/{target.name}"
            state, reason = grade(r, s)
            fault = None
            if state is not State.OK and s.uplink is not None:
                if diagnosis is None:
                    diagnosis = self.diagnose()
                fault, text = diagnosis
                reason += f"; {FAULT_WORDS[fault]}: {text}"
            checks.append(CheckResult(check, state, reason, fault))
            labels = {"line": s.name, "target": target.name}
            if r.avg_rtt is not None:
                samples.append(Sample.of("branchwatch_probe_rtt_seconds", r.avg_rtt, **labels))
            samples.append(Sample.of("branchwatch_probe_loss_ratio", r.loss_ratio, **labels))
            detail[target.name] = {
                "host": target.host, "address": r.address, "method": r.method,
                **({"port": target.port} if r.method == "tcp" else {}),
                "sent": r.sent, "received": r.received,
                "rtts": [round(x, 6) for x in r.rtts], "error": r.error,
                "lost_reason": r.lost_reason}
        return Reading(self.name, True, samples, checks, {"targets": detail})

    async def _probe(self, target: LineTarget) -> PingResult:
        s = self.spec
        try:
            return await probe_target(target.host, count=s.count, timeout=s.timeout,
                                      method=s.method, port=target.port, source=s.source)
        except OSError as e:   # out of sockets and the like: this target unmeasured
            method = "tcp" if s.method == "tcp" else "icmp"
            why = f"cannot open a socket: {e.strerror or e}"
            return PingResult(method, sent=s.count, error=why, lost_reason=why)

    def diagnose(self) -> tuple[str | None, str]:
        """Device, line or local fault, from the uplink port as the switch probe saw it."""
        u = self.spec.uplink
        return diagnose_unreachable(self.links.port(u.switch, u.interface),
                                    self.links.answering(u.switch),
                                    self.links.local_link_up(u.switch))

    def close(self) -> None:
        """Nothing to release: each read opens and closes its own sockets."""
