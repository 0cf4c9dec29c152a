"""Switches over SNMP: the IF-MIB rules as small tables, then the real agent
against snmpsim serving every real recording, ports going down, error
counters growing, and switches that are silent or answer nonsense."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from agent.links import LinkView, PortState
from agent.model import State
from agent.schema_network import InterfaceSpec, SnmpAuth, Switch
from agent.snmp import interfaces as ifs
from agent.snmp.client import SnmpError, SnmpSession, text
from agent.snmp.switch_probe import SwitchProbe

from .support.agent import AgentProcess
from .support.paths import REPO, data_dir
from .support.snmpsim import SnmpSim, free_udp_port, render, subset

W32 = 2 ** 32
IF, IFX = "1.3.6.1.2.1.2.2.1.", "1.3.6.1.2.1.31.1.1.1."
COLS = {IF + "2": "descr", IF + "5": "speed", IF + "7": "admin", IF + "8": "oper",
        IF + "10": "in32", IF + "14": "in_errors", IFX + "1": "name", IFX + "6": "hc_in",
        IFX + "15": "high", IFX + "18": "alias"}
SYSTEM = {"1.3.6.1.2.1.1.1.0": "sysdescr", "1.3.6.1.2.1.1.3.0": "uptime",
          "1.3.6.1.2.1.1.5.0": "sysname"}
OPER = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
        7: "lowerLayerDown"}
ADMIN = {1: "up", 2: "down", 3: "testing"}
ROLES = ["uplink-primary", "uplink-backup", "access", "trunk"]
VARIATION = object()   # a record snmpsim computes (`67:numeric|rate=100`)


# --- pure rules ----------------------------------------------------------------------

@pytest.mark.parametrize("old, new, bits, reset, delta", [
    (100, 250, 32, False, 150),
    (W32 - 10, 5, 32, False, 15),            # 32-bit wrap
    (2 ** 40, 7, 64, False, 7),              # 64-bit never wraps: a reset
    (3_000_000, 40, 32, True, 40),           # device rebooted
    (5, 5, 64, False, 0),
])
def test_counter_delta(old, new, bits, reset, delta):
    assert ifs.counter_delta(old, new, bits, reset) == delta


def test_counter_totals_start_at_the_device_value_and_only_grow():
    s, rate = ifs.advance_counter(None, 1000, 32, 7, False, at=10.0)
    assert (s.total, rate) == (1000, None)               # first reading = device value
    s, rate = ifs.advance_counter(s, 1500, 32, 7, False, at=12.0)
    assert (s.total, rate) == (1500, 250.0)
    s, rate = ifs.advance_counter(s, 20, 32, 7, False, at=14.0)        # wrapped
    assert (s.total, rate) == (1500 + W32 - 1500 + 20, (W32 - 1480) / 2)
    before = s.total
    s, rate = ifs.advance_counter(s, 30, 32, 7, True, at=16.0)         # rebooted
    assert (s.total, rate) == (before + 30, 15.0)
    s, rate = ifs.advance_counter(s, 900, 32, 9, False, at=18.0)       # row moved
    assert (s.total, rate) == (before + 30, None)
    s, rate = ifs.advance_counter(s, 950, 64, 9, False, at=20.0)       # width changed
    assert (s.total, rate) == (before + 30, None)
    s, rate = ifs.advance_counter(s, 10, 64, 9, False, at=22.0)        # 64-bit reset
    assert (s.total, rate) == (before + 40, 5.0)


@pytest.mark.parametrize("old, new, elapsed, change", [
    (None, 500, None, "first"),
    (1000, 2000, 10, "same"),
    (1000, 950, 10, "same"),                       # half a second back: clock noise
    (W32 - 500, 500, 10, "wrap"),                  # 497 days: TimeTicks wrap
    (W32 - 500, 40_000, 10, "restart"),            # lands too far on: not a wrap
    (5 * 86400 * 100, 12_300, 10, "restart"),
    (W32 - 100_000_000, 200, 10, "restart"),       # far from 2^32: a restart
])
def test_uptime_wrap_is_not_a_restart(old, new, elapsed, change):
    assert ifs.uptime_change(old, new, elapsed) == change


def test_restart_verdicts():
    v = ifs.restart_verdict("r", "restart", 123, 5 * 86400 + 3600)
    assert (v.state, v.reason) == (State.WARNING, "restarted: uptime 2m 3s (was 5d 1h)")
    v = ifs.restart_verdict("r", "first", 240, None)
    assert (v.state, v.reason) == (State.WARNING, "restarted 4m ago")
    v = ifs.restart_verdict("r", "same", 200, 5 * 86400)        # the next polls keep saying it
    assert (v.state, v.reason) == (State.WARNING, "restarted: uptime 3m 20s (was 5d)")
    assert ifs.restart_verdict("r", "same", 599, None).state is State.WARNING
    assert ifs.restart_verdict("r", "same", 600, None).state is State.OK
    v = ifs.restart_verdict("r", "wrap", (W32 + 500) / 100, (W32 - 500) / 100)
    assert v.state is State.OK and "wrapped" in v.reason


@pytest.mark.parametrize("speed, high, bps", [
    (1_000_000_000, 1000, 1_000_000_000),
    (4_294_967_295, 10_000, 10_000_000_000),       # ifSpeed saturated: ifHighSpeed
    (4_294_967_295, None, None),
    (100_000_000, None, 100_000_000),              # no ifXTable (TP-Link)
    (None, 1000, 1_000_000_000),                   # no ifSpeed (Huawei stack)
    (0, 0, 0),
    (10_000_000, 0, 10_000_000),
    (100_000_000, 100_000_000, 100_000_000),       # D-Link: ifHighSpeed in bit/s
    (None, None, None),
    (b"fast", None, None),
    # Integer-like encodings (an FS S3800 types ifSpeed OCTET STRING):
    (b"1000000000", None, 1_000_000_000),         # decimal digits as text
    ("100000000", None, 100_000_000),
    (b"1000000000\x00", b"", 1_000_000_000),       # NUL-terminated, empty ifHighSpeed
    (b"\x3b\x9a\xca\x00", None, 1_000_000_000),     # the number's big-endian bytes
    (b"100000000", b"100", 100_000_000),           # both as text
    (True, None, None),
])
def test_speed(speed, high, bps):
    assert ifs.speed_bps(speed, high) == bps


@pytest.mark.parametrize("role, oper, admin, state, reason, diagnosis", [
    ("uplink-primary", 1, 1, "ok", "up, 1 Gbit/s", None),
    ("uplink-primary", 2, 1, "critical", "down", "device"),
    ("trunk", 2, 1, "critical", "down", None),
    ("uplink-backup", 2, 1, "warning", "down: backup line not available", "device"),
    ("access", 2, 1, "warning", "down", None),
    ("uplink-primary", 7, 1, "critical", "down (lowerLayerDown)", "device"),
    ("uplink-backup", 6, 1, "warning", "down (notPresent): backup line not available", "device"),
    ("uplink-primary", 2, 2, "ok", "administratively down (not a fault)", None),
    ("access", 3, 3, "warning", "testing: the port is in a test mode and passes no traffic", None),
    ("uplink-primary", 5, 1, "warning", "dormant: the port waits for an external event to come up",
     "device"),
    ("uplink-primary", 4, 1, "unknown", "the device reports the port's status as unknown", None),
    ("uplink-primary", 99, 1, "unknown", "ifOperStatus is 99, not a valid status (1 to 7)", None),
    ("access", b"up", 1, "unknown", "ifOperStatus is 'up', not a valid status (1 to 7)", None),
    ("access", None, 1, "unknown", "the device did not report ifOperStatus for this port", None),
])
def test_link_verdicts(role, oper, admin, state, reason, diagnosis):
    v = ifs.link_verdict("c", role, oper, admin, 1_000_000_000)
    assert (v.state.label, v.reason, v.diagnosis) == (state, reason, diagnosis)


def test_link_verdict_names_a_trap_as_its_source():
    v = ifs.link_verdict("c", "uplink-primary", 2, None, source="linkDown trap")
    assert (v.state, v.reason, v.diagnosis) == (State.CRITICAL, "down (linkDown trap)", "device")
    v = ifs.link_verdict("c", "uplink-backup", 2, 1, source="linkDown trap")
    assert v.reason == "down (linkDown trap): backup line not available"


@pytest.mark.parametrize("rates, state, reason", [
    ({"branchwatch_interface_in_errors": 3.2, "branchwatch_interface_out_errors": 0.0},
     "warning", "degraded: 3.2 input errors/s (threshold 1/s)"),
    ({"branchwatch_interface_in_errors": 0.6, "branchwatch_interface_out_errors": 0.6},
     "warning", "degraded: 1.2 errors/s (0.6 in, 0.6 out) (threshold 1/s)"),
    ({"branchwatch_interface_out_errors": 2.0}, "warning",
     "degraded: 2 output errors/s (threshold 1/s)"),
    ({"branchwatch_interface_in_discards": 12.0}, "warning",
     "degraded: 12 input discards/s (threshold 10/s)"),
    ({"branchwatch_interface_in_errors": 1.0, "branchwatch_interface_in_discards": 10.0},
     "ok", "1 errors/s, 10 discards/s"),         # at the threshold is not above it
])
def test_errors_verdicts(rates, state, reason):
    v = ifs.errors_verdict("c", rates, 1.0, 10.0)
    assert (v.state.label, v.reason) == (state, reason)


def test_errors_verdict_needs_error_columns():
    assert ifs.errors_verdict("c", {}, 1.0, 10.0) is None


def walked(rows: dict[int, dict]) -> dict[str, dict[str, object]]:
    """A small IF-MIB walk result from {ifIndex: {column name: value}}."""
    from agent.snmp.if_mib import COLUMNS
    out = {oid: {} for oid in COLUMNS.values()}
    for index, values in rows.items():
        for column, value in values.items():
            out[COLUMNS[column]][str(index)] = value
    return out


def test_table_matching_and_counters():
    rows = ifs.parse_table(walked({
        3: {"ifDescr": b"GigabitEthernet0/1", "ifName": b"Gi0/1", "ifAlias": b"to core",
            "ifOperStatus": 1, "ifAdminStatus": 1, "ifSpeed": 1_000_000_000,
            "ifInOctets": 5, "ifHCInOctets": 2 ** 40, "ifInErrors": 7},
        1: {"ifDescr": b"Vlan1", "ifName": b"", "ifOperStatus": 2, "ifAdminStatus": 2,
            "ifInOctets": 99, "ifOutOctets": b"junk"},
    }))
    assert list(rows) == [1, 3]
    assert rows[3].counters["branchwatch_interface_in_octets"] == (2 ** 40, 64)
    assert rows[1].counters == {"branchwatch_interface_in_octets": (99, 32)}
    assert rows[3].counters["branchwatch_interface_in_errors"] == (7, 32)
    assert (rows[1].label, rows[3].label) == ("Vlan1", "Gi0/1")   # empty ifName: ifDescr
    for spec, index in [(InterfaceSpec(name="Gi0/1"), 3), (InterfaceSpec(descr="Vlan1"), 1),
                        (InterfaceSpec(alias="to core"), 3), (InterfaceSpec(index=1), 1),
                        (InterfaceSpec(name="Gi0/2"), None), (InterfaceSpec(index=2), None)]:
        found = ifs.find_interface(spec, rows)
        assert (found.index if found else None) == index, spec
    assert ifs.missing_reason(InterfaceSpec(name="Gi0/2"), rows) == \
        "no interface with ifName 'Gi0/2' on the device (2 interfaces)"
    assert ifs.missing_reason(InterfaceSpec(alias="x"), {1: rows[1]}) == \
        "no interface with ifAlias 'x' on the device (1 interfaces, none has an ifAlias)"


def test_system_group_must_be_whole_and_well_formed():
    ok = {"1.3.6.1.2.1.1.5.0": b"sw1", "1.3.6.1.2.1.1.1.0": b"\r\nVRP\r\nline 2",
          "1.3.6.1.2.1.1.3.0": 5}
    s = ifs.read_system(ok)
    assert (s.name, s.uptime_ticks, ifs.first_line(s.descr)) == ("sw1", 5, "VRP")
    with pytest.raises(SnmpError, match="noSuchObject/noSuchInstance for sysName, sysUpTime"):
        ifs.read_system({**ok, "1.3.6.1.2.1.1.5.0": None, "1.3.6.1.2.1.1.3.0": None})
    with pytest.raises(SnmpError, match="malformed sysUpTime 'notanumber'"):
        ifs.read_system({**ok, "1.3.6.1.2.1.1.3.0": b"notanumber"})


class FakeSession:
    """Answers a probe's GET and walk from tables a test changes between polls."""

    where = "fake:161"

    def __init__(self, uptime: int, rows: dict[int, dict]):
        self.uptime, self.rows = uptime, rows

    async def get(self, oids):
        return {"1.3.6.1.2.1.1.5.0": b"sw", "1.3.6.1.2.1.1.1.0": b"d",
                "1.3.6.1.2.1.1.3.0": self.uptime}

    async def walk(self, columns):
        return walked(self.rows)

    def close(self):
        pass


