"""A TCP proxy on 127.0.0.1 that cuts the line to an HTTP server on demand (tests).

Modes, switched at any time with `set_mode` (which also cuts every connection
open at that moment, as a line going down would):

- PASS: forward both ways.
- CUT_REQUEST: forward a request's head and part of its body (at most `cut_at`
  bytes, always less than its Content-Length), then close both sides: the
  upload breaks mid-body, the server never sees the whole request.
- CUT_RESPONSE: forward the whole request, then only a part (at least one
  byte, never all) of the server's response, then close both sides: the
  server did the work, the client never hears the answer.
- REFUSE: nothing listens on the port: connecting is refused.

`cuts` records what was really cut: (mode, request line) per connection.
The proxy runs its own event loop on a thread; its methods are synchronous.
"""

from __future__ import annotations

import asyncio
import enum
import random
import re
import threading

from .paths import free_port


class Mode(enum.Enum):
    PASS = "pass"
    CUT_REQUEST = "cut request"
    CUT_RESPONSE = "cut response"
    REFUSE = "refuse"


class _Closed(Exception):
    """The peer closed before the bytes we wait for came."""


async def _read_head(r: asyncio.StreamReader) -> tuple[bytes, int, int]:
    """Read an HTTP message's head: (bytes read so far, head length, Content-Length)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await r.read(65536)
        if not data:
            raise _Closed
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    found = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", buf[:end])
    return buf, end, int(found[1]) if found else 0


async def _forward(r: asyncio.StreamReader, w: asyncio.StreamWriter, have: bytes,
                   limit: int | None = None) -> None:
    """Send `have`, then what `r` gives, to `w`; stop after `limit` bytes in all."""
    sent = 0
    while True:
        chunk = have if limit is None else have[:limit - sent]
        w.write(chunk)
        await w.drain()
        sent += len(chunk)
        if limit is not None and sent >= limit:
            return
        have = await r.read(65536)
        if not have:
            return


class CuttingProxy:
    """Listens on 127.0.0.1 on a free port (`url`) and forwards to 127.0.0.1:target_port."""

    def __init__(self, target_port: int, *, cut_at: int = 64, seed: int = 0):
        self.target_port, self.cut_at = target_port, cut_at
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mode = Mode.PASS
        self.cuts: list[tuple[Mode, str]] = []
        self._rand = random.Random(seed)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="cutting-proxy",
                                        daemon=True)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # --- synchronous API (test thread) ------------------------------------------------
    def start(self) -> "CuttingProxy":
        self._thread.start()
        self._call(self._listen())
        return self

    def set_mode(self, mode: Mode) -> None:
        """Switch mode; connections open now are cut, new ones get the new mode."""
        self._call(self._switch(mode))

    def stop(self) -> None:
        self._call(self._switch(Mode.REFUSE))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> "CuttingProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # --- on the proxy's loop --------------------------------------------------------------
    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                      reuse_address=True)

    async def _switch(self, mode: Mode) -> None:
        self.mode = mode
        for w in list(self._writers):
            w.transport.abort()
        if mode is Mode.REFUSE:
            if self._server is not None:
                self._server.close()
                self._server = None
        else:
            await self._listen()

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter):
        mode = self.mode
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.transport.abort()
            return
        self._writers |= {client_w, up_w}
        try:
            if mode is Mode.PASS:
                await self._pass(client_r, client_w, up_r, up_w)
            elif mode is Mode.CUT_REQUEST:
                await self._cut_request(client_r, up_w)
            else:
                await self._cut_response(client_r, client_w, up_r, up_w)
        except (_Closed, OSError):
            pass
        finally:
            for w in (client_w, up_w):
                self._writers.discard(w)
                w.transport.abort()     # both sides at once, as a cut line: no FIN dance

    async def _pass(self, client_r, client_w, up_r, up_w) -> None:
        both = [asyncio.ensure_future(_forward(client_r, up_w, b"")),
                asyncio.ensure_future(_forward(up_r, client_w, b""))]
        try:
            await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
        finally:                # one side is gone: so is the connection
            for task in both:
                task.cancel()

    async def _cut_request(self, client_r, up_w) -> None:
        head, end, length = await _read_head(client_r)
        # Never the whole body: the server must be left waiting for the rest.
        await _forward(client_r, up_w, head,
                       limit=end + min(self._rand.randint(0, self.cut_at), max(length - 1, 0)))
        if length:
            self.cuts.append((Mode.CUT_REQUEST, _first_line(head)))

    async def _cut_response(self, client_r, client_w, up_r, up_w) -> None:
        head, end, length = await _read_head(client_r)
        await _forward(client_r, up_w, head, limit=end + length)     # the whole request
        answer, answer_end, answer_length = await _read_head(up_r)
        await _forward(up_r, client_w, answer,
                       limit=self._rand.randint(1, answer_end + answer_length - 1))
        self.cuts.append((Mode.CUT_RESPONSE, _first_line(head)))


def _first_line(head: bytes) -> str:
    return head.split(b"\r\n", 1)[0].decode("latin-1")
