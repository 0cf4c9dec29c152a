"""Host probes against real processes, sockets, filesystems and files (no mocks)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid

import psutil
import pytest

from agent.config import (BackupSpec, DiskSpec, ListenSpec, LoadSpec, MemorySpec, ProcessSpec,
                          TcpSpec)
from agent.host import procnet
from agent.host.backups import BackupProbe, glob_base
from agent.host.listening import ListeningProbe
from agent.host.processes import ProcessProbe
from agent.host.resources import ResourcesProbe
from agent.host.tcp import TcpProbe
from agent.metrics import CATALOGUE
from agent.model import Reading, State

NOW = 1_700_000_000.0


def verdicts(reading: Reading) -> dict:
    """Check id → CheckResult, after the rules every reading must keep."""
    for s in reading.samples:
        assert s.name in CATALOGUE, s.name
        assert "branch" not in dict(s.labels)  # the renderer adds it
    json.dumps(reading.detail)  # printed by `branchwatch agent --once`
    ids = [c.check for c in reading.checks]
    assert len(ids) == len(set(ids))
    for c in reading.checks:
        assert c.reason and isinstance(c.state, State)
    return {c.check: c for c in reading.checks}


def sample(reading: Reading, metric: str, /, **labels) -> float:
    """The value of the one sample with this name and these labels."""
    want = tuple(sorted(labels.items()))
    found = [s.value for s in reading.samples if s.name == metric and s.labels == want]
    assert len(found) == 1, (metric, labels, reading.samples)
    return found[0]


def has_sample(reading: Reading, name: str) -> bool:
    return any(s.name == name for s in reading.samples)


# --- processes ---------------------------------------------------------------

@pytest.fixture
def sleeper(tmp_path):
    """A real child process with a distinctive name and command line."""
    marker = f"bw-test-marker-{uuid.uuid4().hex}"
    # comm (the process name) is the basename of the path exec'd, so a
    # symlink gives the child a unique name to match exactly.
    exe = tmp_path / f"bw-{uuid.uuid4().hex[:8]}"
    exe.symlink_to(sys.executable)
    child = subprocess.Popen([str(exe), "-c", "import time; time.sleep(60)", marker])
    yield child, marker, exe.name
    child.kill()
    child.wait()


def test_process_by_cmdline_ok_then_critical_when_killed(sleeper):
    child, marker, _ = sleeper
    probe = ProcessProbe([ProcessSpec(name="core-client", cmdline=re.escape(marker))], 10.0)
    assert (probe.name, probe.interval) == ("processes", 10.0) and probe.timeout > 0
    r = probe.read()
    c = verdicts(r)["process/core-client"]
    assert r.ok and c.state is State.OK, c.reason
    assert "1 process" in c.reason
    assert sample(r, "branchwatch_process_count", name="core-client") == 1
    assert r.detail["processes"]["core-client"]["pids"] == [child.pid]

    child.kill()
    child.wait()
    r = probe.read()
    c = verdicts(r)["process/core-client"]
    assert c.state is State.CRITICAL and "no process" in c.reason
    assert sample(r, "branchwatch_process_count", name="core-client") == 0


def test_process_by_exact_name(sleeper):
    child, _, name = sleeper
    probe = ProcessProbe([ProcessSpec(name="svc", process=name),
                          ProcessSpec(name="prefix-only", process=name[:-1])], 10.0)
    c = verdicts(probe.read())
    assert c["process/svc"].state is State.OK
    assert c["process/prefix-only"].state is State.CRITICAL  # exact, not a prefix


def test_process_below_min_count_is_critical(sleeper):
    _, marker, _ = sleeper
    probe = ProcessProbe([ProcessSpec(name="pool", cmdline=marker, min_count=2)], 10.0)
    r = probe.read()
    c = verdicts(r)["process/pool"]
    assert c.state is State.CRITICAL
    assert "1 of 2 expected processes" in c.reason
    assert sample(r, "branchwatch_process_count", name="pool") == 1


def test_zombie_does_not_count_as_running(sleeper):
    child, marker, name = sleeper
    child.kill()  # not reaped yet: a zombie until wait()
    deadline = time.monotonic() + 5
    while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    probe = ProcessProbe([ProcessSpec(name="svc", process=name)], 10.0)
    assert verdicts(probe.read())["process/svc"].state is State.CRITICAL


def test_process_regex_does_not_count_the_agent_itself():
    me = " ".join(psutil.Process().cmdline())
    probe = ProcessProbe([ProcessSpec(name="me", cmdline=re.escape(me))], 10.0)
    assert verdicts(probe.read())["process/me"].state is State.CRITICAL


# --- listening ports ---------------------------------------------------------

@pytest.fixture
def server():
    """A real socket listening on 127.0.0.1, on a port the kernel chose."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s
    s.close()


