"""UPS network cards through UPS-MIB (RFC 1628): real recordings served by
snmpsim and read by the real agent, the same checks and metrics as NUT for
the same state, a power cut seen while running, garbage from a device; and
the pure mapping over small dicts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from agent.snmp.ups_mib import MIB, data_from_ups_mib, has_ups_mib, line_number, load_ups_mib
from agent.ups.status import FLAGS

from .support.agent import AgentProcess
from .support.nut import NutServer
from .support.paths import REPO, data_dir
from .support.snmpsim import SnmpSim

U = "1.3.6.1.2.1.33.1."          # UPS-MIB upsObjects
XUPS_LOAD = "1.3.6.1.4.1.534.1.4.1.0"
RECORDINGS = ["eaton-ups-9px-networkm2", "eaton-ups-93e-80", "east-istars-ups"]
SWITCH = "cisco-sb-sg350-10"     # a real recording with no UPS-MIB

# RFC 1628 / NUT ietf-mib.c, written out here so the test does not read the
# mapping it checks.
SOURCE_FLAGS = {1: "", 2: "OFF", 3: "OL", 4: "OL BYPASS", 5: "OB", 6: "OL BOOST", 7: "OL TRIM"}
BATTERY_FLAGS = {1: "", 2: "", 3: "LB", 4: "LB"}
WELL_KNOWN = ["BatteryBad", "OnBattery", "LowBattery", "DepletedBattery", "TempBad", "InputBad",
              "OutputBad", "OutputOverload", "OnBypass", "BypassBad", "OutputOffAsRequested",
              "UpsOffAsRequested", "ChargerFailed", "UpsOutputOff", "UpsSystemOff", "FanFailure",
              "FuseFailure", "GeneralFault", "DiagnosticTestFailed", "CommunicationsLost",
              "AwaitingPower", "ShutdownPending", "ShutdownImminent", "TestInProgress"]


def alarm_oid(name: str) -> str:
    return f"{U}6.3.{WELL_KNOWN.index(name) + 1}"


# ---------------------------------------------------------------- recordings

def recording(*, source=3, battery=2, charge=100, minutes=30, load=23, vin=230, freq=500,
              vout=230, vbatt=240, temp=30, alarms=(), mfr="Santak", model="C3K",
              raw: dict | None = None) -> str:
    """A small UPS-MIB snmprec; `raw` adds or replaces records (OID -> 'TAG|VALUE')."""
    rec = {"1.3.6.1.2.1.1.1.0": "4|test UPS card", "1.3.6.1.2.1.1.3.0": "67|100",
           U + "1.1.0": f"4|{mfr}", U + "1.2.0": f"4|{model}",
           U + "2.1.0": f"2|{battery}", U + "2.2.0": "2|0", U + "2.3.0": f"2|{minutes}",
           U + "2.4.0": f"2|{charge}", U + "2.5.0": f"2|{vbatt}", U + "2.7.0": f"2|{temp}",
           U + "3.3.1.2.1": f"2|{freq}", U + "3.3.1.3.1": f"2|{vin}",
           U + "4.1.0": f"2|{source}", U + "4.4.1.2.1": f"2|{vout}", U + "4.4.1.5.1": f"2|{load}",
           U + "6.1.0": f"66|{len(alarms)}"}
    for i, name in enumerate(alarms, 1):
        rec[f"{U}6.2.1.2.{i}"] = f"6|{alarm_oid(name)}"
        rec[f"{U}6.2.1.3.{i}"] = "67|50"
    rec.update(raw or {})
    order = sorted(rec, key=lambda o: tuple(map(int, o.split("."))))
    return "".join(f"{oid}|{rec[oid]}\n" for oid in order if rec[oid] is not None)


ONLINE = recording()
ON_BATTERY = recording(source=5, charge=40, minutes=8, load=35, vin=0, freq=0)
GARBAGE = recording(raw={
    U + "2.4.0": "4|forty",                           # charge as a string
    U + "4.1.0": "2|99",                              # no such upsOutputSource
    U + "2.5.0": "2|-5",                              # negative battery voltage
    U + "4.4.1.5.1": "2|255",                         # load beyond the MIB's 0..200
    U + "1.2.0": "2|7",                               # model as a number
    U + "6.1.0": "66|2",
    U + "6.2.1.2.1": "4|not an oid",
    U + "6.2.1.2.2": "6|1.3.6.1.4.1.534.1.7.3",       # a vendor alarm
})
# A CET Power card (as reported in issue's field data): upsAlarmsPresent 0
# and 24 alarm rows that all name the null OID.
CET_EMPTY_ALARMS = recording(raw={
    U + "6.1.0": "66|0",
    **{f"{U}6.2.1.2.{i}": "6|0.0" for i in range(1, 25)},
    **{f"{U}6.2.1.3.{i}": "67|0" for i in range(1, 25)}})
# One real alarm among null rows: the real one counts, the null ones do not.
NULL_ROWS_AND_ONE_ALARM = recording(raw={
    U + "6.1.0": "66|1", f"{U}6.2.1.2.1": "6|0.0",
    f"{U}6.2.1.2.2": f"6|{alarm_oid('FanFailure')}", f"{U}6.2.1.2.3": "6|0.0.0"})
# Values no card can mean (the peers' field data): 1000 % and 4294967295 min.
IMPOSSIBLE = recording(raw={U + "2.4.0": "2|1000", U + "2.3.0": "66|4294967295"})
# Two states, each served by NUT's dummy-ups and by a UPS-MIB card.
SHAPES = {
    "ob": (ON_BATTERY,
           "ups.status: OB\nbattery.charge: 40\nbattery.runtime: 480\nbattery.voltage: 24.0\n"
           "input.voltage: 0\ninput.frequency: 0\noutput.voltage: 230\nups.load: 35\n"
           "ups.temperature: 30\nups.mfr: Santak\nups.model: C3K\n"),
    "bypass": (recording(source=4, load=110, charge=90, minutes=12,
                         alarms=("OnBypass", "BatteryBad", "OutputOverload", "FanFailure")),
               "ups.status: OL BYPASS RB OVER ALARM\nups.alarm: fan failure\nbattery.charge: 90\n"
               "battery.runtime: 720\nbattery.voltage: 24.0\ninput.voltage: 230\n"
               "input.frequency: 50.0\noutput.voltage: 230\nups.load: 110\nups.temperature: 30\n"
               "ups.mfr: Santak\nups.model: C3K\n"),
}


@pytest.fixture(scope="session")
def sim(tmp_path_factory):
    """snmpsim over the shared recordings (in place) and this file's own."""
    server = SnmpSim(tmp_path_factory.mktemp("snmpsim"), [data_dir("snmprec")])
    # snmpsim maps communities to files when it starts: write them all now.
    server.write("live", ONLINE)
    server.write("garbage", GARBAGE)
    server.write("cet-empty-alarms", CET_EMPTY_ALARMS)
    server.write("null-rows", NULL_ROWS_AND_ONE_ALARM)
    server.write("impossible", IMPOSSIBLE)
    for name, (rec, _dev) in SHAPES.items():
        server.write(f"shape-{name}", rec)
    server.start(timeout=240)   # indexing every shared recording is slow on a busy machine
    yield server
    server.stop()


