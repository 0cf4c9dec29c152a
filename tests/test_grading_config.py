"""The collector refuses to start on a bad grading set-up (issue 5: "bad table
-> clear error naming file and rule"): exit 2, one line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from .support.paths import REPO

BAD_TABLE = """\
name: mine
grades: [A, B]
rules:
  - {id: a-long, kind: scope, grade: A, regions_at_least: 1, business_minutes: 60}
  - {id: b-short, kind: scope, grade: B, regions_at_least: 1, business_minutes: -5}
"""


def start(tmp_path, grading: str) -> subprocess.CompletedProcess:
    config = tmp_path / "collector.yaml"
    config.write_text(f"storage: {{data_dir: {tmp_path / 'data'}}}\ngrading:\n{grading}")
    return subprocess.run([sys.executable, "-m", "collector.cli", "collector", "--config",
                           str(config)], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


@pytest.mark.parametrize("grading, expected", [
    ("  tables: [no-such-table]\n",
     ["grading.tables:", "no-such-table.yaml", "cannot read"]),
    ("  tables: [BAD]\n",
     ["grading.tables:", "bad.yaml", "rules[1].business_minutes", "b-short"]),
    ("  calendar: {hours: ['18:00-09:00']}\n",
     ["grading.calendar.hours[0]", "start before end"]),
    ("  calendar: {timezone: Mars/Olympus}\n", ["grading.calendar.timezone"]),
    ("  business_stopping: [{name: core down}]\n",
     ["grading.business_stopping[0]", "exactly one of checks"]),
    ("  business_stopping: [{name: core, checks: ['tcp/core'], states: [broken]}]\n",
     ["grading.business_stopping[0].states[0]"]),
], ids=["missing-table", "bad-rule", "calendar-hours", "timezone", "stop-empty", "stop-state"])
def test_a_bad_grading_setup_is_one_line_and_exit_2(tmp_path, grading, expected):
    (tmp_path / "bad.yaml").write_text(BAD_TABLE)
    out = start(tmp_path, grading.replace("BAD", str(tmp_path / "bad.yaml")))
    assert out.returncode == 2, out.stderr
    line = out.stderr.strip()
    assert "\n" not in line and "Traceback" not in line
    assert line.startswith("branchwatch: ") and "collector.yaml" in line
    for part in expected:
        assert part in line, (part, line)
