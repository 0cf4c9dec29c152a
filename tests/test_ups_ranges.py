"""Sanity ranges on UPS values (agent/ups/ranges.yaml): a value no device can
mean is unknown with the raw value in the reason, and the rest of the
reading stands. Cases: the peers' field values, every real dump of the NUT
Devices Dumps Library, every real Megatec reply, a real upsd + dummy-ups and
a serial UPS over a real pty. (The SNMP path: tests/test_snmp_ups.py.)"""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
import yaml

from agent.config import SerialTarget, Ups, UpsThresholds
from agent.model import State
from agent.sim.megatec_responder import MegatecResponder, q1_line
from agent.ups.megatec import MegatecError, parse_q1, to_ups_data
from agent.ups.nut_probe import data_from_nut
from agent.ups.ranges import load_ranges
from agent.ups.serial_probe import SerialUpsProbe
from agent.ups.status import NUMERIC, ups_checks

from .support.nut import NutServer
from .support.paths import REPO, data_dir

ONLINE = {"ups.status": "OL", "battery.charge": "100", "battery.runtime": "1800",
          "ups.load": "20", "input.voltage": "230", "ups.temperature": "30"}


def checks_of(d) -> dict[str, tuple[State, str]]:
    return {c.check.split("/", 2)[2]: (c.state, c.reason) for c in ups_checks("u", d, UpsThresholds())}


# ------------------------------------------------- NUT variables, the peers' values

@pytest.mark.parametrize("var, raw, check, reason", [
    ("battery.charge", "1000", "battery_charge", "battery.charge '1000' outside 0..100"),
    ("battery.charge", "255", "battery_charge", "battery.charge '255' outside 0..100"),
    ("ups.load", "4.6e126", "load", "ups.load '4.6e126' outside 0..200"),
    ("ups.load", "520", "load", "ups.load '520' outside 0..200"),
    ("battery.runtime", "-60", "battery_runtime", "battery.runtime '-60' outside 0..128849018820"),
    ("battery.runtime", "nan", "battery_runtime", "battery.runtime 'nan' is not a finite number"),
    ("battery.charge", "12abc", "battery_charge", "battery.charge '12abc' is not a number"),
    ("ups.load", "x" * 5000, "load", f"ups.load '{'x' * 40}… (5000 characters)' is not a number"),
])
def test_impossible_nut_value_alone_is_unknown(var, raw, check, reason):
    d = data_from_nut({**ONLINE, var: raw})
    c = checks_of(d)
    assert c[check] == (State.UNKNOWN, reason)
    # the rest of the reading stands
    assert c["comm"][0] is State.OK and c["on_battery"] == (State.OK, "on line power")
    for other in {"battery_charge", "battery_runtime", "load"} - {check}:
        assert c[other][0] is State.OK
    assert d.input_voltage == 230 and d.temperature_celsius == 30


@pytest.mark.parametrize("var, raw, value", [
    ("ups.temperature", "-5.0", -5.0),          # an unheated ATM lobby in winter
    ("battery.charge", "0", 0.0), ("battery.charge", "100", 1.0),
    ("ups.load", "200", 2.0), ("ups.load", "120", 1.2),     # overloaded is a reading
    ("battery.runtime", "0", 0.0),
])
def test_edge_values_are_readings(var, raw, value):
    d = data_from_nut({**ONLINE, var: raw})
    attr = next(a for a, (_m, v, _s) in NUMERIC.items() if v == var)
    assert getattr(d, attr) == pytest.approx(value) and not d.problems


def test_ranges_file_is_checked():
    with pytest.raises(ValueError, match="battery.charge: min 100 is not below max 0"):
        load_ranges("ranges:\n  battery.charge: {min: 100, max: 0, unit: '%'}\n")
    # every NUT variable the agent reads has a range
    assert {var for _m, var, _s in NUMERIC.values()} <= set(load_ranges())


# ------------------------------------------------- every real dump of the NUT DDL

