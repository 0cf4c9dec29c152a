"""The `branchwatch` command mounts the collector's commands only when asked
for: the agent's own commands never import the collector package, while
help and the collector's commands still work."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from agent.cli import wants_collector

from .support.paths import REPO


def run(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO), **env})


def imported(stderr: str) -> set[str]:
    """Module names from PYTHONPROFILEIMPORTTIME lines."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines()
            if line.startswith("import time:") and line.count("|") == 2}


@pytest.mark.parametrize("argv, mounted", [
    (["agent", "--config", "a.yaml"], False), (["check-config", "a.yaml"], False),
    (["port", "--config", "a.yaml", "sw", "p1", "up"], False), (["ups-command"], False),
    (["collector", "--config", "c.yaml"], True), (["audit", "verify"], True),
    (["spool", "list"], False), (["enrol", "--code", "x"], False), (["agent", "enrol"], False),
    (["incidents"], True), (["--help"], True), ([], True), (["no-such-command"], True),
])
def test_which_commands_mount_the_collector(argv, mounted):
    assert wants_collector(argv) is mounted


def test_check_config_imports_no_collector_module(tmp_path):
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({"agent": {"id": "a1", "branch": "b001"}}))
    done = run("check-config", str(config), PYTHONPROFILEIMPORTTIME="1")
    assert done.returncode == 0, done.stderr
    modules = imported(done.stderr)
    assert "agent.config" in modules                       # the probe sees imports at all
    assert not {m for m in modules if m.split(".")[0] == "collector"}


def test_help_still_lists_the_collector_commands():
    done = run("--help")
    assert done.returncode == 0
    for command in ("agent", "check-config", "collector", "audit", "incidents"):
        assert f"    {command}" in done.stdout, done.stdout


def test_collector_command_still_works():
    done = run("collector", "token", "--agent", "a9", "--branch", "b009")
    assert done.returncode == 0, done.stderr
    assert "a9" in done.stdout and "b009" in done.stdout
