"""Reachability over each line, on real sockets: TCP on 127.0.0.1 in the host
namespace (where this machine refuses unprivileged ICMP), ICMP and a line
cut for real between two network namespaces, the real agent inside one, and
device-or-line diagnosis from the uplink port state (branch plan §5.1)."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import sys
import time

import msgspec
import pytest
import yaml

from agent.lines.ping import PingResult, icmp_permitted, icmp_refusal, probe_target
from agent.lines.probe import LineProbe, grade
from agent.links import LinkView, PortState
from agent.metrics import CATALOGUE
from agent.model import State
from agent.schema_network import Line

from .support.agent import AgentProcess
from .support.netns import NetnsPair
from .support.paths import free_port


@pytest.fixture
def netns():
    with NetnsPair() as pair:
        yield pair


@contextlib.contextmanager
def listening_port():
    """A TCP port on 127.0.0.1 that accepts connections."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@contextlib.contextmanager
def silent_port():
    """A port on 127.0.0.1 whose accept queue is full: new SYNs get no answer."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(0)   # never accepted: one queued connection fills it
        address = server.getsockname()
        fillers = []
        try:
            for _ in range(2):
                s = socket.socket()
                s.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    s.connect(address)
                fillers.append(s)
            time.sleep(0.05)
            yield address[1]
        finally:
            for s in fillers:
                s.close()


def line(targets: list[tuple[str, str, int]], **kw) -> Line:
    """A Line spec as the config loader would make it."""
    return msgspec.convert({"name": kw.pop("name", "primary"),
                            "targets": [{"name": n, "host": h, "port": p} for n, h, p in targets],
                            **kw}, Line)


# -- TCP fallback, in the host namespace ------------------------------------

def test_tcp_to_a_listening_port_is_reachable():
    with listening_port() as port:
        r = asyncio.run(probe_target("127.0.0.1", count=3, timeout=1, method="tcp", port=port))
    assert (r.method, r.sent, r.received, r.error) == ("tcp", 3, 3, None)
    assert len(r.rtts) == 3 and 0 < r.avg_rtt < 0.5 and r.loss_ratio == 0


def test_tcp_refused_is_an_answer():
    # The host is there and says so with an RST: that is reachability.
    r = asyncio.run(probe_target("127.0.0.1", count=3, timeout=1, method="tcp", port=free_port()))
    assert (r.sent, r.received, r.lost_reason) == (3, 3, None)


def test_tcp_without_an_answer_is_lost():
    with silent_port() as port:
        t0 = time.monotonic()
        r = asyncio.run(probe_target("127.0.0.1", count=2, timeout=0.2, method="tcp", port=port))
        took = time.monotonic() - t0
    assert (r.sent, r.received, r.rtts, r.loss_ratio, r.avg_rtt) == (2, 0, [], 1.0, None)
    assert r.lost_reason == "no answer to TCP connect within 0.2 s"
    assert 0.35 < took < 1.5   # each attempt waits its own timeout, no longer


def test_source_address_not_ours_loses_every_echo_with_the_reason():
    with listening_port() as port:
        r = asyncio.run(probe_target("127.0.0.1", count=2, timeout=0.5, method="tcp", port=port,
                                     source="192.0.2.1"))
    assert (r.sent, r.received) == (2, 0)
    assert r.error == r.lost_reason == "cannot send from 192.0.2.1: Cannot assign requested address"


needs_icmp_refused = pytest.mark.skipif(
    icmp_permitted(), reason="this host namespace permits unprivileged ICMP")


@needs_icmp_refused
def test_auto_falls_back_to_tcp_and_says_why():
    with listening_port() as port:
        r = asyncio.run(probe_target("127.0.0.1", count=2, timeout=1, port=port))
    assert (r.method, r.received) == ("tcp", 2)
    assert r.error.startswith("ICMP not permitted here (net.ipv4.ping_group_range excludes gid ")
    assert r.error.endswith("); using TCP")


@needs_icmp_refused
def test_forced_icmp_where_refused_loses_every_echo_instead_of_switching():
    r = asyncio.run(probe_target("127.0.0.1", count=3, timeout=1, method="icmp"))
    assert (r.method, r.sent, r.received) == ("icmp", 3, 0)
    assert r.lost_reason == r.error and "ICMP not permitted here" in r.error


def test_icmp_refusal_names_the_sysctl_only_when_it_is_the_cause(tmp_path):
    refused = PermissionError(errno.EACCES, "Permission denied")
    closed, opened = tmp_path / "closed", tmp_path / "open"
    closed.write_text("1\t0\n")
    opened.write_text("0\t2147483647\n")
    assert "net.ipv4.ping_group_range excludes gid" in icmp_refusal(refused, closed)
    assert icmp_refusal(refused, opened) == "ICMP not permitted here (Permission denied)"
    assert icmp_refusal(refused, tmp_path / "absent") == "ICMP not permitted here (Permission denied)"


# -- grading: a golden table --------------------------------------------------

SPEC = line([("gw", "192.0.2.1", 443)], latency_warning=0.2, loss_warning=0.2, loss_critical=1.0)


@pytest.mark.parametrize("result, state, reason", [
    (PingResult("icmp", 3, 3, [0.001, 0.0012, 0.0014]), State.OK,
     "reachable, 3/3 answered, avg 1.2 ms (icmp)"),
    (PingResult("tcp", 3, 3, [0.25, 0.25, 0.25]), State.WARNING,
     "degraded: 3/3 answered, avg 250 ms (tcp) (warning above 200 ms)"),
    (PingResult("icmp", 3, 2, [0.001, 0.001], lost_reason="no echo reply within 1 s"), State.WARNING,
     "degraded: 2/3 answered, avg 1.0 ms (icmp), 33% lost (warning at 20%): "
     "no echo reply within 1 s"),
    (PingResult("icmp", 5, 4, [0.001] * 4, lost_reason="no echo reply within 1 s"), State.WARNING,
     "degraded: 4/5 answered, avg 1.0 ms (icmp), 20% lost (warning at 20%): "
     "no echo reply within 1 s"),
    (PingResult("icmp", 3, 0, lost_reason="no echo reply within 1 s"), State.CRITICAL,
     "down: 0/3 answered (icmp): no echo reply within 1 s"),
])
def test_grade(result, state, reason):
    assert grade(result, SPEC) == (state, reason)


def test_a_zero_loss_limit_means_any_loss_not_always():
    spec = line([("gw", "192.0.2.1", 443)], loss_warning=0.0, loss_critical=0.5)
    assert grade(PingResult("icmp", 4, 4, [0.001] * 4), spec)[0] is State.OK
    assert grade(PingResult("icmp", 4, 3, [0.001] * 3), spec)[0] is State.WARNING
    assert grade(PingResult("icmp", 4, 2, [0.001] * 2), spec)[0] is State.CRITICAL


# -- LineProbe in-process: checks, metrics, diagnosis ---------------------------

def test_line_probe_reading_without_an_uplink():
    with listening_port() as up, silent_port() as down:
        probe = LineProbe(line([("gw", "127.0.0.1", up), ("core", "127.0.0.1", down)],
                               method="tcp", count=2, timeout=0.2, interval=1), LinkView())
        t0 = time.monotonic()
        reading = asyncio.run(probe.aread())
        took = time.monotonic() - t0
    assert (probe.name, probe.interval) == ("line/primary", 1)
    assert took < 0.2 * 2 + 0.3 < probe.timeout   # targets run concurrently
    assert reading.ok and reading.error is None   # a target down is a finding
    gw, core = reading.checks
    assert (gw.check, gw.state, gw.diagnosis) == ("line/primary/gw", State.OK, None)
    assert gw.reason.startswith("reachable, 2/2 answered, avg ") and gw.reason.endswith(" (tcp)")
    assert (core.check, core.state, core.diagnosis) == ("line/primary/core", State.CRITICAL, None)
    assert core.reason == "down: 0/2 answered (tcp): no answer to TCP connect within 0.2 s"
    samples = {(s.name, dict(s.labels)["target"]): s.value for s in reading.samples}
    assert set(samples) == {("branchwatch_probe_rtt_seconds", "gw"),   # none for core
                            ("branchwatch_probe_loss_ratio", "gw"),
                            ("branchwatch_probe_loss_ratio", "core")}
    assert samples[("branchwatch_probe_loss_ratio", "core")] == 1.0
    assert samples[("branchwatch_probe_loss_ratio", "gw")] == 0.0
    assert all(s.name in CATALOGUE and dict(s.labels)["line"] == "primary" for s in reading.samples)
    detail = reading.detail["targets"]
    assert detail["gw"]["method"] == "tcp" and detail["gw"]["received"] == 2
    assert len(detail["gw"]["rtts"]) == 2 and detail["core"]["rtts"] == []
    assert detail["core"]["lost_reason"].startswith("no answer")


def links_with(port: PortState | None = None, answering: bool | None = True,
               local_nic: str | None = None) -> LinkView:
    links = LinkView()
    if port is not None:
        links.set_port("sw-funds", "uplink1", port)
    if answering is not None:
        links.set_answering("sw-funds", answering)
    links.set_local_interface("sw-funds", local_nic)
    return links


UPLINK = {"switch": "sw-funds", "interface": "uplink1"}


@pytest.mark.parametrize("links, diagnosis, words", [
    (links_with(PortState(oper_up=True, admin_up=True, at=0)), "line",
     "line fault: uplink port is up but the far side does not answer"),
    (links_with(PortState(oper_up=False, admin_up=True, at=0)), "device",
     "device fault: uplink port is down"),
    (links_with(PortState(oper_up=False, admin_up=False, at=0)), "device",
     "device fault: uplink port is administratively down"),
    # The switch is silent but our own link to it is up (lo: always up).
    (links_with(None, answering=False, local_nic="lo"), "device",
     "device fault: this machine's own link is up, so the switch itself is at fault"),
    (links_with(None, answering=None), None, "cause not known: uplink port state not known"),
], ids=["port-up-far-down", "port-down", "port-disabled", "switch-silent", "not-known"])
def test_diagnosis_of_an_unreachable_target(links, diagnosis, words):
    with silent_port() as down:
        probe = LineProbe(line([("core", "127.0.0.1", down)], method="tcp", count=1,
                               timeout=0.2, uplink=UPLINK), links)
        (check,) = asyncio.run(probe.aread()).checks
    assert (check.state, check.diagnosis) == (State.CRITICAL, diagnosis)
    assert check.reason == f"down: 0/1 answered (tcp): no answer to TCP connect within 0.2 s; {words}"


def test_a_reachable_target_carries_no_diagnosis_even_with_the_port_down():
    links = links_with(PortState(oper_up=False, admin_up=True, at=0))
    with listening_port() as up:
        probe = LineProbe(line([("gw", "127.0.0.1", up)], method="tcp", count=1, uplink=UPLINK),
                          links)
        (check,) = asyncio.run(probe.aread()).checks
    assert (check.state, check.diagnosis) == (State.OK, None)
    assert "fault" not in check.reason


# -- inside network namespaces: ICMP, a real line cut -------------------------

ICMP_SCRIPT = """
import asyncio, json, sys
from agent.lines.ping import probe_target
async def main():
    out = {}
    for name, host, kw in json.loads(sys.argv[1]):
        r = await probe_target(host, count=3, timeout=0.3, **kw)
        out[name] = {"method": r.method, "sent": r.sent, "received": r.received,
                     "error": r.error, "lost_reason": r.lost_reason, "rtts": r.rtts}
    print(json.dumps(out))
