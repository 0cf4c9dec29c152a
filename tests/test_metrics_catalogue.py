"""The metric catalogue is the truth: every metric the agent emits is listed
(with Prometheus naming), and every listed metric is emitted by some probe.
One agent with every kind of probe runs once against real things here."""

from __future__ import annotations

import asyncio
import re
import socket

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from agent.config import from_dict
from agent.events import ListSink
from agent.failover_runner import failover_samples
from agent.metrics import CATALOGUE, Snapshot, SnapshotCollector
from agent.probes import build_probes
from agent.runner import Agent, read_all
from agent.sender import Sender
from agent.spool import Spool
from agent.sim.megatec_responder import MegatecResponder
from agent.snmp.traps import TrapListener

from .support.nut import NutServer
from .support.paths import data_dir, need_binary
from .support.snmpsim import SnmpSim, free_udp_port
from .test_nut_agent import ONLINE

UNIT_SUFFIXES = ("_seconds", "_bytes", "_ratio", "_volts", "_hertz", "_celsius", "_info",
                 "_count", "_files", "_up", "_success", "_state", "_flapping", "_status",
                 "_listening", "_per_cpu", "_events", "_per_second", "_octets", "_errors",
                 "_discards", "_received", "_dropped", "_depth", "_failures",
                 "_active", "_swaps", "_blocked")


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
    sim = SnmpSim(tmp_path / "sim", [data_dir("snmprec")])
    with NutServer(tmp_path / "nut", {"main": ONLINE + "ups.temperature: 30\n"
                                      "input.frequency: 50\nbattery.voltage: 27.1\n"
                                      "output.voltage: 230\n"}) as nut, \
            MegatecResponder() as rack:
        sim.start(probe_community="h3c-e528")
        snmp = {"host": "127.0.0.1", "port": sim.port, "timeout": 2, "retries": 1}
        config = from_dict({
            "agent": {"id": "cat", "branch": "b1", "region": "r"},
            "ups": [{"name": "main", "nut": {"ups": "main", "port": nut.port}},
                    {"name": "rack", "serial": {"port": rack.port_path}},
                    {"name": "card", "snmp": {**snmp, "snmp": {"community": "eaton-ups-93e-80"}}}],
            "switches": [{"name": "sw", **snmp, "snmp": {"community": "h3c-e528"},
                          "interfaces": [{"index": 1, "role": "uplink-primary"}]}],
            "lines": [{"name": "primary", "method": "tcp",
                       "targets": [{"name": "gw", "host": "127.0.0.1", "port": port}]}],
            "host": {"processes": [{"name": "py", "cmdline": "python"}],
                     "listening": [{"name": "l", "port": port}],
                     "tcp": [{"name": "t", "host": "127.0.0.1", "port": port}],
                     "disks": [{"mount": "/"}], "memory": {}, "load": {},
                     "backups": [{"name": "b", "glob": str(tmp_path / "*.bak")}]}})
        snapshot = Snapshot()
        agent = Agent(config, ListSink(), snapshot)
        probes = build_probes(config)
        try:
            readings = asyncio.run(read_twice_and_trap(config, probes, agent))
        finally:
            sim.stop()
        for reading in readings:   # twice: counters and rates need two polls
            assert reading.ok, (reading.probe, reading.error)
            agent.handle(reading)
    listener.close()
    # Delivery metrics come from the sender, whatever the collector answers.
    spool = Spool(tmp_path / "spool.db")
    sender = Sender(spool, url="http://127.0.0.1:9", token="t", agent="cat", branch="b1")
    snapshot.put("collector", sender.samples())
    spool.close()
    # So do the failover's, from its runner (agent/failover_runner.py).
    snapshot.put("failover", failover_samples(False, {"fail_over": 0, "swap_back": 0}, 0))
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot, "b1", "cat", "r"))
    text = generate_latest(registry).decode()
    emitted = {f.name for f in text_string_to_metric_families(text)}
    assert emitted == set(CATALOGUE), (emitted ^ set(CATALOGUE))
    for fam in text_string_to_metric_families(text):
        assert fam.type == CATALOGUE[fam.name][0], fam.name
        for s in fam.samples:
            assert s.labels.get("branch") == "b1", s


async def read_twice_and_trap(config, probes, agent):
    """One event loop for all: SNMP sessions belong to the loop that opened them."""
    try:
        readings = await read_all(probes) + await read_all(probes)
        await receive_one_trap(config, probes, agent)
        return readings
    finally:
        for probe in probes:
            probe.close()


async def receive_one_trap(config, probes, agent) -> None:
    """A real trap through the listener, so the trap counters are emitted too."""
    switch = next(p for p in probes if p.name == "switch/sw")
    trap = TrapListener([(config.switches[0], switch)], agent.handle_confirmed, lambda _: None,
                        lambda samples: agent.snapshot.put("traps", samples))
    trap_port = free_udp_port()
    await trap.start("127.0.0.1", trap_port)
    try:
        done = await asyncio.create_subprocess_exec(
            need_binary("snmptrap"), "-v2c", "-c", "h3c-e528", f"127.0.0.1:{trap_port}", "",
            "1.3.6.1.6.3.1.1.5.1")
        await done.wait()
        for _ in range(100):
            if trap.counts.received:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the trap did not arrive")
    finally:
        trap.close()
