"""The long-running agent: /metrics server, probes, signals."""

from __future__ import annotations

import asyncio
import logging
import signal

from .config import Config, ConfigError


async def serve(config: Config, probes, events: str = "json", duration: float | None = None,
                stop: asyncio.Event | None = None, announce=None, links=None) -> int:
    """Serve /metrics and run the probes until stopped; 0 on a clean stop.

    `announce(url)` is called with the /metrics URL once it listens;
    `links` is the LinkView the probes share (for the trap listener).
    `events` is "json" or "text" (stdout), or an EventSink of the caller's
    (the demo, which prints its own story).
    """
    from prometheus_client import CollectorRegistry

    from .metrics_http import TlsFilesError, start_metrics_server

    from .events import JsonLinesSink, TextSink
    from .metrics import Snapshot, SnapshotCollector
    from .runner import Agent, Scheduler

    log = logging.getLogger("branchwatch.agent")
    snapshot = Snapshot()
    registry = CollectorRegistry()
    a = config.agent
    # Open the spool first: a spool or token problem is a config error, and
    # nothing is listening yet that would need closing.
    link = _open_link(config, snapshot) if config.collector is not None else None
    registry.register(SnapshotCollector(snapshot, a.branch, a.id, a.region))
    try:
        httpd, url = start_metrics_server(config.metrics, registry)
    except TlsFilesError as e:
        m = config.metrics
        files = ", ".join(f for f in (m.tls_cert, m.tls_key, m.tls_client_ca) if f)
        raise ConfigError(f"metrics.tls_cert/tls_key: cannot load {files}: {e}") from None
    except OSError as e:
        raise ConfigError(f"metrics: cannot listen on {config.metrics.address}:"
                          f"{config.metrics.port}: {e.strerror or e}") from None
    log.info("agent %s (branch %s): %d probes; metrics on %s", a.id, a.branch, len(probes), url)
    if announce is not None:
        announce(url)
    if isinstance(events, str):
        sink = JsonLinesSink() if events == "json" else TextSink()
    else:
        sink = events
    if link is not None:
        from .sender import SpoolSink, Tee
        spool, sender = link
        # Spool first, then the journal: a crash between the two must not leave
        # an event that was printed but never delivered.
        sink = Tee(SpoolSink(spool, sender.wake), sink)
    agent = Agent(config, sink, snapshot)
    if link is not None:
        sender.checks = lambda: agent.trackers   # heartbeats carry the current truth
        from .about import about
        sender.about = about(config, url)
        # issue 6: runbook actions confirmed at the collector, carried out here.
        from .runbook_commands import CommandRunner
        sender.on_commands = CommandRunner(config, agent.sink.emit).handle
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    scheduler = Scheduler(agent, probes)
    traps = delivery = failover = None
    try:
        # Inside the try: a trap port that cannot be bound still closes
        # /metrics and the spool on the way out.
        traps = await _start_traps(config, probes, agent, scheduler, links) if config.traps else None
        delivery = asyncio.create_task(link[1].run(stop)) if link is not None else None
        if config.failover is not None:
            # domain.md §4.1: swap uplinks by itself (pre-authorised), even when
            # the collector cannot be reached; its steps go through `sink`.
            from .failover_runner import FailoverRunner
            failover = asyncio.create_task(FailoverRunner.for_agent(config, agent).run(stop))
        await scheduler.run(stop)
    finally:
        stop.set()
        if failover is not None:
            await failover   # its last step's events reach the spool before it closes
        if delivery is not None:
            await delivery
        if link is not None:
            link[0].close()
        if traps is not None:
            traps.close()
        httpd.shutdown()
        httpd.server_close()
    log.info("agent stopped")
    return 0


def _open_link(config: Config, snapshot):
    """The spool and the sender to the collector; problems are config errors."""
    import sqlite3

    from .sender import Sender
    from .spool import Spool
    c, a = config.collector, config.agent
    try:
        spool = Spool(c.spool.path, c.spool.max_events)
    except (OSError, sqlite3.Error) as e:
        raise ConfigError(f"collector.spool.path: cannot open {c.spool.path}: {e}") from None
    try:
        sender = Sender.from_link(c, spool, agent=a.id, branch=a.branch, region=a.region,
                                  publish=lambda samples: snapshot.put("collector", samples))
    except OSError as e:
        spool.close()
        where = "collector.token_file" if c.token_file else "collector.ca_file"
        raise ConfigError(f"{where}: cannot read it: {e.strerror or e}") from None
    snapshot.put("collector", sender.samples())
    return spool, sender


async def _start_traps(config: Config, probes, agent, scheduler, links):
    """Listen for the switches' traps; a bind failure is a config error."""
    from .snmp.traps import TrapListener
    by_name = {p.name: p for p in probes}
    switches = [(s, by_name[f"switch/{s.name}"]) for s in config.switches]
    listener = TrapListener(switches, agent.handle_confirmed, scheduler.poll_now,
                            lambda samples: agent.snapshot.put("traps", samples), links)
    t = config.traps
    try:
        host, port = await listener.start(t.address, t.port)
    except OSError as e:
        hint = " (ports below 1024 need CAP_NET_BIND_SERVICE)" if t.port < 1024 else ""
        raise ConfigError(f"traps: cannot listen on {t.address}:{t.port}: "
                          f"{e.strerror or e}{hint}") from None
    logging.getLogger("branchwatch.agent").info("listening for SNMP traps on udp %s:%s", host, port)
    return listener

