"""Carries out the uplink failover: watches the primary line, swaps, verifies, reports.

The policy (agent/failover.py) decides; this task is its thin I/O shell.
It reads the primary line's state from the agent's own debounced check
states (`line/<primary>/<target>`, kept by `Agent` from the line probes'
readings), so no device is polled twice; it sends only what a swap needs:
the SNMP SET of the backup uplink port (agent.snmp.actions.set_port_admin,
which reads the port back) and, after it, probes of the new line's targets
from that line's source address to verify it carries traffic.

Every step becomes an `action` event (check `action/failover/<step>`) through
the agent's normal event path: journal and spool, so a step taken while the
line to the collector is cut (the usual cause) is delivered once it is back.
A failed step raises `action/failover/plan_failed` at once (第三十條: report
at once) naming the manual fallback to take (domain.md §4.1).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Mapping

from . import wire
from .failover import (BLOCKED, CRITICAL, FAIL_OVER, OK, SWAP_BACK, Decision, FailoverPolicy,
                       Limits, line_state)
from .host.human import ms
from .lines.ping import PingResult, probe_target
from .model import Sample
from .schema_network import Line, LineTarget
from .snmp.actions import ActionResult, set_port_admin

log = logging.getLogger("branchwatch.failover")

_ROUND_PAUSE = 0.25   # s between verification rounds while targets do not answer yet


def failover_samples(active: bool, swaps: Mapping[str, int], blocked: int) -> list[Sample]:
    """The failover's metrics (agent/metrics.py CATALOGUE)."""
    return [Sample.of("branchwatch_failover_active", 1 if active else 0),
            *(Sample.of("branchwatch_failover_swaps", n, direction=d) for d, n in swaps.items()),
            Sample.of("branchwatch_failover_blocked", blocked)]


