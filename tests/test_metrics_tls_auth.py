"""The agent's /metrics over TLS with basic auth, scraped by a real Prometheus
(scheme https, tls_config, basic_auth with a password file), and refused to
anyone without the password."""

from __future__ import annotations

import base64
import hashlib
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

from .support.agent import AgentProcess
from .support.paths import REPO
from .support.prometheus import PrometheusServer

PASSWORD = "k7Qm2-scrape-secret-9fX"


@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    done = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "2", "-subj", "/CN=br-0417-srv01", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"openssl cannot make a test certificate: {done.stderr.strip()}")
    return d / "cert.pem", d / "key.pem"


def _config(cert, key) -> dict:
    return {"agent": {"id": "br-0417-srv01", "branch": "BR-0417", "region": "north"},
            "metrics": {"address": "127.0.0.1", "port": 0, "tls_cert": str(cert), "tls_key": str(key),
                        "basic_auth": {"user": "prometheus",
                                       "password_sha256": hashlib.sha256(PASSWORD.encode()).hexdigest()}}}


def _get(url: str, cafile, user: str | None = None, password: str | None = None) -> int:
    req = urllib.request.Request(url)
    if user is not None:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ssl.create_default_context(cafile=str(cafile)),
                                    timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path, cert):
    crt, key = cert
    with AgentProcess(tmp_path, _config(crt, key)) as agent:
        url = agent.metrics_url
        assert url.startswith("https://127.0.0.1:")
        assert _get(url, crt) == 401
        assert _get(url, crt, "prometheus", "wrong") == 401
        assert _get(url, crt, "someone", PASSWORD) == 401
        assert _get(url, crt, "prometheus", PASSWORD) == 200
        (tmp_path / "scrape-password").write_text(PASSWORD)
        target = url.split("//", 1)[1].split("/", 1)[0]
        job = {"job_name": "branchwatch-agent", "scheme": "https",
               "tls_config": {"ca_file": str(crt)},
               "basic_auth": {"username": "prometheus", "password_file": str(tmp_path / "scrape-password")},
               "static_configs": [{"targets": [target]}]}
        with PrometheusServer(tmp_path / "prom", scrape_configs=[job]) as prom:
            up = prom.wait_query('up{job="branchwatch-agent"} == 1')
            assert up
            info = prom.wait_query('branchwatch_agent_info{branch="BR-0417"}')
            assert info[0]["metric"]["region"] == "north"


@pytest.mark.parametrize("metrics, key", [
    ({"tls_cert": "/nonexistent/cert.pem"}, "metrics.tls_cert"),
    ({"tls_client_ca": "/x/ca.pem"}, "metrics.tls_client_ca"),
    ({"basic_auth": {"user": "prometheus", "password_sha256": "secret"}}, "metrics.basic_auth.password_sha256"),
])
def test_bad_metrics_listener_config_is_one_line_naming_the_key(tmp_path, metrics, key):
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({"agent": {"id": "a", "branch": "B"}, "metrics": metrics}))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "check-config", str(path)],
                          capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and key in lines[0] and str(path) in lines[0], done.stderr


def test_missing_certificate_file_is_one_line_at_start(tmp_path, cert):
    crt, key = cert
    config = _config(crt, key)
    config["metrics"]["tls_key"] = str(tmp_path / "missing-key.pem")
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "metrics.tls" in done.stderr, done.stderr