def snmp_ups(sim: SnmpSim, name: str, community: str, **target) -> dict:
    return {"name": name, "interval": 0.5,
            "snmp": {"host": "127.0.0.1", "port": sim.port, "timeout": 1.0, "retries": 1,
                     "snmp": {"community": community}, **target}}


def run_once(folder, ups: list[dict]) -> tuple[int, dict[str, dict]]:
    """`branchwatch agent --once` as a real process: exit status, readings by UPS name."""
    config = {"agent": {"id": "t", "branch": "b001", "region": "north"}, "ups": ups}
    path = folder / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config", str(path),
                           "--once"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert not done.stderr.strip() or "Traceback" not in done.stderr, done.stderr
    readings = {}
    for line in done.stdout.splitlines():
        r = json.loads(line)
        readings[r["probe"].removeprefix("ups/")] = r
    return done.returncode, readings


def checks(reading: dict) -> dict[str, tuple[str, str]]:
    """check suffix (after ups/NAME/) -> (state, reason)."""
    return {c["check"].split("/", 2)[2]: (c["state"], c["reason"]) for c in reading["checks"]}


def values(reading: dict) -> dict[str, float]:
    """The UPS's value metrics by name (not the status flags or info)."""
    return {m["name"]: m["value"] for m in reading["metrics"]
            if m["name"] not in ("branchwatch_ups_status", "branchwatch_ups_info")}


