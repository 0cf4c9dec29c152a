"""Every real UPS dump in the NUT Devices Dumps Library, through a real
dummy-ups + upsd and `branchwatch agent --once`: all are read, the flags
match the dump's ups.status, nothing crashes."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from .support.nut import NutServer
from .support.paths import data_dir

BATCHES = 6


def _dumps():
    root = data_dir("nut-ddl")
    return sorted(root.rglob("*.dev"))


def _status_in(path) -> str | None:
    """ups.status as the dump file says (the last one wins, as in dummy-ups)."""
    status = None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("ups.status:"):
            # dummy-ups drops '#' comments (the dumps carry '#BAD:' notes)
            status = line.split(":", 1)[1].split("#", 1)[0].strip().strip('"')
    return status


@pytest.mark.parametrize("batch", range(BATCHES))
@pytest.mark.parametrize("backend", ["auto"])
def test_every_dump_is_read(tmp_path, batch, backend):
    dumps = _dumps()[batch::BATCHES]
    names = {f"u{i:03d}": p for i, p in enumerate(dumps)}
    with NutServer(tmp_path / "nut", names) as nut:
        config = {
            "agent": {"id": "ddl", "branch": "lab"},
            "nut_client": backend,
            "ups": [{"name": n, "nut": {"ups": n, "port": nut.port}} for n in names],
        }
        cfg = tmp_path / "agent.yaml"
        cfg.write_text(yaml.safe_dump(config))
        r = subprocess.run([sys.executable, "-m", "agent.cli", "agent", "--config", str(cfg),
                            "--once"], capture_output=True, text=True, timeout=300)
        # A dump without ups.status gets dummy-ups' default: compare with upsd's.
        served = {n: nut.variables(n).get("ups.status") for n, p in names.items()
                  if _status_in(p) is None}
    assert "Traceback" not in r.stderr, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(lines) == len(names)
    problems = []
    for rec in lines:
        name = rec["detail"]["ups"]
        dump = names[name]
        if not rec["ok"]:
            problems.append(f"{dump.name}: not read: {rec['error']}")
            continue
        want = served[name] if name in served else _status_in(dump)
        got = rec["detail"]["status"]
        if (want or None) != (got or None) and (want or "").split() != (got or "").split():
            problems.append(f"{dump.name}: status {got!r}, dump says {want!r}")
        states = {c["check"].rsplit("/", 1)[1]: c["state"] for c in rec["checks"]}
        flags = (want or "").split()
        if "OB" in flags and "OL" not in flags:
            assert states["on_battery"] == "warning", dump
        if "OL" in flags and "OB" in flags:
            assert states["on_battery"] == "unknown", dump
        if "LB" in flags:
            assert states["battery_low"] == "critical", dump
    assert not problems, "\n".join(problems)
