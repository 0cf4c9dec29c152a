"""The metric catalogue is the truth: every metric the agent emits is listed
(with Prometheus naming), and every listed metric is emitted by some probe.
One agent with every kind of probe runs once against real things here."""

from __future__ import annotations

import re
import socket

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.config import from_dict
from agent.events import ListSink
from agent.metrics import CATALOGUE, Snapshot, SnapshotCollector
from agent.probes import build_probes
from agent.runner import Agent, run_probe_once
from agent.sim.megatec_responder import MegatecResponder

from .support.nut import NutServer
from .test_nut_agent import ONLINE

UNIT_SUFFIXES = ("_seconds", "_bytes", "_ratio", "_volts", "_hertz", "_celsius", "_info",
                 "_count", "_files", "_up", "_success", "_state", "_flapping", "_status",
                 "_listening", "_per_cpu", "_events", "_per_second", "_octets", "_errors",
                 "_discards", "_received", "_dropped")


def test_catalogue_names_follow_prometheus_conventions():
    for name, (kind, help_) in CATALOGUE.items():
        assert re.fullmatch(r"branchwatch_[a-z0-9_]+", name), name
        assert name.endswith(UNIT_SUFFIXES), f"{name}: no base-unit or kind suffix"
        assert kind in ("gauge", "counter") and help_, name
        assert not name.endswith("_total"), "counters get _total from the client library"


def test_every_metric_emitted_is_listed_and_every_listed_is_emitted(tmp_path):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    (tmp_path / "b.bak").write_bytes(b"x")
    with NutServer(tmp_path / "nut", {"main": ONLINE + "ups.temperature: 30\n"
                                      "input.frequency: 50\nbattery.voltage: 27.1\n"
                                      "output.voltage: 230\n"}) as nut, \
            MegatecResponder() as rack:
        config = from_dict({
            "agent": {"id": "cat", "branch": "b1", "region": "r"},
            "ups": [{"name": "main", "nut": {"ups": "main", "port": nut.port}},
                    {"name": "rack", "serial": {"port": rack.port_path}}],
            "host": {"processes": [{"name": "py", "cmdline": "python"}],
                     "listening": [{"name": "l", "port": port}],
                     "tcp": [{"name": "t", "host": "127.0.0.1", "port": port}],
                     "disks": [{"mount": "/"}], "memory": {}, "load": {},
                     "backups": [{"name": "b", "glob": str(tmp_path / "*.bak")}]}})
        snapshot = Snapshot()
        agent = Agent(config, ListSink(), snapshot)
        for probe in build_probes(config):
            reading = run_probe_once(probe)
            assert reading.ok, (probe.name, reading.error)
            agent.handle(reading)
            probe.close()
    listener.close()
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot, "b1", "cat", "r"))
    text = generate_latest(registry).decode()
    emitted = {f.name for f in text_string_to_metric_families(text)}
    assert emitted == set(CATALOGUE), (emitted ^ set(CATALOGUE))
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            assert s.labels.get("branch") == "b1", s
