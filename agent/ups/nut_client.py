"""The one place that talks to NUT's upsd.

Two backends with the same face: `nut2` (telnetlib; gone in Python 3.13)
and NUT's own `PyNUTClient` (plain socket). "auto" takes nut2 where it
imports and PyNUTClient elsewhere. Every failure leaves here as `NutError`
with upsd's own words (ERR DATA-STALE, ERR UNKNOWN-UPS, ...) or the socket's.
"""

from __future__ import annotations

import socket
import warnings

from ..model import ProbeError
from ..wire import cut

# upsd's own words go into check reasons: a garbled upsd once sent a 400 KB
# "ERR" line. This edge is where it enters, so it is cut here, visibly.
REPLY_MAX = 512


class NutError(ProbeError):
    """upsd could not be reached or refused the request."""


def available_backends() -> list[str]:
    """Backends importable on this Python, in order of preference."""
    out = []
    try:
        _import_nut2()
        out.append("nut2")
    except ImportError:
        pass
    try:
        _import_pynut()
        out.append("pynut")
    except ImportError:
        pass
    return out


def connect(backend: str, host: str, port: int, user: str | None,
            password: str | None, timeout: float) -> "NutSession":
    """Open a session to upsd with the chosen backend ("auto" picks one)."""
    if backend == "auto":
        found = available_backends()
        if not found:
            raise NutError("no NUT client library installed (nut2 or pynutclient)",
                           recoverable=False)
        backend = found[0]
    cls = {"nut2": _Nut2Session, "pynut": _PyNutSession}[backend]
    try:
        return cls(host, port, user, password, timeout)
    except ImportError as e:
        raise NutError(f"NUT client {backend!r} is not installed: {e}", recoverable=False) from None
    except NutError:
        raise
    except Exception as e:  # noqa: BLE001 - each library raises its own mix
        raise _translate(e, host, port) from None


class NutSession:
    """A connection to one upsd."""

    backend = ""

    def list_vars(self, ups: str) -> dict[str, str]:
        """All variables of one UPS, as upsd sends them."""
        try:
            return self._list_vars(ups)
        except NutError:
            raise
        except Exception as e:  # noqa: BLE001
            raise _translate(e, self.host, self.port) from None

    def close(self) -> None:
        """Say LOGOUT where possible and drop the connection."""


def _translate(e: Exception, host: str, port: int) -> NutError:
    text = cut(str(e).strip(), REPLY_MAX)
    if text == "Socket error." and e.__context__ is not None:
        return _translate(e.__context__, host, port)  # nut2 hides the cause here
    if text.startswith("ERR "):
        return NutError(text)
    if isinstance(e, (socket.timeout, TimeoutError)):
        return NutError(f"upsd at {host}:{port} did not answer in time")
    if isinstance(e, ConnectionRefusedError):
        return NutError(f"upsd at {host}:{port} refused the connection")
    if isinstance(e, (OSError, EOFError)):
        return NutError(f"upsd at {host}:{port}: {text or type(e).__name__}")
    return NutError(f"upsd at {host}:{port} sent something unexpected: {text or type(e).__name__}")


def _import_nut2():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import nut2
    return nut2


def _import_pynut():
    from PyNUTClient import PyNUT
    return PyNUT


class _Nut2Session(NutSession):
    backend = "nut2"

    def __init__(self, host, port, user, password, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self._client = _import_nut2().PyNUTClient(
            host=host, port=port, login=user, password=password, timeout=timeout)

    def _list_vars(self, ups):
        vars_ = self._client.list_vars(ups)
        # nut2 returns what it has when read_until times out: an incomplete
        # list is a timeout, not a reading.
        if not vars_:
            raise NutError(f"upsd at {self.host}:{self.port} returned no variables for {ups!r}")
        return vars_

    def close(self):
        client, self._client = self._client, None
        if client is not None and client._srv_handler is not None:
            try:
                client._srv_handler.write(b"LOGOUT\n")
                client._srv_handler.close()
            except OSError:
                pass
            client._srv_handler = None


def _pynut_class():
    PyNUT = _import_pynut()

    class GuardedPyNUTClient(PyNUT.PyNUTClient):
        """PyNUTClient whose reads stop when upsd closes the connection.

        Upstream's read loop appends recv() forever; recv() returns b"" on
        a closed socket, so a restarted upsd would spin a core at 100 %.
        """

        def _PyNUTClient__read_until(self, finished):
            data = self._PyNUTClient__recv_leftover
            while (end := data.find(finished)) == -1:
                chunk = self._PyNUTClient__srv_handler.recv(4096)
                if not chunk:
                    raise EOFError("upsd closed the connection")
                data += chunk
            end += len(finished)
            self._PyNUTClient__recv_leftover = data[end:]
            return data[:end]

    return PyNUT, GuardedPyNUTClient


class _PyNutSession(NutSession):
    backend = "pynut"

    def __init__(self, host, port, user, password, timeout):
        self.host, self.port, self.timeout = host, port, timeout
        self._pynut, cls = _pynut_class()
        self._client = cls(host=host, port=port, login=user, password=password, timeout=timeout)

    def _list_vars(self, ups):
        raw = self._client.GetUPSVars(ups)
        return {_text(k): _text(v) for k, v in raw.items()}

    def close(self):
        client, self._client = self._client, None
        if client is not None:
            sock = client._PyNUTClient__srv_handler
            try:
                sock.send(b"LOGOUT\n")
            except OSError:
                pass
            sock.close()


def _text(b: bytes | str) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, bytes) else b
