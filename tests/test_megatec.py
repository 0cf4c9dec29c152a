"""The Megatec Q1 path: parser against real replies, flag table, and the serial
probe against a simulated UPS over real pseudo-terminals."""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.config import SerialTarget, Ups
from agent.model import State
from agent.sim.megatec_responder import (BATTERY_LOW, BEEPER_ON, STANDBY, UTILITY_FAIL,
                                         MegatecResponder, identity_line, q1_line)
from agent.ups.megatec import (Identity, MegatecError, Rating, parse_f, parse_i, parse_q1,
                               to_ups_data)
from agent.ups.serial_probe import SerialUpsProbe

from .support.paths import REPO

TESTDATA = Path(os.environ.get("BRANCHWATCH_TESTDATA", REPO.parent / "shared" / "testdata"))
RESPONSES = TESTDATA / "megatec" / "responses.tsv"


# --------------------------------------------------------------------------
# Every real reply in shared/testdata/megatec/responses.tsv


class Err:
    """Golden expectation: the parser must raise MegatecError mentioning `word`."""

    def __init__(self, word: str):
        self.word = word

    def __repr__(self):
        return f"Err({self.word!r})"


ECHO, EMPTY, NAK = Err("echoed"), Err("empty reply"), Err("NAK")
SHORT, START, GARBAGE = Err("short reply"), Err("invalid start character"), Err("not ASCII")

