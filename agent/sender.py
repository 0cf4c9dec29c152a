"""Delivery from the spool to the collector: batches, acks, backoff, heartbeats.

`SpoolSink` is the agent's EventSink: it puts each event in the spool
(durable before it returns) and wakes the `Sender`. The sender POSTs the
oldest events in batches and deletes only the ids the collector
acknowledged (accepted or duplicate), so a lost answer means a resend the
collector recognises by event id. Failures back off exponentially with
full jitter; a 4xx refusal keeps the events, is logged loudly and backs
off long. Heartbeats carry every check's current state (issue 4).
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections.abc import Mapping
from typing import Awaitable, Callable, Iterable

import aiohttp
import msgspec

from . import wire
from .model import Sample
from .spool import Spool

log = logging.getLogger("branchwatch.sender")

RETRYABLE_4XX = (408, 429)   # the collector asks us to come back, not a refusal


class SpoolSink:
    """EventSink that spools each event durably, then wakes the sender."""

    def __init__(self, spool: Spool, wake: Callable[[], None] = lambda: None):
        self.spool = spool
        self.wake = wake

    def emit(self, event: wire.Event) -> None:
        self.spool.put(event)
        self.wake()


class Tee:
    """EventSink that hands each event to several sinks (spool and journal)."""

    def __init__(self, *sinks):
        self.sinks = sinks

    def emit(self, event: wire.Event) -> None:
        for sink in self.sinks:
            sink.emit(event)


def check_statuses(trackers) -> list[wire.CheckStatus]:
    """The current debounced state of every check that has one (for heartbeats)."""
    if isinstance(trackers, Mapping):
        trackers = trackers.values()
    out = []
    for t in trackers:
        if t.state is None:
            continue
        since = getattr(t, "since", None)   # epoch seconds, if the tracker keeps it
        out.append(wire.CheckStatus(check=t.check, state=t.state.label, reason=t.reason,
                                    since=wire.utc(since) if since is not None else None,
                                    diagnosis=t.diagnosis))
    return sorted(out, key=lambda c: c.check)


def backoff(failures: int, rand: Callable[[], float], base: float = 1.0, cap: float = 60.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**(failures-1))] (AWS architecture blog)."""
    return rand() * min(cap, base * 2 ** min(failures - 1, 32))


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Verify the collector against `ca_file` (None: the system's trust store)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


DEFAULT_HEARTBEAT_INTERVAL = 30.0   # seconds; the same default as collector.heartbeat_interval


class Sender:
    """Sends the spool's events and periodic heartbeats until cancelled or stopped."""

    def __init__(self, spool: Spool, *, url: str, token: str, agent: str, branch: str,
                 region: str = "", checks: Callable[[], Iterable] = lambda: (),
                 batch_size: int = 100, heartbeat_interval: float | None = 30.0,
                 timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                 base_delay: float = 1.0, max_delay: float = 60.0, refused_delay: float = 300.0,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable] = asyncio.sleep,
                 publish: Callable[[list[Sample]], None] | None = None,
                 on_commands: Callable[[list[wire.Command]], None] | None = None):
        self.spool = spool
        self.url = url.rstrip("/")
        self.agent, self.branch, self.region = agent, branch, region
        self.checks = checks
        self.batch_size = batch_size
        self.heartbeat_interval = heartbeat_interval   # None: no heartbeats (tests)
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.ssl = ssl_context
        self.base_delay, self.max_delay, self.refused_delay = base_delay, max_delay, refused_delay
        self.clock, self.rand, self.sleep = clock, rand, sleep
        self.publish = publish
        self.on_commands = on_commands       # runbook actions a heartbeat answer brings
        self.about: wire.AgentAbout | None = None   # version, config hash, /metrics (agent/about.py)
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self.failures = {"events": 0, "heartbeat": 0}   # counters, for /metrics
        self.consecutive = 0        # failed batch attempts in a row (drives the backoff)
        self.delays: list[float] = []   # every backoff waited, newest last (tests, diagnosis)

    @classmethod
    def from_link(cls, link, spool: Spool, *, agent: str, branch: str, region: str = "", **kw):
        """A sender configured by a `CollectorLink` (agent/schema_collector_link.py)."""
        from .schema_collector_link import read_token
        return cls(spool, url=link.url, token=read_token(link), agent=agent, branch=branch,
                   region=region, batch_size=link.batch_size,
                   heartbeat_interval=link.heartbeat_interval, timeout=link.timeout,
                   ssl_context=tls_context(link.ca_file), **kw)

    def wake(self) -> None:
        """New events are spooled: send now (safe from any thread; a no-op before `run`)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def samples(self) -> list[Sample]:
        """Spool depth, dropped events and delivery failures, as metric samples."""
        return [Sample.of("branchwatch_spool_depth", self.spool.depth()),
                Sample.of("branchwatch_spool_dropped", self.spool.dropped),
                *(Sample.of("branchwatch_delivery_failures", n, endpoint=e)
                  for e, n in self.failures.items())]

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Deliver and heartbeat until `stop` is set (or the task is cancelled)."""
        self._loop = asyncio.get_running_loop()
        stop = stop or asyncio.Event()
        self._session = aiohttp.ClientSession(timeout=self.timeout)
        tasks = [asyncio.create_task(self._deliver_forever(), name="sender-events")]
        if self.heartbeat_interval:
            tasks.append(asyncio.create_task(self._heartbeat_forever(), name="sender-heartbeat"))
        stopping = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait([stopping, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (stopping, *tasks):
                t.cancel()
            await asyncio.gather(stopping, *tasks, return_exceptions=True)
            session, self._session = self._session, None
            await session.close()
        for t in tasks:   # a bug in a loop must not vanish with its task
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()

    async def _deliver_forever(self) -> None:
        self._publish()
        while True:
            self._wake.clear()
            if self.spool.depth() == 0:
                await self._wake.wait()
                continue
            delay = await self.send_batch()
            self._publish()
            if self.consecutive:   # failed: wait, even when the jitter drew ~0
                self.delays.append(delay)
                await self.sleep(delay)   # new events do not cut a backoff short

    async def send_batch(self) -> float:
        """POST the oldest batch once; delete what was acked; return the seconds to wait."""
        events = self.spool.peek(self.batch_size)
        if not events:
            return 0.0
        batch = wire.Batch(agent=self.agent, branch=self.branch,
                           sent_at=wire.utc(self.clock()), events=events)
        try:
            status, body, retry_after = await self._post("/api/v1/events", batch)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            return self._failed(f"cannot reach the collector: {e!r}")
        if status in RETRYABLE_4XX or status >= 500:
            delay = self._failed(f"collector answered {status}: {_text(body)}")
            return max(delay, min(retry_after or 0.0, self.max_delay))
        if status >= 400:
            # The collector refuses this batch (bad token, wrong branch, invalid event):
            # keep the events, a person must fix it; retry rarely.
            self.failures["events"] += 1
            self.consecutive += 1
            log.error("collector REFUSED %d event(s) with %d: %s; keeping them, retrying in ~%.0f s",
                      len(events), status, _text(body), self.refused_delay)
            return self.refused_delay * (0.5 + self.rand() / 2)
        try:
            ack = msgspec.json.decode(body, type=wire.Ack)
        except msgspec.DecodeError as e:
            return self._failed(f"collector answered {status} without a valid Ack: {e}")
        sent = {e.id for e in events}
        done = sent & {*ack.accepted, *ack.duplicates}   # never delete what we did not send
        self.spool.delete(done)
        if not done:
            return self._failed(f"collector acknowledged none of {len(sent)} event(s)")
        if self.consecutive:
            log.info("collector reached again after %d failed attempt(s)", self.consecutive)
        self.consecutive = 0
        return 0.0

    async def send_heartbeat(self) -> bool:
        """POST one heartbeat with the current check states; True if the collector took it."""
        # The interval is a promise the dead-man timer relies on; with periodic
        # heartbeats off (tests, one-off sends) promise the config default,
        # never 0 (the wire schema refuses it).
        every = self.heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL
        hb = wire.Heartbeat(agent=self.agent, branch=self.branch, region=self.region,
                            sent_at=wire.utc(self.clock()), interval=float(every),
                            spool_depth=self.spool.depth(), checks=check_statuses(self.checks()),
                            about=self.about)
        try:
            status, body, _ = await self._post("/api/v1/heartbeat", hb)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            status, body = None, repr(e).encode()
        ok = status is not None and 200 <= status < 300
        if not ok:
            self.failures["heartbeat"] += 1
            level = logging.ERROR if status is not None and 400 <= status < 500 else logging.WARNING
            log.log(level, "heartbeat not delivered (%s): %s", status or "no answer", _text(body))
        elif status == 200 and body:
            self._commands(body)
        self._publish()
        return ok

    def _commands(self, body: bytes) -> None:
        """Hand the runbook actions in a heartbeat's answer to whoever carries them out."""
        try:
            answer = msgspec.json.decode(body, type=wire.HeartbeatAnswer)
        except msgspec.MsgspecError as e:
            log.error("collector's heartbeat answer is not understood: %s: %s", e, _text(body))
            return
        if answer.commands and self.on_commands is not None:
            self.on_commands(answer.commands)
        elif answer.commands:
            log.warning("%d runbook action(s) from the collector, but this agent carries "
                        "out none", len(answer.commands))

    async def _heartbeat_forever(self) -> None:
        while True:
            await self.send_heartbeat()
            await asyncio.sleep(self.heartbeat_interval)

    async def _post(self, path: str, obj) -> tuple[int, bytes, float | None]:
        """One POST; (status, body, Retry-After seconds or None)."""
        session = self._session
        own = session is None   # send_batch/send_heartbeat called outside `run` (tests)
        if own:
            session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with session.post(self.url + path, data=wire.encode(obj), headers=self._headers,
                                    ssl=self.ssl if self.ssl is not None else True) as r:
                return r.status, await r.read(), _seconds(r.headers.get("Retry-After"))
        finally:
            if own:
                await session.close()

    def _failed(self, why: str) -> float:
        """Count a retryable failure; return the jittered backoff before the next try."""
        self.failures["events"] += 1
        self.consecutive += 1
        delay = backoff(self.consecutive, self.rand, self.base_delay, self.max_delay)
        level = logging.WARNING if self.consecutive == 1 else logging.DEBUG
        log.log(level, "%s; %d event(s) spooled, retry %d in %.1f s",
                why, self.spool.depth(), self.consecutive, delay)
        return delay

    def _publish(self) -> None:
        if self.publish is not None:
            self.publish(self.samples())


def _text(body: bytes, limit: int = 500) -> str:
    return body[:limit].decode("utf-8", "replace").strip() or "(empty answer)"


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None   # an HTTP date: ignore it, our own backoff applies