# The dumps whose values no device can mean, by the field left empty. Every
# other dump must read without a single problem.
DDL_GOLDEN = {
    "APC/APC__Back-UPS_BR_800__newhidups__2.0.3__01.dev": {"input_voltage", "temperature_celsius"},
    "APC/APC__Back-UPS_CS_350__hidups__2.0.0__01.dev": {"load_ratio"},
    "APC/APC__Back-UPS_RS_800__hidups__2.0.2__01.dev": {"load_ratio"},
    "APC/APC__Back-UPS_RS_800__newhidups__2.0.2__02.dev": {"input_voltage", "temperature_celsius"},
    "APC/APC__Back-UPS_RS_900__usbhid-ups__2.4.1__01.dev": {"load_ratio"},
    "Cyber_Power_Systems/Cyber_Power_Systems__CPS1200AVR__cpsups__2.1.0__01.dev": {"runtime_seconds"},
    "Cyber_Power_Systems/Cyber_Power_Systems__CPS1200VA__cpsups__2.0.4__01.dev": {"runtime_seconds"},
    "Cyber_Power_Systems/Cyber_Power_Systems__CPS685AVR__newhidups__2.1.0__01.dev": {"charge_ratio"},
    "Eaton/Eaton__9135_6000__usbhid-ups__2.4.1__01.dev": {"temperature_celsius"},
    "Eaton/Eaton__Powerware_5130__usbhid-ups__2.4.3__01.dev": {"output_voltage"},
    "Eaton/Eaton__Powerware_5130__usbhid-ups__2.4.3__02.dev": {"output_voltage"},
    "Fenton_Technologies/Fenton_Technologies__PowerPal_660__fentonups__2.0.1__01.dev": {"charge_ratio"},
    "MGE_UPS_SYSTEMS/MGE_UPS_SYSTEMS__Pulsar_1500__usbhid-ups__2.4.3__01.dev": {"output_voltage"},
    "Powercom/Powercom__BNT-1500AP__powercom__2.4.3__01.dev": {"charge_ratio"},
    "Riello/Riello__IPG_600__riello_usb__2.7.4__01.dev": {"charge_ratio", "temperature_celsius"},
    "Socomec_Sicon/Socomec_Sicon__NETYS_RT_1-1__snmp-ups__2.6.4__01.dev":
        {"input_voltage", "output_voltage", "load_ratio"},
    "Tripp_Lite/Tripp_Lite__OMNIPLUS1000LCD__usbhid-ups__2.2.2__01.dev": {"output_voltage"},
    "Tripp_Lite/Tripp_Lite__SMART1300LCDT__usbhid-ups__2.6.4__01.dev": {"input_frequency"},
    "UPSonic/UPSonic__IRT1000__snmp-ups__2.2.1__01.dev": {"output_voltage", "load_ratio"},
}


