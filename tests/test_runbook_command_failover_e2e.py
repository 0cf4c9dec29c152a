"""A runbook command survives the death of the collector that decided it: three
real collectors on one real PostgreSQL, a real agent (collector.urls: all
three) and a switch in snmpsim (SETs go only to snmpsim). A person confirms
the step at the engine's leader, which is SIGKILLed at once: the command,
stored in the outbox, is handed out by the collectors still there until its
result comes, the agent carries it out once, and the new leader completes the
step with the agent's result."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from collector.api import token_hash

from .support.agent import AgentProcess
from .support.paths import REPO, data_dir, free_port
from .test_collector_api import request
from .test_collector_leader_e2e import Node, pg  # noqa: F401 - the module's server
from .test_failover_e2e import ADMIN, GI9, snmpget, start_sim, wait_for
from .test_runbook_commands_e2e import OPERATOR, RUNBOOK, TOKEN


def test_a_confirmed_command_is_carried_out_once_after_the_leader_dies(tmp_path, pg):  # noqa: F811
    import psycopg
    data_dir("snmprec", "cisco-sb-sg350-10.snmprec")       # skips without the recordings
    sim = start_sim(tmp_path, writable=True)
    books = tmp_path / "runbooks"
    books.mkdir()
    (books / "backup-port.yaml").write_text(RUNBOOK)
    dsn = pg.create_database()
    dbname = dsn.rsplit("=", 1)[1]
    extra = (f"operators:\n  - {{name: wang, token_sha256: {token_hash(OPERATOR)}}}\n"
             f"grading: {{tables: []}}\nrunbooks: {{folder: {books}}}\n")
    nodes = [Node(tmp_path / f"c{i}", pg, dbname, extra=extra,
                  agents={"a1": ("BR-1", "north", TOKEN)}) for i in range(3)]
    db = psycopg.connect(dsn, autocommit=True)
    (tmp_path / "a").mkdir()
    agent = AgentProcess(tmp_path / "a", {
        "agent": {"id": "a1", "branch": "BR-1", "region": "north"},
        "state": {"debounce": 1},
        "switches": [{"name": "funds", "host": "127.0.0.1", "port": sim.port,
                      "snmp": {"version": "2c", "community": "branch-sw"},
                      "interval": 5, "timeout": 1, "retries": 0,
                      "interfaces": [{"name": "gi9", "id": "backup", "role": "uplink-backup"}],
                      "actions": {"ports": ["backup"]}}],
        "host": {"tcp": [{"name": "teller", "host": "127.0.0.1", "port": free_port(),
                          "timeout": 0.3, "interval": 0.5}]},
        "collector": {"urls": [n.c.url for n in nodes], "token": TOKEN,
                      "heartbeat_interval": 0.5, "timeout": 0.4,
                      "spool": {"path": str(tmp_path / "spool.db")}}}).start()

    def the_run(url):
        status, data = request(url + "/api/v1/incidents", None, OPERATOR)
        incs = json.loads(data)["incidents"] if status == 200 else []
        return (incs[0]["id"], incs[0]["runbooks"][0]) if incs and incs[0]["runbooks"] else None

    def leader() -> Node:
        holder = wait_for(lambda: db.execute(
            "SELECT holder FROM engine_lease WHERE clock_timestamp() - renewed_at "
            "< interval '3 s'").fetchone(), what="a leader")[0]
        return next(n for n in nodes if n.c.port == int(holder.rsplit(":", 1)[1]))

    try:
        inc_id, run = wait_for(lambda: the_run(nodes[0].c.url), what="the runbook")
        assert run["current"] == "up-backup" and snmpget(sim, f"{ADMIN}{GI9}") == "2"
        old = leader()
        done = subprocess.run([sys.executable, "-m", "collector.cli", "runbook", "confirm",
                               inc_id, "up-backup", "--note", "carrier confirmed the cut",
                               "--url", old.c.url], cwd=REPO, capture_output=True, text=True,
                              timeout=30, env={**os.environ, "BRANCHWATCH_TOKEN": OPERATOR})
        assert done.returncode == 0, done.stderr
        old.c.proc.send_signal(signal.SIGKILL)          # the leader dies at once
        old.c.proc.wait(10)
        event = agent.wait_event(check=f"action/runbook/{inc_id}/R1/up-backup", timeout=30)
        assert event["new_state"] == "ok", event
        assert snmpget(sim, f"{ADMIN}{GI9}") == "1"
        alive = next(n for n in nodes if n is not old)
        inc_id, run = wait_for(lambda: (lambda r: r if r and r[1]["current"] == "check" else None)(
            the_run(alive.c.url)), 30, what="the new leader to complete the step")
        assert leader() is not old
        rec = next(r for r in run["records"] if r["step"] == "up-backup")
        assert rec["status"] == "done" and rec["who"] == "wang"
        entry = db.execute("SELECT status FROM outbox WHERE key = %s",
                           (f"agent:{inc_id}/R1/up-backup",)).fetchone()
    finally:
        agent.stop()
        for n in nodes:
            n.close()
        sim.stop()
        db.close()
    assert entry == ("done",)
    # Carried out once, however many collectors offered it meanwhile.
    assert len({e["id"] for e in agent.events if e["kind"] == "action"}) == 1
