"""The agent's /metrics: a catalogue of every metric and a scrape-time view.

Probes never run during a scrape: `SnapshotCollector` renders what the
runner last stored, so a slow UPS cannot stall Prometheus.
A test holds the catalogue to the truth: every metric emitted is listed
here, and every one listed is emitted by some probe.
"""

from __future__ import annotations

import platform
import threading

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from . import __version__
from .model import Sample

# name: (type, help). Base units in the name, as Prometheus asks.
CATALOGUE: dict[str, tuple[str, str]] = {
    "branchwatch_build_info": ("gauge", "Agent version and Python, always 1"),
    "branchwatch_agent_info": ("gauge", "Agent identity: agent id, branch and region, always 1"),
    "branchwatch_check_state": ("gauge", "Debounced check state: 0 ok, 1 warning, 2 critical, 3 unknown"),
    "branchwatch_check_flapping": ("gauge", "1 while the check is flapping"),
    "branchwatch_probe_success": ("gauge", "1 if the probe's last run could read its target"),
    "branchwatch_probe_duration_seconds": ("gauge", "How long the probe's last run took"),
    "branchwatch_probe_last_run_timestamp_seconds": ("gauge", "When the probe last ran (Unix time)"),
    "branchwatch_events": ("counter", "State-change events emitted"),
    # UPS, whatever the path (NUT, serial, SNMP)
    "branchwatch_ups_status": ("gauge", "1 if the UPS status flag is set, per NUT flag"),
    "branchwatch_ups_info": ("gauge", "UPS source, manufacturer and model, always 1"),
    "branchwatch_ups_battery_charge_ratio": ("gauge", "Battery charge, 0 to 1"),
    "branchwatch_ups_battery_runtime_seconds": ("gauge", "Estimated battery runtime"),
    "branchwatch_ups_battery_voltage_volts": ("gauge", "Battery voltage as the UPS reports it"),
    "branchwatch_ups_input_voltage_volts": ("gauge", "Input (mains) voltage"),
    "branchwatch_ups_input_frequency_hertz": ("gauge", "Input frequency"),
    "branchwatch_ups_output_voltage_volts": ("gauge", "Output voltage"),
    "branchwatch_ups_load_ratio": ("gauge", "Load, 0 to 1 of the UPS rating"),
    "branchwatch_ups_temperature_celsius": ("gauge", "UPS temperature"),
    # switches (SNMP)
    "branchwatch_switch_up": ("gauge", "1 if the switch answered SNMP on its last poll"),
    "branchwatch_switch_uptime_seconds": ("gauge", "Switch uptime (sysUpTime)"),
    "branchwatch_switch_info": ("gauge", "Switch sysName and sysDescr, always 1"),
    "branchwatch_interface_oper_up": ("gauge", "1 if the port is operationally up (ifOperStatus)"),
    "branchwatch_interface_admin_up": ("gauge", "1 if the port is administratively up (ifAdminStatus)"),
    # In bytes per second like node_exporter's node_network_speed_bytes
    # (promtool: the base unit is bytes); renamed from ..._bits_per_second.
    "branchwatch_interface_speed_bytes": ("gauge", "Port speed in bytes per second (ifHighSpeed, else ifSpeed, / 8)"),
    "branchwatch_interface_in_octets": ("counter", "Octets received (64-bit, or 32-bit with wraps added)"),
    "branchwatch_interface_out_octets": ("counter", "Octets sent (64-bit, or 32-bit with wraps added)"),
    "branchwatch_interface_in_errors": ("counter", "Inbound packets with errors"),
    "branchwatch_interface_in_discards": ("counter", "Inbound packets discarded"),
    "branchwatch_interface_out_errors": ("counter", "Outbound packets with errors"),
    "branchwatch_snmp_traps_received": ("counter", "SNMP traps accepted, by device and trap"),
    "branchwatch_snmp_traps_dropped": ("counter", "SNMP traps dropped, by reason"),
    # lines and reachability
    "branchwatch_probe_rtt_seconds": ("gauge", "Average round-trip time to a target over a line"),
    "branchwatch_probe_loss_ratio": ("gauge", "Share of probes to a target that got no answer, 0 to 1"),
    # delivery to the collector
    "branchwatch_spool_depth": ("gauge", "Events in the local spool waiting for the collector"),
    "branchwatch_spool_dropped": ("counter", "Oldest events dropped because the spool was full"),
    "branchwatch_delivery_failures": ("counter", "Failed deliveries to the collector, by endpoint"),
    "branchwatch_collector_url_active": ("gauge", "1 for the collector URL in use, 0 for the others"),
    "branchwatch_collector_url_swaps": ("counter", "Times the agent moved to the next collector URL"),
    "branchwatch_spool_dead_letter_events": ("gauge", "Events the collector refused, set aside in the spool"),
    "branchwatch_spool_pending_events": ("gauge", "Events held in memory because the spool cannot be written"),
    "branchwatch_agent_loop_errors": ("counter", "Exceptions met by an agent loop (each retried), by loop"),
    # automatic uplink failover (agent/failover_runner.py, domain.md §4.1)
    "branchwatch_failover_active": ("gauge", "1 while the agent has failed over to the backup line"),
    "branchwatch_failover_swaps": ("counter", "Uplink swaps attempted, by direction (fail_over, swap_back)"),
    "branchwatch_failover_blocked": ("counter", "Uplink swaps held back by max_swaps_per_hour"),
    # local services and host
    "branchwatch_process_count": ("gauge", "Processes matching a configured service"),
    "branchwatch_port_listening": ("gauge", "1 if something listens on the configured TCP port"),
    "branchwatch_tcp_up": ("gauge", "1 if a TCP connection to the target succeeded"),
    "branchwatch_tcp_connect_latency_seconds": ("gauge", "Time to establish a TCP connection"),
    "branchwatch_filesystem_used_ratio": ("gauge", "Used share of a filesystem, 0 to 1"),
    "branchwatch_filesystem_free_bytes": ("gauge", "Free bytes on a filesystem"),
    "branchwatch_memory_used_ratio": ("gauge", "Used share of memory, 0 to 1"),
    "branchwatch_load_per_cpu": ("gauge", "Load average divided by CPU count"),
    "branchwatch_backup_age_seconds": ("gauge", "Age of the newest backup file"),
    "branchwatch_backup_size_bytes": ("gauge", "Size of the newest backup file"),
    "branchwatch_backup_files": ("gauge", "Backup files matching the glob"),
}


