"""TCP endpoints on 127.0.0.1 that the story controls: a line's far side, a
branch's core system.

Three states, because the agent reads them differently:
- serving: connections are accepted (and closed): reachable;
- refusing: nothing listens; a connect is refused. For a service that is
  "down"; for a line it would still prove the line works (a refusal is an
  answer from the far side), so a cut line is
- silent: a listener whose accept queue is full; new connects get no answer
  and time out, as over a cut cable.
"""

from __future__ import annotations

import asyncio
import socket


class _Hangup(asyncio.Protocol):
    """Accept, then close at once: the handshake is all a probe needs."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()


class Endpoint:
    """One TCP port on 127.0.0.1 that serves, refuses or stays silent."""

    def __init__(self, name: str):
        self.name = name
        self.port = 0
        self.state = "refusing"
        self._server: asyncio.AbstractServer | None = None
        self._silent: list[socket.socket] = []

    async def serve(self) -> None:
        """Accept connections (the first call picks a free port)."""
        await self._quiet()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(_Hangup, "127.0.0.1", self.port,
                                                reuse_address=True, backlog=64)
        self.port = self._server.sockets[0].getsockname()[1]
        self.state = "serving"

    async def refuse(self) -> None:
        """Stop listening: connects are refused."""
        await self._quiet()
        self.state = "refusing"

    async def silence(self) -> None:
        """Listen without accepting, the queue full: connects time out."""
        await self._quiet()
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(0)
        self._silent.append(listener)
        for _ in range(2):        # backlog 0 still queues one: fill it, and one more
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self._silent.append(filler)
        await asyncio.sleep(0.05)
        self.state = "silent"

    async def close(self) -> None:
        """Release the port for good."""
        await self._quiet()
        self.state = "refusing"

    async def _quiet(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for s in self._silent:
            s.close()
        self._silent = []
