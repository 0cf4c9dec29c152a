"""A real Prometheus scrapes a real agent reading a real upsd, and its
query API returns the UPS metrics with their labels."""

from __future__ import annotations

import urllib.parse

from .support.agent import AgentProcess
from .support.nut import NutServer
from .support.prometheus import PrometheusServer
from .test_nut_agent import ON_BATTERY, ONLINE


def test_prometheus_reads_the_agent(tmp_path):
    with NutServer(tmp_path / "nut", {"main": ONLINE}) as nut:
        config = {"agent": {"id": "prom-agent", "branch": "b042", "region": "south"},
                  "state": {"debounce": 1},
                  "ups": [{"name": "main", "interval": 0.5, "nut": {"ups": "main", "port": nut.port}}]}
        with AgentProcess(tmp_path, config) as agent:
            target = urllib.parse.urlsplit(agent.metrics_url).netloc
            with PrometheusServer(tmp_path / "prom", [target]) as prom:
                up = prom.wait_query('up{job="branchwatch-agent"} == 1')
                assert up
                charge = prom.wait_query('branchwatch_ups_battery_charge_ratio{ups="main"}')
                assert charge[0]["metric"]["branch"] == "b042"
                assert float(charge[0]["value"][1]) == 1.0
                assert prom.wait_query('branchwatch_ups_status{ups="main",flag="OL"} == 1')
                assert prom.wait_query('branchwatch_ups_input_voltage_volts{ups="main"} == 230')
                assert prom.wait_query('branchwatch_build_info')

                nut.set_device("main", ON_BATTERY)
                agent.wait_event(check="ups/main/on_battery", new_state="warning")
                flagged = prom.wait_query('branchwatch_ups_status{ups="main",flag="OB"} == 1')
                assert flagged[0]["metric"]["branch"] == "b042"
                state = prom.wait_query('branchwatch_check_state{check="ups/main/on_battery"} == 1')
                assert state
