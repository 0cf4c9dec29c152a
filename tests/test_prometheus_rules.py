"""The shipped Prometheus config, rules and Grafana dashboard (config/prometheus,
config/grafana): promtool accepts them, and a real Prometheus loading the rules
while scraping a real agent (NUT UPS, snmpsim switch, a TCP line, spool) and a
real collector evaluates every rule, panel and variable expression without
error, and every metric name they reference exists (no typo'd names)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from .support.agent import AgentProcess
from .support.collector import CollectorProcess
from .support.nut import NutServer
from .support.paths import REPO, data_dir
from .support.prometheus import PrometheusServer
from .support.snmpsim import SnmpSim, render, subset
from .test_collector_api import TOKENS
from .test_nut_agent import ONLINE

PROM = REPO / "config" / "prometheus"
RULES = sorted((PROM / "rules").glob("*.yml"))
DASHBOARD = REPO / "config" / "grafana" / "dashboards" / "branchwatch.json"
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                "and", "or", "unless", "offset", "inf", "nan"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    return path


def test_promtool_checks_rules_and_config():
    tool = promtool()
    assert RULES
    done = subprocess.run([tool, "check", "rules", *map(str, RULES)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    done = subprocess.run([tool, "check", "config", str(PROM / "prometheus.yml")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def rule_exprs() -> list[tuple[str, str]]:
    out = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out.append((f"{path.name}: {rule.get('alert') or rule.get('record')}", rule["expr"]))
    return out


def record_names() -> set[str]:
    return {rule["record"] for path in RULES
            for group in yaml.safe_load(path.read_text())["groups"]
            for rule in group["rules"] if "record" in rule}


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", var["query"]["query"])
            assert m, var
            out.append((f"variable {var['name']}", m[1]))
    return out


def substitute(expr: str) -> str:
    """Grafana's variables as Grafana would fill them: all values, 1m windows."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "1m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers outside strings, label
    matchers and brackets that are not functions, keywords or label names."""
    bare = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)          # drop string contents
    bare = re.sub(r"\{[^}]*\}", "", bare)                       # label matchers
    bare = re.sub(r"\[[^\]]*\]", "", bare)                      # range windows
    bare = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", bare)
    names = set()
    for m in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", bare):
        word = m[0]
        rest = bare[m.end():].lstrip()
        if word.lower() in PROMQL_WORDS or rest.startswith("("):   # keyword or function
            continue
        names.add(word)
    return names


def test_metric_names_parse_as_expected():
    assert metric_names('max by (branch) (label_replace(branchwatch_check_state{check=~"ups/.+"}, '
                        '"ups", "$1", "check", "x")) * on (branch) group_left (region) a:b') \
        == {"branchwatch_check_state", "a:b"}
    assert metric_names("rate(x_total[1m]) > bool 2 and up == 0") == {"x_total", "up"}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Prometheus with the shipped rules, scraping a real agent and a real collector."""
    tmp = tmp_path_factory.mktemp("promrules")
    line_target = socket.socket()
    line_target.bind(("127.0.0.1", 0))
    line_target.listen(50)
    sim = SnmpSim(tmp / "snmpsim")
    sim.write("sw", render(subset(data_dir("snmprec") / "cisco-catalyst3750-ios.snmprec")))
    sim.start(probe_community="sw")
    try:
        with NutServer(tmp / "nut", {"main": ONLINE}) as nut, \
                CollectorProcess(tmp / "collector", {"a1": ("b042", "south", TOKENS["a1"])}) as col:
            config = {
                "agent": {"id": "a1", "branch": "b042", "region": "south"},
                "state": {"debounce": 1},
                "ups": [{"name": "main", "interval": 0.5, "nut": {"ups": "main", "port": nut.port}}],
                "switches": [{"name": "core", "host": "127.0.0.1", "port": sim.port, "interval": 1,
                              "snmp": {"community": "sw"},
                              "interfaces": [{"index": 10101, "id": "primary", "role": "uplink-primary"},
                                             {"index": 10106, "id": "backup", "role": "uplink-backup"}]}],
                "lines": [{"name": "primary", "uplink": {"switch": "core", "interface": "primary"},
                           "method": "tcp", "interval": 2, "count": 1, "timeout": 0.5,
                           "targets": [{"name": "gateway", "host": "127.0.0.1",
                                        "port": line_target.getsockname()[1]}]}],
                "collector": {"url": col.url, "token": TOKENS["a1"], "heartbeat_interval": 1,
                              "timeout": 0.5, "spool": {"path": str(tmp / "spool.db")}},
            }
            with AgentProcess(tmp, config) as agent:
                server = PrometheusServer(tmp / "prom", [])
                (server.dir / "prometheus.yml").write_text(yaml.safe_dump({
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(p) for p in RULES],
                    "scrape_configs": [
                        {"job_name": "branchwatch-agent", "static_configs": [
                            {"targets": [urllib.parse.urlsplit(agent.metrics_url).netloc]}]},
                        {"job_name": "branchwatch-collector", "static_configs": [
                            {"targets": [urllib.parse.urlsplit(col.url).netloc]}]}],
                }))
                with server as prom:
                    # every job scraped, and the rules evaluated over the data
                    prom.wait_query('up{job="branchwatch-agent"} == 1')
                    prom.wait_query('up{job="branchwatch-collector"} == 1')
                    prom.wait_query("branchwatch_interface_in_octets_total")
                    prom.wait_query("branchwatch_probe_rtt_seconds")
                    prom.wait_query("branchwatch_collector_events_ingested_total")
                    prom.wait_query("region:branchwatch_critical_branches:sum")
                    yield prom
    finally:
        sim.stop()
        line_target.close()


def present_names(prom: PrometheusServer) -> set[str]:
    q = urllib.parse.urlencode({"match[]": '{__name__=~".+"}'})
    body = json.load(urllib.request.urlopen(f"{prom.url}/api/v1/label/__name__/values?{q}", timeout=5))
    return set(body["data"])


EXPRESSIONS = rule_exprs() + dashboard_exprs()


def test_every_expression_is_valid_and_names_only_real_metrics(prometheus):
    # every recording rule has produced its series at least once (needs 2 samples for rate)
    deadline = time.monotonic() + 20
    while not record_names() <= (names := present_names(prometheus)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert record_names() <= names, f"records never evaluated: {record_names() - names}"
    assert len(EXPRESSIONS) > 40
    problems = []
    for where, raw in EXPRESSIONS:
        expr = substitute(raw)
        q = urllib.parse.urlencode({"query": expr})
        try:
            body = json.load(urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{q}", timeout=5))
            ok = body["status"] == "success"
        except urllib.error.HTTPError as e:     # 400 bad_data: a parse or evaluation error
            ok, body = False, e.read().decode()
        if not ok:
            problems.append(f"{where}: {expr!r} -> {body}")
        referenced = metric_names(expr)
        if not referenced:
            problems.append(f"{where}: no metric name found in {expr!r}")
        for name in sorted(referenced - names):
            problems.append(f"{where}: unknown metric {name!r} in {expr!r}")
    assert not problems, "\n".join(problems)


def test_no_rule_fails_to_evaluate(prometheus):
    body = json.load(urllib.request.urlopen(f"{prometheus.url}/api/v1/rules", timeout=5))
    rules = [r for g in body["data"]["groups"] for r in g["rules"]]
    assert len(rules) == len(rule_exprs())
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
