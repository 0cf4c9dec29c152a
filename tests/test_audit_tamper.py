"""The audit trail as evidence (docs/audit.md): a real collector with an
audit key writes the chain and its checkpoints; then the four tamperings of the
issue are done straight on the database (the SQLite file, or the PostgreSQL
tables: every evidence test runs on both), the way an intruder without the key
would, and `audit verify --checkpoint FILE` is run as an operator would.

Each tampering works on its own copy of one collector's data (PostgreSQL: a
database made from the evidence's as its template).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from agent.wire import Batch, Event, encode, new_event_id
from collector.audit import AuditLog, canonical_json, record_hash

from collector.storage.dialect import SQLITE, PgConnection, dialect_of

from .support.collector import CollectorProcess
from .support.paths import REPO
from .support.store_backend import pg_server  # noqa: F401

_PG: dict[Path, tuple] = {}       # evidence folder -> (its server, its database's name)
_DSN: dict[Path, str] = {}        # a copy's config -> the DSN of its database

TOKEN = "tamper-test-token-0123456789"
BRANCHES = 12
BATCHES = 170           # one events.received record each, plus incident records


def _post(c: CollectorProcess, body: bytes) -> dict:
    req = urllib.request.Request(c.url + "/api/v1/events", data=body, method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def _batch(i: int, t0: datetime) -> bytes:
    """Batch i: two events of branch i % BRANCHES's UPS; a fault opens an incident."""
    agent = "a1"
    at = t0 + timedelta(seconds=i)
    state = "critical" if (i // BRANCHES) % 2 == 0 else "ok"
    events = [Event(id=new_event_id(), kind="state", agent=agent, branch="b1",
                    check=f"ups/u{i % BRANCHES}/on_battery", old_state=None, new_state=state,
                    reason="市電中斷" if state != "ok" else "市電恢復", observed_at=at),
              Event(id=new_event_id(), kind="state", agent=agent, branch="b1",
                    check=f"host/disk{i}", old_state=None, new_state="ok", reason="ok",
                    observed_at=at)]
    return encode(Batch(agent=agent, branch="b1", sent_at=at, events=events))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def evidence(request, tmp_path_factory) -> Path:
    """A collector's folder (config, key, data with database and checkpoints),
    written by the real collector process and stopped cleanly; its store on
    SQLite or on PostgreSQL."""
    folder = tmp_path_factory.mktemp("evidence")
    dsn = None
    if request.param == "postgresql":
        server = request.getfixturevalue("pg_server")
        dsn = server.create_database()
        _PG[folder] = (server, dsn.split("dbname=")[1])
    key = folder / "audit.key"
    assert subprocess.run([sys.executable, "-m", "collector.cli", "audit", "new-key", str(key)],
                          cwd=REPO, capture_output=True).returncode == 0
    c = CollectorProcess(folder, {"a1": ("b1", TOKEN)},
                         extra=f"audit: {{key_file: {key}, checkpoint_interval: 3600}}\n",
                         dsn=dsn)
    t0 = datetime.now(timezone.utc) - timedelta(hours=1)
    with c:
        for i in range(BATCHES):
            assert len(_post(c, _batch(i, t0))["accepted"]) == 2
    return folder


def copy(evidence: Path, tmp_path: Path) -> Path:
    """The evidence under tmp_path, its config pointing at the copy; returns the config."""
    shutil.copytree(evidence, tmp_path / "c")
    config = tmp_path / "c" / "collector.yaml"
    config.write_text(config.read_text().replace(str(evidence), str(tmp_path / "c")))
    if evidence in _PG:
        server, name = _PG[evidence]
        import psycopg
        with psycopg.connect(server.dsn(), autocommit=True) as admin:
            copy_name = f"{name}_{len(_DSN)}"
            admin.execute(f'CREATE DATABASE "{copy_name}" TEMPLATE "{name}"')
        _DSN[config] = server.dsn(copy_name)
        (tmp_path / "c" / "dsn").write_text(_DSN[config] + "\n")
    return config


def verify(config: Path) -> subprocess.CompletedProcess:
    cp = config.parent / "data" / "audit.checkpoints"
    return subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify", "--config",
                           str(config), "--checkpoint", str(cp)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def db(config: Path):
    """The copy's database, written straight to (autocommit on PostgreSQL)."""
    if config in _DSN:
        return PgConnection.connect(_DSN[config])
    return sqlite3.connect(config.parent / "data" / "collector.db")


def test_the_untouched_evidence_verifies_and_its_head_is_checkpointed(evidence, tmp_path):
    config = copy(evidence, tmp_path)
    out = verify(config)
    assert out.returncode == 0, out.stdout + out.stderr
    with db(config) as conn:
        seq, mac = conn.execute("SELECT seq, mac FROM audit ORDER BY seq DESC").fetchone()
        digests = conn.execute("SELECT count(*) FROM incidents i LEFT JOIN incident_audit a "
                               "ON a.id = i.id WHERE a.audit_seq IS NULL").fetchone()[0]
        open_incidents = conn.execute("SELECT count(*) FROM incidents WHERE status != 'closed'"
                                      ).fetchone()[0]
    assert seq > 200 and mac and digests == 0 and open_incidents > 0
    assert f"head {seq} " in out.stdout and f"mac {mac}" in out.stdout
    last = (config.parent / "data" / "audit.checkpoints").read_text().splitlines()[-1]
    assert last.split()[1] == str(seq) and last.split()[3] == mac


def test_cut_tail_of_100_records_is_found(evidence, tmp_path):
    config = copy(evidence, tmp_path)
    with db(config) as conn:
        last = conn.execute("SELECT max(seq) FROM audit").fetchone()[0]
        conn.execute("DELETE FROM audit WHERE seq > ?", (last - 100,))
    out = verify(config)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"records {last - 99}..{last} cut off the end" in out.stdout


def test_record_50_edited_and_chain_recomputed_is_found(evidence, tmp_path):
    config = copy(evidence, tmp_path)
    with db(config) as conn:
        rows = conn.execute("SELECT seq, at, kind, actor, data FROM audit WHERE seq >= 50 "
                            "ORDER BY seq").fetchall()
        prev = conn.execute("SELECT hash FROM audit WHERE seq = 49").fetchone()[0]
        for seq, at, kind, actor, data in rows:
            if seq == 50:
                d = json.loads(data)
                d["forged"] = "nothing happened"
                data = canonical_json(d)
            h = record_hash(seq, at, kind, actor, data, prev)
            conn.execute("UPDATE audit SET data = ?, prev_hash = ?, hash = ? WHERE seq = ?",
                         (data, prev, h, seq))
            prev = h
    # The hash chain alone is whole again: only the key (and the checkpoint) shows it.
    with db(config) as conn:
        assert AuditLog(conn).verify() == []
    out = verify(config)
    assert out.returncode == 1, out.stdout + out.stderr
    assert out.stdout.splitlines()[0] == ("record 50: MAC does not match (the record was "
                                          "changed, or the chain recomputed without the key)")
    assert "the chain was rewritten" in out.stdout


def test_100_deleted_event_rows_are_found(evidence, tmp_path):
    config = copy(evidence, tmp_path)
    with db(config) as conn:
        conn.execute("DELETE FROM event_log WHERE seq IN "
                     "(SELECT seq FROM event_log ORDER BY seq LIMIT 100)")
    out = verify(config)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "100 event rows in all are missing" in out.stdout
    assert "missing from event_log (deleted)" in out.stdout


def test_every_incident_row_closed_directly_is_found(evidence, tmp_path):
    config = copy(evidence, tmp_path)
    with db(config) as conn:
        n = conn.execute("SELECT count(*) FROM incidents WHERE status != 'closed'").fetchone()[0]
        for id_, body in conn.execute("SELECT id, body FROM incidents").fetchall():
            b = json.loads(body)
            b["status"] = "closed"
            conn.execute("UPDATE incidents SET status = 'closed', body = ? WHERE id = ?",
                         (json.dumps(b), id_))
    out = verify(config)
    assert out.returncode == 1, out.stdout + out.stderr
    found = [l for l in out.stdout.splitlines() if l.startswith("incident ")]
    assert found and all("edited behind the collector" in l for l in found)
    assert len(found) == min(n, 10) and n > 0


def test_without_the_key_a_recomputed_chain_cannot_be_told_but_is_said(evidence, tmp_path):
    """What verify cannot prove is said, not hidden: no key, no MAC check."""
    config = copy(evidence, tmp_path)
    config.write_text(config.read_text().replace("key_file", "checkpoint_file").replace(
        str(tmp_path / "c" / "audit.key"), str(tmp_path / "c" / "data" / "audit.checkpoints")))
    out = verify(config)
    assert out.returncode == 0 and "MACs not checked" in out.stderr


def test_a_database_from_before_the_key_verifies_with_a_note(tmp_path):
    """Existing databases keep verifying: records without MAC are reported as such."""
    from collector.store import SqliteStore
    store = SqliteStore(tmp_path / "data" / "collector.db")
    for i in range(3):
        store.record(1_715_000_000.0 + i, "agent.seen", "a1", {"i": i})
    store.close()
    key = tmp_path / "k"
    key.write_text("k" * 64)
    keyed = SqliteStore(tmp_path / "data" / "collector.db", audit_key=b"k" * 64)
    keyed.record(1_715_000_010.0, "agent.seen", "a2", {"i": 9})
    keyed.close()
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{data_dir: {tmp_path / 'data'}}}\naudit: {{key_file: {key}}}\n")
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "records 1..3 (3) carry no MAC" in out.stderr
    # ...but stripping the MAC off a record written with the key is tampering.
    with sqlite3.connect(tmp_path / "data" / "collector.db") as conn:
        conn.execute("UPDATE audit SET mac = NULL WHERE seq = 4")
        conn.execute("UPDATE audit SET mac = 'x' WHERE seq = 3")
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1 and "record 4: no MAC" in out.stdout