class Snapshot:
    """What the runner last saw, shared with the scrape thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self._samples: dict[str, list[Sample]] = {}
        self._events = 0

    def put(self, probe: str, samples: list[Sample]) -> None:
        """Replace one probe's samples."""
        with self._lock:
            self._samples[probe] = samples

    def count_events(self, n: int) -> None:
        with self._lock:
            self._events += n

    def view(self) -> tuple[list[Sample], int]:
        with self._lock:
            return [s for v in self._samples.values() for s in v], self._events


class SnapshotCollector(Collector):
    """Renders a Snapshot as metric families; no I/O."""

    def __init__(self, snapshot: Snapshot, branch: str, agent: str, region: str):
        self.snapshot = snapshot
        self.branch, self.agent, self.region = branch, agent, region

    def collect(self):
        samples, events = self.snapshot.view()
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {}
        fixed = [Sample.of("branchwatch_build_info", 1, version=__version__,
                           python=platform.python_version()),
                 Sample.of("branchwatch_agent_info", 1, agent=self.agent, region=self.region)]
        for s in fixed + samples:
            help_ = CATALOGUE[s.name][1]
            labels = (("branch", self.branch),) + s.labels
            fam = families.get(s.name)
            if fam is None:
                kind = CounterMetricFamily if CATALOGUE[s.name][0] == "counter" else GaugeMetricFamily
                fam = families[s.name] = kind(s.name, help_, labels=[k for k, _ in labels])
            fam.add_metric([v for _, v in labels], s.value)
        yield from families.values()
        events_fam = CounterMetricFamily("branchwatch_events", CATALOGUE["branchwatch_events"][1],
                                         labels=["branch"])
        events_fam.add_metric([self.branch], events)
        yield events_fam
