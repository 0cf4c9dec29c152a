"""The wire's bounds (agent/wire.py): cut text keeps a visible marker, and the
real collector answers 400 naming the field for every value out of range
(never a 5xx, and it keeps serving afterwards)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import msgspec
import pytest

from agent import wire
from tests.test_collector_api import (TOKENS, CollectorProcess, get, heartbeat,
                                      request)


def test_cut_keeps_short_text_and_marks_long_text_with_its_length():
    assert wire.cut("mains lost") == "mains lost"
    long = "ERR " + "x" * 409_596
    cut = wire.cut(long)
    assert len(cut) == wire.REASON_MAX
    assert cut.startswith("ERR xxx") and cut.endswith("… [cut, 409600 chars]")
    assert wire.cut("abcdefghij" * 10, 30) == "abcdefghijab… [cut, 100 chars]"
    assert len(wire.cut("abcdefghij" * 10, 30)) <= 30


def test_time_range_is_years_2000_to_2100():
    assert wire.time_problem(datetime(2000, 1, 1, tzinfo=timezone.utc)) is None
    assert wire.time_problem(datetime(2100, 12, 31, tzinfo=timezone.utc)) is None
    assert "outside the years 2000..2100" in wire.time_problem(
        datetime(1, 1, 1, tzinfo=timezone.utc))
    assert wire.time_problem(None) is None


def _event(**over) -> dict:
    e = {"id": wire.new_event_id(), "kind": "state", "agent": "a1", "branch": "B1",
         "check": "ups/rack/comm", "old_state": None, "new_state": "ok", "reason": "fine",
         "observed_at": "2026-01-01T00:00:00Z"}
    return {**e, **over}


def _batch(*events, **over) -> bytes:
    b = {"agent": "a1", "branch": "B1", "sent_at": "2026-01-01T00:00:01Z",
         "events": list(events)}
    return json.dumps({**b, **over}).encode()


def _heartbeat(**over) -> bytes:
    hb = json.loads(heartbeat())
    return json.dumps({**hb, **over}).encode()


def test_decode_refuses_an_old_time_naming_the_field():
    with pytest.raises(msgspec.ValidationError, match=r"\$\.events\[1\]\.observed_at"):
        wire.decode(_batch(_event(), _event(observed_at="0001-01-01T00:00:00Z")), wire.Batch)


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    c = CollectorProcess(tmp_path_factory.mktemp("collector")).start()
    yield c
    assert c.stop() == 0


BAD_BATCHES = [
    (_batch(_event(reason="x" * (wire.REASON_MAX + 1))), "events[0].reason"),
    (_batch(_event(check="c" * (wire.CHECK_MAX + 1))), "events[0].check"),
    (_batch(_event(id="i" * (wire.ID_MAX + 1))), "events[0].id"),
    (_batch(_event(), _event(observed_at="0001-01-01T00:00:00Z")), "events[1].observed_at"),
    (_batch(_event(observed_at="2150-01-01T00:00:00Z")), "events[0].observed_at"),
    (_batch(_event(), sent_at="1970-01-01T00:00:00Z"), "sent_at"),
    (_batch(_event(), agent="a" * (wire.ID_MAX + 1)), "agent"),
]
BAD_HEARTBEATS = [
    (_heartbeat(spool_depth=2**70), "spool_depth"),
    (_heartbeat(spool_depth=-1), "spool_depth"),
    (_heartbeat(interval=1e300), "interval"),
    (_heartbeat(region="r" * (wire.REGION_MAX + 1)), "region"),
    (_heartbeat(checks=[{"check": "ups/rack/comm", "state": "ok", "reason": "",
                         "since": "0001-01-01T00:00:00Z"}]), "checks[0].since"),
    (_heartbeat(checks=[{"check": "ups/rack/comm", "state": "ok",
                         "reason": "r" * (wire.REASON_MAX + 1)}]), "checks[0].reason"),
]


@pytest.mark.parametrize("body,field", BAD_BATCHES, ids=[f for _, f in BAD_BATCHES])
def test_collector_refuses_out_of_range_events_with_400_naming_the_field(collector, body, field):
    status, data = request(collector.url + "/api/v1/events", body, TOKENS["a1"])
    assert status == 400, data
    assert json.loads(data)["error"].startswith(field + ":")
    assert get(collector.url + "/healthz")[0] == 200


@pytest.mark.parametrize("body,field", BAD_HEARTBEATS, ids=[f for _, f in BAD_HEARTBEATS])
def test_collector_refuses_out_of_range_heartbeats_with_400_naming_the_field(collector, body,
                                                                             field):
    status, data = request(collector.url + "/api/v1/heartbeat", body, TOKENS["a1"])
    assert status == 400, data
    assert json.loads(data)["error"].startswith(field + ":")
    assert get(collector.url + "/healthz")[0] == 200


def test_values_at_the_bounds_are_accepted(collector):
    body = _batch(_event(reason="r" * wire.REASON_MAX, check="c" * wire.CHECK_MAX,
                         observed_at="2000-01-01T00:00:00Z"))
    status, data = request(collector.url + "/api/v1/events", body, TOKENS["a1"])
    assert status == 200, data
    status, data = request(collector.url + "/api/v1/heartbeat",
                           _heartbeat(spool_depth=wire.SPOOL_DEPTH_MAX), TOKENS["a1"])
    assert status in (200, 204), data