def flags_set(reading: dict) -> set[str]:
    return {m["labels"]["flag"] for m in reading["metrics"]
            if m["name"] == "branchwatch_ups_status" and m["value"] == 1}


@pytest.fixture(scope="module")
def once(sim, tmp_path_factory):
    """One agent run over every recording and every broken target."""
    ups = [snmp_ups(sim, name, name) for name in RECORDINGS]
    ups += [snmp_ups(sim, "garbage", "garbage"), snmp_ups(sim, "switch", SWITCH),
            snmp_ups(sim, "silent", "no-such-community", timeout=0.5, retries=0)]
    return run_once(tmp_path_factory.mktemp("once"), ups)


@pytest.fixture(scope="module")
def once_field(sim, tmp_path_factory):
    """One agent run over the field cases: empty alarm rows, impossible values."""
    ups = [snmp_ups(sim, n, n) for n in ("cet-empty-alarms", "null-rows", "impossible")]
    return run_once(tmp_path_factory.mktemp("once-field"), ups)


# ---------------------------------------------- 1. real recordings, real agent

def parse_snmprec(path) -> dict[str, object]:
    """An snmprec file as OID -> int or str, decoded here independently."""
    out: dict[str, object] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line or line.startswith("#"):
            continue
        oid, tag, value = line.split("|", 2)
        if tag == "4x":
            out[oid] = bytes.fromhex(value).decode("utf-8", "replace")
        elif tag in ("2", "65", "66", "67"):
            out[oid] = int(value)
        else:
            out[oid] = value
    return out


def column(rec: dict, col: str) -> list:
    """A column's values by row index (the iStars card indexes rows N.0)."""
    rows = [(tuple(map(int, oid[len(col) + 1:].split("."))), v)
            for oid, v in rec.items() if oid.startswith(col + ".")]
    return [v for _i, v in sorted(rows)]


def expected_from(rec: dict) -> tuple[set[str], dict[str, float], str, str]:
    """What the agent must report, from the recording's raw UPS-MIB values."""
    flags = {*SOURCE_FLAGS[rec[U + "4.1.0"]].split(), *BATTERY_FLAGS[rec[U + "2.1.0"]].split()}
    m = {"branchwatch_ups_battery_charge_ratio": rec[U + "2.4.0"] / 100,
         "branchwatch_ups_battery_runtime_seconds": rec[U + "2.3.0"] * 60,
         "branchwatch_ups_battery_voltage_volts": rec[U + "2.5.0"] / 10}
    if U + "2.7.0" in rec:
        m["branchwatch_ups_temperature_celsius"] = rec[U + "2.7.0"]
    firsts = {"branchwatch_ups_input_voltage_volts": (U + "3.3.1.3", 1),
              "branchwatch_ups_input_frequency_hertz": (U + "3.3.1.2", 10),
              "branchwatch_ups_output_voltage_volts": (U + "4.4.1.2", 1)}
    for metric, (col, div) in firsts.items():
        if rows := column(rec, col):
            m[metric] = rows[0] / div
    if loads := column(rec, U + "4.4.1.5"):
        m["branchwatch_ups_load_ratio"] = max(loads) / 100
    elif XUPS_LOAD in rec:   # Eaton 9PX: load only in XUPS-MIB
        m["branchwatch_ups_load_ratio"] = rec[XUPS_LOAD] / 100
    return flags, m, rec[U + "1.1.0"], rec[U + "1.2.0"]