def test_an_event_row_inserted_behind_the_collector_is_found(evidence, tmp_path):
    config = copy(evidence, tmp_path)
    with db(config) as conn:
        row = list(conn.execute("SELECT * FROM event_log ORDER BY seq LIMIT 1").fetchone())
        cols = dialect_of(conn).columns(conn, "event_log")
        row[cols.index("id")] = "forged-event"
        row[cols.index("seq")] = -1            # below the engine's cursor: "applied"
        conn.execute(f"INSERT INTO event_log ({', '.join(cols)}) VALUES "
                     f"({', '.join('?' * len(cols))})", row)
    out = verify(config)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "event forged-event of a1: in event_log, applied, but in no audit record" in out.stdout


def test_an_incident_row_put_back_to_an_older_write_is_found(evidence, tmp_path):
    """A row restored from an older, genuine write (with that write's audit_seq)."""
    config = copy(evidence, tmp_path)
    with db(config) as conn:
        id_, seq = conn.execute("SELECT id, audit_seq FROM incident_audit LIMIT 1").fetchone()
        older = [s for s, d in conn.execute("SELECT seq, data FROM audit WHERE kind = "
                                            "'rows.written' AND seq < ?", (seq,))
                 if id_ in json.loads(d)["rows"]]
        assert older, "the evidence writes each incident more than once"
        conn.execute("UPDATE incident_audit SET audit_seq = ? WHERE id = ?", (older[-1], id_))
    out = verify(config)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"incident {id_}: the row is not the one audit record {seq} wrote last" in out.stdout


