"""The simulated switch (agent/sim/snmp_switch.py) answers the agent's own SNMP
code the way a real switch does: the switch probe reads it, port actions SET
and read back, refusals come back as SNMP errors. net-snmp's tools, where
installed, check it from outside (the SET goes to the simulator only).
"""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from agent.config import from_dict
from agent.links import LinkView
from agent.model import State
from agent.sim.snmp_switch import SimPort, SimulatedSwitch
from agent.snmp.actions import set_port_admin
from agent.snmp.switch_probe import SwitchProbe

from .support.paths import need_binary

ADMIN, OPER = "1.3.6.1.2.1.2.2.1.7.", "1.3.6.1.2.1.2.2.1.8."


def ports() -> list[SimPort]:
    return [SimPort("gi1", alias="uplink carrier A"),
            SimPort("gi2", alias="uplink carrier B", admin_up=False, writable=True),
            SimPort("gi3", alias="teller 1", descr="FastEthernet0/3", speed_mbps=100)]


@pytest.fixture()
def switch():
    with SimulatedSwitch(ports(), name="branch-sw") as sw:
        yield sw


def config(sw: SimulatedSwitch, community="public", write="private", **switch) -> object:
    return from_dict({"agent": {"id": "a1", "branch": "BR-1"}, "switches": [{
        "name": "funds", "host": "127.0.0.1", "port": sw.port,
        "snmp": {"version": "2c", "community": community},
        "interval": 1, "timeout": 0.5, "retries": 0,
        "interfaces": [{"name": "gi1", "id": "primary", "role": "uplink-primary"},
                       {"name": "gi2", "id": "backup", "role": "uplink-backup"},
                       {"alias": "teller 1", "id": "teller"},
                       {"descr": "GigabitEthernet0/1", "id": "by-descr"}],
        "actions": {"ports": ["backup", "primary"],
                    "write": {"version": "2c", "community": write}},
        **switch}]}, "<test>")


def poll(cfg, times: int = 1, pause: float = 0.0):
    """Poll the switch with the agent's probe; the last reading."""
    probe = SwitchProbe(cfg.switches[0], LinkView())

    async def run():
        try:
            reading = None
            for i in range(times):
                if i:
                    await asyncio.sleep(pause)
                reading = await probe.aread()
            return reading
        finally:
            probe.close()
    return asyncio.run(run())


def states(reading) -> dict[str, tuple[State, str]]:
    return {c.check: (c.state, c.reason) for c in reading.checks}


def test_the_switch_probe_reads_system_group_and_if_mib(switch):
    reading = poll(config(switch), times=2, pause=0.3)
    assert reading.ok, reading.error
    got = states(reading)
    assert got["switch/funds/reachable"] == (State.OK, "answering (sysName 'branch-sw')")
    assert got["switch/funds/restart"][0] is State.OK        # up for weeks, not "just restarted"
    assert got["switch/funds/if/primary/link"] == (State.OK, "up, 1 Gbit/s")
    assert got["switch/funds/if/backup/link"][0] is State.OK  # admin down is no fault
    assert "administratively down" in got["switch/funds/if/backup/link"][1]
    assert got["switch/funds/if/teller/link"] == (State.OK, "up, 100 Mbit/s")
    assert got["switch/funds/if/by-descr/link"][0] is State.OK
    assert got["switch/funds/if/primary/errors"][0] is State.OK
    ports_ = {p["id"]: p for p in reading.detail["interfaces"]}
    assert (ports_["primary"]["ifindex"], ports_["primary"]["ifname"],
            ports_["primary"]["alias"]) == (1, "gi1", "uplink carrier A")
    assert (ports_["backup"]["admin"], ports_["backup"]["oper"]) == ("down", "down")
    assert ports_["teller"]["ifindex"] == 3 and ports_["teller"]["descr"] == "FastEthernet0/3"
    assert reading.detail["interfaces_on_device"] == 3
    # 64-bit counters grow while a link is up, and stay while it is down.
    octets = {s.labels: s.value for s in reading.samples
              if s.name == "branchwatch_interface_in_octets"}
    by_port = {dict(labels)["ifname"]: v for labels, v in octets.items()}
    assert by_port["gi1"] > 0 and by_port["gi2"] == 0


def test_a_pulled_cable_is_a_down_uplink_a_device_fault(switch):
    switch.set_connected("gi1", False)
    got = {c.check: c for c in poll(config(switch)).checks}
    link = got["switch/funds/if/primary/link"]
    assert (link.state, link.reason, link.diagnosis) == (State.CRITICAL, "down", "device")
    assert switch.admin_up("gi1") and not switch.oper_up("gi1")
    switch.set_connected("gi1", True)
    assert states(poll(config(switch)))["switch/funds/if/primary/link"][0] is State.OK


