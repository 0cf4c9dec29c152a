"""The agent against a real upsd + dummy-ups: power cut, low battery, mains
back; events on stdout and metrics on /metrics; both NUT client backends;
upsd faults are monitoring faults, not power faults."""

from __future__ import annotations

import pytest

from agent.ups.nut_client import available_backends

from .support.agent import AgentProcess
from .support.nut import NutServer

ONLINE = "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\ninput.voltage: 230.0\n" \
         "ups.load: 23\nups.mfr: Santak\nups.model: C3K\n"
ON_BATTERY = ONLINE.replace("OL", "OB DISCHRG").replace("230.0", "0.0").replace(
    "charge: 100", "charge: 64")
LOW_BATTERY = ON_BATTERY.replace("OB DISCHRG", "OB DISCHRG LB").replace("1800", "120")

BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(
    b not in available_backends(), reason=f"NUT client {b} not importable on this Python"))
    for b in ("nut2", "pynut")]


def agent_config(nut: NutServer, backend: str, ups: str = "main") -> dict:
    return {"agent": {"id": "test-agent", "branch": "b001", "region": "north"},
            "state": {"debounce": 1},
            "nut_client": backend,
            "ups": [{"name": "main", "interval": 0.5, "nut": {"ups": ups, "port": nut.port}}]}


@pytest.fixture
def nut(tmp_path):
    with NutServer(tmp_path / "nut", {"main": ONLINE}) as server:
        yield server


@pytest.mark.parametrize("backend", BACKENDS)
def test_power_cut_low_battery_and_back(tmp_path, nut, backend):
    with AgentProcess(tmp_path, agent_config(nut, backend)) as agent:
        agent.wait_event(check="ups/main/on_battery", old_state=None, new_state="ok")
        assert agent.metric("branchwatch_ups_status", ups="main", flag="OL") == 1
        assert agent.metric("branchwatch_ups_battery_charge_ratio", ups="main") == 1.0
        assert agent.metric("branchwatch_ups_input_voltage_volts", ups="main") == 230.0
        assert agent.metric("branchwatch_ups_load_ratio", ups="main") == pytest.approx(0.23)
        assert agent.metric("branchwatch_ups_info", ups="main", source="nut", mfr="Santak") == 1

        nut.set_device("main", ON_BATTERY)
        e = agent.wait_event(check="ups/main/on_battery", new_state="warning")
        assert e["old_state"] == "ok" and "on battery" in e["reason"]
        assert e["agent"] == "test-agent" and e["branch"] == "b001" and e["kind"] == "state"
        assert agent.metric("branchwatch_ups_status", ups="main", flag="OB") == 1
        assert agent.metric("branchwatch_ups_status", ups="main", flag="OL") == 0
        assert agent.metric("branchwatch_check_state", check="ups/main/on_battery") == 1

        nut.set_device("main", LOW_BATTERY)
        agent.wait_event(check="ups/main/battery_low", old_state="ok", new_state="critical")
        agent.wait_event(check="ups/main/battery_runtime", new_state="critical")
        assert agent.metric("branchwatch_check_state", check="ups/main/battery_low") == 2
        assert agent.metric("branchwatch_ups_battery_runtime_seconds", ups="main") == 120

        nut.set_device("main", ONLINE)
        agent.wait_event(check="ups/main/on_battery", old_state="warning", new_state="ok")
        agent.wait_event(check="ups/main/battery_low", old_state="critical", new_state="ok")
        # One event per change: no duplicates while a state holds.
        changes = [(e["old_state"], e["new_state"]) for e in agent.events_for("ups/main/on_battery")]
        assert changes == [(None, "ok"), ("ok", "warning"), ("warning", "ok")]
        assert agent.metric("branchwatch_check_state", check="ups/main/on_battery") == 0
        assert agent.metric("branchwatch_probe_success", probe="ups/main") == 1
    assert agent.proc.returncode == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_unknown_ups_is_a_monitoring_fault(tmp_path, nut, backend):
    with AgentProcess(tmp_path, agent_config(nut, backend, ups="nosuch")) as agent:
        e = agent.wait_event(check="ups/main/comm", new_state="critical")
        assert "cannot see the UPS" in e["reason"] and "UNKNOWN-UPS" in e["reason"]
        power = agent.wait_event(check="ups/main/on_battery")
        assert power["new_state"] == "unknown"
        assert agent.metric("branchwatch_probe_success", probe="ups/main") == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_upsd_down_then_back(tmp_path, nut, backend):
    with AgentProcess(tmp_path, agent_config(nut, backend)) as agent:
        agent.wait_event(check="ups/main/comm", new_state="ok")
        nut.stop_upsd()
        e = agent.wait_event(check="ups/main/comm", old_state="ok", new_state="critical")
        assert "cannot see the UPS" in e["reason"]
        agent.wait_event(check="ups/main/on_battery", old_state="ok", new_state="unknown")
        nut.restart_upsd()
        agent.wait_event(check="ups/main/comm", old_state="critical", new_state="ok", timeout=20)
        agent.wait_event(check="ups/main/on_battery", old_state="unknown", new_state="ok")


def test_stale_driver_is_a_monitoring_fault(tmp_path):
    import signal
    with NutServer(tmp_path / "nut", {"main": ONLINE}, maxage=3) as nut:
        with AgentProcess(tmp_path, agent_config(nut, "auto")) as agent:
            agent.wait_event(check="ups/main/comm", new_state="ok")
            nut.procs[0].send_signal(signal.SIGSTOP)  # the driver stops updating
            try:
                e = agent.wait_event(check="ups/main/comm", new_state="critical", timeout=30)
                assert "DATA-STALE" in e["reason"] or "DRIVER-NOT-CONNECTED" in e["reason"]
            finally:
                nut.procs[0].send_signal(signal.SIGCONT)