def test_a_database_of_the_schema_before_keys_migrates_and_verifies(tmp_path):
    """A database written before the keyed chain (schema 4: no mac, no audit_seq),
    opened by this collector: migrated, still intact, its old records named."""
    from collector import store as store_module
    from collector.audit import AuditLog
    from collector.store import SqliteStore
    path = tmp_path / "data" / "collector.db"
    path.parent.mkdir()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT)")
    for version, statements in store_module.MIGRATIONS:
        if version > 4:
            break
        for s in statements:
            conn.execute(SQLITE.ddl(s))
        conn.execute("INSERT INTO schema_version VALUES (?, datetime('now'))", (version,))
    old = AuditLog(conn)                       # the old table: no mac column
    conn.execute("BEGIN")
    conn.execute("INSERT INTO events VALUES ('a1', 1715000000000000, 'e1', 'B1', 'state', "
                 "'ups/u/on_battery', NULL, 'critical', '市電中斷', NULL, 1715000000000000, NULL)")
    old.append(1_715_000_000.0, "events.received", "a1", {"branch": "B1", "events": [{
        "id": "e1", "kind": "state", "agent": "a1", "branch": "B1", "check": "ups/u/on_battery",
        "old_state": None, "new_state": "critical", "reason": "市電中斷",
        "observed_at": "2024-05-06T12:53:20Z", "diagnosis": None}]})
    conn.execute("COMMIT")
    conn.close()
    SqliteStore(path, audit_key=b"k" * 64).close()          # the migration
    key = tmp_path / "audit.key"
    key.write_text("k" * 64)
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{data_dir: {tmp_path / 'data'}}}\naudit: {{key_file: {key}}}\n")
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "records 1..1 (1) carry no MAC" in out.stderr
    # ...and its old events are still held against their record.
    with sqlite3.connect(path) as c:
        c.execute("DELETE FROM event_log")       # where the migration moved them
    out = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                          "--config", str(config)], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 1 and "event e1 of a1 (audit record 1): missing" in out.stdout


def test_a_fault_row_edited_or_deleted_directly_is_found(evidence, tmp_path):
    config = copy(evidence, tmp_path)
    with db(config) as conn:
        (incident, agent, check, body), (d_inc, d_agent, d_check, _) = conn.execute(
            "SELECT incident, agent, check_name, body FROM incident_faults "
            "ORDER BY incident, pos LIMIT 2").fetchall()
        fault = json.loads(body)
        fault["reason"] = "nothing happened here"
        conn.execute("UPDATE incident_faults SET body = ? WHERE incident = ? AND agent = ? "
                     "AND check_name = ?", (json.dumps(fault), incident, agent, check))
        conn.execute("DELETE FROM incident_faults WHERE incident = ? AND agent = ? AND "
                     "check_name = ?", (d_inc, d_agent, d_check))
    out = verify(config)
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"fault {incident}|{agent}|{check}: the row differs" in out.stdout
    assert f"fault {d_inc}|{d_agent}|{d_check}: written by audit record" in out.stdout
