"""Device fault or line fault (branch plan §5.1, domain.md §4.1), end to end.

Everything real, inside network namespaces this test creates: the agent
runs in the branch namespace; its switch is snmpsim there (serving the
system and IF-MIB rows of a real Cisco SG350 recording), the line's far
side is the other namespace across a veth, and "cutting the line" sets the
far end of the veth down.
"""

from __future__ import annotations

import pytest

from .support.agent import AgentProcess
from .support.netns import NetnsPair
from .support.paths import data_dir
from .support.snmpsim import SnmpSim, render, subset

OPER_GI1 = "1.3.6.1.2.1.2.2.1.8.1"   # gi1: the primary uplink port, up in the recording
LINE = "line/primary/gw"
PORT = "switch/funds/if/primary/link"
SWITCH = "switch/funds/reachable"


@pytest.fixture()
def netns():
    pair = NetnsPair().create()
    yield pair
    pair.delete()


@pytest.fixture()
def sim(netns, tmp_path):
    records = subset(data_dir("snmprec", "cisco-sb-sg350-10.snmprec"))
    s = SnmpSim(tmp_path / "sim", prefix=["ip", "netns", "exec", netns.branch])
    s.records = records
    s.write("funds", render(records))
    s.start()
    yield s
    s.stop()


def config(netns: NetnsPair, sim: SnmpSim) -> dict:
    return {
        "agent": {"id": "br-7", "branch": "BR-7"},
        "state": {"debounce": 2, "recheck_interval": 0.2},
        "switches": [{
            "name": "funds", "host": "127.0.0.1", "port": sim.port,
            "snmp": {"community": "funds"}, "interval": 1, "timeout": 0.5, "retries": 0,
            "local_interface": netns.branch_nic,
            "interfaces": [{"name": "gi1", "id": "primary", "role": "uplink-primary"}]}],
        "lines": [{"name": "primary", "uplink": {"switch": "funds", "interface": "primary"},
                   "source": netns.branch_address, "interval": 0.5, "count": 2, "timeout": 0.2,
                   "targets": [{"name": "gw", "host": netns.far_address}]}],
    }


def set_port(sim: SnmpSim, up: bool) -> None:
    sim.records[OPER_GI1] = f"2|{1 if up else 2}"
    sim.write("funds", render(sim.records))


def test_line_fault_then_device_fault_then_silent_switch(netns, sim, tmp_path):
    with AgentProcess(tmp_path, config(netns, sim),
                      prefix=["ip", "netns", "exec", netns.branch]) as agent:
        agent.wait_event(check=LINE, new_state="ok")
        agent.wait_event(check=PORT, new_state="ok")

        # The carrier's line is cut, our uplink port stays up: a line fault.
        netns.cut()
        e = agent.wait_event(check=LINE, old_state="ok", new_state="critical")
        assert e["diagnosis"] == "line", e
        assert "line fault: uplink port is up but the far side does not answer" in e["reason"]
        assert agent.events_for(PORT)[-1]["new_state"] == "ok"
        netns.restore()
        agent.wait_event(check=LINE, old_state="critical", new_state="ok")

        # Now the switch's uplink port goes down too: a device fault, on both
        # the port's check and the line's.
        set_port(sim, up=False)
        e = agent.wait_event(check=PORT, old_state="ok", new_state="critical")
        assert e["diagnosis"] == "device"
        seen = len(agent.events)
        netns.cut()
        e = agent.wait_event(check=LINE, new_state="critical", old_state="ok", after=seen)
        assert e["diagnosis"] == "device" and "device fault: uplink port is down" in e["reason"]
        seen = len(agent.events)
        netns.restore()
        agent.wait_event(check=LINE, old_state="critical", new_state="ok", after=seen)

        # The switch stops answering while this machine's own link is up: device.
        sim.stop()
        e = agent.wait_event(check=SWITCH, old_state="ok", new_state="critical", timeout=15)
        assert e["diagnosis"] == "device"
        assert e["reason"].startswith("cannot see the switch: no answer")
    assert agent.proc.returncode == 0


def test_silent_switch_with_our_own_link_down_is_a_local_fault(netns, sim, tmp_path):
    with AgentProcess(tmp_path, config(netns, sim),
                      prefix=["ip", "netns", "exec", netns.branch]) as agent:
        agent.wait_event(check=SWITCH, new_state="ok")
        netns.cut()            # this machine's NIC towards the switch loses carrier
        sim.stop()
        e = agent.wait_event(check=SWITCH, old_state="ok", new_state="critical", timeout=15)
        assert e["diagnosis"] == "local", e