def test_probe_memory_between_polls():
    """Totals through a wrap and a reboot; uptime wrap; port thresholds; errors from poll 2."""
    t = [100.0]
    spec = Switch(name="sw", host="h", snmp=SnmpAuth(community="c"), interfaces=[
        InterfaceSpec(name="wan", role="uplink-primary", error_rate_warning=100.0),
        InterfaceSpec(name="lan", role="access"), InterfaceSpec(name="gone")])
    probe = SwitchProbe(spec, LinkView(), clock=lambda: t[0], monotonic=lambda: t[0])
    loop = asyncio.new_event_loop()     # one loop, as in the agent: the session is kept
    port = {"ifDescr": b"x", "ifOperStatus": 1, "ifAdminStatus": 1, "ifInErrors": 0}
    probe._session = fake = FakeSession(W32 - 300, {
        1: {**port, "ifName": b"wan", "ifInOctets": W32 - 1000},
        2: {"ifName": b"lan", "ifDescr": b"y", "ifOperStatus": 2, "ifAdminStatus": 1}})

    def poll(**changes):
        t[0] += 10
        for index, values in changes.items():
            fake.rows[int(index[1:])].update(values)
        r = loop.run_until_complete(probe.aread())
        checks = {c.check.removeprefix("switch/sw/"): (c.state.label, c.reason) for c in r.checks}
        totals = {s.name: s.value for s in r.samples if dict(s.labels).get("ifname") == "wan"}
        return checks, totals

    checks, totals = poll()
    assert totals["branchwatch_interface_in_octets"] == W32 - 1000
    assert "if/wan/errors" not in checks and "if/lan/errors" not in checks   # no rate yet
    assert checks["if/gone/link"] == \
        ("unknown", "no interface with ifName 'gone' on the device (2 interfaces)")
    assert checks["if/lan/link"] == ("warning", "down")
    fake.uptime = 700                                   # 32-bit TimeTicks wrapped, no restart
    checks, totals = poll(i1={"ifInOctets": 1000, "ifInErrors": 500})
    assert totals["branchwatch_interface_in_octets"] == W32 + 1000        # counter wrapped
    assert checks["restart"][0] == "ok" and checks["if/wan/errors"][0] == "ok"   # 50/s < 100/s
    assert "if/lan/errors" not in checks                                # no error columns
    checks, totals = poll(i1={"ifInErrors": 2500})
    assert checks["if/wan/errors"] == \
        ("warning", "degraded: 200 input errors/s (threshold 100/s)")
    fake.uptime = 300                                   # rebooted
    checks, totals = poll(i1={"ifInOctets": 40, "ifInErrors": 0})
    assert checks["restart"] == ("warning", "restarted: uptime 3s (was 497d 2h)")
    assert totals["branchwatch_interface_in_octets"] == W32 + 1040
    assert totals["branchwatch_interface_in_errors"] == 2500
    fake.uptime = 1300
    assert poll()[0]["restart"] == ("warning", "restarted: uptime 13s (was 497d 2h)")
    fake.uptime = 60_000
    assert poll()[0]["restart"] == ("ok", "up 10m")
    loop.close()