@pytest.mark.parametrize("name", RECORDINGS)
def test_real_recording_through_the_agent(once, name):
    rec = parse_snmprec(data_dir("snmprec") / f"{name}.snmprec")
    flags, metrics, mfr, model = expected_from(rec)
    _status, readings = once
    r = readings[name]
    assert r["ok"] and r["error"] is None
    assert flags_set(r) == flags
    assert values(r) == pytest.approx(metrics)
    info = next(m for m in r["metrics"] if m["name"] == "branchwatch_ups_info")
    assert info["labels"] == {"ups": name, "source": "snmp", "mfr": mfr, "model": model}
    c = checks(r)
    assert c["comm"] == ("ok", "UPS answers")
    assert c["on_battery"][0] == ("warning" if "OB" in flags else "ok")
    assert c["battery_low"][0] == ("critical" if "LB" in flags else "ok")
    # Thresholds only for what the card reports; these units are all full and lightly loaded.
    for check in ("battery_charge", "battery_runtime", "load"):
        assert c[check][0] == "ok"
    assert r["detail"]["source"] == "snmp"


def test_recordings_quirks_are_read(once):
    _status, readings = once
    # The 93E has three input and output lines: load is the busiest line's.
    lines = readings["eaton-ups-93e-80"]["detail"]["device"]["lines"]
    assert lines["upsOutputPercentLoad"] == {"1": 0.21, "2": 0.16, "3": 0.12}
    # The 9PX card has no upsOutputPercentLoad: the load comes from XUPS-MIB, and says so.
    assert readings["eaton-ups-9px-networkm2"]["detail"]["device"]["from_vendor_mib"] == \
        {"load_ratio": "xupsOutputLoad"}
    # The iStars card indexes its line tables N.0; its identity lives in other objects.
    istars = readings["east-istars-ups"]["detail"]
    assert istars["input_voltage"] == 224 and istars["load_ratio"] == 0.17
    assert istars["device"]["ident_name"] == "ec3_6kva"


# ------------------------------------------------------------ 4. garbage

def test_silent_card_is_a_monitoring_fault(once):
    status, readings = once
    assert status == 1          # --once: some probe could not read its target
    r = readings["silent"]
    assert not r["ok"] and r["metrics"] == []
    c = checks(r)
    assert c["comm"][0] == "critical"
    assert "cannot see the UPS" in c["comm"][1] and "no answer" in c["comm"][1]
    assert {state for state, _ in c.values()} == {"critical", "unknown"}
    assert c["on_battery"][0] == "unknown"


def test_device_without_ups_mib_is_a_monitoring_fault(once):
    r = once[1]["switch"]
    assert not r["ok"]
    state, reason = checks(r)["comm"]
    assert state == "critical" and "cannot see the UPS" in reason and "no UPS-MIB" in reason


def test_garbage_values_are_noted_not_fatal(once):
    r = once[1]["garbage"]
    assert r["ok"]                       # the card answered: comm is fine
    c = checks(r)
    assert c["comm"][0] == "ok"
    assert c["on_battery"][0] == "unknown"
    assert c["alarm"] == ("warning",
                          "UPS alarm: unreadable alarm, vendor alarm 1.3.6.1.4.1.534.1.7.3")
    # No value, no threshold verdict: unknown, naming what the card sent.
    assert c["battery_charge"] == ("unknown",
                                   "upsEstimatedChargeRemaining 'forty' is not a number")
    assert c["load"] == ("unknown", "upsOutputPercentLoad.1 '255' outside 0..200")
    unreadable = r["detail"]["device"]["unreadable"]
    assert unreadable == {"upsOutputSource": "99", "upsEstimatedChargeRemaining": "'forty'",
                          "upsBatteryVoltage": "-5", "upsOutputPercentLoad.1": "255",
                          "upsIdentModel": "7", "upsAlarmDescr.1": "'not an oid'"}
    v = values(r)
    assert "branchwatch_ups_battery_charge_ratio" not in v
    assert v["branchwatch_ups_input_voltage_volts"] == 230    # the good values still count


def test_alarms_present_zero_with_null_rows_is_no_alarm(once_field):
    r = once_field[1]["cet-empty-alarms"]
    c = checks(r)
    assert r["ok"] and flags_set(r) == {"OL"}
    assert c["alarm"][0] == "ok" and "vendor alarm" not in c["alarm"][1]
    assert "alarms" not in r["detail"]["device"] and "alarm" not in r["detail"]