def test_set_port_admin_brings_the_backup_port_up_and_down(switch):
    cfg = config(switch)
    up = asyncio.run(set_port_admin(cfg, "funds", "backup", True))
    assert (up.ok, up.outcome, up.ifindex, up.before, up.after, up.oper_after) == \
        (True, "done", 2, "down", "up", "up"), up
    assert switch.admin_up("gi2") and switch.oper_up("gi2")
    assert states(poll(cfg))["switch/funds/if/backup/link"] == (State.OK, "up, 1 Gbit/s")
    down = asyncio.run(set_port_admin(cfg, "funds", "backup", False))
    assert (down.ok, down.after, down.oper_after) == (True, "down", "down"), down
    assert [(s.port, s.admin_up) for s in switch.sets] == [("gi2", True), ("gi2", False)]


def test_refusals_come_back_as_snmp_errors(switch):
    # The read community may not write: noAccess.
    ro = asyncio.run(set_port_admin(config(switch, write="public"), "funds", "backup", True))
    assert (ro.ok, ro.outcome) == (False, "refused") and "noAccess" in ro.message, ro
    # A port the switch does not let anyone change: notWritable.
    fixed = asyncio.run(set_port_admin(config(switch), "funds", "primary", False))
    assert (fixed.ok, fixed.outcome) == (False, "refused") and "notWritable" in fixed.message
    assert switch.sets == [] and switch.admin_up("gi1") and not switch.admin_up("gi2")


def test_a_wrong_community_gets_no_answer(switch):
    reading = poll(config(switch, community="guess"))
    assert not reading.ok
    state, reason = states(reading)["switch/funds/reachable"]
    assert state is State.CRITICAL and "no answer" in reason


def test_a_restart_resets_sys_uptime(switch):
    cfg = config(switch)
    probe = SwitchProbe(cfg.switches[0], LinkView())

    async def run():
        try:
            await probe.aread()
            switch.restart()
            return await probe.aread()
        finally:
            probe.close()
    state, reason = states(asyncio.run(run()))["switch/funds/restart"]
    assert state is State.WARNING and reason.startswith("restarted"), reason


def net_snmp(tool: str, sw: SimulatedSwitch, community: str, *args: str):
    return subprocess.run([need_binary(tool), "-v2c", "-c", community, "-On", "-t", "1",
                           "-r", "0", f"127.0.0.1:{sw.port}", *args],
                          capture_output=True, text=True, timeout=20)


def test_net_snmp_walks_reads_and_sets_it(switch):
    walk = net_snmp("snmpbulkwalk", switch, "public", "1.3.6.1.2.1")
    assert walk.returncode == 0, walk.stderr
    # Past the end of its MIB the switch says so once (endOfMibView), as real agents do.
    lines = [line for line in walk.stdout.splitlines() if " = " in line]
    assert "No more variables" in lines[-1] and "No more variables" not in lines[-2]
    oids = [line.split(" = ")[0] for line in lines[:-1]]
    assert oids[0] == ".1.3.6.1.2.1.1.1.0" and ".1.3.6.1.2.1.31.1.1.1.18.3" in oids
    key = [tuple(int(x) for x in o.strip(".").split(".")) for o in oids]
    assert key == sorted(key) and len(set(key)) == len(key)   # in order, each once
    assert '.1.3.6.1.2.1.31.1.1.1.1.2 = STRING: "gi2"' in walk.stdout
    assert ".1.3.6.1.2.1.31.1.1.1.15.3 = Gauge32: 100" in walk.stdout

    done = net_snmp("snmpset", switch, "private", ADMIN + "2", "i", "1")
    assert done.returncode == 0 and "INTEGER: 1" in done.stdout, done.stderr
    got = net_snmp("snmpget", switch, "public", ADMIN + "2", OPER + "2", OPER + "9")
    assert got.stdout.splitlines()[:2] == [f".{ADMIN}2 = INTEGER: 1", f".{OPER}2 = INTEGER: 1"]
    assert "No Such Instance" in got.stdout.splitlines()[2]

    for community, args, error in (("public", ("i", "2"), "noAccess"),
                                   ("private", ("i", "3"), "wrongValue"),
                                   ("private", ("s", "down"), "wrongType")):
        refused = net_snmp("snmpset", switch, community, ADMIN + "2", *args)
        assert refused.returncode != 0 and error in refused.stderr, refused.stderr
    refused = net_snmp("snmpset", switch, "private", ADMIN + "1", "i", "2")
    assert "notWritable" in refused.stderr
    assert [(s.port, s.admin_up) for s in switch.sets] == [("gi2", True)]
