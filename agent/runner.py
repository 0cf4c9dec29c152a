"""Drives the probes on their intervals and turns readings into events.

Each probe runs in a worker thread on its own schedule, so one slow UPS
never delays another. `Agent.handle` is the only place where readings
become check states, metrics and events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sys
import time
import traceback
from typing import Callable

from . import wire
from .config import Config
from .events import EventSink, to_event
from .metrics import Snapshot
from .model import CheckResult, Reading, Sample, State
from .probes import Probe
from .loop_guard import LoopGuard
from .state import CheckTracker, Policy, Transition

log = logging.getLogger("branchwatch.agent")


class Agent:
    """Check state for one agent: readings in, events and metrics out."""

    def __init__(self, config: Config, sink: EventSink, snapshot: Snapshot | None = None,
                 clock: Callable[[], float] = time.time):
        self.config = config
        self.sink = sink
        self.snapshot = snapshot or Snapshot()
        self.clock = clock
        s = config.state
        self.policy = Policy(s.debounce, s.flap_window, s.flap_threshold)
        self.trackers: dict[str, CheckTracker] = {}
        self._checks_of: dict[str, set[str]] = {}  # probe -> checks it reported

    def handle(self, reading: Reading) -> list:
        """Apply one reading: update trackers and metrics, emit events."""
        now = reading.at or self.clock()
        results = list(reading.checks)
        # A check this probe reported before but not now has lost its data.
        previous = self._checks_of.get(reading.probe, set())
        present = {r.check for r in results}
        why = reading.error or "no longer reported by the probe"
        results += [CheckResult(c, State.UNKNOWN, why) for c in previous if c not in present]
        self._checks_of[reading.probe] = {r.check for r in results}

        events = self._observe(results, now)
        self.snapshot.put(reading.probe, reading.samples + self._probe_samples(reading, results))
        return events

    def handle_confirmed(self, results: list[CheckResult], at: float | None = None) -> list:
        """Apply verdicts the device itself announced (an SNMP trap): no debounce.

        The next poll of that device confirms or corrects them.
        """
        return self._observe(results, at or self.clock(), confirmed=True)

    def _observe(self, results: list[CheckResult], now: float, confirmed: bool = False) -> list:
        events = []
        for r in map(within_wire_bounds, results):
            tracker = self.trackers.get(r.check)
            if tracker is None:
                tracker = self.trackers[r.check] = CheckTracker(r.check, self.policy)
            for t in tracker.observe(r, now, confirmed=confirmed):
                event = to_event(t, self.config.agent.id, self.config.agent.branch)
                events.append(event)
                self.sink.emit(event)
        self.snapshot.count_events(len(events))
        return events

    def report(self, check: str, state: State, reason: str, *, again: bool = False) -> list:
        """The agent's verdict on itself (agent/spool, agent/delivery, agent/loops).

        No debounce: the agent knows. Nothing is said about a check that has
        never failed (no "ok" noise at every start). `again` emits an event even
        when the state stays (each dead letter is reported once).
        """
        tracker = self.trackers.get(check)
        if tracker is None and state == State.OK:
            return []
        events = self.handle_confirmed([CheckResult(check, state, reason)])
        if again and not events:
            now = self.clock()
            event = to_event(Transition("state", check, state, state, wire.cut(reason), now),
                             self.config.agent.id, self.config.agent.branch)
            self.sink.emit(event)
            self.snapshot.count_events(1)
            events = [event]
        return events

    def awaiting_confirmation(self, probe: str) -> bool:
        """True if a check of this probe saw a new state that debounce holds back."""
        return any(self.trackers[c].pending for c in self._checks_of.get(probe, ()))

    def _probe_samples(self, reading: Reading, results: list[CheckResult]) -> list[Sample]:
        out = [Sample.of("branchwatch_probe_success", 1 if reading.ok else 0, probe=reading.probe),
               Sample.of("branchwatch_probe_duration_seconds", reading.duration, probe=reading.probe),
               Sample.of("branchwatch_probe_last_run_timestamp_seconds", reading.at,
                         probe=reading.probe)]
        for r in results:
            tracker = self.trackers[r.check]
            out.append(Sample.of("branchwatch_check_state", int(tracker.state), check=r.check))
            out.append(Sample.of("branchwatch_check_flapping", int(tracker.flapping), check=r.check))
        return out


def within_wire_bounds(r: CheckResult) -> CheckResult:
    """The verdict with its reason and check id cut to the wire's bounds.

    Readings enter here from every probe; a probe that quotes a device (upsd's
    reply, an SNMP string) cuts at its own edge first, this catches the rest,
    so no event is ever refused by the collector for its size.
    """
    if len(r.reason) <= wire.REASON_MAX and len(r.check) <= wire.CHECK_MAX:
        return r
    return CheckResult(wire.cut(r.check, wire.CHECK_MAX), r.state, wire.cut(r.reason),
                       r.diagnosis)


def run_probe_once(probe: Probe, clock: Callable[[], float] = time.time) -> Reading:
    """Run one probe's read, turning a bug in it into a failed reading."""
    started, t0 = clock(), time.perf_counter()
    try:
        reading = probe.read()
    except Exception as e:  # noqa: BLE001 - a probe bug must not stop the agent
        reading = _probe_bug(probe, e)
    reading.at = started
    reading.duration = time.perf_counter() - t0
    return reading