def test_null_rows_are_skipped_a_real_alarm_counts(once_field):
    r = once_field[1]["null-rows"]
    assert checks(r)["alarm"] == ("warning", "UPS alarm: fan failure")
    assert r["detail"]["device"]["alarms"] == ["upsAlarmFanFailure"]


def test_impossible_values_alone_are_unknown(once_field):
    r = once_field[1]["impossible"]
    c = checks(r)
    assert r["ok"] and c["comm"][0] == "ok" and c["on_battery"][0] == "ok"
    assert c["battery_charge"] == ("unknown", "upsEstimatedChargeRemaining '1000' outside 0..100")
    assert c["battery_runtime"] == ("unknown",
                                    "upsEstimatedMinutesRemaining '4294967295' outside 0..2147483647")
    assert c["load"] == ("ok", "load 23%")       # the rest of the reading stands
    v = values(r)
    assert "branchwatch_ups_battery_charge_ratio" not in v
    assert "branchwatch_ups_battery_runtime_seconds" not in v
    assert v["branchwatch_ups_load_ratio"] == 0.23


# ------------------------------------------- 2. same checks as NUT, same state

@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_same_state_same_checks_as_nut(sim, tmp_path, shape):
    _rec, dev = SHAPES[shape]
    with NutServer(tmp_path / "nut", {"dummy": dev}) as nut:
        status, readings = run_once(tmp_path, [
            {"name": "vianut", "nut": {"ups": "dummy", "port": nut.port}},
            snmp_ups(sim, "viasnmp", f"shape-{shape}")])
    assert status == 0
    by_nut, by_snmp = readings["vianut"], readings["viasnmp"]
    assert checks(by_snmp) == checks(by_nut)

    def shape_of(reading):
        return sorted((m["name"], tuple(sorted((k, v) for k, v in m["labels"].items()
                                                if k not in ("ups", "source"))))
                      for m in reading["metrics"])
    assert shape_of(by_snmp) == shape_of(by_nut)
    assert values(by_snmp) == pytest.approx(values(by_nut))
    assert flags_set(by_snmp) == flags_set(by_nut)
    assert by_nut["detail"]["source"] == "nut" and by_snmp["detail"]["source"] == "snmp"


# --------------------------------------------- 3. a power cut while running

def test_power_cut_and_back_while_running(sim, tmp_path):
    sim.write("live", ONLINE)
    config = {"agent": {"id": "test-agent", "branch": "b001", "region": "north"},
              "state": {"debounce": 1}, "ups": [snmp_ups(sim, "main", "live")]}
    with AgentProcess(tmp_path, config) as agent:
        agent.wait_event(check="ups/main/on_battery", old_state=None, new_state="ok")
        assert agent.metric("branchwatch_ups_info", ups="main", source="snmp", mfr="Santak") == 1
        sim.write("live", ON_BATTERY)
        e = agent.wait_event(check="ups/main/on_battery", old_state="ok", new_state="warning")
        assert "on battery" in e["reason"] and e["agent"] == "test-agent"
        agent.wait_event(check="ups/main/battery_runtime", new_state="warning")
        assert agent.metric("branchwatch_ups_status", ups="main", flag="OB") == 1
        assert agent.metric("branchwatch_ups_battery_charge_ratio", ups="main") == 0.4
        sim.write("live", ONLINE)
        agent.wait_event(check="ups/main/on_battery", old_state="warning", new_state="ok")
        changes = [(e["old_state"], e["new_state"])
                   for e in agent.events_for("ups/main/on_battery")]
        assert changes == [(None, "ok"), ("ok", "warning"), ("warning", "ok")]
        assert agent.metric("branchwatch_probe_success", probe="ups/main") == 1
    assert agent.proc.returncode == 0


# ---------------------------------------------------- 5. the pure mapping

def ups(**objects) -> dict[str, object]:
    """A minimal answer: on line, battery normal, plus the given OID suffixes."""
    base = {U + "4.1.0": 3, U + "2.1.0": 2}
    base.update({U + k: v for k, v in objects.items()})
    return base


@pytest.mark.parametrize("value,status", [(1, None), (2, "OFF"), (3, "OL"), (4, "OL BYPASS"),
                                          (5, "OB"), (6, "OL BOOST"), (7, "OL TRIM")])
