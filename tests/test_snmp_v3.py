"""SNMPv3 (USM, auth and privacy) against snmpsim's built-in v3 user.

snmpsim 1.2 answers v3 as user `simulator`, MD5 key `auctoritas`, DES key
`privatus`; the context name selects the recording (its community name).
"""

from __future__ import annotations

import asyncio

import pytest

from agent.schema_network import SnmpAuth
from agent.snmp.client import SnmpError, SnmpSession

from .support.paths import data_dir
from .support.snmpsim import SnmpSim

SYS_NAME = "1.3.6.1.2.1.1.5.0"


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = SnmpSim(tmp_path_factory.mktemp("v3"), [data_dir("snmprec")])
    s.start(probe_community="h3c-e528", timeout=240)   # indexing is slow on a busy machine
    yield s
    s.stop()


def v3(**kw) -> SnmpAuth:
    base = dict(version="3", user="simulator", auth_protocol="md5", auth_key="auctoritas",
                priv_protocol="des", priv_key="privatus", context="h3c-e528")
    return SnmpAuth(**{**base, **kw})


def get(sim, auth: SnmpAuth, oids=(SYS_NAME,)):
    async def run():
        s = SnmpSession("127.0.0.1", sim.port, auth, 1.0, 0)
        try:
            return await s.get(list(oids))
        finally:
            s.close()
    return asyncio.run(run())


def test_v3_with_auth_and_privacy_reads_the_recording(sim):
    assert get(sim, v3()) == {SYS_NAME: b"DUMSYS-01"}


def test_v3_context_selects_the_device(sim):
    assert get(sim, v3(context="ruijie-s5750-24gt-12sfp")) == {SYS_NAME: b"DUMSYS-06"}


def test_v3_wrong_key_is_an_error_with_the_reason(sim):
    with pytest.raises(SnmpError) as e:
        get(sim, v3(auth_key="not-the-key"))
    assert "authentication failed (wrong auth_key or auth_protocol)" in str(e.value)


def test_v3_unknown_user_says_so(sim):
    with pytest.raises(SnmpError) as e:
        get(sim, v3(user="nobody"))
    assert "user not known to the device" in str(e.value)
