"""A 16-client login spray against a real collector process while an agent
keeps sending heartbeats. Asserted: every
heartbeat is answered (204) and none is refused; every spray answer is a
401, 429 or a 503 with Retry-After (the bound on password checks), never a
500; the spray leaves a handful of audit records, not one per guess; and a
person with the right password logs in during it. The heartbeats' p99 is
printed (the < 50 ms target is bench/login_spray_bench.py's, not a timed
assertion here)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from collector.web.throttle import SPRAY_FAILURES

from .support.collector import CollectorProcess, audit_records
from .support.console import USERS, console_yaml
from .support.heartbeats import HeartbeatProbe, percentile
from .support.paths import REPO
from .test_console_login import login

TOKEN = "spray-agent-token-cccccccccccc"
AGENTS = {"a1": ("BR-1", "east", TOKEN)}
CLIENTS, TRIES = 16, 12


def test_heartbeats_are_answered_through_a_login_spray(tmp_path):
    with CollectorProcess(tmp_path / "c", AGENTS, extra=console_yaml(USERS)) as c:
        probe = HeartbeatProbe(c.url, "a1", "BR-1", TOKEN).start()
        spray = subprocess.Popen([sys.executable, "-m", "tests.support.spray", c.url,
                                  str(CLIENTS), str(TRIES)], cwd=REPO, stdout=subprocess.PIPE,
                                 text=True)
        # A person logs in during the spray, from an address of their own; a 503
        # (password checks busy) says when to come back, and they do.
        answers = []
        for _ in range(60):
            status, headers, cookie = login(c.url, "boss", USERS["boss"][1], source="127.0.0.9")
            answers.append(status)
            if status != 503:
                break
            assert int(headers["Retry-After"]) >= 1
            time.sleep(int(headers["Retry-After"]))       # as a browser's person would
        out, _ = spray.communicate(timeout=600)
        results = probe.stop()
    assert answers[-1] == 303 and set(answers[:-1]) <= {503}, answers
    statuses = json.loads(out)["statuses"]
    assert sum(statuses.values()) == CLIENTS * TRIES
    assert set(statuses) <= {"401", "429", "503"}, statuses
    assert [s for s, _ in results if s != 204] == [] and len(results) > 10
    latencies = [t for _, t in results]
    print(f"\nlogin spray ({CLIENTS} clients x {TRIES}): answers {statuses}; heartbeats "
          f"{len(results)}, p50 {percentile(latencies, 50) * 1000:.1f} ms, "
          f"p99 {percentile(latencies, 99) * 1000:.1f} ms")
    failed = audit_records(c, "console.login_failed")
    bursts = audit_records(c, "console.login_throttled")
    assert len(failed) <= SPRAY_FAILURES and [d["by"] for _, d in bursts] == ["spray"]