# --- the real recordings -------------------------------------------------------------

def decode(tag: str, value: bytes):
    if ":" in tag:
        return VARIATION
    if tag == "4x":
        return text(bytes.fromhex(value.decode()))
    if tag == "4":
        return text(value)
    if tag in ("2", "65", "66", "67", "70"):
        return int(value)
    return value


@functools.cache
def recording(path: Path) -> tuple[dict, dict[int, dict]]:
    """A recording's system group and IF-MIB rows (by ifIndex), read independently."""
    system, rows = {}, defaultdict(dict)
    for line in path.read_bytes().splitlines():
        line = line.strip()    # as snmpsim reads it: a trailing space in a value is not served
        if not line or line.startswith(b"#"):
            continue
        oid, tag, value = line.split(b"|", 2)
        oid, tag = oid.decode(), tag.decode()
        if oid in SYSTEM:
            system[SYSTEM[oid]] = decode(tag, value)
        column, _, index = oid.rpartition(".")
        if column in COLS and index.isdigit():
            rows[int(index)][COLS[column]] = decode(tag, value)
    return system, {i: rows[i] for i in sorted(rows) if "descr" in rows[i]}


def expected_speed(row: dict) -> int | None:
    speed, high = row.get("speed"), row.get("high")
    if high:
        return high if high == speed else high * 10 ** 6     # D-Link: bit/s in ifHighSpeed
    return speed if speed is not None and speed != W32 - 1 else None


