"""Delivery from the spool to the collector: batches, acks, backoff, heartbeats.

`SpoolSink` is the agent's EventSink: it puts each event in the spool
(durable before it returns) and wakes the `Sender`. The sender POSTs the
oldest events in batches and deletes only the ids the collector
acknowledged (accepted or duplicate), so a lost answer means a resend the
collector recognises by event id. Failures back off exponentially with
full jitter. Heartbeats carry every check's current state.

Several collector URLs (collectors sharing one PostgreSQL store): the
sender keeps to the one that answers and, when it cannot be reached or
answers 5xx/408/429, tries the next at once, for events and heartbeats
alike (so the runbook commands a heartbeat brings and the results sent back
as events follow). Only when every URL failed in one round does it back
off. A resend to another collector is caught there by event id.

Refusals never stop the queue: a batch refused as too large (413) is sent
again in halves; one event the collector still refuses (413 alone, or a
400 naming `events[i]`) is set aside in the spool's dead letters with the
refusal (reported through the spool's `on_set_aside`), and what follows flows. A
refusal of the whole request (a bad token, a wrong branch) keeps the
events, is logged loudly and backs off long: a person must fix it.

No loop here ends on an exception: a failing spool or a bug is logged once
with its cause, counted, and retried with backoff (`LoopGuard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import ssl
import time
from collections.abc import Mapping
from typing import Awaitable, Callable, Iterable

import aiohttp
import msgspec

from . import wire
from .loop_guard import LoopGuard, backoff
from .model import Sample
from .spool import Spool, SpoolError
from .spool_sink import SpoolSink, Tee

__all__ = ["Sender", "SpoolSink", "Tee", "backoff", "check_statuses", "tls_context"]

log = logging.getLogger("branchwatch.sender")

RETRYABLE_4XX = (408, 429)   # the collector asks us to come back, not a refusal


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


def tls_context(ca_file: str | None) -> ssl.SSLContext | None:
    """Verify the collector against `ca_file` (None: the system's trust store)."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else None


DEFAULT_HEARTBEAT_INTERVAL = 30.0   # seconds; the same default as collector.heartbeat_interval


class Sender:
    """Sends the spool's events and periodic heartbeats until cancelled or stopped."""

    def __init__(self, spool: Spool, *, url: str | None = None, token: str, agent: str,
                 branch: str, urls: list[str] | None = None,
                 region: str = "", checks: Callable[[], Iterable] = lambda: (),
                 batch_size: int = 100, heartbeat_interval: float | None = 30.0,
                 timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None,
                 base_delay: float = 1.0, max_delay: float = 60.0, refused_delay: float = 300.0,
                 clock: Callable[[], float] = time.time,
                 rand: Callable[[], float] = random.random,
                 sleep: Callable[[float], Awaitable] = asyncio.sleep,
                 publish: Callable[[list[Sample]], None] | None = None,
                 on_commands: Callable[[list[wire.Command]], None] | None = None,
                 guard: LoopGuard | None = None, pending: Callable[[], int] = lambda: 0):
        self.spool = spool
        self.urls = [u.rstrip("/") for u in (urls or [url])]
        self.active = 0                      # index in urls of the collector in use
        self.url_swaps = 0                   # times it moved to another URL (for /metrics)
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
        self.guard = guard or LoopGuard(clock=clock, rand=rand)
        self.guard.watch("sender", "heartbeat")
        self.pending = pending               # events not yet spooled (SpoolSink.pending)
        self.limit = batch_size              # events per batch; halved on 413, grows back
        self.turns: dict[str, float] = {}    # loop -> `clock` time of its last turn (watchdog)
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
        from .schema_collector_link import link_urls
        return cls(spool, urls=link_urls(link), token=read_token(link), agent=agent, branch=branch,
                   region=region, batch_size=link.batch_size,
                   heartbeat_interval=link.heartbeat_interval, timeout=link.timeout,
                   ssl_context=tls_context(link.ca_file), **kw)

    @property
    def url(self) -> str:
        """The collector base URL in use now."""
        return self.urls[self.active]

    def allowances(self) -> dict[str, float]:
        """How long each of the sender's loops may go without a turn and not be
        stuck: its longest wait plus the request timeout, with room."""
        timeout = self.timeout.total or 0.0
        # one round tries every URL, each up to the timeout
        timeout *= len(self.urls)
        out = {"sender": max(self.refused_delay, self.max_delay, IDLE_TURN) + timeout + 30}
        if self.heartbeat_interval:
            out["heartbeat"] = self.heartbeat_interval * 2 + timeout + 30
        return out

    def wake(self) -> None:
        """New events are spooled: send now (safe from any thread; a no-op before `run`)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    def samples(self) -> list[Sample]:
        """Spool depth, dropped events and delivery failures, as metric samples."""
        return [Sample.of("branchwatch_spool_depth", self.spool.depth()),
                Sample.of("branchwatch_spool_dropped", self.spool.dropped),
                Sample.of("branchwatch_spool_dead_letter_events", self.spool.dead_letter_count()),
                Sample.of("branchwatch_spool_pending_events", self.pending()),
                *(Sample.of("branchwatch_delivery_failures", n, endpoint=e)
                  for e, n in self.failures.items()),
                *(Sample.of("branchwatch_collector_url_active", int(i == self.active), url=u)
                  for i, u in enumerate(self.urls)),
                Sample.of("branchwatch_collector_url_swaps", self.url_swaps),
                *self.guard.samples()]

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
        self.publish_samples()
        while True:
            self.turns["sender"] = self.clock()
            self._wake.clear()
            if self.spool.depth() == 0:
                # Wake at least now and then: the watchdog sees an idle loop turn.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_TURN)
                continue
            try:
                delay = await self.send_batch()
                self.publish_samples()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a failing spool or a bug: retry
                delay = self.guard.failed("sender", e, shown=not isinstance(e, SpoolError))
                self.consecutive += 1
            else:
                self.guard.worked("sender")
            if self.consecutive:   # failed: wait, even when the jitter drew ~0
                self.delays.append(delay)
                await self.sleep(delay)   # new events do not cut a backoff short

    async def send_batch(self) -> float:
        """POST the oldest batch once; delete what was acked; return the seconds to wait."""
        events = self.spool.peek(self.limit)
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
        if status in (400, 413):
            refused = self._refused_event(events, status, body)
            if refused is not None:
                self.set_aside(refused, f"collector answered {status}: {_error(body)}")
                return 0.0
            if status == 413 or len(events) > 1:   # too large: try again in halves
                self.limit = max(1, len(events) // 2)
                log.warning("collector refused a batch of %d event(s) with %d: %s; "
                            "sending %d at a time", len(events), status, _text(body), self.limit)
                return 0.0
        if status >= 400:
            # The collector refuses the request itself (bad token, wrong branch,
            # a batch field): keep the events, a person must fix it; retry rarely.
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
        if self.spool.depth() == 0:     # caught up: full batches again
            self.limit = self.batch_size
        return 0.0

    def _refused_event(self, events: list[wire.Event], status: int, body: bytes):
        """The one event a refusal is about, or None if it is about the batch."""
        if status == 413 and len(events) == 1:
            return events[0]
        if status == 400 and (m := _EVENT_AT.match(_error(body))):
            i = int(m[1])
            return events[i] if i < len(events) else None
        return None

    def set_aside(self, event: wire.Event, refusal: str) -> None:
        """Move an event the collector refuses on its own to the dead letters (the
        spool's `on_set_aside` says so)."""
        self.failures["events"] += 1
        self.spool.set_aside(event.id, refusal)

    async def send_heartbeat(self) -> bool:
        """POST one heartbeat with the current check states; True if the collector took it."""
        # The interval is a promise the dead-man timer relies on; with periodic
        # heartbeats off (tests, one-off sends) promise the config default,
        # never 0 (the wire schema refuses it).
        every = self.heartbeat_interval or DEFAULT_HEARTBEAT_INTERVAL
        hb = wire.Heartbeat(agent=self.agent, branch=self.branch, region=self.region,
                            sent_at=wire.utc(self.clock()), interval=float(every),
                            # events not yet spooled (a full disk) wait too
                            spool_depth=self.spool.depth() + self.pending(),
                            checks=check_statuses(self.checks()),
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
        self.publish_samples()
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
            self.turns["heartbeat"] = self.clock()
            try:
                await self.send_heartbeat()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a bug must not end the heartbeats
                await asyncio.sleep(min(self.guard.failed("heartbeat", e),
                                        self.heartbeat_interval))
            else:
                self.guard.worked("heartbeat")
            await asyncio.sleep(self.heartbeat_interval)

    async def _post(self, path: str, obj) -> tuple[int, bytes, float | None]:
        """One POST, to the next URL at once while the one in use fails; (status,
        body, Retry-After seconds or None) of the last tried, or its exception."""
        data = wire.encode(obj)
        for tried in range(len(self.urls)):
            at = self.active
            last = tried == len(self.urls) - 1
            try:
                status, body, retry_after = await self._post_to(self.urls[at] + path, data)
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                if last:
                    raise
                why = f"cannot be reached: {e!r}"
            else:
                if last or not (status in RETRYABLE_4XX or status >= 500):
                    return status, body, retry_after
                why = f"answered {status}: {_text(body, 200)}"
            self._move_on(at, why)
        raise AssertionError("unreachable: the last URL returns or raises")

    def _move_on(self, at: int, why: str) -> None:
        """The collector at index `at` failed: use the next one (once, if the
        events and the heartbeat loop both saw it fail)."""
        if self.active != at:
            return
        self.active = (at + 1) % len(self.urls)
        self.url_swaps += 1
        log.warning("collector %s %s; trying %s", self.urls[at], why, self.urls[self.active])

    async def _post_to(self, url: str, data: bytes) -> tuple[int, bytes, float | None]:
        session = self._session
        own = session is None   # send_batch/send_heartbeat called outside `run` (tests)
        if own:
            session = aiohttp.ClientSession(timeout=self.timeout)
        try:
            async with session.post(url, data=data, headers=self._headers,
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

    def publish_samples(self) -> None:
        """Hand the current samples to /metrics."""
        if self.publish is not None:
            self.publish(self.samples())


IDLE_TURN = 10.0   # seconds an idle delivery loop waits before turning anyway
_EVENT_AT = re.compile(r"events\[(\d+)\]")   # the collector names the field it refuses


def _error(body: bytes) -> str:
    """The collector's {"error": ...} text, else the body as text."""
    try:
        return str(msgspec.json.decode(body)["error"])
    except (msgspec.MsgspecError, KeyError, TypeError):
        return _text(body)


def _text(body: bytes, limit: int = 500) -> str:
    return body[:limit].decode("utf-8", "replace").strip() or "(empty answer)"


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None   # an HTTP date: ignore it, our own backoff applies
