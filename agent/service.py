"""The long-running agent: /metrics server, probes, signals."""

from __future__ import annotations

import asyncio
import logging
import signal

from .config import Config, ConfigError


async def serve(config: Config, probes, events: str = "json", duration: float | None = None,
                stop: asyncio.Event | None = None, announce=None) -> int:
    """Serve /metrics and run the probes until stopped; 0 on a clean stop.

    `announce(url)` is called with the /metrics URL once it listens.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    from .events import JsonLinesSink, TextSink
    from .metrics import Snapshot, SnapshotCollector
    from .runner import Agent, Scheduler

    log = logging.getLogger("branchwatch.agent")
    snapshot = Snapshot()
    registry = CollectorRegistry()
    a = config.agent
    registry.register(SnapshotCollector(snapshot, a.branch, a.id, a.region))
    try:
        httpd, _ = start_http_server(config.metrics.port, config.metrics.address, registry)
    except OSError as e:
        raise ConfigError(f"metrics: cannot listen on {config.metrics.address}:"
                          f"{config.metrics.port}: {e.strerror or e}") from None
    host, port = httpd.server_address[:2]
    url = f"http://{_url_host(host)}:{port}/metrics"
    log.info("agent %s (branch %s): %d probes; metrics on %s", a.id, a.branch, len(probes), url)
    if announce is not None:
        announce(url)
    sink = JsonLinesSink() if events == "json" else TextSink()
    agent = Agent(config, sink, snapshot)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    try:
        await Scheduler(agent, probes).run(stop)
    finally:
        httpd.shutdown()
        httpd.server_close()
    log.info("agent stopped")
    return 0


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
