"""The long-running collector: open the store, serve the API, stop cleanly."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import ssl

from aiohttp import web

from .api import build_app
from .api_base import STATE
from .audit_checkpoint import AuditHeadMetrics, append_checkpoint, keep_checkpoints
from .clock import ENV as CLOCK_ENV, clock_from_env
from .config import Config, ConfigError
from .fleet.reload import CONFIG_PATH, reload_file
from .store import open_store

log = logging.getLogger("branchwatch.collector")


def tls_context(config: Config) -> ssl.SSLContext | None:
    """A server TLS context from listen.tls_cert/tls_key, or None for plain HTTP."""
    if config.listen.tls_cert is None:
        return None
    from agent.credentials import credential_path
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(credential_path(config.listen.tls_cert),
                            credential_path(config.listen.tls_key))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"listen.tls_cert: expected a PEM certificate and the key of it "
                          f"(listen.tls_key): {getattr(e, 'reason', None) or e}") from None
    return ctx


async def serve(config: Config, stop: asyncio.Event | None = None, path: str | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or `stop` is set); in-flight requests finish.
    SIGHUP reads `path` again (agents, operators, regions) without a restart."""
    # The incident book holds many long-lived objects; the default thresholds
    # run full collections over them every few thousand allocations (7 % of
    # the writer's time in the ingest benchmark). Collect young objects less often.
    gc.set_threshold(50_000, 20, 50)
    store = open_store(config)
    checkpoints = config.checkpoint_path()
    try:
        clock = clock_from_env()
        # the head goes out of the database at once, then as it moves.
        try:
            append_checkpoint(checkpoints, clock(), *store.audit.committed_head)
        except OSError as e:
            raise ConfigError(f"audit.checkpoint_file: expected a file the collector can "
                              f"append to, {checkpoints}: {e.strerror or e}") from None
        app = build_app(config, store, clock=clock)
        app[STATE].metrics.registry.register(
            AuditHeadMetrics(lambda: store.audit.committed_head))
        if path is not None:
            app[CONFIG_PATH] = path
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        ctx = tls_context(config)
        site = web.TCPSite(runner, config.listen.address, config.listen.port, ssl_context=ctx,
                           shutdown_timeout=10.0)
        try:
            await site.start()
        except OSError as e:
            await runner.cleanup()
            raise ConfigError(f"listen: cannot listen on {config.listen.address}:"
                              f"{config.listen.port}: "
                              f"{os.strerror(e.errno) if e.errno else e}") from None
        for sock in getattr(site._server, "sockets", None) or []:
            host, port = sock.getsockname()[:2]
            log.info("collector listening on %s://%s:%s (store %s)",
                     "https" if ctx else "http", host, port, store.path)
        if CLOCK_ENV in os.environ:
            log.warning("clock shifted by the file in %s (a drill or a test)", CLOCK_ENV)
        keeper = asyncio.create_task(keep_checkpoints(
            lambda: store.audit.committed_head, checkpoints,
            config.audit.checkpoint_interval, clock))
        stop = stop or asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if path is not None:
            reloads: set[asyncio.Task] = set()

            def _reload():
                task = loop.create_task(reload_file(app, path))
                reloads.add(task)
                task.add_done_callback(reloads.discard)
            loop.add_signal_handler(signal.SIGHUP, _reload)
        await stop.wait()
        log.info("collector stopping")
        # cleanup stops accepting, lets in-flight requests finish, then
        # shuts the writer thread down: nothing acknowledged is left unwritten.
        await runner.cleanup()
        keeper.cancel()
        # The writer has stopped: the last head is final; publish it.
        store.audit.note_committed()
        try:
            append_checkpoint(checkpoints, clock(), *store.audit.committed_head)
        except OSError as e:
            log.error("last audit checkpoint not written to %s: %s", checkpoints,
                      e.strerror or e)
    finally:
        store.close()
    return 0
