"""A socket stand-in for upsd on 127.0.0.1 that can answer garbage.

It speaks enough of NUT's network protocol for the agent's probe (LIST VAR,
USERNAME, PASSWORD, LOGOUT) and for an instant command that the driver
never finishes (LIST CMD, SET TRACKING, INSTCMD, GET TRACKING: PENDING).
`garbage` set: every LIST VAR is answered with that line instead (a
garbled upsd once sent a 400 KB "ERR" line). `instcmds` counts the
INSTCMDs heard, `instcmd_heard` is set at the first.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class UpsdStandIn:
    """One UPS's variables served over TCP; `garbage` replaces the answer."""

    def __init__(self, ups: str, variables: dict[str, str], commands: tuple[str, ...] = ()):
        self.ups, self.variables, self.commands = ups, dict(variables), commands
        self.instcmds: list[str] = []
        self.instcmd_heard = threading.Event()
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
                elif line == f"LIST CMD {self.ups}":
                    f.write("".join(f"{x}\n" for x in (
                        f"BEGIN LIST CMD {self.ups}",
                        *(f"CMD {self.ups} {c}" for c in self.commands),
                        f"END LIST CMD {self.ups}")).encode())
                elif line == "SET TRACKING ON":
                    f.write(b"OK\n")
                elif line.startswith(f"INSTCMD {self.ups} "):
                    self.instcmds.append(line)
                    self.instcmd_heard.set()
                    f.write(b"OK TRACKING t1\n")
                elif line == "GET TRACKING t1":
                    f.write(b"PENDING\n")       # the driver never finishes
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
