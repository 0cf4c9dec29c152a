"""Enrolment without pasting secrets: the leadership enrols an agent at the
collector and gets a one-time code; the branch exchanges it for the token
(`branchwatch agent enrol`); the real agent then delivers, across a collector
restart; the code works once; a revoked agent is refused at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.collector import CollectorProcess, audit_records
from .support.paths import REPO
from .test_delivery_e2e import wait_for

LEADER = "leader-token-0123456789abcdef"


def _cli(*args: str, token: str | None = LEADER) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if token:
        env["BRANCHWATCH_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=60, env=env, cwd=REPO)


def _heartbeat(url: str, token: str, agent: str, branch: str) -> int:
    body = {"agent": agent, "branch": branch, "sent_at": "2026-12-02T03:00:00Z", "interval": 30,
            "checks": []}
    req = urllib.request.Request(url + "/api/v1/heartbeat", json.dumps(body).encode(),
                                 {"Authorization": f"Bearer {token}",
                                  "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code



def _fleet(url: str) -> list[dict]:
    req = urllib.request.Request(url + "/api/v1/fleet", headers={"Authorization": f"Bearer {LEADER}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)["agents"]


def test_enrol_by_code_deliver_restart_and_revoke(tmp_path):
    extra = f"operators:\n  - {{name: chen, token_sha256: {token_hash(LEADER)}}}\n"
    collector = CollectorProcess(tmp_path / "c", {}, extra=extra).start()
    try:
        done = _cli("collector", "enrol", "--agent", "br-0009-srv01", "--branch", "BR-0009",
                    "--region", "north", "--url", collector.url)
        assert done.returncode == 0, done.stderr
        code = done.stdout.splitlines()[1].strip()
        assert len(code) >= 20 and "branchwatch agent enrol" in done.stdout
        # Enrolling the same agent again, before revoking, is refused with the reason.
        again = _cli("collector", "enrol", "--agent", "br-0009-srv01", "--branch", "BR-0009",
                     "--url", collector.url)
        assert again.returncode != 0 and "already enrolled" in again.stderr

        agent_dir = tmp_path / "agent"
        agent_dir.mkdir()
        token_file = agent_dir / "token"
        config = {"agent": {"id": "br-0009-srv01", "branch": "BR-0009"},
                  "metrics": {"address": "127.0.0.1", "port": 0},
                  "collector": {"url": collector.url, "token_file": str(token_file),
                                "heartbeat_interval": 2, "timeout": 1.5,
                                "spool": {"path": str(agent_dir / "spool.db")}}}
        (agent_dir / "agent.yaml").write_text(json.dumps(config))
        done = _cli("agent", "enrol", "--config", str(agent_dir / "agent.yaml"), "--code", code,
                    token=None)
        assert done.returncode == 0, done.stderr
        assert "enrolled br-0009-srv01 (branch BR-0009, region north)" in done.stdout
        assert token_file.stat().st_mode & 0o777 == 0o640
        token = token_file.read_text().strip()
        assert token not in done.stdout
        # The code is spent: a second exchange is refused in one line.
        token_file.rename(agent_dir / "token.kept")
        done = _cli("agent", "enrol", "--config", str(agent_dir / "agent.yaml"), "--code", code,
                    token=None)
        assert done.returncode == 2 and "refused the code (403)" in done.stderr
        (agent_dir / "token.kept").rename(token_file)

        with AgentProcess(agent_dir, config):
            wait_for(lambda: any(a["agent"] == "br-0009-srv01" for a in _fleet(collector.url)))
        # The enrolment lives in the database: a restarted collector still knows the token.
        collector.stop()
        collector.start()
        assert _heartbeat(collector.url, token, "br-0009-srv01", "BR-0009") in (200, 204)
        assert _heartbeat(collector.url, token, "br-0009-srv01", "BR-9999") == 403

        done = _cli("collector", "revoke", "--agent", "br-0009-srv01", "--why", "machine stolen",
                    "--url", collector.url)
        assert done.returncode == 0, done.stderr
        assert _heartbeat(collector.url, token, "br-0009-srv01", "BR-0009") == 401
    finally:
        collector.stop()
    kinds = [k for k in ("agent.enrolment", "agent.enrolled", "agent.revoked")
             if audit_records(collector, k)]
    assert kinds == ["agent.enrolment", "agent.enrolled", "agent.revoked"]
    assert audit_records(collector, "agent.revoked")[0] == ("chen", {"agent": "br-0009-srv01",
                                                                     "why": "machine stolen"})


def test_enrolling_needs_an_operator_token(tmp_path):
    with CollectorProcess(tmp_path / "c", {}) as collector:
        req = urllib.request.Request(collector.url + "/api/v1/enrolments", b'{"agent":"a","branch":"B"}',
                                     {"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("accepted without a token")
        except urllib.error.HTTPError as e:
            assert e.code == 401