class FailoverRunner:
    """Watches the primary line and swaps uplinks as the policy decides."""

    def __init__(self, config, checks: Callable[[], Mapping], emit: Callable[[wire.Event], None],
                 publish: Callable[[list[Sample]], None] = lambda samples: None, *,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time,
                 set_port=set_port_admin, probe=probe_target):
        f = config.failover
        lines = {line.name: line for line in config.lines}
        self.config, self.settings = config, f
        self.primary: Line = lines[f.primary]
        self.backup: Line = lines[f.backup]
        self.switch, self.port = self.backup.uplink.switch, self.backup.uplink.interface
        self.policy = FailoverPolicy(Limits.from_config(f))
        self.checks, self.emit, self.publish = checks, emit, publish
        self.clock, self.wall = clock, wall     # monotonic for the policy, wall for events
        self.set_port, self.probe = set_port, probe
        self.swaps = {FAIL_OVER: 0, SWAP_BACK: 0}
        self.blocked = 0
        # Fine enough that the hold-down is kept to a quarter of itself, at most 1 s.
        self.tick = max(0.1, min(1.0, f.hold / 4, f.return_after / 4))
        self._stop = asyncio.Event()

    @classmethod
    def for_agent(cls, config, agent, **kw) -> "FailoverRunner":
        """A runner on an `agent.runner.Agent`: its check states, event sink and snapshot."""
        def emit(event: wire.Event) -> None:
            agent.sink.emit(event)
            agent.snapshot.count_events(1)
        return cls(config, lambda: agent.trackers, emit,
                   lambda samples: agent.snapshot.put("failover", samples), **kw)

    def samples(self) -> list[Sample]:
        """Current metrics: on the backup or not, swaps by direction, swaps held back."""
        return failover_samples(self.policy.on_backup, self.swaps, self.blocked)

    async def run(self, stop: asyncio.Event) -> None:
        """Watch and act until `stop` is set; a step under way is finished first."""
        self._stop = stop
        self.publish(self.samples())
        while not stop.is_set():
            try:
                await self.step()
            except Exception:  # noqa: BLE001 - a bug here must not stop the agent
                log.exception("failover step failed")
            try:
                await asyncio.wait_for(stop.wait(), self.tick)
            except TimeoutError:
                pass

    async def step(self) -> Decision:
        """Look at the primary line once and carry out what the policy decides."""
        state, why = self.primary_state()
        decision = self.policy.observe(state, self.clock())
        if decision.action == FAIL_OVER:
            await self._fail_over(f"{decision.reason}: {why}")
        elif decision.action == SWAP_BACK:
            await self._swap_back(decision.reason)
        elif decision.action == BLOCKED:
            self.blocked += 1
            self.publish(self.samples())
            fallback = (self._bring_up_by_hand() if decision.wanted == FAIL_OVER
                        else self._take_down_by_hand())
            self._event("blocked", "warning", f"{decision.reason}; if that cannot wait, {fallback}")
        return decision

    def primary_state(self) -> tuple[str, str]:
        """The primary line's state from its targets' checks, and their reasons."""
        trackers = self.checks()
        states, reasons = [], []
        for t in self.primary.targets:
            check = f"line/{self.primary.name}/{t.name}"
            tracker = trackers.get(check)
            state = tracker.state.label if tracker is not None and tracker.state is not None \
                else "unknown"
            states.append(state)
            reasons.append(f"{check} {state}" + (f": {tracker.reason}" if tracker is not None
                                                 and tracker.reason else ""))
        return line_state(states), "; ".join(reasons)

    async def _fail_over(self, why: str) -> None:
        """Bring the backup uplink port up, then verify the backup line (domain.md §4.1)."""
        self.swaps[FAIL_OVER] += 1
        result = await self._set(up=True)
        self.policy.settle(result.ok)
        self.publish(self.samples())
        self._event("fail_over", OK if result.ok else CRITICAL,
                    f"fail over to line {self.backup.name}: {self._said(result)}; because {why}")
        if not result.ok:
            self._plan_failed("fail_over", f"the backup uplink did not come up "
                              f"({result.outcome}: {result.message})", self._bring_up_by_hand())
            return
        ok, text = await self._verify(self.backup)
        self._event("verify_backup", OK if ok else CRITICAL,
                    f"line {self.backup.name} over switch {self.switch} port {self.port}: {text}")
        if not ok:
            self._plan_failed("verify_backup", f"line {self.backup.name} does not answer: {text}",
                              f"check the backup line by hand (switch {self.switch} port "
                              f"{self.port} is up) and call the IT department")

    async def _swap_back(self, why: str) -> None:
        """The primary is healthy again: take the backup uplink down, verify the primary."""
        self.swaps[SWAP_BACK] += 1
        result = await self._set(up=False)
        self.policy.settle(result.ok)
        self.publish(self.samples())
        self._event("swap_back", OK if result.ok else CRITICAL,
                    f"swap back to line {self.primary.name}: {self._said(result)}; because {why}")
        if not result.ok:
            self._plan_failed("swap_back", f"the backup uplink did not go down "
                              f"({result.outcome}: {result.message})", self._take_down_by_hand())
            return
        ok, text = await self._verify(self.primary)
        self._event("verify_primary", OK if ok else CRITICAL, f"line {self.primary.name}: {text}")
        if not ok:
            # The primary line will read critical again and, after `hold`, the
            # policy fails over once more if the hourly limit allows it.
            self._plan_failed("verify_primary", f"line {self.primary.name} does not answer after "
                              f"the swap back: {text}", self._bring_up_by_hand())

    async def _set(self, up: bool) -> ActionResult:
        """SET the backup uplink port's ifAdminStatus and read it back; never raises."""
        wanted = "up" if up else "down"
        log.info("failover: switch %s port %s admin %s", self.switch, self.port, wanted)
        try:
            return await self.set_port(self.config, self.switch, self.port, up)
        except Exception as e:  # noqa: BLE001 - a bug in the action is a failed step
            log.exception("set_port_admin failed")
            return ActionResult(False, "failed", self.switch, self.port, wanted,
                                f"{type(e).__name__}: {e}", at=self.wall())

    async def _verify(self, line: Line) -> tuple[bool, str]:
        """Probe every target of `line` from its source until each has answered once,
        within verify_timeout; (all answered, what was seen)."""
        deadline = self.clock() + self.settings.verify_timeout
        answered: dict[str, str] = {}
        lost: dict[str, str] = {}
        while True:
            pending = [t for t in line.targets if t.name not in answered]
            left = max(0.05, deadline - self.clock())
            results = await asyncio.gather(*(self._probe(line, t, min(line.timeout, left))
                                             for t in pending))
            for t, r in zip(pending, results):
                if r.received:
                    answered[t.name] = f"{t.name} answered ({ms(r.avg_rtt)}, {r.method})"
                    lost.pop(t.name, None)
                else:
                    lost[t.name] = f"{t.name} did not answer ({r.lost_reason or r.error})"
            if not lost:
                return True, "every target answered: " + ", ".join(answered.values())
            waited = self.settings.verify_timeout - (deadline - self.clock())
            if self.clock() + _ROUND_PAUSE >= deadline or self._stop.is_set():
                seen = "; ".join([*lost.values(), *answered.values()])
                return False, f"after {waited:.1f} s (verify_timeout " \
                              f"{self.settings.verify_timeout:g} s): {seen}"
            try:
                await asyncio.wait_for(self._stop.wait(), _ROUND_PAUSE)
            except TimeoutError:
                pass

    async def _probe(self, line: Line, target: LineTarget, timeout: float) -> PingResult:
        try:
            return await self.probe(target.host, count=1, timeout=timeout, method=line.method,
                                    port=target.port, source=line.source)
        except OSError as e:   # out of sockets and the like: not answered this round
            return PingResult(line.method, sent=1, error=f"cannot open a socket: {e}")

    def _plan_failed(self, step: str, what: str, fallback: str) -> None:
        """第三十條: report at once, with the manual step to take instead."""
        self._event("plan_failed", CRITICAL,
                    f"uplink failover plan failed at {step}: {what}; {fallback}")

    def _bring_up_by_hand(self) -> str:
        return f"bring up the backup uplink by hand: switch {self.switch} port {self.port}"

    def _take_down_by_hand(self) -> str:
        return (f"swap back by hand: take the backup uplink down on switch {self.switch} "
                f"port {self.port}")

    def _said(self, r: ActionResult) -> str:
        return (f"switch {r.switch} port {r.port} admin {r.wanted}: {r.outcome}: {r.message}")

    def _event(self, step: str, state: str, reason: str) -> None:
        """One `action` event through the agent's event path (journal and spool)."""
        level = logging.INFO if state == OK else logging.ERROR
        log.log(level, "failover %s %s: %s", step, state, reason)
        event = wire.Event(
            id=wire.new_event_id(), kind="action", agent=self.config.agent.id,
            branch=self.config.agent.branch, check=f"action/failover/{step}", old_state=None,
            new_state=state, reason=reason, observed_at=wire.utc(self.wall()))
        try:
            self.emit(event)
        except Exception:  # noqa: BLE001 - a sink's fault must not stop the plan half-way
            log.exception("could not emit the failover event %s", event.check)