def test_listening_ok_then_critical_when_closed(server):
    port = server.getsockname()[1]
    probe = ListeningProbe([ListenSpec(name="db", port=port),
                            ListenSpec(name="db-lo", port=port, address="127.0.0.1"),
                            ListenSpec(name="db-other", port=port, address="127.0.0.2")], 10.0)
    assert probe.name == "listening"
    r = probe.read()
    c = verdicts(r)
    assert r.ok
    assert c["listen/db"].state is State.OK, c["listen/db"].reason
    assert c["listen/db-lo"].state is State.OK
    assert c["listen/db-other"].state is State.CRITICAL
    assert "only on 127.0.0.1" in c["listen/db-other"].reason
    assert sample(r, "branchwatch_port_listening", name="db", port=str(port)) == 1
    assert sample(r, "branchwatch_port_listening", name="db-other", port=str(port)) == 0

    server.close()
    r = probe.read()
    c = verdicts(r)
    assert c["listen/db"].state is State.CRITICAL
    assert c["listen/db"].reason == f"nothing listens on TCP port {port}"
    assert sample(r, "branchwatch_port_listening", name="db", port=str(port)) == 0


def test_wildcard_listener_counts_for_any_address():
    s = socket.socket()
    s.bind(("0.0.0.0", 0))
    s.listen()
    try:
        port = s.getsockname()[1]
        r = ListeningProbe([ListenSpec(name="any", port=port, address="127.0.0.1")], 10.0).read()
        assert verdicts(r)["listen/any"].state is State.OK
    finally:
        s.close()


def test_proc_net_fallback_sees_a_real_listener(server):
    port = server.getsockname()[1]
    assert ("127.0.0.1", port) in procnet.listening()


def test_proc_net_decodes_addresses():
    assert procnet.decode_address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert procnet.decode_address("00000000000000000000000001000000:0050") == ("::1", 80)
    header = "  sl  local_address rem_address   st tx_queue rx_queue\n"
    lines = (" 0: 0100007F:1F90 00000000:0000 0A 0:0\n"
             " 1: 0100007F:1F91 0100007F:9C40 01 0:0\n")  # ESTABLISHED: ignored
    assert procnet.parse(header + lines) == [("127.0.0.1", 8080)]


# --- TCP connect -------------------------------------------------------------

def test_tcp_ok_with_latency(server):
    port = server.getsockname()[1]
    probe = TcpProbe(TcpSpec(name="core-system", host="127.0.0.1", port=port), 10.0)
    assert (probe.name, probe.interval) == ("tcp/core-system", 10.0)
    r = probe.read()
    c = verdicts(r)["tcp/core-system"]
    assert r.ok and c.state is State.OK, c.reason
    assert f"127.0.0.1:{port}" in c.reason and "ms" in c.reason
    assert sample(r, "branchwatch_tcp_up", target="core-system") == 1
    assert sample(r, "branchwatch_tcp_connect_latency_seconds", target="core-system") > 0


def test_tcp_slow_connect_is_a_warning(server):
    port = server.getsockname()[1]
    spec = TcpSpec(name="slow", host="127.0.0.1", port=port, latency_warning=1e-9, interval=30.0)
    probe = TcpProbe(spec, 10.0)
    assert probe.interval == 30.0
    c = verdicts(probe.read())["tcp/slow"]
    assert c.state is State.WARNING and "warning above" in c.reason


def test_tcp_refused_is_critical():
    # Bound but not listening: the port stays ours, and connecting is refused.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    try:
        port = s.getsockname()[1]
        r = TcpProbe(TcpSpec(name="down", host="127.0.0.1", port=port), 10.0).read()
    finally:
        s.close()
    c = verdicts(r)["tcp/down"]
    assert r.ok  # the probe looked; the target is down
    assert c.state is State.CRITICAL
    assert c.reason == f"connection to 127.0.0.1:{port} refused"
    assert sample(r, "branchwatch_tcp_up", target="down") == 0
    assert not has_sample(r, "branchwatch_tcp_connect_latency_seconds")


# --- disks, memory, load -----------------------------------------------------

def test_disk_thresholds_force_critical_and_ok(tmp_path):
    disks = [DiskSpec(mount="/", warning=0.0, critical=0.0),
             DiskSpec(mount=str(tmp_path), warning=1.0, critical=1.0)]
    probe = ResourcesProbe(disks, None, None, 10.0)
    assert probe.name == "resources"
    r = probe.read()
    c = verdicts(r)
    assert r.ok
    root = c["disk//"]
    assert root.state is State.CRITICAL
    assert re.fullmatch(r"disk / \d+% used \(critical at 0%\), [\d.]+ \S+ free", root.reason)
    assert c[f"disk/{tmp_path}"].state is State.OK
    ratio = sample(r, "branchwatch_filesystem_used_ratio", mount="/")
    assert 0 <= ratio <= 1
    assert sample(r, "branchwatch_filesystem_free_bytes", mount="/") >= 0
    assert not has_sample(r, "branchwatch_memory_used_ratio")  # not configured


