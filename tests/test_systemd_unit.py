"""The shipped systemd unit: hardened, restarts on failure, and passes
`systemd-analyze verify` where that tool exists."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .support.paths import REPO

UNIT = REPO / "systemd" / "branchwatch-agent.service"


def _service_section() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            values.setdefault(k, []).append(v)
    return values


def test_unit_is_hardened_and_unprivileged():
    s = _service_section()
    for key, want in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                      "PrivateTmp": "yes", "Restart": "on-failure", "DynamicUser": "yes",
                      "SupplementaryGroups": "dialout", "StateDirectory": "branchwatch"}.items():
        assert s.get(key) == [want], key
    # Only the right to bind the trap port (162); nothing else.
    assert s["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert "User" in s and s["User"] != ["root"]


def test_systemd_analyze_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed")
    exe = shutil.which("branchwatch")
    if not exe:
        pytest.skip("the branchwatch command is not installed (pip install -e .)")
    unit = tmp_path / UNIT.name
    # Verify checks that ExecStart exists: point it at this machine's install.
    unit.write_text(UNIT.read_text().replace("/usr/local/bin/branchwatch", exe))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    problems = [l for l in (r.stdout + r.stderr).splitlines() if UNIT.name in l]
    assert not problems, problems