def expected_link(row: dict, role: str) -> tuple[str, str | None]:
    oper, admin = row.get("oper"), row.get("admin")
    if admin == 2 or oper == 1:
        return "ok", None
    if oper in (2, 6, 7):
        state = "critical" if role in ("uplink-primary", "trunk") else "warning"
    else:
        state = {3: "warning", 5: "warning"}.get(oper, "unknown")
    return state, "device" if role.startswith("uplink") and state != "unknown" else None


def choose_ports(rows: dict[int, dict], n: int = 4) -> list[tuple[dict, int]]:
    """Ports to watch: by ifName (else ifDescr), varied states; one by ifIndex, one by ifAlias."""
    def unique(field, value):
        return value and sum(r.get(field) == value for r in rows.values()) == 1

    def by_name(i):
        for key, field in (("name", "name"), ("descr", "descr")):
            if unique(field, rows[i].get(field)):
                return {key: rows[i][field]}
    kinds = [lambda r: r.get("admin") == 1 and r.get("oper") == 1,
             lambda r: r.get("admin") == 1 and r.get("oper") != 1,
             lambda r: r.get("admin") == 2, lambda r: r.get("oper") not in (1, 2), lambda r: True]
    picked: list[int] = []
    for kind in kinds:
        for i, r in rows.items():
            if len(picked) < min(n, len(rows) - 1) and i not in picked and kind(r) and by_name(i):
                picked.append(i)
                if kind is not kinds[-1]:
                    break
    ports = [({**by_name(i), "id": f"p{k}", "role": ROLES[k % 4]}, i) for k, i in enumerate(picked)]
    rest = [i for i in rows if i not in picked]
    ports.append(({"index": rest[-1], "role": ROLES[len(ports) % 4]}, rest[-1]))
    aliased = [i for i in rest[:-1] if unique("alias", rows[i].get("alias"))]
    if aliased:
        ports.append(({"alias": rows[aliased[0]]["alias"], "id": "by-alias", "role": "access"},
                      aliased[0]))
    return ports


