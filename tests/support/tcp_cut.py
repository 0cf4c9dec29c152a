"""A plain TCP proxy on 127.0.0.1 whose line can be cut and restored (tests).

`cut()` closes every connection through it and refuses new ones (the port is
closed), as a line going down would; `restore()` listens again on the same
port. Runs its own event loop on a thread; its methods are synchronous.
"""

from __future__ import annotations

import asyncio
import threading

from .paths import free_port


class TcpCut:
    """Forwards 127.0.0.1:port to 127.0.0.1:target_port until cut."""

    def __init__(self, target_port: int):
        self.target_port, self.port = target_port, free_port()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        threading.Thread(target=self._loop.run_forever, daemon=True, name="tcp-cut").start()
        self.restore()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            while data := await r.read(65536):
                w.write(data)
                await w.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            w.close()

    async def _client(self, r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        try:
            ur, uw = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            w.close()
            return
        self._writers |= {w, uw}
        await asyncio.gather(self._pipe(r, uw), self._pipe(ur, w))
        self._writers -= {w, uw}

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", self.port,
                                                  reuse_address=True)

    async def _cut(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()          # a reset, not a polite close
        self._writers.clear()

    def restore(self) -> None:
        """Listen (again) and forward."""
        if self._server is None:
            self._call(self._listen())

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        self._call(self._cut())

    def close(self) -> None:
        """Cut and stop the thread."""
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
