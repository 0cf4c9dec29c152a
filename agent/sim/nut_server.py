"""A small NUT network server (upsd's protocol) for the demo.

It speaks the part of the protocol that clients use to read a UPS
(LIST UPS, LIST VAR, GET VAR, USERNAME/PASSWORD/LOGIN, LOGOUT) and can be
told to answer a UPS with an error such as ERR DATA-STALE. Tests of the
agent use NUT's real upsd; this lets the demo run with nothing installed.
"""

from __future__ import annotations

import socketserver
import threading


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class SimulatedUpsd:
    """upsd on 127.0.0.1 serving UPS variables that the caller can change."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self._lock = threading.Lock()
        self._ups: dict[str, dict[str, str]] = {}
        self._errors: dict[str, str] = {}
        sim = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self):
                try:
                    for raw in self.rfile:
                        line = raw.decode("utf-8", "replace").strip()
                        reply, done = sim.answer(line)
                        self.wfile.write(reply.encode())
                        if done:
                            return
                except (ConnectionResetError, BrokenPipeError):
                    return          # the client went away (an agent stopping): nothing to say

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server((host, port), Handler)
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="sim-upsd")

    def set(self, ups: str, variables: dict[str, str]) -> None:
        """Replace one UPS's variables (and clear any forced error)."""
        with self._lock:
            self._ups[ups] = dict(variables)
            self._errors.pop(ups, None)

    def update(self, ups: str, **changes: str) -> None:
        """Change some variables of one UPS; keys use _ for . (ups_status)."""
        with self._lock:
            self._ups[ups].update({k.replace("_", "."): v for k, v in changes.items()})

    def fail(self, ups: str, error: str) -> None:
        """Answer this UPS with `ERR <error>` until set() is called again."""
        with self._lock:
            self._errors[ups] = error

    def answer(self, line: str) -> tuple[str, bool]:
        """The reply to one protocol line, and whether to hang up."""
        words = line.split()
        if not words:
            return "", False
        cmd = [w.upper() for w in words[:2]]
        with self._lock:
            if cmd[0] in ("USERNAME", "PASSWORD", "LOGIN"):
                return "OK\n", False
            if cmd[0] == "LOGOUT":
                return "OK Goodbye\n", True
            if cmd[0] in ("VER", "VERSION"):
                return "Network UPS Tools (branchwatch demo) 2.8\n", False
            if cmd == ["LIST", "UPS"]:
                body = "".join(f'UPS {u} "simulated"\n' for u in self._ups)
                return f"BEGIN LIST UPS\n{body}END LIST UPS\n", False
            if cmd == ["LIST", "VAR"] and len(words) == 3:
                ups = words[2]
                if err := self._ups_error(ups):
                    return err, False
                body = "".join(f"VAR {ups} {k} {_quote(v)}\n" for k, v in self._ups[ups].items())
                return f"BEGIN LIST VAR {ups}\n{body}END LIST VAR {ups}\n", False
            if cmd == ["GET", "VAR"] and len(words) == 4:
                ups, var = words[2], words[3]
                if err := self._ups_error(ups):
                    return err, False
                if var not in self._ups[ups]:
                    return "ERR VAR-NOT-SUPPORTED\n", False
                return f"VAR {ups} {var} {_quote(self._ups[ups][var])}\n", False
        return "ERR UNKNOWN-COMMAND\n", False

    def _ups_error(self, ups: str) -> str | None:
        if ups not in self._ups:
            return "ERR UNKNOWN-UPS\n"
        if ups in self._errors:
            return f"ERR {self._errors[ups]}\n"
        return None

    def start(self) -> "SimulatedUpsd":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