_SHARED = Path(os.environ.get("BRANCHWATCH_TESTDATA", REPO.parent / "shared" / "testdata"))
RECORDINGS = sorted(p.name for p in (_SHARED / "snmprec").glob("*.snmprec"))


def base_records() -> dict[str, str]:
    """System group and IF-MIB of a real Catalyst 3750: Gi1/0/1 (10101) and Gi1/0/6 up."""
    return subset(data_dir("snmprec") / "cisco-catalyst3750-ios.snmprec")


UPLINK, BACKUP = 10101, 10106
OWN = {   # community: records, written before snmpsim starts (it indexes files at start)
    "rt-down": lambda r: r, "rt-errors": lambda r: r, "rt-healthy": lambda r: r,
    "rt-nosys": lambda r: {k: v for k, v in r.items() if not k.startswith("1.3.6.1.2.1.1.")},
    "rt-noifmib": lambda r: {k: v for k, v in r.items() if k.startswith("1.3.6.1.2.1.1.")},
    "rt-baduptime": lambda r: {**r, "1.3.6.1.2.1.1.3.0": "4|notanumber"},
    "rt-badoper": lambda r: {**r, f"{IF}8.{UPLINK}": "2|99"},
    # ifSpeed typed OCTET STRING and no ifHighSpeed, as an FS S3800 answers
    "rt-octetspeed": lambda r: {
        **{k: v for k, v in r.items() if not k.startswith(IFX + "15.")},
        **{k: "4|" + v.split("|", 1)[1] for k, v in r.items() if k.startswith(IF + "5.")}},
}


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    server = SnmpSim(tmp_path_factory.mktemp("snmpsim"), [data_dir("snmprec")])
    for community, change in OWN.items():
        server.write(community, render(change(base_records())))
    server.start(probe_community="rt-healthy", timeout=240)   # indexing is slow on a busy machine
    yield server
    server.stop()


def switch(sim: SnmpSim, name: str, community: str, interfaces: list[dict], **kw) -> dict:
    return {"name": name, "host": "127.0.0.1", "port": sim.port,
            "snmp": {"community": community}, "interfaces": interfaces, **kw}