asyncio.run(main())
"""


def ping_in(netns: NetnsPair, *cases) -> dict:
    done = netns.run([sys.executable, "-c", ICMP_SCRIPT, json.dumps(cases)])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_icmp_inside_a_namespace_that_permits_it(netns):
    far = netns.far_address
    seen = ping_in(netns, ("lo", "127.0.0.1", {}),
                   ("far", far, {"source": netns.branch_address}),
                   ("far-tcp-closed", far, {"method": "tcp", "port": 9}),
                   ("name", "core.branch.invalid", {}))
    for name in ("lo", "far"):
        assert seen[name]["method"] == "icmp" and seen[name]["received"] == 3, seen[name]
        assert seen[name]["error"] is None and all(0 < x < 0.3 for x in seen[name]["rtts"])
    # Nothing listens on the far side's port 9: the RST still proves the line.
    assert seen["far-tcp-closed"]["received"] == 3
    # The namespace's resolver is 127.0.0.1, where nothing answers.
    assert seen["name"]["received"] == 0
    assert seen["name"]["error"].startswith("DNS failure for core.branch.invalid")

    netns.cut()
    seen = ping_in(netns, ("far", far, {}), ("far-tcp", far, {"method": "tcp", "port": 9}),
                   ("lo", "127.0.0.1", {}))
    assert (seen["far"]["sent"], seen["far"]["received"]) == (3, 0)
    assert seen["far"]["lost_reason"]
    assert seen["far-tcp"]["received"] == 0
    assert seen["lo"]["received"] == 3   # only the line is cut


def test_icmp_over_ipv6_loopback_in_the_namespace(netns):
    if "::1" not in netns.run(["ip", "-6", "addr", "show", "dev", "lo"]).stdout:
        pytest.skip("no IPv6 on loopback in the namespace (IPv6 disabled)")
    seen = ping_in(netns, ("lo6", "::1", {}))
    assert (seen["lo6"]["method"], seen["lo6"]["received"]) == ("icmp", 3)


DIAGNOSE_SCRIPT = """
import asyncio, json, sys
import msgspec
from agent.lines.probe import LineProbe
from agent.links import LinkView, PortState
from agent.schema_network import Line
spec = msgspec.convert(json.loads(sys.argv[1]), Line)
out = {}
for case in ("port-up", "switch-silent"):
    links = LinkView()
    if case == "port-up":
        links.set_answering("sw-funds", True)
        links.set_port("sw-funds", "uplink1", PortState(oper_up=True, admin_up=True, at=0))
    else:
        links.set_answering("sw-funds", False)
        links.set_local_interface("sw-funds", sys.argv[2])
    (check,) = asyncio.run(LineProbe(spec, links).aread()).checks
    out[case] = [check.state.label, check.diagnosis, check.reason]
