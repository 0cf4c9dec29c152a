"""`branchwatch demo` (the README's first command) plays its story with no
root and no installed servers: each step shows up as state changes."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from .support.paths import REPO


def test_demo_story_end_to_end():
    r = subprocess.run([sys.executable, "-m", "agent.cli", "demo", "--port", "0",
                        "--duration", "26", "--speed", "3"],
                       capture_output=True, text=True, timeout=90,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert re.search(r"metrics: http://127\.0\.0\.1:\d+/metrics", out)

    def changed(check, old, new):
        return re.search(rf"{re.escape(check)}\s+{old} → {new}\b", out)

    # The power cut reaches both UPS, the NUT one and the serial one.
    assert changed("ups/main/on_battery", "ok", "warning"), out
    assert changed("ups/rack/on_battery", "ok", "warning"), out
    assert changed("ups/main/battery_low", "ok", "critical"), out
    assert changed("ups/rack/battery_low", "ok", "critical"), out
    assert changed("ups/main/on_battery", "warning", "ok"), out
    assert changed("tcp/core-system", "ok", "critical"), out
    assert changed("tcp/core-system", "critical", "ok"), out
    assert changed("ups/main/comm", "ok", "critical"), out
    assert "Traceback" not in r.stderr