# (command, reply as in the file) -> expected: a ups.status string for status
# replies, a Rating / Identity, or Err. Keyed by text so an edited or added row
# in the file fails loudly instead of being silently mis-checked.
GOLDEN = {
    ("Q1", "(232.4 232.4 232.4 003 49.9 12.6 25.0 00001000"): "OL",
    ("D", "D"): ECHO,
    ("I", ""): EMPTY,
    ("F", "#220.0 003 12.00 50.0"): Rating(220.0, 3.0, 12.0, 50.0),
    ("Q1", "(232.9 232.9 232.9 003 49.9 13.4 25.0 00001000"): "OL",
    ("Q1", "(232.4 232.9 232.9 003 49.9 13.4 25.0 00001000"): "OL",
    ("Q1", "(005.2 232.4 226.8 002 50.1 12.9 25.0 10001000"): "OB",
    ("Q1", "(005.2 005.2 226.4 002 50.1 12.8 25.0 10001000"): "OB",
    ("Q1", "(005.2 005.2 227.2 002 50.1 12.2 25.0 10001000"): "OB",
    ("Q1", "(229.8 229.8 000.0 000 00.0 12.7 25.0 00001011"): "OL FSD",
    ("Q1", "(230.7 230.7 000.0 000 00.0 12.7 25.0 00001011"): "OL FSD",
    ("Q1", "(231.1 231.1 231.1 003 49.9 12.8 25.0 00001001"): "OL",
    ("Q1", "(231.6 231.1 231.1 003 49.9 12.8 25.0 00001001"): "OL",
    ("Q1", "(228.0 228.0 228.4 006 50.2 27.4 25.0 00001000"): "OL",
    ("Q1", "(228.0 228.0 228.4 017 50.0 27.4 25.0 00001001"): "OL",
    ("F", "#220.0 007 24.00 50.0"): Rating(220.0, 7.0, 24.0, 50.0),
    ("M", "H"): START,  # a Voltronic protocol id: not a reply any parser here takes
    ("F", "#230.0 003 12.00 50.0"): Rating(230.0, 3.0, 12.0, 50.0),
    ("QS", "(228.6 228.7 228.6 000 50.0 13.5 --.- 00001000"): "OL",
    ("QS", "(230.8 230.8 230.8 000 50.0 13.6 --.- 00001000"): "OL",
    ("Q1", "(233.0 000.0 233.0 014 49.0 27.0 20.8 00001001"): "OL",
    ("ID", "#                           V4.10     "): Identity("", "", "V4.10"),
    ("F", "#220.0 005 24.00 50.0"): Rating(220.0, 5.0, 24.0, 50.0),
    ("Q1", "(000.0 140.0 227.0 002 00.0 46.8 56.0 10001000"): "OB",
    ("Q1", "(241.5 000.0 230.3 000 49.9 2.25 48.0 00000001"): "OL",
    ("ID", "NAK"): NAK,
    ("Q1", "(227.0 120.0 000.0 000 49.9 2.28 25.0 00000001"): "OL",
    ("F", "#220.0 013 72.00 50.0"): Rating(220.0, 13.0, 72.0, 50.0),
    ("Q1", "(238.8 000.0 219.9 020 49.9 2.25 43.0 00000001"): "OL",
    ("Q1", "(238.6 000.0 220.2 019 49.9 2.23 43.0 00000001"): "OL",
    ("Q1", "(240.4 000.0 219.9 020 50.0 2.23 43.0 00000001"): "OL",
    ("Q1", "(233.0 000.0 232.0 014 50.0 27.0 20.8 00001"): SHORT,
    ("Q1", "(233.0 000.0 233.0 016 50.0 27.0 20.8 00001"): SHORT,
    ("Q1", "(229.4 229.4 229.4 013 49.9 13.1 25.0 00001001"): "OL",
    ("Q1", "(000.0 000.0 000.0 000 00.0 0.00 00.0 00000000"): "OL",
    ("F", "#000.0 0.0 00.00 00.0"): Rating(0.0, 0.0, 0.0, 0.0),
    ("I", "#"): Identity("", "", ""),
    ("Q1", "=`X\ufffd6"): GARBAGE,
    ("Q1", "(235.8 000.0 229.9 013 49.9 2.50 55.0 00000001"): "OL",
    ("F", "#230.0 004 036.0 50.0"): Rating(230.0, 4.0, 36.0, 50.0),
    ("Q1", "(226.0 000.0 227.0 029 49.9 27.1 29.0 00001000"): "OL",
    ("Q1", "*244.0 000.0 248.0 000 50.0 13.7 29.0 00001000"): START,
    ("Q1", "*245.0 000.0 248.0 000 50.0 13.7 29.0 00001000"): START,
    ("Q1", "(229.9 000.0 230.0 027 50.0 2.23 49.0 00100000"): "OL BYPASS",
    ("Q1", "(230.1 000.0 230.2 027 50.0 2.25 49.0 00100000"): "OL BYPASS",
    ("Q1", "(244.2 000.0 244.2 001 50.1 13.7 --.- 00001001"): "OL",
    ("Q1", "(231.0 000.0 232.0 002 49.0 13.5 30.8 00001001"): "OL",
    ("ID", "#                           V6.00     "): Identity("", "", "V6.00"),
    ("Q1", "("): SHORT,
    ("Q1", "(231.0 000.0 231.0 003 49.0 13.7 30.8 00001000"): "OL",
    ("I", "#-------------   ------     VT12046Q  "): Identity("", "", "VT12046Q"),
}

PARSER = {"Q1": parse_q1, "QS": parse_q1, "D": parse_q1, "F": parse_f, "I": parse_i, "ID": parse_i}
ALL_PARSERS = (parse_q1, parse_f, parse_i)


def _rows():
    if not RESPONSES.is_file():
        reason = f"{RESPONSES} not found (set BRANCHWATCH_TESTDATA to the shared testdata dir)"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-testdata")]
    with RESPONSES.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [pytest.param(r, id=f"row{i:02d}-{r['command']}") for i, r in enumerate(rows)]


ROWS = _rows()


def wire_forms(reply: str) -> list[bytes]:
    """The row's reply as it may arrive: without CR, with CR, then NUL padding or stale bytes."""
    data = reply.encode("utf-8")  # the garbage row holds U+FFFD: still not ASCII on the wire
    return [data, data + b"\r", data + b"\r\x00\x00\x00\x00\x00\x00", data + b"\r(stale 1"]


