"""A collector app with the report routes, served on 127.0.0.1 from a thread of
its own (issue 7): `collector.api.build_app` plus `add_report_routes`, the
real store, writer thread and dead-man loop, so a CLI process can talk to it.
(Once collector/api.py calls add_report_routes itself, CollectorProcess can
serve these tests instead.)"""

from __future__ import annotations

import asyncio
import threading

from aiohttp import web

from .paths import free_port


class AppThread:
    """Serve an aiohttp app on 127.0.0.1:PORT until `stop`."""

    def __init__(self, app: web.Application):
        self.app, self.port = app, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="report-app", daemon=True)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        self._loop.run_until_complete(site.start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def start(self) -> "AppThread":
        """Serve; return once the port listens."""
        self._thread.start()
        if not self._ready.wait(15):
            raise AssertionError("the app did not start")
        return self

    def stop(self) -> None:
        """Stop serving (in-flight requests finish, the writer thread ends)."""
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