def dump_variables(path) -> dict[str, str]:
    """A .dev dump as dummy-ups reads it: 'var: value', '#' starts a comment."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            out[key.strip()] = value.split("#", 1)[0].strip().strip('"')
    return out


def test_every_ddl_dump_against_the_golden_table():
    root = data_dir("nut-ddl")
    dumps = sorted(root.rglob("*.dev"))
    assert len(dumps) > 300
    got = {}
    for path in dumps:
        variables = dump_variables(path)
        d = data_from_nut(variables)
        for attr, reason in d.problems.items():
            var = NUMERIC[attr][1]
            raw = variables[var]
            assert reason.startswith(f"{var} '{raw[:40]}"), reason   # the raw value is named
            assert getattr(d, attr) is None
        if d.problems:
            got[str(path.relative_to(root))] = set(d.problems)
    assert got == DDL_GOLDEN


# ------------------------------------------------- Megatec Q1: one field at a time

@pytest.mark.parametrize("line, field, reason", [
    ("(230.0 000.0 230.0 520 50.0 2.25 25.0 00000001", "load_ratio", "ups.load '520' outside 0..200"),
    ("(230.0 000.0 2x2.0 014 50.0 2.25 25.0 00000001", "output_voltage",
     "output.voltage '2x2.0' is not a number"),
    ("(230.0 000.0 230.0 014 50.0 2.25 999.9 00000001", "temperature_celsius",
     "ups.temperature '999.9' outside -50..150"),
    ("(230.0 000.0 230.0 014 5O.0 2.25 25.0 00000001", "input_frequency",
     "input.frequency '5O.0' is not a number"),
])
def test_q1_field_that_does_not_parse_drops_alone(line, field, reason):
    d = to_ups_data(parse_q1(line.encode() + b"\r"))
    assert d.problems == {field: reason} and getattr(d, field) is None
    assert d.status == "OL" and d.input_voltage == 230.0 and d.battery_voltage == 2.25
    if field == "load_ratio":
        assert checks_of(d)["load"] == (State.UNKNOWN, reason)


def test_q1_cold_lobby_reads_below_zero():
    d = to_ups_data(parse_q1(b"(230.0 000.0 230.0 014 50.0 2.25 -5.0 00000001\r"))
    assert d.temperature_celsius == -5.0 and not d.problems and d.status == "OL"


def test_q1_bits_and_field_count_still_refuse_the_reply():
    # Alignment and the status bits decide OL/OB: without them nothing can be trusted.
    with pytest.raises(MegatecError, match="not binary"):
        parse_q1(b"(230.0 000.0 230.0 014 50.0 2.25 -5.0 0000x001\r")
    with pytest.raises(MegatecError, match="7 of 8 fields"):
        parse_q1(b"(230.0 000.0 230.0 014 50.0 -5.0 00000001\r")


def test_every_real_megatec_reply_is_in_range():
    """No real Q1 reply in the testdata trips a range: the bounds are physical."""
    with (data_dir("megatec") / "responses.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    parsed = 0
    for row in rows:
        if row["command"] not in ("Q1", "QS"):
            continue
        try:
            q1 = parse_q1(row["reply"].encode("utf-8") + b"\r", command=row["command"])
        except MegatecError:
            continue
        parsed += 1
        assert q1.problems == {}, row
    assert parsed >= 30


def test_serial_ups_over_a_real_pty_keeps_the_rest():
    with MegatecResponder() as ups:
        ups.q1 = q1_line(load=520, temperature=-5.0)
        probe = SerialUpsProbe(Ups(name="lobby", serial=SerialTarget(port=ups.port_path,
                                                                     timeout=0.5)))
        try:
            reading = probe.read()
        finally:
            probe.close()
    c = {x.check: (x.state, x.reason) for x in reading.checks}
    assert reading.ok and c["ups/lobby/comm"][0] is State.OK
    assert c["ups/lobby/load"] == (State.UNKNOWN, "ups.load '520' outside 0..200")
    assert reading.detail["temperature_celsius"] == -5.0
    assert reading.detail["unreadable"] == {"load_ratio": "ups.load '520' outside 0..200"}
    names = {s.name for s in reading.samples}
    assert "branchwatch_ups_load_ratio" not in names
    assert "branchwatch_ups_temperature_celsius" in names


# ------------------------------------------------- a real upsd + dummy-ups, the real agent

PEERS = {   # UPS name -> what its dummy-ups serves (the peers' field values)
    "charge1000": "ups.status: OL\nbattery.charge: 1000\nbattery.runtime: 1800\nups.load: 20\n",
    "charge255": "ups.status: OL\nbattery.charge: 255\nbattery.runtime: 1800\nups.load: 20\n",
    "load520": "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\nups.load: 520\n",
    "loadhuge": "ups.status: OL\nbattery.charge: 100\nbattery.runtime: 1800\nups.load: 4.6e126\n",
    "runtimeneg": "ups.status: OB\nbattery.charge: 90\nbattery.runtime: -60\nups.load: 20\n",
}


def test_real_upsd_impossible_values_through_the_agent(tmp_path):
    with NutServer(tmp_path / "nut", PEERS) as nut:
        config = {"agent": {"id": "t", "branch": "b"},
                  "ups": [{"name": n, "nut": {"ups": n, "port": nut.port}} for n in PEERS]}
        path = tmp_path / "agent.yaml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config", str(path),
                               "--once"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    readings = {r["detail"]["ups"]: r for r in map(json.loads, done.stdout.splitlines())}
    state = {n: {c["check"].split("/", 2)[2]: (c["state"], c["reason"]) for c in r["checks"]}
             for n, r in readings.items()}
    assert state["charge1000"]["battery_charge"] == ("unknown", "battery.charge '1000' outside 0..100")
    assert state["charge255"]["battery_charge"] == ("unknown", "battery.charge '255' outside 0..100")
    assert state["load520"]["load"] == ("unknown", "ups.load '520' outside 0..200")
    assert state["loadhuge"]["load"] == ("unknown", "ups.load '4.6e126' outside 0..200")
    assert state["runtimeneg"]["battery_runtime"] == (
        "unknown", "battery.runtime '-60' outside 0..128849018820")
    # the rest of each reading stands
    assert state["charge1000"]["load"][0] == "ok" and state["load520"]["battery_charge"][0] == "ok"
    assert state["runtimeneg"]["on_battery"] == ("warning", "on battery: mains power lost")
    assert all(r["ok"] for r in readings.values())
