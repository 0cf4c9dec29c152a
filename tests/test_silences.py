"""Silences set by people over the API: kept by the collector (audited), they
hold back fault alerts in their scope, and the same silence is set (and
expired) at a real Alertmanager the incidents are forwarded to."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timedelta, timezone

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import token_hash

from .support.collector import CollectorProcess, audit_records
from .support.notify import Alertmanager, HttpSink
from .test_collector_api import request
from .test_delivery_e2e import wait_for

AGENT = "token-of-a1-silences-xxxxxxxxxxxx"
OPERATOR = "operator-silences-token-xxxxxxxxxx"


def _collector(tmp_path, webhook: str, forward: str) -> CollectorProcess:
    c = CollectorProcess(tmp_path / "c", {"a1": ("BR-0417", "north", AGENT)})
    with c.config.open("a") as f:
        f.write(f"""operators:
  - {{name: chen, token_sha256: {token_hash(OPERATOR)}}}
notify:
  ack_secret: "silence-secret-0123456789"
  public_url: "{c.url}"
  people:
    - {{name: 李娜, roles: [execution, leadership], webhook: "{webhook}"}}
  routes:
    - {{name: any, notify: [execution]}}
  retry: {{first: 0.2, max: 1, timeout: 3}}
  alertmanager:
    forward: [{forward}]
""")
    return c


def _fault(c, check: str) -> None:
    now = datetime.now(timezone.utc)
    e = Event(id=new_event_id(), kind="state", agent="a1", branch="BR-0417", check=check,
              old_state=None, new_state="critical", reason=f"{check} critical", observed_at=now)
    status, _ = request(c.url + "/api/v1/events",
                        encode(Batch(agent="a1", branch="BR-0417", sent_at=now, events=[e])), AGENT)
    assert status == 200


def _api(c, method: str, path: str, body: dict | None = None):
    status, raw = request(c.url + path, None if body is None else json.dumps(body).encode(),
                          OPERATOR, method=method)
    return status, json.loads(raw or b"{}")


def _am_silences(am: Alertmanager) -> list[dict]:
    with urllib.request.urlopen(f"{am.url}/api/v2/silences", timeout=5) as r:
        return json.load(r)


def test_a_silence_holds_alerts_here_and_at_alertmanager_until_expired(tmp_path):
    with HttpSink() as sink, Alertmanager(tmp_path / "am") as am:
        c = _collector(tmp_path, sink.url, am.url).start()
        try:
            ends = (datetime.now(timezone.utc) + timedelta(hours=2)).isoformat()
            status, data = _api(c, "POST", "/api/v1/silences",
                                {"branches": ["BR-0417"], "ends": ends, "why": "UPS 维护"})
            assert status == 201, data
            assert data["active"] and data["created_by"] == "chen"
            [am_result] = data["alertmanager"]
            assert "silence" in am_result, am_result
            [am_silence] = [s for s in _am_silences(am) if s["id"] == am_result["silence"]]
            assert am_silence["status"]["state"] == "active"
            assert am_silence["matchers"] == [{"name": "branch", "value": "BR\\-0417",
                                               "isRegex": True, "isEqual": True}]

            _fault(c, "ups/rack/on_battery")
            held = wait_for(lambda: audit_records(c, "notify.held"), what="a held alert")
            assert "UPS 维护" in held[0][1]["why"]
            assert not sink.bodies          # held, not sent

            status, data = _api(c, "POST", f"/api/v1/silences/{data['id']}/expire",
                                {"why": "maintenance done"})
            assert status == 200 and not data["active"] and data["expired_by"] == "chen"
            wait_for(lambda: [s for s in _am_silences(am) if s["id"] == am_result["silence"]
                              and s["status"]["state"] == "expired"], what="expired at Alertmanager")
            # The held alert goes out once the silence is over.
            wait_for(lambda: sink.bodies, what="the alert sent after the silence")
            status, listed = _api(c, "GET", "/api/v1/silences")
            assert status == 200 and [s["active"] for s in listed["silences"]] == [False]
        finally:
            c.stop()
    assert [d["why"] for _, d in audit_records(c, "silence.expired")] == ["maintenance done"]
    assert audit_records(c, "silence.set")[0][0] == "chen"


def test_bad_silences_are_400s_naming_the_field(tmp_path):
    with HttpSink() as sink:
        c = _collector(tmp_path, sink.url, "http://127.0.0.1:9").start()
        try:
            now = datetime.now(timezone.utc)
            for body, field in (({"why": "x"}, "ends"),
                                ({"ends": (now - timedelta(hours=1)).isoformat(), "why": "x"}, "ends"),
                                ({"ends": (now + timedelta(hours=1)).isoformat()}, "why"),
                                ({"ends": "tomorrow", "why": "x"}, "ends")):
                status, data = _api(c, "POST", "/api/v1/silences", body)
                assert status == 400 and field in data["error"], (body, data)
            status, data = _api(c, "POST", "/api/v1/silences/SIL-none/expire", {"why": "x"})
            assert status == 404
        finally:
            c.stop()
