"""The long-running agent: /metrics server, probes, signals."""

from __future__ import annotations

import asyncio
import logging
import signal

from .config import Config, ConfigError
from .loop_guard import LoopGuard
from .self_checks import watch_dead_letters, watch_loops, watch_spool
from .watchdog import Progress, Watchdog


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
        from .spool_sink import SpoolSink, Tee
        spool, sender = link
        # Spool first, then the journal. An event the spool cannot take now (a
        # full disk) waits in the SpoolSink, in order, until it writes again.
        sink = Tee(SpoolSink(spool, sender.wake), sink)
    agent = Agent(config, sink, snapshot)
    guard = LoopGuard()
    watch_loops(agent, guard)
    spool_sink = None
    if link is not None:
        spool_sink = sink.sinks[0]
        sender.checks = lambda: agent.trackers   # heartbeats carry the current truth
        sender.guard, sender.pending = guard, lambda: len(spool_sink.pending)
        guard.watch("sender", "heartbeat")
        watch_spool(agent, spool)
        watch_dead_letters(agent, spool)
        from .about import about
        sender.about = about(config, url)
        # issue 6: runbook actions confirmed at the collector, carried out here,
        # exactly once across restarts (the command log in the spool's file).
        from .command_log import CommandLog
        from .runbook_commands import CommandRunner
        sender.on_commands = CommandRunner(config, agent.sink.emit,
                                           commands=CommandLog(spool)).handle
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    scheduler = Scheduler(agent, probes, guard)
    watchdog = Watchdog(_progress(scheduler, probes, link[1] if link is not None else None))
    tending = asyncio.create_task(_tend(stop, guard, watchdog, spool_sink,
                                        link[1] if link is not None else None))
    traps = delivery = failover = None
    try:
        # Inside the try: a trap port that cannot be bound still closes
        # /metrics and the spool on the way out.
        traps = await _start_traps(config, probes, agent, scheduler, links) if config.traps else None
        if link is not None:
            delivery = asyncio.create_task(link[1].run(stop), name="delivery")
            delivery.add_done_callback(lambda t: _ended(t, guard))
        if config.failover is not None:
            # domain.md §4.1: swap uplinks by itself (pre-authorised), even when
            # the collector cannot be reached; its steps go through `sink`.
            from .failover_runner import FailoverRunner
            failover = asyncio.create_task(FailoverRunner.for_agent(config, agent).run(stop),
                                           name="failover")
            failover.add_done_callback(lambda t: _ended(t, guard))
        await scheduler.run(stop)
    finally:
        stop.set()
        await tending
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


TICK = 1.0   # seconds between the main loop's turns (spool retries, the watchdog)


async def _tend(stop: asyncio.Event, guard, watchdog, spool_sink, sender) -> None:
    """The main loop's own turns: spool what is pending, ping the watchdog."""
    period = min(TICK, watchdog.period or TICK)
    while not stop.is_set():
        try:
            if spool_sink is not None:
                spool_sink.retry()
                sender.publish_samples()      # pending events, dead letters, errors
            watchdog.tick()
        except Exception as e:  # noqa: BLE001 - logged once, counted, retried
            await asyncio.sleep(guard.failed("main", e))
        else:
            guard.worked("main")
        try:
            await asyncio.wait_for(stop.wait(), period)
        except asyncio.TimeoutError:
            pass


def _progress(scheduler, probes, sender) -> Progress:
    """What the watchdog requires: every probe loop and the sender's loops turning."""
    loop = asyncio.get_running_loop()
    progress = Progress()

    def probe_age(name: str):
        at = scheduler.last_turn.get(name)
        return None if at is None else loop.time() - at
    for p in probes:
        # A turn is a read (at most its timeout) and the wait to the next one.
        progress.watch(f"probe {p.name}", lambda n=p.name: probe_age(n),
                       p.interval + p.timeout + 30)
    if sender is not None:
        for name, allowance in sender.allowances().items():
            progress.watch(name, lambda n=name: (None if n not in sender.turns
                                                 else sender.clock() - sender.turns[n]),
                           allowance)
    return progress


def _ended(task: asyncio.Task, guard) -> None:
    """A long-running task ended before the agent stopped: never silently."""
    if not task.cancelled() and task.exception() is not None:
        guard.failed(task.get_name(), task.exception())


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