async def run_async_probe_once(probe, clock: Callable[[], float] = time.time) -> Reading:
    """`run_probe_once` for probes that read on the event loop (SNMP, ping)."""
    started, t0 = clock(), time.perf_counter()
    try:
        reading = await probe.aread()
    except asyncio.CancelledError:
        raise
    except Exception as e:  # noqa: BLE001 - a probe bug must not stop the agent
        reading = _probe_bug(probe, e)
    reading.at = started
    reading.duration = time.perf_counter() - t0
    return reading


def _probe_bug(probe, e: Exception) -> Reading:
    log.error("probe %s failed:\n%s", probe.name, traceback.format_exc())
    return Reading(probe.name, False, error=f"probe error: {type(e).__name__}: {e}")


def is_async(probe) -> bool:
    """True for probes that read on the event loop instead of a worker thread."""
    return hasattr(probe, "aread")


class Scheduler:
    """Runs every probe on its interval in a thread pool until stopped."""

    def __init__(self, agent: Agent, probes: list[Probe], guard: LoopGuard | None = None):
        self.agent = agent
        self.probes = probes
        self.guard = guard or LoopGuard()
        self.last_turn: dict[str, float] = {}    # probe -> loop time of its last turn
        threaded = [p for p in probes if not is_async(p)]
        self.pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=max(1, min(32, len(threaded))), thread_name_prefix="probe")
        self._wake: dict[str, asyncio.Event] = {}

    def poll_now(self, probe_name: str) -> None:
        """Run that probe's next read at once (a trap said something changed)."""
        if (wake := self._wake.get(probe_name)) is not None:
            wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set, then close every probe."""
        self._wake = {p.name: asyncio.Event() for p in self.probes}
        tasks = [asyncio.create_task(self._loop(p, stop), name=p.name) for p in self.probes]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.pool.shutdown(wait=False, cancel_futures=True)
            for p in self.probes:
                try:
                    p.close()
                except Exception:  # noqa: BLE001
                    log.warning("closing %s failed", p.name, exc_info=True)

    async def _loop(self, probe: Probe, stop: asyncio.Event) -> None:
        """Run one probe on its schedule; an exception costs a turn, never the loop."""
        loop = asyncio.get_running_loop()
        state = _LoopState(next_at=loop.time())
        name = f"probe {probe.name}"
        while not stop.is_set():
            self.last_turn[probe.name] = loop.time()
            try:
                await self._turn(probe, stop, state)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - logged once, counted, retried
                delay = max(self.guard.failed(name, e), min(probe.interval, 1.0))
                await _first_of(stop, self._wake[probe.name], delay)
                state.next_at = loop.time()
            else:
                self.guard.worked(name)

    async def _turn(self, probe: Probe, stop: asyncio.Event, st: "_LoopState") -> None:
        """One read of `probe`, handled, then the wait until its next read."""
        loop = asyncio.get_running_loop()
        wake = self._wake[probe.name]
        wake.clear()
        pending, next_at, poked = st.pending, st.next_at, st.poked
        if is_async(probe):
            try:
                reading = await asyncio.wait_for(
                    run_async_probe_once(probe, self.agent.clock), probe.timeout)
            except asyncio.TimeoutError:
                reading = Reading(probe.name, False, at=self.agent.clock(),
                                  duration=probe.timeout,
                                  error=f"no answer within {probe.timeout:g} s")
        elif pending is not None and not pending.done():
            reading = Reading(probe.name, False, at=self.agent.clock(),
                              error=f"previous read still running after {probe.timeout:g} s")
        else:
            pending = st.pending = loop.run_in_executor(self.pool, run_probe_once, probe,
                                                        self.agent.clock)
            try:
                reading = await asyncio.wait_for(asyncio.shield(pending), probe.timeout)
            except asyncio.TimeoutError:
                reading = Reading(probe.name, False, at=self.agent.clock(),
                                  duration=probe.timeout,
                                  error=f"no answer within {probe.timeout:g} s")
        self.agent.handle(reading)
        now = loop.time()
        recheck = self.agent.config.state.recheck_interval
        if self.agent.awaiting_confirmation(probe.name) and recheck < probe.interval:
            # Confirm a suspected change soon rather than a whole interval
            # later (Nagios' retry interval): debounce then costs little delay.
            next_at = now + recheck
        elif not poked or next_at <= now:
            # Fixed rate; a read that overran skips the ticks it missed.
            # An extra read asked for by a trap leaves the schedule alone.
            next_at += probe.interval
            if next_at < now:
                next_at = now + probe.interval - ((now - next_at) % probe.interval)
        st.next_at = next_at
        await _first_of(stop, wake, next_at - now)
        st.poked = wake.is_set()


class _LoopState:
    """What one probe's loop carries from turn to turn."""

    def __init__(self, next_at: float):
        self.next_at = next_at
        self.pending: asyncio.Future | None = None   # a threaded read still running
        self.poked = False