def _outcome(parser, data: bytes, command: str):
    try:
        result = parser(data, command=command)
    except MegatecError as e:
        return e
    if isinstance(result, (Rating, Identity)):
        return result
    return to_ups_data(result, None, None).status


def test_testdata_has_every_golden_row():
    if not RESPONSES.is_file():
        pytest.skip(f"{RESPONSES} not found")
    keys = {(r.values[0]["command"], r.values[0]["reply"]) for r in ROWS}
    assert len(ROWS) == 52
    assert keys == set(GOLDEN)


@pytest.mark.parametrize("row", ROWS)
def test_real_reply_matches_golden(row):
    command, reply = row["command"], row["reply"]
    assert (command, reply) in GOLDEN, f"no golden expectation for {command} {reply!r}"
    expected = GOLDEN[(command, reply)]
    parsers = [PARSER[command]] if command in PARSER else ALL_PARSERS
    for parser in parsers:
        for data in wire_forms(reply):
            got = _outcome(parser, data, command)
            if isinstance(expected, Err):
                assert isinstance(got, MegatecError), f"{parser.__name__}({data!r}) gave {got!r}"
                assert expected.word in str(got), str(got)
            else:
                assert got == expected, f"{parser.__name__}({data!r})"


@pytest.mark.parametrize("row", ROWS)
def test_real_reply_raises_only_megatec_error_in_any_parser(row):
    for parser in ALL_PARSERS:
        for data in wire_forms(row["reply"]):
            try:
                parser(data, command=row["command"])
            except MegatecError as e:
                assert str(e)  # every error has a human reason


def _q1(text: str):
    return parse_q1(text.encode("ascii") + b"\r")


def test_q1_values_on_battery_first_poll():
    q = _q1("(005.2 232.4 226.8 002 50.1 12.9 25.0 10001000")
    assert (q.input_voltage, q.input_fault_voltage, q.output_voltage) == (5.2, 232.4, 226.8)
    d = to_ups_data(q, None, None)
    assert d.status == "OB"
    assert d.load_ratio == pytest.approx(0.02)
    assert (d.input_frequency, d.battery_voltage, d.temperature_celsius) == (50.1, 12.9, 25.0)
    assert d.extra["ups_type"] == "standby" and d.extra["beeper"] is False
    assert d.extra["input_fault_voltage"] == 232.4


def test_q1_dashed_temperature_is_none():
    d = to_ups_data(_q1("(244.2 000.0 244.2 001 50.1 13.7 --.- 00001001"), None, None)
    assert d.temperature_celsius is None
    assert d.battery_voltage == 13.7 and d.extra["beeper"] is True


def test_q1_at_sign_fields_are_none():
    q = _q1("(@@@.@ 000.0 230.0 @@@ 50.0 @.@@ 25.0 00000000")
    assert q.input_voltage is None and q.load_percent is None and q.battery_voltage is None
    d = to_ups_data(q, None, None)
    assert d.load_ratio is None and d.output_voltage == 230.0 and d.status == "OL"


def test_q1_all_zeros_parses_as_online():
    d = to_ups_data(_q1("(000.0 000.0 000.0 000 00.0 0.00 00.0 00000000"), None, None)
    assert d.status == "OL" and d.extra["ups_type"] == "online"
    assert d.input_voltage == 0.0 and d.load_ratio == 0.0


def test_q1_46_bytes_without_cr():
    data = b"(227.0 120.0 000.0 000 49.9 2.28 25.0 00000001"
    assert len(data) == 46
    q = parse_q1(data)
    assert q.battery_voltage == 2.28 and q.bits == "00000001"


def test_f_forms():
    assert parse_f(b"#230.0 004 036.0 50.0\r") == Rating(230.0, 4.0, 36.0, 50.0)
    assert parse_f(b"#000.0 0.0 00.00 00.0\r\x00\x00") == Rating(0.0, 0.0, 0.0, 0.0)
    with pytest.raises(MegatecError, match="short reply"):
        parse_f(b"#230.0 004\r")
    with pytest.raises(MegatecError, match="invalid start character"):
        parse_f(b"(230.0 004 12.00 50.0\r")