@pytest.fixture(scope="module")
def once_readings(sim, tmp_path_factory):
    """`branchwatch agent --once` over every recording, as one real process."""
    # snmpsim indexes a recording when it is first asked for it, one at a time; all
    # nineteen asked at once by the agent would wait past the agent's 2 s timeout
    # (the test is of the readings, not of snmpsim's start): ask each once first.
    for f in RECORDINGS:
        deadline = time.monotonic() + 120
        while not sim.answers(Path(f).stem):
            assert time.monotonic() < deadline, f"snmpsim never answered for {f}"
            time.sleep(0.2)
    folder = tmp_path_factory.mktemp("once")
    config = {"agent": {"id": "t", "branch": "b"}, "switches": [
        switch(sim, Path(f).stem, Path(f).stem,
               [p for p, _ in choose_ports(recording(data_dir("snmprec") / f)[1])])
        for f in RECORDINGS]}
    (folder / "agent.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config",
                           str(folder / "agent.yaml"), "--once"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr + done.stdout
    return {r["probe"]: r for r in map(json.loads, done.stdout.splitlines())}


@pytest.mark.parametrize("file", RECORDINGS)
def test_every_recording_reads_as_recorded(once_readings, file):
    name = Path(file).stem
    system, rows = recording(data_dir("snmprec") / file)
    r = once_readings[f"switch/{name}"]
    checks = {c["check"]: c for c in r["checks"]}
    assert r["ok"] and checks[f"switch/{name}/reachable"]["state"] == "ok"
    d = r["detail"]
    assert d["sysname"] == system["sysname"] and d["interfaces_on_device"] == len(rows)
    assert checks[f"switch/{name}/reachable"]["reason"] == \
        f"answering (sysName {system['sysname']!r})"
    if system["uptime"] is VARIATION:      # h3c: snmpsim counts from its own start
        assert d["uptime_seconds"] < 600
    else:
        assert d["uptime_seconds"] == system["uptime"] / 100
    recent = d["uptime_seconds"] < 600
    assert checks[f"switch/{name}/restart"]["state"] == ("warning" if recent else "ok")
    metrics = [(m["name"], m["labels"], m["value"]) for m in r["metrics"]]
    assert ("branchwatch_switch_info", {"device": name, "sysname": system["sysname"],
            "sysdescr": ifs.first_line(system["sysdescr"])}, 1.0) in metrics
    shown = {p["id"]: p for p in d["interfaces"]}
    ports = choose_ports(rows)
    assert len(shown) == len(ports) >= 2
    for spec, index in ports:
        key, row = InterfaceSpec(**spec).key, rows[index]
        ifname = row.get("name") or row["descr"]
        assert shown[key] == {
            "id": key, "ifindex": index, "ifname": ifname, "descr": row["descr"],
            "alias": row.get("alias"), "oper": OPER.get(row.get("oper")),
            "admin": ADMIN.get(row.get("admin")), "speed_bps": expected_speed(row),
            "role": spec["role"]}
        link = checks[f"switch/{name}/if/{key}/link"]
        assert (link["state"], link.get("diagnosis")) == expected_link(row, spec["role"]), link
        labels = {"device": name, "ifname": ifname, "role": spec["role"]}
        got = {m: v for m, ls, v in metrics if ls == labels}
        # ifOperStatus unknown(4): the device does not know, so no 0/1 either
        assert got.get("branchwatch_interface_oper_up") == {1: 1, 4: None}.get(row["oper"], 0)
        assert got.get("branchwatch_interface_admin_up") == (row["admin"] == 1)
        if expected_speed(row) is not None:
            assert got["branchwatch_interface_speed_bytes"] == expected_speed(row) / 8
        octets = row.get("hc_in", row.get("in32"))
        assert got.get("branchwatch_interface_in_octets") == octets   # first total = device value
        assert got.get("branchwatch_interface_in_errors") == row.get("in_errors")
    assert not [c for c in checks if c.endswith("/errors")]   # no rate on a first poll


def test_octet_string_ifspeed_is_read(sim, tmp_path):
    """ifSpeed as OCTET STRING through snmpsim and the real agent: the speed stands."""
    config = {"agent": {"id": "t", "branch": "b"},
              "switches": [switch(sim, "fs", "rt-octetspeed", PORTS)]}
    (tmp_path / "agent.yaml").write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config",
                           str(tmp_path / "agent.yaml"), "--once"], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr + done.stdout
    r = json.loads(done.stdout.splitlines()[0])
    assert [p["speed_bps"] for p in r["detail"]["interfaces"]] == [1_000_000_000] * 2
    speeds = [m["value"] for m in r["metrics"] if m["name"] == "branchwatch_interface_speed_bytes"]
    assert speeds == [125_000_000] * 2
    link = next(c for c in r["checks"] if c["check"] == "switch/fs/if/wan/link")
    assert link["reason"] == "up, 1 Gbit/s"


# --- in the agent's own process --------------------------------------------------------