def test_every_output_source(value, status):
    d = data_from_ups_mib(ups(**{"4.1.0": value}))
    assert d.status == status
    assert "unreadable" not in d.extra


@pytest.mark.parametrize("value,flags,name", [(1, "OL", "unknown"), (2, "OL", "batteryNormal"),
                                              (3, "OL LB", "batteryLow"),
                                              (4, "OL LB", "batteryDepleted")])
def test_every_battery_status(value, flags, name):
    d = data_from_ups_mib(ups(**{"2.1.0": value}))
    assert d.status == flags and d.extra["battery_status"] == name


def test_on_battery_and_low():
    d = data_from_ups_mib(ups(**{"4.1.0": 5, "2.1.0": 3}))
    assert d.flags == ["OB", "LB"]


@pytest.mark.parametrize("alarm,flags,text", [
    ("BatteryBad", ["OL", "RB"], ""), ("OnBattery", ["OL", "OB"], ""),
    ("LowBattery", ["OL", "LB"], ""), ("DepletedBattery", ["OL", "LB"], ""),
    ("OutputOverload", ["OL", "OVER"], ""), ("OnBypass", ["OL", "BYPASS"], ""),
    ("UpsOutputOff", ["OL", "OFF"], ""), ("OutputOffAsRequested", ["OL", "OFF"], ""),
    ("ShutdownImminent", ["OL", "FSD"], ""),
    ("InputBad", ["OL", "ALARM"], "input out of tolerance"),
    ("FanFailure", ["OL", "ALARM"], "fan failure"),
    ("ShutdownPending", ["OL", "ALARM"], "shutdown pending"),
    ("TestInProgress", ["OL", "ALARM"], "test in progress"),
])
def test_well_known_alarms(alarm, flags, text):
    d = data_from_ups_mib(ups(**{"6.1.0": 1, "6.2.1.2.1": alarm_oid(alarm)}))
    assert d.flags == flags and d.alarm == text
    assert d.extra["alarms"] == [f"upsAlarm{alarm}"]


def test_alarms_together_and_odd():
    d = data_from_ups_mib(ups(**{"6.1.0": 3, "6.2.1.2.1": alarm_oid("OnBypass"),
                                 "6.2.1.2.2": "." + alarm_oid("FanFailure"),
                                 "6.2.1.2.3": "1.3.6.1.4.1.9999.1", "6.2.1.2.4": b"junk"}))
    assert d.flags == ["OL", "BYPASS", "ALARM"]
    assert d.alarm == "fan failure, vendor alarm 1.3.6.1.4.1.9999.1, unreadable alarm"
    assert d.extra["unreadable"] == {"upsAlarmDescr.4": "'junk'"}
    # Alarms counted but the table not readable: still an alarm.
    d = data_from_ups_mib(ups(**{"6.1.0": 2}))
    assert d.flags == ["OL", "ALARM"] and "2 alarm(s) present" in d.alarm
    assert data_from_ups_mib(ups(**{"6.1.0": 0})).flags == ["OL"]


def test_values_scales_and_lines():
    d = data_from_ups_mib(ups(**{"2.3.0": 8, "2.4.0": 40, "2.5.0": 240, "2.7.0": -5,
                                 "3.3.1.2.2": 600, "3.3.1.2.1": 500, "3.3.1.3.1": 229,
                                 "4.4.1.5.1": 20, "4.4.1.5.2": 61, "4.4.1.5.3": 7,
                                 "2.2.0": 95, "1.1.0": b"EATON ", "1.2.0": "9PX"}))
    assert (d.runtime_seconds, d.charge_ratio, d.battery_voltage) == (480, 0.4, 24.0)
    assert d.temperature_celsius == -5           # a cold battery room is a reading, not garbage
    assert d.input_frequency == 50.0             # line 1, not the first answered
    assert d.load_ratio == 0.61                  # the busiest output line
    assert d.extra["seconds_on_battery"] == 95 and (d.mfr, d.model) == ("EATON", "9PX")


@pytest.mark.parametrize("oid,raw", [("2.4.0", 255), ("2.4.0", -1), ("2.4.0", b"40"),
                                     ("2.4.0", True), ("2.3.0", -3), ("4.4.1.5.1", 201),
                                     ("2.1.0", 0), ("4.1.0", b"3")])