def test_i_fixed_columns_keep_spaces_inside_names():
    line = identity_line("Mustek Power", "PM 800", "VER 1.2")
    assert len(line) == 38
    assert parse_i(line.encode() + b"\r") == Identity("Mustek Power", "PM 800", "VER 1.2")


@pytest.mark.parametrize("reply, word", [
    (b"", "empty reply"),
    (b"\r", "empty reply"),
    (b"\x00\x00\r\x00", "empty reply"),
    (b"Q1\r", "echoed"),
    (b"NAK\r", "NAK"),
    (b"(NAK\r", "NAK"),
    (b"*244.0 000.0 248.0 000 50.0 13.7 29.0 00001000\r", "invalid start character '*'"),
    (b"(233.0 000.0 232.0 014 50.0 27.0 20.8\r", "short reply to Q1: 7 of 8 fields"),
    (b"(233.0 000.0 232.0 014 50.0 27.0 20.8 00001\r", "5 of 8 status bits"),
    (b"(233.0 000.0 232.0 014 50.0 27.0 20.8 0000100100\r", "10 of 8 status bits"),
    (b"(233.0 000.0 232.0 014 50.0 27.0 20.8 0000\x001001\r", "not binary"),
    (b"(233.0 000.0 232.0 014 50.0 27.0 20.8 00002001\r", "not binary"),
    (b"(233.0 000.0 232.0 014 50.0 27.0 20.8 00001001 9\r", "9 fields instead of 8"),
    (b"(233.0 \xb0\xb0 232.0 014 50.0 27.0 20.8 00001001\r", "not ASCII"),
])
def test_q1_errors_say_why(reply, word):
    with pytest.raises(MegatecError) as info:
        parse_q1(reply)
    assert word in str(info.value)


# --------------------------------------------------------------------------
# The bit -> flag table


@pytest.mark.parametrize("bits, status, alarm", [
    ("00000000", "OL", ""),
    ("10000000", "OB", ""),
    ("01000000", "OL LB", ""),
    ("00100000", "OL BYPASS", ""),
    ("00010000", "ALARM OL", "UPS failed"),
    ("00001000", "OL", ""),
    ("00000100", "OL CAL", ""),
    ("00000010", "OL FSD", ""),
    ("00000001", "OL", ""),
    ("11000000", "OB LB", ""),
    ("11111111", "ALARM OB LB BYPASS CAL FSD", "UPS failed"),
])
def test_each_status_bit(bits, status, alarm):
    d = to_ups_data(_q1(f"(230.0 230.0 230.0 020 50.0 13.5 25.0 {bits}"), None, None)
    assert d.status == status
    assert d.alarm == alarm
    assert d.extra["ups_type"] == ("standby" if bits[4] == "1" else "online")
    assert d.extra["beeper"] is (bits[7] == "1")


@pytest.mark.parametrize("vin, vout, flag", [
    ("230.0", "230.0", "BYPASS"),
    ("200.0", "210.0", "BYPASS"),   # ratio 1.05: still inside the band
    ("200.0", "190.0", "BYPASS"),   # ratio 0.95: still inside the band
    ("200.0", "212.0", "BOOST"),    # ratio 1.06
    ("200.0", "188.0", "TRIM"),     # ratio 0.94
    ("200.0", "230.0", "BOOST"),
    ("250.0", "220.0", "TRIM"),
    ("000.0", "230.0", "BYPASS"),   # no input: NUT's ratio is meaningless
    ("@@@.@", "230.0", "BYPASS"),
])
def test_b5_bypass_boost_trim_from_ratio(vin, vout, flag):
    d = to_ups_data(_q1(f"({vin} 230.0 {vout} 020 50.0 13.5 25.0 00100000"), None, None)
    assert d.status == f"OL {flag}"


