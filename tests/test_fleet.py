"""The fleet at the collector: agents report their version, config template
hash and /metrics endpoint in heartbeats; `branchwatch fleet` lists them by
version with drift from the template; a real Prometheus discovers and scrapes
every agent through the collector's HTTP service discovery, with the branch
and region on `up`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from agent.about import template_sha256
from agent.config import from_dict
from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.console import console_yaml
from .support.paths import REPO
from .support.prometheus import PrometheusServer
from .test_delivery_e2e import wait_for

OPERATOR = "op-token-fleet-0123456789"


def _agent_config(tmp, agent: str, branch: str, collector_url: str, token: str, extra: dict = ()) -> dict:
    (tmp / "token").write_text(token)
    config = {"agent": {"id": agent, "branch": branch},
              "metrics": {"address": "127.0.0.1", "port": 0},
              # Relative to the agent's working directory: one template, every branch.
              "collector": {"url": collector_url, "token_file": "token",
                            "heartbeat_interval": 2, "timeout": 1.5, "spool": {"path": "spool.db"}}}
    config.update(extra)
    return config


def _get(url: str, token: str | None) -> tuple[int, object]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")



def test_drift_needs_a_template_most_branches_share():
    from collector.fleet.storage import AgentAboutRow
    from collector.fleet.view import expected_template

    def rows(*hashes):
        return [AgentAboutRow(agent=f"a{i}", branch=f"B{i}", version="0.1.0", config_sha256=h,
                              metrics_scheme=None, metrics_target=None, reported_at=0.0)
                for i, h in enumerate(hashes)]
    assert expected_template(rows("x", "x", "y"), None) == "x"
    assert expected_template(rows("x", "y", "z"), None) is None       # nothing shared
    assert expected_template(rows("x", "x", "y", "y"), None) is None  # a tie
    assert expected_template(rows("x", "y", "z"), "y") == "y"         # declared wins


def test_template_hash_leaves_out_identity_only():
    a = from_dict({"agent": {"id": "br-1-srv", "branch": "BR-1", "region": "north"}})
    b = from_dict({"agent": {"id": "br-2-srv", "branch": "BR-2", "region": "south"}})
    c = from_dict({"agent": {"id": "br-3-srv", "branch": "BR-3"}, "state": {"debounce": 3}})
    assert template_sha256(a) == template_sha256(b) != template_sha256(c)
    # Each branch's own token (read into the config from its file) is no drift.
    link = {"url": "https://collector:9812", "spool": {"path": "/var/lib/branchwatch/spool.db"}}
    d = from_dict({"agent": {"id": "br-4-srv", "branch": "BR-4"}, "collector": {**link, "token": "tok-4"}})
    e = from_dict({"agent": {"id": "br-5-srv", "branch": "BR-5"}, "collector": {**link, "token": "tok-5"}})
    assert template_sha256(d) == template_sha256(e)


@pytest.fixture
def fleet(tmp_path):
    agents = {"br-1-srv": ("BR-1", "north", "tok-br-1-aaaaaaaaaaaa"),
              "br-2-srv": ("BR-2", "north", "tok-br-2-bbbbbbbbbbbb"),
              "br-3-srv": ("BR-3", "south", "tok-br-3-cccccccccccc")}
    extra = (f"operators:\n  - {{name: prometheus, token_sha256: {token_hash(OPERATOR)}}}\n"
             + console_yaml())
    with CollectorProcess(tmp_path / "c", agents, extra=extra) as collector:
        procs = []
        for agent, (branch, _, token) in agents.items():
            d = tmp_path / agent
            d.mkdir()
            # BR-3's config differs from the template the others share.
            odd = {"state": {"debounce": 3}} if branch == "BR-3" else {}
            procs.append(AgentProcess(d, _agent_config(d, agent, branch, collector.url, token, odd),
                                      cwd=d).start())
        try:
            yield collector, procs
        finally:
            for p in procs:
                p.stop()


def test_fleet_lists_versions_and_drift(fleet):
    collector, agents = fleet
    status, data = wait_for(lambda: (r := _get(collector.url + "/api/v1/fleet", OPERATOR))[1]
                         .get("agents") and len(r[1]["agents"]) == 3 and r)
    assert status == 200
    by = {a["branch"]: a for a in data["agents"]}
    from agent import __version__
    assert {a["version"] for a in by.values()} == {__version__}
    assert [b for b, a in by.items() if a["drift"]] == ["BR-3"]
    assert by["BR-1"]["region"] == "north" and by["BR-3"]["region"] == "south"
    port = agents[0].metrics_url.split(":")[2].split("/")[0]
    assert by["BR-1"]["metrics"] == f"http://127.0.0.1:{port}/metrics"
    done = subprocess.run([sys.executable, "-m", "agent.cli", "fleet", "--url", collector.url],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(REPO), "BRANCHWATCH_TOKEN": OPERATOR})
    assert done.returncode == 0, done.stderr
    assert "3 agents, 1 versions, 1 with config drift" in done.stdout
    drift_lines = [ln for ln in done.stdout.splitlines() if "DRIFT" in ln]
    assert len(drift_lines) == 1 and "BR-3" in drift_lines[0]


def test_the_console_shows_each_agents_version_and_drift(fleet):
    from .test_console_http import Visitor
    collector, _ = fleet
    wait_for(lambda: len(_get(collector.url + "/api/v1/fleet", OPERATOR)[1].get("agents", [])) == 3)
    v = Visitor(collector.url)
    v.login("vera")
    status, _, body = v.go("/console/branches")
    assert status == 200
    from agent import __version__
    # Each branch page names its agents' versions; the grid marks drift on the tile.
    pages = {b: v.go(f"/console/branches/{b}")[2] for b in ("BR-1", "BR-2", "BR-3")}
    assert all(p.count(f'data-version="{__version__}"') == 1 for p in pages.values())
    tile = body.split('id="branch-BR-3"', 1)[1].split("</a>\n", 1)[0]
    assert 'class="state warning drift"' in tile and "配置与模板不一致" in tile    # zh first
    assert "drift" not in body.split('id="branch-BR-1"', 1)[1].split("</a>\n", 1)[0]
    assert "配置与模板不一致" in pages["BR-3"] and "配置与模板不一致" not in pages["BR-1"]


def test_service_discovery_needs_an_operator_token(fleet):
    collector, _ = fleet
    assert _get(collector.url + "/api/v1/prometheus/targets", None)[0] == 401
    assert _get(collector.url + "/api/v1/prometheus/targets", "tok-br-1-aaaaaaaaaaaa")[0] == 403


def test_prometheus_discovers_every_agent_with_branch_and_region(fleet, tmp_path):
    collector, agents = fleet
    wait_for(lambda: len(_get(collector.url + "/api/v1/prometheus/targets", OPERATOR)[1]) == 3)
    (tmp_path / "sd-token").write_text(OPERATOR)
    host = collector.url.split("//", 1)[1]
    job = {"job_name": "branchwatch-agent", "honor_labels": True,
           "http_sd_configs": [{"url": f"http://{host}/api/v1/prometheus/targets",
                                "refresh_interval": "1s",
                                # type spelled out: Prometheus 2.42 sends the bare token otherwise
                                "authorization": {"type": "Bearer",
                                                  "credentials_file": str(tmp_path / "sd-token")}}]}
    with PrometheusServer(tmp_path / "prom", scrape_configs=[job]) as prom:
        up = prom.wait_query('up{job="branchwatch-agent"} == 1', timeout=60)
        wait_for(lambda: len(prom.query('up{job="branchwatch-agent"} == 1')) == 3, timeout=60)
        up = prom.query('up{job="branchwatch-agent"}')
        assert {(s["metric"]["branch"], s["metric"]["region"]) for s in up} == \
            {("BR-1", "north"), ("BR-2", "north"), ("BR-3", "south")}
        # The agent's own `branch` label and the target's agree (no exported_branch).
        info = prom.wait_query('branchwatch_agent_info{branch="BR-3"}')
        assert "exported_branch" not in info[0]["metric"]