async def _first_of(a: asyncio.Event, b: asyncio.Event, timeout: float) -> None:
    """Wait until either event is set or the timeout passes."""
    waits = [asyncio.ensure_future(a.wait()), asyncio.ensure_future(b.wait())]
    try:
        await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()


async def read_all(probes: list[Probe]) -> list[Reading]:
    """Read every probe once, concurrently (threads for blocking ones), each
    within its own timeout, so one dead device cannot hold up the rest."""
    loop = asyncio.get_running_loop()
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(32, len(probes))))

    async def one(p) -> Reading:
        job = run_async_probe_once(p) if is_async(p) else \
            loop.run_in_executor(pool, run_probe_once, p)
        try:
            return await asyncio.wait_for(job, p.timeout)
        except asyncio.TimeoutError:
            return Reading(p.name, False, at=time.time(), duration=p.timeout,
                           error=f"no answer within {p.timeout:g} s")
    try:
        return list(await asyncio.gather(*(one(p) for p in probes)))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def once(config: Config, probes: list[Probe], out=sys.stdout) -> int:
    """Run every probe once, print each reading as a JSON line; 1 if any failed."""
    import msgspec

    from .events import ListSink
    agent = Agent(config, ListSink())

    async def read_and_close():
        try:
            return await read_all(probes)
        finally:
            for p in probes:
                p.close()
    readings = asyncio.run(read_and_close())
    failed = 0
    for p, r in zip(probes, readings):
        agent.handle(r)
        failed += not r.ok
        out.write(msgspec.json.encode({
            "probe": r.probe, "ok": r.ok, "error": r.error,
            "at": r.at, "duration_seconds": round(r.duration, 6),
            "checks": [{"check": c.check, "state": c.state.label, "reason": c.reason,
                        **({"diagnosis": c.diagnosis} if c.diagnosis else {})}
                       for c in r.checks],
            "metrics": [{"name": s.name, "labels": dict(s.labels), "value": s.value}
                        for s in r.samples],
            "detail": r.detail,
        }).decode() + "\n")
    out.flush()
    return 1 if failed else 0