def test_resolve_ifindex_matches_like_polling(sim):
    async def resolve(community, **spec):
        session = SnmpSession("127.0.0.1", sim.port, SnmpAuth(community=community), 2, 1)
        try:
            return await ifs.resolve_ifindex(session, InterfaceSpec(**spec))
        finally:
            session.close()
    c3750, c3com = "cisco-catalyst3750-ios", "3com-superstack3-4200"
    assert asyncio.run(resolve(c3750, name="Gi1/0/1")) == 10101
    assert asyncio.run(resolve(c3750, descr="GigabitEthernet1/0/6")) == 10106
    assert asyncio.run(resolve(c3com, alias="RMON Port 03 on unit 1")) == 103
    assert asyncio.run(resolve(c3750, index=10102)) == 10102
    assert asyncio.run(resolve(c3750, index=2)) is None
    assert asyncio.run(resolve(c3750, name="Gi9/9/9")) is None


async def read_and_close(probe: SwitchProbe):
    try:
        return await probe.aread()
    finally:
        probe.close()


def test_probe_feeds_links_and_the_trap_listener(sim):
    links = LinkView()
    spec = Switch(name="core", host="127.0.0.1", port=sim.port,
                  snmp=SnmpAuth(community="rt-healthy"),
                  interfaces=[InterfaceSpec(name="Gi1/0/1", id="wan", role="uplink-primary"),
                              InterfaceSpec(name="Gi1/0/2", id="spare", role="access")])
    probe = SwitchProbe(spec, links, clock=lambda: 1000.0)
    asyncio.run(probe.aread())    # a tool may poll with asyncio.run: a new loop each time
    reading = asyncio.run(probe.aread())
    probe.close()                 # after its loop is gone: nothing left to do, no error
    assert reading.ok and links.answering("core") is True
    assert "switch/core/if/wan/errors" in {c.check for c in reading.checks}   # second poll
    assert links.port("core", "wan") == PortState(True, True, 1000.0)
    assert links.port("core", "spare") == PortState(False, True, 1000.0)
    assert probe.port_for_ifindex(UPLINK) == "wan" and probe.port_for_ifindex(1) is None
    v = probe.link_verdict("wan", False, True, "linkDown trap")
    assert (v.check, v.state, v.reason, v.diagnosis) == \
        ("switch/core/if/wan/link", State.CRITICAL, "down (linkDown trap)", "device")
    v = probe.restart_verdict("coldStart trap")
    assert (v.check, v.state) == ("switch/core/restart", State.WARNING)

    silent = SwitchProbe(Switch(name="gone", host="127.0.0.1", port=free_udp_port(), timeout=0.3,
                                retries=0, snmp=SnmpAuth(community="x"),
                                interfaces=[InterfaceSpec(index=1, role="uplink-primary")]), links)
    reading = asyncio.run(read_and_close(silent))
    assert not reading.ok and reading.error.startswith("cannot see the switch: no answer from")
    assert [(c.check, c.state, c.diagnosis) for c in reading.checks] == \
        [("switch/gone/reachable", State.CRITICAL, "device")]
    assert links.answering("gone") is False and links.port("gone", "ifindex-1").oper_up is None


# --- the real agent, changes at runtime ------------------------------------------------

def agent_config(*switches: dict, debounce: int = 2) -> dict:
    return {"agent": {"id": "t", "branch": "b"}, "state": {"debounce": debounce},
            "switches": list(switches)}


PORTS = [{"name": "Gi1/0/1", "id": "wan", "role": "uplink-primary"},
         {"name": "Gi1/0/6", "id": "backup", "role": "uplink-backup"}]


def test_uplink_down_restart_and_a_switch_that_stops_answering(sim, tmp_path):
    records = base_records()
    sw = switch(sim, "edge", "rt-down", PORTS, interval=1, timeout=1, retries=0)
    with AgentProcess(tmp_path, agent_config(sw)) as agent:
        agent.wait_event(check="switch/edge/if/wan/link", new_state="ok")
        agent.wait_event(check="switch/edge/restart", new_state="ok")
        sim.write("rt-down", render({**records, f"{IF}8.{UPLINK}": "2|2"}))
        e = agent.wait_event(check="switch/edge/if/wan/link", old_state="ok", new_state="critical")
        assert (e["reason"], e["diagnosis"]) == ("down", "device")
        assert agent.metric("branchwatch_interface_oper_up", device="edge", ifname="Gi1/0/1") == 0
        assert agent.metric("branchwatch_interface_admin_up", device="edge", ifname="Gi1/0/1") == 1

        sim.write("rt-down", render({**records, "1.3.6.1.2.1.1.3.0": "67|12300"}))
        e = agent.wait_event(check="switch/edge/restart", old_state="ok", new_state="warning")
        assert e["reason"].startswith("restarted: uptime 2m 3s (was 451d")
        agent.wait_event(check="switch/edge/if/wan/link", old_state="critical", new_state="ok")

        (sim.own / "rt-down.snmprec").unlink()
        e = agent.wait_event(check="switch/edge/reachable", old_state="ok", new_state="critical")
        assert e["reason"].startswith("cannot see the switch: no answer from") and \
            e["diagnosis"] == "device"
        e = agent.wait_event(check="switch/edge/if/wan/link", old_state="ok", new_state="unknown")
        assert e["reason"].startswith("cannot see the switch")
        assert agent.metric("branchwatch_switch_up", device="edge") == 0
        assert agent.proc.poll() is None


