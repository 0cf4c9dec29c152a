"""Traps change a port's state at once; port actions SET and read back.

A real agent process listens for traps sent with net-snmp's `snmptrap`;
the switch is snmpsim serving the system and IF-MIB rows of a real
recording (Cisco SG350-10), copied into the test's own folder so the test
can change it. SETs go to snmpsim only, never to net-snmp's snmpd
(realstack.md: it acts on this machine's real interfaces).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from .support.agent import AgentProcess
from .support.paths import REPO, data_dir, need_binary
from .support.snmpsim import SnmpSim, free_udp_port, render, subset

LINK_DOWN, LINK_UP, COLD_START = "1.3.6.1.6.3.1.1.5.3", "1.3.6.1.6.3.1.1.5.4", "1.3.6.1.6.3.1.1.5.1"
ADMIN, OPER = "1.3.6.1.2.1.2.2.1.7.", "1.3.6.1.2.1.2.2.1.8."
GI1, GI9 = 1, 9      # in the recording: gi1 up (our primary uplink), gi9 down (backup line)


@pytest.fixture()
def sim(tmp_path):
    records = subset(data_dir("snmprec", "cisco-sb-sg350-10.snmprec"))
    # Make the backup port's admin status writable (snmpsim writecache) and down.
    records[f"{ADMIN}{GI9}"] = "2:writecache|value=2"
    s = SnmpSim(tmp_path / "sim")
    s.records = records
    s.write("branch-sw", render(records))
    s.start()
    yield s
    s.stop()


def switch_config(sim, trap_port: int, **extra) -> dict:
    return {
        "agent": {"id": "a1", "branch": "BR-1"},
        "state": {"debounce": 2},
        "switches": [{
            "name": "funds", "host": "127.0.0.1", "port": sim.port,
            "snmp": {"version": "2c", "community": "branch-sw"},
            "trap_community": "traps-secret",
            "interval": 60, "timeout": 1, "retries": 0,
            "interfaces": [{"name": "gi1", "id": "primary", "role": "uplink-primary"},
                           {"name": "gi9", "id": "backup", "role": "uplink-backup"}],
            "actions": {"ports": ["backup", "primary"]},
            **extra}],
        "traps": {"address": "::", "port": trap_port},
    }


def snmptrap(port: int, trap_oid: str, *varbinds: str, community="traps-secret",
             host="127.0.0.1") -> None:
    target = f"udp6:[{host}]:{port}" if ":" in host else f"127.0.0.1:{port}"
    subprocess.run([need_binary("snmptrap"), "-v2c", "-c", community, target, "", trap_oid,
                    *varbinds], check=True, capture_output=True)


def link_varbinds(index: int, admin: int, oper: int) -> list[str]:
    return [f"1.3.6.1.2.1.2.2.1.1.{index}", "i", str(index),
            f"{ADMIN}{index}", "i", str(admin), f"{OPER}{index}", "i", str(oper)]


def test_link_down_trap_changes_state_at_once_and_a_poll_confirms(sim, tmp_path):
    trap_port = free_udp_port()
    with AgentProcess(tmp_path, switch_config(sim, trap_port)) as agent:
        agent.wait_event(check="switch/funds/if/primary/link", new_state="ok")
        # The cable is pulled: the device's table says so, and it sends linkDown.
        sim.records[f"{OPER}{GI1}"] = "2|2"
        sim.write("branch-sw", render(sim.records))
        sent = time.time()
        snmptrap(trap_port, LINK_DOWN, *link_varbinds(GI1, 1, 2))
        event = agent.wait_event(check="switch/funds/if/primary/link", new_state="critical",
                                 timeout=10)
        # The poll interval is 60 s and debounce 2: only the trap explains this.
        # The agent stamps the event when the trap arrives (bench: ~10 ms);
        # the issue asks for under a second, kept here with a wide margin.
        from datetime import datetime
        observed = datetime.fromisoformat(event["observed_at"].replace("Z", "+00:00")).timestamp()
        assert observed - sent < 1.0, observed - sent
        assert "linkDown trap" in event["reason"]
        assert event["diagnosis"] == "device"
        # The trap asked for a poll at once: it agrees, so no second event, and
        # /metrics shows the port down from the poll.
        deadline = time.monotonic() + 10
        while agent.metric("branchwatch_interface_oper_up", device="funds", ifname="gi1") != 0:
            assert time.monotonic() < deadline, "the confirming poll did not run"
            time.sleep(0.2)
        assert [e["new_state"] for e in agent.events_for("switch/funds/if/primary/link")] == \
            ["ok", "critical"]
        assert agent.metric("branchwatch_snmp_traps_received_total", device="funds",
                            trap="linkDown") == 1

        # linkUp: back at once too.
        sim.records[f"{OPER}{GI1}"] = "2|1"
        sim.write("branch-sw", render(sim.records))
        snmptrap(trap_port, LINK_UP, *link_varbinds(GI1, 1, 1))
        agent.wait_event(check="switch/funds/if/primary/link", new_state="ok", old_state="critical",
                         timeout=10)


def test_cold_start_trap_marks_a_restart(sim, tmp_path):
    trap_port = free_udp_port()
    with AgentProcess(tmp_path, switch_config(sim, trap_port)) as agent:
        agent.wait_event(check="switch/funds/restart")
        snmptrap(trap_port, COLD_START)
        event = agent.wait_event(check="switch/funds/restart", new_state="warning", timeout=10)
        assert "coldStart" in event["reason"]


def test_traps_with_wrong_community_or_unknown_source_are_counted_and_dropped(sim, tmp_path):
    trap_port = free_udp_port()
    with AgentProcess(tmp_path, switch_config(sim, trap_port)) as agent:
        agent.wait_event(check="switch/funds/if/primary/link", new_state="ok")
        snmptrap(trap_port, LINK_DOWN, *link_varbinds(GI1, 1, 2), community="guess")
        # ::1 is not the switch's address (127.0.0.1): an unknown source.
        snmptrap(trap_port, LINK_DOWN, *link_varbinds(GI1, 1, 2), host="::1")
        deadline = time.monotonic() + 10
        while True:
            wrong = agent.metric("branchwatch_snmp_traps_dropped_total", reason="community")
            unknown = agent.metric("branchwatch_snmp_traps_dropped_total", reason="unknown_source")
            if (wrong, unknown) == (1, 1):
                break
            assert time.monotonic() < deadline, (wrong, unknown)
            time.sleep(0.2)
        time.sleep(0.5)
        assert [e["new_state"] for e in agent.events_for("switch/funds/if/primary/link")] == ["ok"]
        assert agent.metric("branchwatch_snmp_traps_received_total", device="funds",
                            trap="linkDown") is None


def run_port(config_path, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "agent.cli", "port", "--config",
                           str(config_path), *args], capture_output=True, text=True, env=env,
                          timeout=60)


def write_config(tmp_path, config: dict):
    import yaml
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snmpget(sim, oid: str, community="branch-sw") -> str:
    done = subprocess.run([need_binary("snmpget"), "-v2c", "-c", community, "-Oqv",
                           f"127.0.0.1:{sim.port}", oid], capture_output=True, text=True)
    return done.stdout.strip()


def test_set_brings_the_backup_port_up_and_reads_it_back(sim, tmp_path):
    path = write_config(tmp_path, switch_config(sim, free_udp_port()))
    assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
    done = run_port(path, "funds", "backup", "up", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["outcome"], result["ifindex"], result["before"], result["after"]) == \
        ("done", GI9, "down", "up")
    assert snmpget(sim, f"{ADMIN}{GI9}") == "1"
    done = run_port(path, "funds", "backup", "down")
    assert done.returncode == 0 and done.stdout.startswith("done:"), done.stderr
    assert snmpget(sim, f"{ADMIN}{GI9}") == "2"


def test_a_refused_set_is_reported_as_refused(sim, tmp_path):
    path = write_config(tmp_path, switch_config(sim, free_udp_port()))
    done = run_port(path, "funds", "primary", "down", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["outcome"] == "refused" and "not writable" in result["message"], result
    assert snmpget(sim, f"{ADMIN}{GI1}") == "1"


def test_actions_are_off_unless_the_config_allows_the_port(sim, tmp_path):
    config = switch_config(sim, free_udp_port(), actions={"ports": ["primary"]})
    path = write_config(tmp_path, config)
    done = run_port(path, "funds", "backup", "up")
    assert done.returncode == 1
    assert done.stderr.startswith("not_allowed: actions are not enabled for funds/backup")
    assert snmpget(sim, f"{ADMIN}{GI9}") == "2"
    del config["switches"][0]["actions"]
    done = run_port(write_config(tmp_path, config), "funds", "backup", "up")
    assert done.returncode == 1 and "not_allowed" in done.stderr


def test_a_set_with_the_wrong_write_community_reports_no_answer(sim, tmp_path):
    config = switch_config(sim, free_udp_port(), actions={
        "ports": ["backup"], "write": {"version": "2c", "community": "not-the-one"}})
    done = run_port(write_config(tmp_path, config), "funds", "backup", "up", "--json")
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["outcome"] == "failed" and "no answer" in result["message"], result
    assert snmpget(sim, f"{ADMIN}{GI9}") == "2"


def test_a_trap_port_that_cannot_be_bound_is_a_clear_config_error(sim, tmp_path):
    import socket
    taken = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    taken.bind(("::", 0))
    port = taken.getsockname()[1]
    try:
        path = write_config(tmp_path, switch_config(sim, port))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        done = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config", str(path)],
                              capture_output=True, text=True, env=env, timeout=60)
    finally:
        taken.close()
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"branchwatch: {path}: traps: cannot listen on :::{port}: "), last
    assert "Traceback" not in done.stderr
