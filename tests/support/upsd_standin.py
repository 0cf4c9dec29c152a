"""A socket stand-in for upsd on 127.0.0.1 that can answer garbage.

It speaks enough of NUT's network protocol for the agent's probe (LIST VAR,
USERNAME, PASSWORD, LOGOUT). `garbage` set: every LIST VAR is answered
with that line instead (a garbled upsd once sent a 400 KB "ERR" line).
"""

from __future__ import annotations

import contextlib
import socket
import threading


class UpsdStandIn:
    """One UPS's variables served over TCP; `garbage` replaces the answer."""

    def __init__(self, ups: str, variables: dict[str, str]):
        self.ups, self.variables = ups, dict(variables)
        self.garbage: bytes | None = None
        self.answered_garbage = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket):
        with conn, conn.makefile("rwb") as f, \
                contextlib.suppress(ConnectionResetError, BrokenPipeError):
            for raw in f:
                line = raw.decode(errors="replace").strip()
                if line.startswith(("USERNAME", "PASSWORD")):
                    f.write(b"OK\n")
                elif line == "LOGOUT":
                    f.write(b"OK Goodbye\n")
                    f.flush()
                    return
                elif line == f"LIST VAR {self.ups}":
                    if (garbage := self.garbage) is not None:
                        self.answered_garbage += 1
                        f.write(garbage + b"\n")
                    else:
                        f.write(self._vars())
                else:
                    f.write(b"ERR UNKNOWN-COMMAND\n")
                f.flush()

    def _vars(self) -> bytes:
        lines = [f"BEGIN LIST VAR {self.ups}"]
        lines += [f'VAR {self.ups} {k} "{v}"' for k, v in self.variables.items()]
        lines.append(f"END LIST VAR {self.ups}")
        return ("\n".join(lines) + "\n").encode()

    def close(self):
        self._closed = True
        self.server.close()
