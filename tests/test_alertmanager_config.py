"""The shipped Alertmanager config (config/alertmanager/alertmanager.yml) in a
real Alertmanager: a power cut pages once (the collector's incident inhibits
Prometheus's UPS alert for the same branch), graded incidents reach the
leadership as well as the region's team, and drills page nobody."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from .support.notify import HttpSink
from .support.paths import REPO, free_port, need_binary, start_ready, terminate
from .test_delivery_e2e import wait_for

SHIPPED = REPO / "config" / "alertmanager" / "alertmanager.yml"


def test_amtool_accepts_the_shipped_config():
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.skip("amtool (Debian's prometheus-alertmanager) is not installed")
    done = subprocess.run([amtool, "check-config", str(SHIPPED)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture
def alertmanager(tmp_path):
    """The shipped config with its receivers' URLs pointed at one local sink
    (the path names the receiver) and group_wait shortened; routes and
    inhibitions exactly as shipped."""
    binary = need_binary("prometheus-alertmanager")
    cfg = yaml.safe_load(SHIPPED.read_text())
    with HttpSink() as sink:
        base = sink.url.rsplit("/", 1)[0]
        for r in cfg["receivers"]:
            for hook in r.get("webhook_configs", []):
                hook["url"] = f"{base}/{r['name']}"
        cfg["route"]["group_wait"] = "2s"
        (tmp_path / "am.yml").write_text(yaml.safe_dump(cfg))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start_ready([binary, f"--config.file={tmp_path / 'am.yml'}",
                            f"--storage.path={tmp_path / 'data'}",
                            f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                           tmp_path / "am.log", f"{url}/-/ready", 20)
        try:
            yield url, sink
        finally:
            terminate(proc)


def _post(url: str, *alerts: dict) -> None:
    req = urllib.request.Request(f"{url}/api/v2/alerts", json.dumps(list(alerts)).encode(),
                                 {"Content-Type": "application/json"})
    urllib.request.urlopen(req, timeout=5).close()


def _alert(name: str, **labels) -> dict:
    now = datetime.now(timezone.utc)
    return {"labels": {"alertname": name, **labels},
            "annotations": {"summary": name}, "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(minutes=10)).isoformat()}


def _sent(sink: HttpSink) -> list[tuple[str, str]]:
    """(receiver, alertname) of every alert every notification carried."""
    return [(path.rsplit("/", 1)[1], a["labels"]["alertname"])
            for _, path, body in list(sink.bodies) for a in body["alerts"]]



def _state(url: str, alertname: str) -> dict:
    with urllib.request.urlopen(f"{url}/api/v2/alerts?filter=alertname%3D%22{alertname}%22",
                                timeout=5) as r:
        alerts = json.load(r)
    return alerts[0]["status"] if alerts else {}


def test_a_power_cut_pages_once(alertmanager):
    url, sink = alertmanager
    # As Prometheus and the collector would post them for one power cut.
    _post(url, _alert("BranchwatchUPSOnBattery", branch="BR-0417", ups="rack", severity="warning"),
          _alert("BranchwatchIncident", branch="BR-0417", region="north", incident="INC-1",
                 severity="critical"))
    wait_for(lambda: ("it-north", "BranchwatchIncident") in _sent(sink))
    status = wait_for(lambda: (s := _state(url, "BranchwatchUPSOnBattery")).get("inhibitedBy") and s)
    assert status["state"] == "suppressed"
    assert all(name == "BranchwatchIncident" for _, name in _sent(sink)), _sent(sink)


def test_without_an_incident_the_ups_alert_pages(alertmanager):
    url, sink = alertmanager
    _post(url, _alert("BranchwatchUPSOnBattery", branch="BR-0042", ups="rack", severity="warning"))
    wait_for(lambda: ("duty-it", "BranchwatchUPSOnBattery") in _sent(sink))


def test_a_graded_incident_reaches_leadership_and_the_region(alertmanager):
    url, sink = alertmanager
    _post(url, _alert("BranchwatchIncident", branch="BR-0042", region="south", incident="INC-2",
                      severity="critical", grade_cbrc="II"),
          _alert("BranchwatchIncident", branch="DRILL-1", region="south", incident="INC-3",
                 severity="critical", drill="true"))
    wait_for(lambda: {("leadership", "BranchwatchIncident"), ("it-south", "BranchwatchIncident")}
          <= set(_sent(sink)))
    # The drill is routed to `discard` alone (a receiver with no webhook).
    with urllib.request.urlopen(f"{url}/api/v2/alerts?filter=incident%3D%22INC-3%22", timeout=5) as r:
        drill = json.load(r)
    assert [x["name"] for x in drill[0]["receivers"]] == ["discard"]
    with urllib.request.urlopen(f"{url}/api/v2/alerts?filter=incident%3D%22INC-2%22", timeout=5) as r:
        graded = json.load(r)
    assert {x["name"] for x in graded[0]["receivers"]} == {"leadership", "it-south"}