def test_garbage_value_is_unreadable(oid, raw):
    d = data_from_ups_mib(ups(**{oid: raw}))
    assert len(d.extra["unreadable"]) == 1
    for reason in d.problems.values():     # the raw value is named in the reason
        assert f"'{raw.decode() if isinstance(raw, bytes) else raw}'" in reason
    assert d.charge_ratio is None and d.runtime_seconds is None and d.load_ratio is None


def test_istars_row_index_quirk():
    assert line_number("1") == 1 and line_number("1.0") == 1 and line_number("12") == 12
    assert line_number("1.2") is None and line_number("") is None and line_number("x") is None
    d = data_from_ups_mib(ups(**{"3.3.1.3.1.0": 224, "4.4.1.5.1.0": 17, "3.3.1.3.1.7": 5}))
    assert d.input_voltage == 224 and d.load_ratio == 0.17
    assert d.extra["unreadable"] == {"upsInputVoltage.1.7": "5"}


def test_vendor_fallback_only_when_ups_mib_is_silent():
    assert data_from_ups_mib({**ups(), XUPS_LOAD: 33}).load_ratio == 0.33
    assert data_from_ups_mib({**ups(**{"4.4.1.5.1": 20}), XUPS_LOAD: 33}).load_ratio == 0.2


def test_no_ups_mib():
    assert not has_ups_mib({U + "4.1.0": None, U + "2.1.0": None, XUPS_LOAD: 3})
    assert has_ups_mib({U + "4.1.0": None, U + "2.4.0": 100})
    d = data_from_ups_mib({})
    assert d.status is None and d.charge_ratio is None


def test_mapping_file_is_rfc_1628_and_speaks_flags_yaml():
    numbered = {n: a.name for n, a in MIB.alarms.items()}
    assert numbered == {i: f"upsAlarm{name}" for i, name in enumerate(WELL_KNOWN, 1)}
    assert {n: v.flags for n, v in MIB.enums["output_source"].values.items()} == SOURCE_FLAGS
    assert {n: v.flags for n, v in MIB.enums["battery_status"].values.items()} == BATTERY_FLAGS
    used = {f for a in MIB.alarms.values() for f in a.flags.split()}
    assert used <= set(FLAGS)


def test_mapping_file_errors_are_refused():
    text = (REPO / "agent" / "snmp" / "ups_mib.yaml").read_text()
    with pytest.raises(ValueError, match="'BOOM' is not in agent/ups/flags.yaml"):
        load_ups_mib(text.replace('flags: "OL TRIM"', 'flags: "OL BOOM"'))
    with pytest.raises(ValueError, match="not a numeric UpsData field"):
        load_ups_mib(text.replace("field: charge_ratio", "field: charge"))


class FakeSession:
    """Stands in for SnmpSession: a GET that answers, a walk that fails."""

    def __init__(self, scalars: dict, walk_error: str | None = None):
        self.scalars, self.walk_error = scalars, walk_error

    async def get(self, oids):
        return {o: self.scalars.get(o) for o in oids}

    async def walk(self, columns):
        from agent.snmp.client import SnmpError
        raise SnmpError(self.walk_error)

    def close(self):
        pass


def test_a_bad_table_walk_keeps_the_status():
    import asyncio

    from agent.config import from_dict
    from agent.snmp.ups_probe import SnmpUpsProbe
    config = from_dict({"agent": {"id": "t", "branch": "b", "region": "r"},
                        "ups": [{"name": "u", "snmp": {"host": "192.0.2.1",
                                                       "snmp": {"community": "c"}}}]})
    probe = SnmpUpsProbe(config.ups[0])
    probe._session = FakeSession(ups(**{"4.1.0": 5, "2.4.0": 40}), "returned OIDs out of order")
    r = asyncio.run(probe.aread())
    assert r.ok and r.detail["status"] == "OB" and r.detail["charge_ratio"] == 0.4
    assert r.detail["device"]["unreadable"] == {"tables": "returned OIDs out of order"}
    assert r.detail["input_voltage"] is None