def test_rating_and_identity_go_to_data():
    d = to_ups_data(_q1(q1_line()), Rating(230.0, 4.0, 12.0, 50.0),
                    Identity("ACME", "PM-800", "V1.2"))
    assert (d.mfr, d.model, d.extra["firmware"]) == ("ACME", "PM-800", "V1.2")
    assert d.extra["rating"] == {"voltage": 230.0, "current": 4.0, "battery_voltage": 12.0,
                                 "frequency": 50.0}
    bare = to_ups_data(_q1(q1_line()), None, None)
    assert bare.mfr == "" and "rating" not in bare.extra


# --------------------------------------------------------------------------
# Properties

TOKENS = [b"(", b"#", b"*", b" ", b"  ", b"\r", b"\n", b"\x00", b"\xff", b"0", b"1", b".",
          b"230.0", b"--.-", b"@@@.@", b"00001000", b"0000100", b"NAK", b"Q1", b"\t", b"-"]


@settings(max_examples=400)
@given(st.one_of(st.binary(max_size=80),
                 st.lists(st.sampled_from(TOKENS), max_size=30).map(b"".join)))
def test_parsers_raise_only_megatec_error(data):
    for parser in ALL_PARSERS:
        try:
            result = parser(data)
        except MegatecError as e:
            assert str(e)
            continue
        if parser is parse_q1:
            assert len(result.bits) == 8 and set(result.bits) <= {"0", "1"}
            to_ups_data(result, None, None)


@given(vin=st.none() | st.floats(0, 300), vout=st.none() | st.floats(0, 300),
       load=st.none() | st.integers(0, 150), batt=st.none() | st.floats(0, 99.9),
       temp=st.none() | st.floats(0, 99.9), bits=st.integers(0, 255))
def test_q1_line_round_trips(vin, vout, load, batt, temp, bits):
    q = parse_q1(q1_line(vin, vout, load, batt, temp, bits).encode() + b"\r")
    assert q.bits == format(bits, "08b")
    for got, sent in ((q.input_voltage, vin), (q.output_voltage, vout), (q.load_percent, load),
                      (q.temperature, temp)):
        assert (got is None) == (sent is None)
        if sent is not None:
            assert got == pytest.approx(sent, abs=0.51)
    assert (q.battery_voltage is None) == (batt is None)


# --------------------------------------------------------------------------
# The probe against the simulator over real pseudo-terminals

SERIAL_TIMEOUT = 0.5


def make_probe(port: str, name: str = "branch-ups") -> SerialUpsProbe:
    return SerialUpsProbe(Ups(name=name, serial=SerialTarget(port=port, timeout=SERIAL_TIMEOUT)))


def checks(reading) -> dict:
    return {c.check: c for c in reading.checks}


def timed_read(probe):
    t0 = time.monotonic()
    reading = probe.read()
    return reading, time.monotonic() - t0


