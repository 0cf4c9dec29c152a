"""One live agent with everything configured (a UPS on a real upsd, a serial
UPS on a real pty, two switches on snmpsim, lines, traps, host checks):
`promtool check metrics` passes on its /metrics, and the process never
imported a collector module (PYTHONPROFILEIMPORTTIME lists every import)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request

import pytest

from agent.sim.megatec_responder import MegatecResponder

from .support.agent import AgentProcess
from .support.nut import NutServer
from .support.paths import data_dir, need_binary
from .support.snmpsim import SnmpSim, free_udp_port, render, subset

LINK_DOWN = "1.3.6.1.6.3.1.1.5.3"
ONLINE = ("ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\nbattery.voltage: 27.0\n"
          "input.voltage: 230\ninput.frequency: 50.0\noutput.voltage: 230\nups.load: 20\n"
          "ups.temperature: 30\nups.mfr: Santak\nups.model: C3K\n")
# Families that only appear once their part has data: wait for all of them.
WANTED = ("branchwatch_ups_load_ratio", "branchwatch_interface_speed_bytes",
          "branchwatch_interface_in_octets_total", "branchwatch_probe_rtt_seconds",
          "branchwatch_snmp_traps_received_total", "branchwatch_filesystem_used_ratio")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """The agent running with every kind of target; yields (agent, /metrics text)."""
    promtool = need_binary("promtool")
    snmptrap = need_binary("snmptrap")
    folder = tmp_path_factory.mktemp("live")
    sim = SnmpSim(folder / "sim")
    for community in ("cisco-sb-sg350-10", "cisco-catalyst3750-ios"):   # system + IF-MIB only
        sim.write(community, render(subset(data_dir("snmprec", f"{community}.snmprec"))))
    sim.start(probe_community="cisco-sb-sg350-10")
    listener = socket.create_server(("127.0.0.1", 0))
    trap_port = free_udp_port()
    with NutServer(folder / "nut", {"ups0": ONLINE}) as nut, MegatecResponder() as serial:
        switches = [{"name": name, "host": "127.0.0.1", "port": sim.port,
                     "snmp": {"community": community}, "interval": 1,
                     "trap_community": "traps-secret",
                     "interfaces": [{"name": port, "id": "uplink", "role": "uplink-primary"}]}
                    for name, community, port in (("funds", "cisco-sb-sg350-10", "gi1"),
                                                  ("nonfunds", "cisco-catalyst3750-ios",
                                                   "Gi1/0/1"))]
        config = {
            "agent": {"id": "live", "branch": "b001", "region": "north"},
            "ups": [{"name": "mains", "nut": {"ups": "ups0", "port": nut.port}},
                    {"name": "lobby", "serial": {"port": serial.port_path, "timeout": 0.5}}],
            "switches": switches,
            "traps": {"address": "127.0.0.1", "port": trap_port},
            "lines": [{"name": "primary", "interval": 1, "count": 1, "timeout": 0.5,
                       "method": "tcp", "targets": [{"name": "core", "host": "127.0.0.1",
                                                     "port": listener.getsockname()[1]}]}],
            "host": {"disks": [{"mount": "/"}]},
        }
        mp = pytest.MonkeyPatch()
        mp.setenv("PYTHONPROFILEIMPORTTIME", "1")
        try:
            with AgentProcess(folder, config) as agent:
                agent.wait_event(check="switch/funds/if/uplink/link", new_state="ok", timeout=30)
                subprocess.run([snmptrap, "-v2c", "-c", "traps-secret", f"127.0.0.1:{trap_port}",
                                "", LINK_DOWN, "1.3.6.1.2.1.2.2.1.1.1", "i", "1"],
                               check=True, capture_output=True)
                text = wait_for_families(agent.metrics_url, WANTED)
            yield agent, text, promtool
        finally:
            mp.undo()
            listener.close()
            sim.stop()


def wait_for_families(url: str, wanted, timeout: float = 60.0) -> str:
    """/metrics once every wanted family has a sample (generous: polls start staggered)."""
    deadline = time.monotonic() + timeout
    while True:
        text = urllib.request.urlopen(url, timeout=5).read().decode()
        missing = [w for w in wanted if not re.search(rf"^{w}{{", text, re.M)]
        if not missing:
            return text
        assert time.monotonic() < deadline, f"never scraped {missing}:\n{text}"
        time.sleep(0.2)


def test_promtool_check_metrics_passes(live):
    _agent, text, promtool = live
    done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), \
        done.stdout + done.stderr
    # the renamed speed gauge is in bytes per second: 1 Gbit/s is 125,000,000
    assert re.search(r'^branchwatch_interface_speed_bytes\{.*device="nonfunds".*\} 1\.25e\+08$',
                     text, re.M), text


def test_promtool_would_refuse_the_old_speed_name(live):
    """The check above can fail: the old name is what promtool refused."""
    _agent, _text, promtool = live
    old = ("# HELP branchwatch_interface_speed_bits_per_second Port speed\n"
           "# TYPE branchwatch_interface_speed_bits_per_second gauge\n"
           "branchwatch_interface_speed_bits_per_second 1e9\n")
    done = subprocess.run([promtool, "check", "metrics"], input=old, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "base unit" in done.stdout + done.stderr


def imported_modules(stderr_lines: list[str]) -> set[str]:
    """Module names from -X importtime lines: 'import time: self | cumulative | name'."""
    out = set()
    for line in stderr_lines:
        if line.startswith("import time:") and line.count("|") == 2:
            out.add(line.rsplit("|", 1)[1].strip())
    return out


def test_the_agent_never_imports_the_collector(live):
    agent, _text, _promtool = live
    modules = imported_modules(agent.stderr)
    assert "agent.snmp.switch_probe" in modules and "agent.ups.nut_probe" in modules  # it saw them
    assert sorted(m for m in modules if m == "collector" or m.startswith("collector.")) == []
