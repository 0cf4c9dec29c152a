"""The audit hash chain (第二十九條): intact passes, any silent edit is found.

The tampering is done the way an intruder would: straight on the database
(the SQLite file, or the PostgreSQL tables), then `python -m collector.cli audit verify --config FILE` is run as
an operator would run it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.audit import GENESIS, AuditLog, canonical_json, record_hash

from .support.paths import REPO
from .support.store_backend import Backend, backend, pg_server  # noqa: F401

T0 = 1_715_000_000.0
_BACKEND: dict[Path, Backend] = {}      # each config's database


def build(backend: Backend, n: int = 5) -> Path:
    """A collector database whose audit log holds n records; returns its config."""
    store = backend.open()
    for i in range(n):
        store.record(T0 + i, "event.received", "a1", {"id": f"e{i}", "reason": "市電中斷"})
    store.close()
    config = backend.folder / "collector.yaml"
    config.write_text(json.dumps({"storage": backend.storage_config()}) + "\n")
    _BACKEND[config] = backend
    return config


def sql(config: Path, statement: str, *args) -> None:
    with _BACKEND[config].raw() as conn:           # autocommit: as an intruder's shell
        conn.execute(statement, args)


def verify(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                           "--config", str(config)], cwd=REPO, capture_output=True, text=True)


def test_intact_chain_passes(backend):
    out = verify(build(backend))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("audit: intact: 5 records; head 5 ")


def test_empty_log_passes(backend):
    out = verify(build(backend, n=0))
    assert out.returncode == 0 and f"head 0 {GENESIS}" in out.stdout


def test_edited_record_is_found(backend):
    config = build(backend)
    sql(config, "UPDATE audit SET data = ? WHERE seq = 3",
        canonical_json({"id": "e2", "reason": "nothing happened"}))
    out = verify(config)
    assert out.returncode == 1
    assert out.stdout.splitlines() == ["record 3: hash does not match its contents (changed)"]


def test_edited_record_with_recomputed_hash_breaks_the_next_link(backend):
    config = build(backend)
    with backend.raw() as conn:
        seq, at, kind, actor, _, prev = conn.execute(
            "SELECT seq, at, kind, actor, data, prev_hash FROM audit WHERE seq = 2").fetchone()
        forged = canonical_json({"id": "e1", "reason": "forged"})
        conn.execute("UPDATE audit SET data = ?, hash = ? WHERE seq = 2",
                     (forged, record_hash(seq, at, kind, actor, forged, prev)))
    out = verify(config)
    assert out.returncode == 1
    assert out.stdout.splitlines()[0].startswith("record 3: prev_hash does not match")


def test_deleted_record_is_found(backend):
    config = build(backend)
    sql(config, "DELETE FROM audit WHERE seq = 2")
    out = verify(config)
    assert out.returncode == 1
    lines = out.stdout.splitlines()
    assert lines[0] == "record 3: follows record 1: record 2 removed or reordered"
    assert lines[1].startswith("record 3: prev_hash does not match")
    assert "NOT intact" in out.stderr


def test_deleted_and_renumbered_records_are_found(backend):
    config = build(backend)
    sql(config, "DELETE FROM audit WHERE seq = 2")
    for seq in (3, 4, 5):
        sql(config, "UPDATE audit SET seq = ? WHERE seq = ?", seq - 1, seq)
    out = verify(config)
    assert out.returncode == 1 and "record 2: " in out.stdout


def test_reordered_records_are_found(backend):
    config = build(backend)
    # swap records 2 and 4 (their whole contents, seq stays in place)
    with backend.raw() as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "SELECT seq, at, kind, actor, data, prev_hash, hash FROM audit WHERE seq IN (2, 4)")}
        for seq, other in ((2, 4), (4, 2)):
            conn.execute("UPDATE audit SET at=?, kind=?, actor=?, data=?, prev_hash=?, hash=? "
                         "WHERE seq = ?", (*rows[other], seq))
    out = verify(config)
    assert out.returncode == 1 and "record 2:" in out.stdout and "record 4:" in out.stdout


def test_missing_database_is_exit_2(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"storage: {{data_dir: {tmp_path / 'nowhere'}}}\n")
    out = verify(config)
    assert out.returncode == 2 and "no collector database" in out.stderr
    assert not (tmp_path / "nowhere").exists()


def test_a_postgresql_that_cannot_be_reached_is_exit_2_in_one_line(tmp_path):
    from .support.paths import free_port
    (tmp_path / "dsn").write_text(f"host=127.0.0.1 port={free_port()} user=bw dbname=bw "
                                  "password=s3cret\n")
    config = tmp_path / "c.yaml"
    config.write_text(json.dumps({"storage": {"data_dir": str(tmp_path),
                                              "postgresql": {"dsn_file": str(tmp_path / "dsn")}}}))
    out = verify(config)
    assert out.returncode == 2, out.stdout + out.stderr
    [line] = out.stderr.splitlines()
    assert line.startswith(f"branchwatch: audit: postgresql://127.0.0.1:") and "/bw: " in line
    assert "s3cret" not in out.stderr


def test_chain_links_and_hashes_are_canonical(backend):
    store = backend.open()
    try:
        log: AuditLog = store.audit
        store.record(T0, "agent.seen", "a1", {"b": 1, "a": [1, 2]})
        store.record(T0 + 1, "event.received", "a1", {"id": "x"})
        first, second = log.records()
        assert first["prev_hash"] == GENESIS and second["prev_hash"] == first["hash"]
        assert first["at"] == "2024-05-06T12:53:20.000000Z"
        assert first["hash"] == record_hash(1, first["at"], "agent.seen", "a1",
                                            '{"a":[1,2],"b":1}', GENESIS)
        assert log.head() == (2, second["hash"]) and log.verify() == []
    finally:
        store.close()


@pytest.mark.parametrize("column", ["at", "kind", "actor", "prev_hash"])
def test_every_column_is_covered_by_the_hash(backend, column):
    config = build(backend, n=2)
    sql(config, f"UPDATE audit SET {column} = 'x' || {column} WHERE seq = 1")
    out = verify(config)
    assert out.returncode == 1 and "record 1: hash does not match" in out.stdout