print(json.dumps(out))
"""


def test_line_cut_diagnosed_inside_the_namespace(netns):
    spec = {"name": "primary", "targets": [{"name": "gw", "host": netns.far_address}],
            "uplink": UPLINK, "source": netns.branch_address, "count": 2, "timeout": 0.3}

    def diagnose():
        done = netns.run([sys.executable, "-c", DIAGNOSE_SCRIPT, json.dumps(spec),
                          netns.branch_nic])
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    seen = diagnose()
    assert seen["port-up"][:2] == ["ok", None] and "(icmp)" in seen["port-up"][2]
    netns.cut()   # our NIC loses carrier too: a veth mirrors its peer
    seen = diagnose()
    assert seen["port-up"][:2] == ["critical", "line"]
    assert seen["port-up"][2].startswith("down: 0/2 answered (icmp)")
    assert seen["port-up"][2].endswith("; line fault: uplink port is up but the far side does not answer")
    # Switch silent and this machine's own link down: the fault is here.
    assert seen["switch-silent"][:2] == ["critical", "local"]
    assert seen["switch-silent"][2].endswith(
        "; local fault: this machine's own link towards the switch is down")


# -- the real agent inside the branch namespace --------------------------------

def NetnsAgent(netns: NetnsPair, folder, config: dict, *args: str) -> AgentProcess:
    """AgentProcess started inside the branch namespace (its /metrics is there too)."""
    return AgentProcess(folder, config, *args, prefix=["ip", "netns", "exec", netns.branch])


def agent_config(netns: NetnsPair) -> dict:
    far = netns.far_address
    return {"agent": {"id": "branch-agent", "branch": "b001", "region": "north"},
            "state": {"debounce": 1, "recheck_interval": 0.2},
            "lines": [{"name": "primary", "interval": 0.5, "count": 2, "timeout": 0.2,
                       "source": netns.branch_address,
                       "targets": [{"name": "gw", "host": far}]},
                      {"name": "backup", "interval": 0.5, "count": 2, "timeout": 0.2,
                       "method": "tcp", "targets": [{"name": "core", "host": far, "port": 9}]}]}


def test_agent_in_the_branch_sees_the_line_go_down_and_back(tmp_path, netns):
    with NetnsAgent(netns, tmp_path, agent_config(netns)) as agent:
        e = agent.wait_event(check="line/primary/gw", old_state=None, new_state="ok")
        assert e["reason"].startswith("reachable, 2/2 answered") and e["reason"].endswith("(icmp)")
        agent.wait_event(check="line/backup/core", old_state=None, new_state="ok")

        netns.cut()
        e = agent.wait_event(check="line/primary/gw", old_state="ok", new_state="critical")
        assert e["reason"].startswith("down: 0/2 answered (icmp)")
        assert "fault" not in e["reason"]   # no uplink configured: no diagnosis
        agent.wait_event(check="line/backup/core", old_state="ok", new_state="critical")

        netns.restore()
        agent.wait_event(check="line/primary/gw", old_state="critical", new_state="ok")
        agent.wait_event(check="line/backup/core", old_state="critical", new_state="ok")
    assert agent.proc.returncode == 0


def test_agent_once_reports_a_cut_line_as_a_finding(tmp_path, netns):
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(agent_config(netns)))
    netns.cut()
    done = netns.run([sys.executable, "-m", "agent.cli", "agent", "--config", str(config),
                      "--once"])
    assert done.returncode == 0, done.stderr   # the probe read fine: the line is down
    readings = {r["probe"]: r for r in map(json.loads, done.stdout.splitlines())}
    primary = readings["line/primary"]
    assert primary["ok"] is True
    (check,) = primary["checks"]
    assert (check["check"], check["state"]) == ("line/primary/gw", "critical")
    metrics = {(m["name"], m["labels"].get("target")): m["value"] for m in primary["metrics"]}
    assert metrics[("branchwatch_probe_loss_ratio", "gw")] == 1.0
    assert ("branchwatch_probe_rtt_seconds", "gw") not in metrics
    assert primary["detail"]["targets"]["gw"]["method"] == "icmp"