def test_missing_mount_is_unknown(tmp_path):
    missing = str(tmp_path / "not-mounted")
    r = ResourcesProbe([DiskSpec(mount=missing)], None, None, 10.0).read()
    c = verdicts(r)[f"disk/{missing}"]
    assert c.state is State.UNKNOWN and "missing" in c.reason
    assert not has_sample(r, "branchwatch_filesystem_used_ratio")
    assert not r.ok and r.error  # its only part could not be looked at


def test_missing_mount_next_to_a_good_one_keeps_the_probe_ok(tmp_path):
    r = ResourcesProbe([DiskSpec(mount=str(tmp_path / "gone")), DiskSpec(mount="/")],
                       MemorySpec(), None, 10.0).read()
    assert r.ok


def test_memory_thresholds():
    r = ResourcesProbe([], MemorySpec(warning=0.0, critical=0.0), None, 10.0).read()
    c = verdicts(r)["memory"]
    assert c.state is State.CRITICAL and "(critical at 0%)" in c.reason
    assert 0 <= sample(r, "branchwatch_memory_used_ratio") <= 1
    r = ResourcesProbe([], MemorySpec(warning=1.0, critical=1.0), None, 10.0).read()
    assert verdicts(r)["memory"].state is State.OK


def test_load_thresholds():
    # Struct construction does not validate, so 0 forces critical even at rest.
    r = ResourcesProbe([], None, LoadSpec(warning=0.0, critical=0.0), 10.0).read()
    c = verdicts(r)["load"]
    assert c.state is State.CRITICAL and "per CPU over 5 min" in c.reason
    for period in ("1m", "5m", "15m"):
        assert sample(r, "branchwatch_load_per_cpu", period=period) >= 0
    r = ResourcesProbe([], None, LoadSpec(warning=1e9, critical=1e9), 10.0).read()
    assert verdicts(r)["load"].state is State.OK


# --- backups -----------------------------------------------------------------

def backup(tmp_path, name: str, age: float, content: bytes = b"data"):
    """A real file whose mtime is `age` seconds before NOW."""
    p = tmp_path / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(content)
    os.utime(p, (NOW - age, NOW - age))
    return p


def probe_for(pattern: str, **kw) -> BackupProbe:
    return BackupProbe(BackupSpec(name="his-db", glob=pattern, **kw), 3600.0, clock=lambda: NOW)


def test_fresh_backup_ok_and_newest_wins(tmp_path):
    backup(tmp_path, "old.bak", 50 * 3600)
    newest = backup(tmp_path, "sub/new.bak", 2 * 3600, b"x" * 2048)
    probe = probe_for(str(tmp_path / "**" / "*.bak"))
    assert (probe.name, probe.interval) == ("backup/his-db", 3600.0)
    r = probe.read()
    c = verdicts(r)["backup/his-db"]
    assert c.state is State.OK, c.reason
    assert str(newest) in c.reason and "2.0 h old" in c.reason
    assert sample(r, "branchwatch_backup_age_seconds", name="his-db") == 2 * 3600
    assert sample(r, "branchwatch_backup_size_bytes", name="his-db") == 2048
    assert sample(r, "branchwatch_backup_files", name="his-db") == 2


def test_stale_backup_is_critical_naming_its_age(tmp_path):
    backup(tmp_path, "db.bak", 30 * 3600)
    c = verdicts(probe_for(str(tmp_path / "*.bak"), max_age=26 * 3600).read())["backup/his-db"]
    assert c.state is State.CRITICAL
    assert "30.0 h old (limit 26.0 h)" in c.reason


def test_empty_backup_is_critical(tmp_path):
    backup(tmp_path, "db.bak", 60, b"")
    c = verdicts(probe_for(str(tmp_path / "*.bak"), min_size=1).read())["backup/his-db"]
    assert c.state is State.CRITICAL and "0 bytes" in c.reason


def test_no_backup_is_critical(tmp_path):
    pattern = str(tmp_path / "*.bak")
    r = probe_for(pattern).read()
    c = verdicts(r)["backup/his-db"]
    assert r.ok and c.state is State.CRITICAL
    assert c.reason == f"no backup matching {pattern}"
    assert sample(r, "branchwatch_backup_files", name="his-db") == 0
    assert not has_sample(r, "branchwatch_backup_age_seconds")


def test_no_backup_folder_says_so(tmp_path):
    c = verdicts(probe_for(str(tmp_path / "unmounted" / "*.bak")).read())["backup/his-db"]
    assert c.state is State.CRITICAL and "does not exist" in c.reason


def test_backup_dated_in_the_future_is_a_warning(tmp_path):
    backup(tmp_path, "db.bak", -3 * 3600)
    c = verdicts(probe_for(str(tmp_path / "*.bak")).read())["backup/his-db"]
    assert c.state is State.WARNING and "future" in c.reason


def test_glob_base():
    assert glob_base("/backup/his/**/db-*.bak") == "/backup/his"
    assert glob_base("/*.bak") == "/"
    assert glob_base("/backup/db.bak") == "/backup"
