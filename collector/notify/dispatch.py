"""Sending, on the event loop: one queue and one worker per channel destination.

Each destination (the SMTP server, one webhook URL, one Alertmanager, one
robot) has its own FIFO queue and retry loop with exponential backoff and
jitter, so a channel that is down holds only its own messages: they wait in
its queue and go out, in order, when it answers again. A notifier's error
says whether retrying may help; one that cannot (a 400, an unknown URL) is
given up at once and the queue moves on. Every outcome goes to `on_result`
(audit record and the delivery's status on the incident) and to the metrics.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from .channels import NotifyError
from .pipeline import Outgoing

log = logging.getLogger("branchwatch.collector.notify")

Result = Callable[[Outgoing, bool, "str | None", int, bool], Awaitable[None]]


class DispatchMetrics:
    """The notification metrics on the collector's registry."""

    def __init__(self, registry: CollectorRegistry):
        self.results = Counter(
            "branchwatch_collector_notifications", "Notification attempts by channel and "
            "result (sent; failed: an attempt failed, retried; dropped: given up)",
            ["channel", "result"], registry=registry)
        self.queued = Gauge("branchwatch_collector_notifications_queued",
                            "Notifications waiting to be sent, by channel", ["channel"],
                            registry=registry)
        self.failing = Gauge("branchwatch_collector_notify_channels_failing",
                             "Channel destinations whose last attempt failed (their "
                             "messages wait and are retried)", ["channel"], registry=registry)


def queue_key(item: Outgoing) -> tuple[str, str]:
    """The destination an item waits for: the SMTP server for every email, else its URL."""
    return (item.channel, "smtp" if item.channel == "email" else item.address)


class Dispatcher:
    """Per-destination queues with retry; `send` raises NotifyError on failure."""

    def __init__(self, send: Callable[[Outgoing], Awaitable[None]], on_result: Result,
                 first: float = 2.0, most: float = 300.0,
                 metrics: DispatchMetrics | None = None,
                 jitter: Callable[[], float] = random.random):
        self.send, self.on_result = send, on_result
        self.first, self.most, self.metrics, self.jitter = first, most, metrics, jitter
        self.queues: dict[tuple[str, str], collections.deque[Outgoing]] = {}
        self.workers: dict[tuple[str, str], asyncio.Task] = {}
        self.failing: set[tuple[str, str]] = set()
        self._known: set[tuple[str, str]] = set()     # (incident, delivery) queued or in flight

    def submit(self, item: Outgoing) -> None:
        """Queue an item behind its destination's others (a delivery already queued
        is not queued twice)."""
        if item.delivery is not None:
            ident = (item.incident, item.delivery)
            if ident in self._known:
                return
            self._known.add(ident)
        key = queue_key(item)
        q = self.queues.setdefault(key, collections.deque())
        if item.delivery is None:
            # An Alertmanager post replaces a waiting older one of the same incident
            # (not the one being sent: the head): the newest state is what counts.
            stale = [x for i, x in enumerate(q) if i and x.incident == item.incident]
            for x in stale:
                q.remove(x)
            self._gauge(item.channel, -len(stale))
        q.append(item)
        self._gauge(item.channel, 1)
        if key not in self.workers:
            self.workers[key] = asyncio.create_task(self._work(key), name=f"notify {key[0]}")

    def waiting(self) -> int:
        """Items queued or in flight, over every destination."""
        return sum(len(q) for q in self.queues.values())

    async def _work(self, key: tuple[str, str]) -> None:
        q = self.queues[key]
        try:
            while q:
                await self._deliver(key, q[0])
                q.popleft()
                self._gauge(key[0], -1)
        finally:
            self.workers.pop(key, None)

    async def _deliver(self, key: tuple[str, str], item: Outgoing) -> None:
        delay, attempts = self.first, 0
        while True:
            attempts += 1
            try:
                await self.send(item)
            except NotifyError as e:
                error, retry = str(e), e.retry
            except Exception as e:             # a bug must not stop the queue for good
                log.exception("sending on %s failed", key[0])
                error, retry = f"{type(e).__name__}: {e}", True
            else:
                self._count(key[0], "sent")
                self._health(key, ok=True)
                await self._report(item, True, None, attempts, True)
                return
            self._health(key, ok=False)
            self._count(key[0], "failed" if retry else "dropped")
            log.warning("%s to %s failed (attempt %d%s): %s", key[0], item.to, attempts,
                        ", retrying" if retry else ", giving up", error)
            await self._report(item, False, error, attempts, not retry)
            if not retry:
                return
            # Exponential backoff with jitter: a recovering receiver is not stampeded.
            await asyncio.sleep(delay * (0.5 + 0.5 * self.jitter()))
            delay = min(delay * 2, self.most)

    async def _report(self, item: Outgoing, ok: bool, error: str | None, attempts: int,
                      final: bool) -> None:
        if final and item.delivery is not None:
            self._known.discard((item.incident, item.delivery))
        try:
            await self.on_result(item, ok, error, attempts, final)
        except Exception:
            log.exception("recording a notification outcome failed")

    def _health(self, key: tuple[str, str], ok: bool) -> None:
        changed = (key in self.failing) == ok
        (self.failing.discard if ok else self.failing.add)(key)
        if changed and self.metrics is not None:
            self.metrics.failing.labels(key[0]).set(
                sum(1 for k in self.failing if k[0] == key[0]))

    def _count(self, channel: str, result: str) -> None:
        if self.metrics is not None:
            self.metrics.results.labels(channel, result).inc()

    def _gauge(self, channel: str, step: int) -> None:
        if self.metrics is not None:
            self.metrics.queued.labels(channel).inc(step)

    async def close(self) -> None:
        """Stop every worker; what is still queued stays queued on its incident."""
        tasks = list(self.workers.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