@pytest.fixture
def socat_pair(tmp_path):
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat is not installed: cannot make a linked pty pair")
    ups, agent = tmp_path / "ups", tmp_path / "agent"
    proc = subprocess.Popen([socat, "-d", "-d", f"pty,raw,echo=0,link={ups}",
                             f"pty,raw,echo=0,link={agent}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 5
        while not (ups.exists() and agent.exists()):
            if proc.poll() is not None:
                pytest.fail(f"socat exited {proc.returncode}: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("socat did not create both pty links within 5 s")
            time.sleep(0.02)
        yield str(ups), str(agent)
    finally:
        proc.terminate()
        try:
            proc.wait(3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stderr.close()


@pytest.fixture
def rig(socat_pair):
    ups_end, agent_end = socat_pair
    responder = MegatecResponder.attach(ups_end, port_path=agent_end).start()
    probe = make_probe(agent_end)
    yield responder, probe
    probe.close()
    responder.stop()


def test_socat_online_then_on_battery_then_battery_low(rig):
    ups, probe = rig
    reading, took = timed_read(probe)
    assert reading.ok, reading.error
    c = checks(reading)
    assert c["ups/branch-ups/comm"].state is State.OK
    assert c["ups/branch-ups/on_battery"].state is State.OK
    assert c["ups/branch-ups/battery_low"].state is State.OK
    assert all(x.state is State.OK for x in reading.checks), reading.checks
    assert reading.detail["port"] == ups.port_path
    assert reading.detail["status"] == "OL"
    assert reading.detail["input_voltage"] == 230.0 and reading.detail["load_ratio"] == 0.2
    assert (reading.detail["mfr"], reading.detail["model"]) == ("BRANCHWATCH SIM", "MEGATEC-1K")
    assert reading.detail["device"]["rating"]["voltage"] == 230.0
    assert ups.received == ["Q1", "F", "I"]
    # Each CR ends its read: Q1, F and I in well under one read slice (a
    # plain read(64) would wait 0.1 s per reply for bytes that never come).
    assert took < 0.1, took

    ups.q1 = q1_line(input_voltage=0.0, output_voltage=228.0, bits=UTILITY_FAIL | STANDBY)
    reading = probe.read()
    c = checks(reading)
    assert reading.ok and reading.detail["status"] == "OB"
    assert c["ups/branch-ups/on_battery"].state is State.WARNING
    assert c["ups/branch-ups/on_battery"].reason == "on battery: mains power lost"
    assert c["ups/branch-ups/battery_low"].state is State.OK
    assert ups.received == ["Q1", "F", "I", "Q1"]  # F and I only after an open

    ups.q1 = q1_line(input_voltage=0.0, output_voltage=228.0, battery_voltage=10.5,
                     bits=UTILITY_FAIL | BATTERY_LOW | STANDBY)
    reading = probe.read()
    c = checks(reading)
    assert reading.detail["status"] == "OB LB"
    assert c["ups/branch-ups/on_battery"].state is State.WARNING
    assert c["ups/branch-ups/battery_low"].state is State.CRITICAL
    assert reading.detail["battery_voltage"] == 10.5


def test_socat_silence_then_recovery(rig):
    ups, probe = rig
    assert probe.read().ok
    ups.silent = True
    reading, took = timed_read(probe)
    c = checks(reading)
    assert not reading.ok
    comm = c["ups/branch-ups/comm"]
    assert comm.state is State.CRITICAL
    assert comm.reason == f"cannot see the UPS: timed out: no reply to Q1 within {SERIAL_TIMEOUT:g} s"
    assert reading.error == comm.reason
    assert c["ups/branch-ups/on_battery"].state is State.UNKNOWN
    assert c["ups/branch-ups/battery_low"].state is State.UNKNOWN
    assert SERIAL_TIMEOUT <= took < probe.timeout

    ups.silent = False
    ups.received.clear()
    reading = probe.read()
    assert reading.ok, reading.error
    assert checks(reading)["ups/branch-ups/comm"].state is State.OK
    assert ups.received == ["Q1", "F", "I"]  # the port was reopened


@pytest.mark.parametrize("raw, why", [
    (b"=`X\xef\xbf\xbd6\r", "garbage reply to Q1: not ASCII text"),
    (b"\xfe\xff\x01", "timed out waiting for the CR ending the reply to Q1"),
    (b"(233.0 000.0 232.0 014 50.0 27.0 20.8 00001\r", "short reply to Q1: 5 of 8 status bits"),
    (b"*244.0 000.0 248.0 000 50.0 13.7 29.0 00001000\r", "invalid start character '*'"),
    (b"NAK\r", "the UPS refused Q1 (NAK)"),
])
def test_socat_bad_replies_are_comm_critical(rig, raw, why):
    ups, probe = rig
    ups.raw = raw
    reading = probe.read()
    comm = checks(reading)["ups/branch-ups/comm"]
    assert not reading.ok
    assert comm.state is State.CRITICAL
    assert comm.reason.startswith("cannot see the UPS: ")
    assert why in comm.reason
    assert checks(reading)["ups/branch-ups/on_battery"].state is State.UNKNOWN
    ups.raw = None
    assert probe.read().ok


def test_socat_stale_bytes_before_a_poll_are_dropped(rig):
    ups, probe = rig
    assert probe.read().ok
    ups.inject(b"(999.9 999.9 999.9 099 99.9 9.99 99.9 11111111\r")  # a late or stray reply
    time.sleep(0.05)
    reading = probe.read()
    assert reading.ok and reading.detail["status"] == "OL", reading.detail


def test_socat_missing_rating_and_identity_are_not_fatal(rig):
    ups, probe = rig
    ups.rating = ups.identity = None   # the unit knows neither F nor I ...
    ups.echo_unknown = False           # ... and ignores them
    reading = probe.read()
    assert reading.ok, reading.error
    assert reading.detail["rating_error"] == f"timed out: no reply to F within {SERIAL_TIMEOUT:g} s"
    assert reading.detail["identity_error"] == f"timed out: no reply to I within {SERIAL_TIMEOUT:g} s"
    assert reading.detail["mfr"] == "" and "rating" not in reading.detail

    probe.close()
    ups.echo_unknown = True            # now it echoes them, as the Megatec spec says
    reading = probe.read()
    assert reading.ok
    assert "echoed F back" in reading.detail["rating_error"]
    assert "echoed I back" in reading.detail["identity_error"]


def test_openpty_pair_without_socat():
    with MegatecResponder() as ups:
        probe = make_probe(ups.port_path, name="cash-desk")
        try:
            reading, took = timed_read(probe)
            assert reading.ok, reading.error
            assert took < 0.1, took
            c = checks(reading)
            assert c["ups/cash-desk/comm"].state is State.OK
            assert c["ups/cash-desk/on_battery"].state is State.OK
            assert reading.detail["port"] == ups.port_path
            ups.q1 = q1_line(input_voltage=0.0, bits=UTILITY_FAIL | BATTERY_LOW | BEEPER_ON)
            c = checks(probe.read())
            assert c["ups/cash-desk/on_battery"].state is State.WARNING
            assert c["ups/cash-desk/battery_low"].state is State.CRITICAL
        finally:
            probe.close()


def test_port_in_use_by_another_probe():
    with MegatecResponder() as ups:
        first, second = make_probe(ups.port_path), make_probe(ups.port_path)
        try:
            assert first.read().ok
            reading = second.read()
            assert not reading.ok
            assert "in use by another program" in reading.error
        finally:
            first.close()
            second.close()


def test_missing_port_is_comm_critical():
    probe = make_probe("/nonexistent/ttyUPS0")
    reading = probe.read()
    comm = checks(reading)["ups/branch-ups/comm"]
    assert comm.state is State.CRITICAL
    assert comm.reason == ("cannot see the UPS: cannot open /nonexistent/ttyUPS0: "
                           "No such file or directory")
    assert probe.read().error == reading.error  # retried, still failing, no exception


def test_socket_url_to_a_tcp_bridge():
    """A serial-to-Ethernet bridge speaks raw TCP: serial_for_url('socket://...')."""
    sim = MegatecResponder()  # used only for its replies, not started
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve():
        conn, _ = server.accept()
        with conn:
            buf = b""
            while chunk := conn.recv(256):
                buf += chunk
                while b"\r" in buf:
                    line, buf = buf.split(b"\r", 1)
                    conn.sendall(sim.respond(line.decode()))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    probe = make_probe(f"socket://127.0.0.1:{port}")
    try:
        reading = probe.read()
        assert reading.ok, reading.error
        assert reading.detail["status"] == "OL" and reading.detail["model"] == "MEGATEC-1K"
    finally:
        probe.close()
        server.close()
        sim.stop()
        thread.join(2)
