"""The NUT client module: both backends read the same, upsd's errors come
out as NutError with upsd's words, and "auto" falls back to NUT's own
PyNUTClient where nut2 cannot import (Python 3.13 removed telnetlib)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from agent.sim.nut_server import SimulatedUpsd
from agent.ups.nut_client import NutError, connect

from .support.nut import NutServer
from .support.paths import REPO
from .test_nut_agent import BACKENDS, ONLINE


@pytest.fixture(scope="module")
def upsd(tmp_path_factory):
    with NutServer(tmp_path_factory.mktemp("nut"), {"main": ONLINE}) as s:
        yield s


@pytest.mark.parametrize("backend", BACKENDS)
def test_backends_read_the_same_variables(upsd, backend):
    session = connect(backend, "127.0.0.1", upsd.port, None, None, 3)
    try:
        got = session.list_vars("main")
    finally:
        session.close()
    assert got["ups.status"] == "OL" and got["battery.charge"] == "100"
    assert got["ups.mfr"] == "Santak"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("error", ["ACCESS-DENIED", "DATA-STALE", "DRIVER-NOT-CONNECTED"])
def test_upsd_errors_keep_upsd_words(backend, error):
    with SimulatedUpsd() as sim:
        sim.set("main", {"ups.status": "OL"})
        sim.fail("main", error)
        session = connect(backend, "127.0.0.1", sim.port, "mon", "secret", 3)
        with pytest.raises(NutError, match=f"^ERR {error}$"):
            session.list_vars("main")
        session.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_ups_and_refused_connection(upsd, backend):
    session = connect(backend, "127.0.0.1", upsd.port, None, None, 3)
    with pytest.raises(NutError, match="ERR UNKNOWN-UPS"):
        session.list_vars("nosuch")
    session.close()
    with SimulatedUpsd() as sim:
        port = sim.port
    with pytest.raises(NutError, match="refused"):
        connect(backend, "127.0.0.1", port, None, None, 3)


def test_auto_falls_back_to_pynutclient_without_telnetlib(upsd):
    # A Python without telnetlib, as 3.13 is: nut2 cannot import.
    code = ("import sys; sys.modules['telnetlib'] = None\n"
            "from agent.ups.nut_client import available_backends, connect\n"
            "assert available_backends() == ['pynut'], available_backends()\n"
            f"s = connect('auto', '127.0.0.1', {upsd.port}, None, None, 3)\n"
            "print(s.backend, s.list_vars('main')['ups.status'])\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["pynut", "OL"]
