"""The shipped systemd unit: hardened, restarts on failure, and passes
`systemd-analyze verify` where that tool exists."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from .support.paths import REPO

UNIT = REPO / "systemd" / "branchwatch-agent.service"
COLLECTOR_UNIT = REPO / "systemd" / "branchwatch-collector.service"


def _service_section(unit=UNIT) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for line in unit.read_text().splitlines():
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


def test_collector_unit_is_hardened_with_no_capabilities():
    s = _service_section(COLLECTOR_UNIT)
    for key, want in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "DynamicUser": "yes",
                      "StateDirectory": "branchwatch-collector", "CapabilityBoundingSet": "",
                      "RestartPreventExitStatus": "2"}.items():
        assert s.get(key) == [want], key
    # Its default data_dir is the unit's StateDirectory.
    from collector.config import Storage
    assert Storage().data_dir == "/var/lib/branchwatch-collector"


@pytest.mark.parametrize("unit_path", [UNIT, COLLECTOR_UNIT], ids=lambda p: p.name)
def test_systemd_analyze_verify(tmp_path, unit_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed")
    exe = shutil.which("branchwatch")
    if not exe:
        pytest.skip("the branchwatch command is not installed (pip install -e .)")
    unit = tmp_path / unit_path.name
    # Verify checks that ExecStart exists: point it at this machine's install.
    unit.write_text(unit_path.read_text().replace("/usr/local/bin/branchwatch", exe))
    r = subprocess.run([tool, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    problems = [l for l in (r.stdout + r.stderr).splitlines() if UNIT.name in l]
    assert not problems, problems


@pytest.mark.parametrize("unit_path, check", [
    (UNIT, "check-config /etc/branchwatch/agent.yaml"),
    (COLLECTOR_UNIT, "check-config --collector /etc/branchwatch/collector.yaml"),
], ids=lambda p: getattr(p, "name", "check"))
def test_units_check_the_config_and_take_secrets_as_credentials(unit_path, check):
    """Both units run check-config before they start, and get their secrets by
    LoadCredential= from a root-only directory (agent/credentials.py reads them)."""
    s = _service_section(unit_path)
    assert s["ExecStartPre"] == [f"/usr/local/bin/branchwatch {check}"]
    folder = "credentials" if unit_path == UNIT else "collector-credentials"
    assert s["LoadCredential"] == [f"branchwatch:/etc/branchwatch/{folder}"]
    from agent.credentials import PREFIX
    assert PREFIX == "branchwatch_"      # the id above, as systemd names each file's copy


@pytest.mark.parametrize("unit_path", [UNIT, COLLECTOR_UNIT], ids=lambda p: p.name)
def test_systemd_analyze_security_exposure_is_low(tmp_path, unit_path):
    tool = shutil.which("systemd-analyze")
    if not tool:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / unit_path.name
    unit.write_text(unit_path.read_text())
    r = subprocess.run([tool, "security", "--offline=true", str(unit)], capture_output=True,
                       text=True, timeout=60)
    line = [l for l in r.stdout.splitlines() if "Overall exposure level" in l]
    assert line, r.stdout + r.stderr
    exposure = float(line[0].split(":")[1].split()[0])
    assert exposure <= 2.5, line[0]