def test_broken_switches_never_delay_a_healthy_one(sim, tmp_path):
    broken = [
        switch(sim, "dead", "rt-nobody", PORTS, interval=1, timeout=2, retries=1),
        {**switch(sim, "unplugged", "rt-healthy", PORTS, interval=1, timeout=2, retries=1),
         "port": free_udp_port()},
        switch(sim, "nosys", "rt-nosys", PORTS, interval=1),
        switch(sim, "noifmib", "rt-noifmib", PORTS, interval=1),
        switch(sim, "baduptime", "rt-baduptime", PORTS, interval=1),
        switch(sim, "badoper", "rt-badoper", PORTS, interval=1),
    ]
    healthy = switch(sim, "healthy", "rt-healthy", PORTS, interval=1)
    with AgentProcess(tmp_path, agent_config(healthy, *broken, debounce=1)) as agent:
        for name, says in [("dead", "no answer from"), ("unplugged", "no answer from"),
                           ("nosys", "noSuchObject/noSuchInstance for sysName, sysDescr, "
                                     "sysUpTime"),
                           ("noifmib", "no IF-MIB (the ifDescr walk is empty)"),
                           ("baduptime", "malformed sysUpTime 'notanumber'")]:
            e = agent.wait_event(check=f"switch/{name}/reachable", timeout=20)
            assert e["new_state"] == "critical" and e["diagnosis"] == "device", e
            assert e["reason"].startswith("cannot see the switch: ") and says in e["reason"], e
        assert "within 2 s (2 tries)" in agent.events_for("switch/dead/reachable")[0]["reason"]
        e = agent.wait_event(check="switch/badoper/if/wan/link")
        assert (e["new_state"], e["reason"]) == \
            ("unknown", "ifOperStatus is 99, not a valid status (1 to 7)")
        assert agent.wait_event(check="switch/badoper/reachable")["new_state"] == "ok"
        assert agent.wait_event(check="switch/healthy/if/wan/link")["new_state"] == "ok"

        # The dead ones take 4 s a poll (2 s x 2 tries); the healthy one keeps its 1 s.
        runs, deadline = set(), time.monotonic() + 4.5
        while time.monotonic() < deadline:
            runs.add(agent.metric("branchwatch_probe_last_run_timestamp_seconds",
                                  probe="switch/healthy"))
            time.sleep(0.2)
        gaps = [b - a for a, b in zip(sorted(runs), sorted(runs)[1:])]
        assert len(runs) >= 4 and max(gaps) < 1.8, sorted(runs)
        assert agent.metric("branchwatch_switch_up", device="healthy") == 1
        assert agent.metric("branchwatch_switch_up", device="dead") == 0
        assert [e["new_state"] for e in agent.events_for("switch/healthy/reachable")] == ["ok"]
        assert agent.proc.poll() is None


def test_error_counters_growing_fast_degrade_the_link(sim, tmp_path):
    records = base_records()
    errors_oid = f"{IF}14.{UPLINK}"
    base = int(records[errors_oid].split("|")[1])
    sw = switch(sim, "edge", "rt-errors", PORTS, interval=1)
    with AgentProcess(tmp_path, agent_config(sw, debounce=1)) as agent:
        e = agent.wait_event(check="switch/edge/if/wan/errors")
        assert (e["new_state"], e["reason"]) == ("ok", "0 errors/s, 0 discards/s")
        assert agent.metric("branchwatch_interface_in_errors_total", device="edge",
                            ifname="Gi1/0/1") == base
        for grown in (2000, 5000):
            sim.write("rt-errors", render({**records, errors_oid: f"65|{base + grown}"}))
            time.sleep(1.2)
        e = agent.wait_event(check="switch/edge/if/wan/errors", new_state="warning")
        assert e["reason"].startswith("degraded: ") and \
            e["reason"].endswith(" input errors/s (threshold 1/s)"), e
        agent.wait_event(check="switch/edge/if/wan/errors", old_state="warning", new_state="ok")
        assert agent.metric("branchwatch_interface_in_errors_total", device="edge",
                            ifname="Gi1/0/1") == base + 5000
