"""`audit verify`: hold the database against its audit chain, its key and the
published checkpoints (what this proves: docs/audit.md).

Four checks, each a list of problems (tampering) and notes (facts that are
not tampering, such as records older than the key):
- the chain: seq without gaps, prev_hash links, each hash over its record;
- the MACs, with the key: each record's MAC over the one before it and its
  hash (an edit with the hashes recomputed after it fails here);
- the checkpoints: every published head is still in the log with the same
  MAC (a cut tail, or a chain rewritten under a checkpoint, fails here);
- the rows: every event an "events.received" record lists is still in
  `events` as written, and every incident row is the one the last
  "rows.written" record for it describes (deleted events and incidents
  edited behind the collector fail here).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from .audit import (GENESIS, ROWS_WRITTEN, link_problems, record_hash, record_mac,
                    row_digest)
from .audit_checkpoint import Checkpoint
from .storage.dialect import dialect_of

SHOWN = 10          # problems listed per check before "... and N more"


@dataclass
class Findings:
    """What verify found: problems are tampering, notes are not."""

    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    count: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    head_mac: str | None = None


class _Capped:
    """A list of problems that keeps the first SHOWN and counts the rest."""

    def __init__(self, out: list[str], what: str):
        self.out, self.what, self.extra = out, what, 0
        self.shown = 0

    def add(self, text: str) -> None:
        if self.shown < SHOWN:
            self.out.append(text)
            self.shown += 1
        else:
            self.extra += 1

    def close(self) -> None:
        if self.extra:
            self.out.append(f"... and {self.extra} more {self.what}")


def verify_database(conn: sqlite3.Connection, key: bytes | None,
                    checkpoints: list[Checkpoint] | None = None) -> Findings:
    """Every check over one collector database (read only)."""
    f = Findings()
    cols = set(dialect_of(conn).columns(conn, "audit"))
    macs = _walk_chain(conn, key, "mac" in cols, f)
    if key is None:
        f.notes.append("no audit key given (audit.key_file): MACs not checked, "
                       "only the hash chain")
    if checkpoints is not None:
        _check_checkpoints(checkpoints, macs, f)
    _check_events(conn, f)
    _check_incidents(conn, f)
    return f


def _walk_chain(conn, key: bytes | None, has_mac: bool, f: Findings) -> dict[int, tuple]:
    """The hash chain and the MAC chain; returns seq -> (hash, mac) for checkpoints."""
    chain = _Capped(f.problems, "chain problems")
    mac_bad = _Capped(f.problems, "records whose MAC does not match")
    sql = "SELECT seq, at, kind, actor, data, prev_hash, hash, " + \
          ("mac" if has_mac else "NULL") + " FROM audit ORDER BY seq"
    heads: dict[int, tuple] = {}
    expected_seq, prev, prev_mac = 1, GENESIS, GENESIS
    unkeyed, keyed_seen = [], False
    for seq, at, kind, actor, data, prev_hash, stored, mac in conn.execute(sql):
        f.count += 1
        for problem in link_problems(seq, expected_seq, prev_hash, prev,
                                     record_hash(seq, at, kind, actor, data, prev_hash), stored):
            chain.add(problem)
        if mac is None:
            if keyed_seen:
                mac_bad.add(f"record {seq}: no MAC, after records that have one "
                            f"(MAC removed)")
            else:
                unkeyed.append(seq)
        else:
            keyed_seen = True
            if key is not None and record_mac(key, prev_mac, stored) != mac:
                mac_bad.add(f"record {seq}: MAC does not match (the record was changed, "
                            f"or the chain recomputed without the key)")
            prev_mac = mac
        heads[seq] = (stored, mac)
        expected_seq, prev = seq + 1, stored
        f.head_seq, f.head_hash, f.head_mac = seq, stored, mac
    chain.close()
    mac_bad.close()
    if unkeyed:
        f.notes.append(f"records {unkeyed[0]}..{unkeyed[-1]} ({len(unkeyed)}) carry no MAC: "
                       f"written before an audit key was configured; checked by hash only")
    return heads


def _check_checkpoints(checkpoints: list[Checkpoint], heads: dict[int, tuple],
                       f: Findings) -> None:
    """Every published head must still be in the log, unchanged."""
    bad = _Capped(f.problems, "checkpoint problems")
    last = max(heads) if heads else 0
    highest = 0
    for cp in checkpoints:
        where = f"checkpoint line {cp.line} ({cp.at})"
        if cp.seq < highest:
            bad.add(f"{where}: seq {cp.seq} is below an earlier checkpoint's {highest} "
                    f"(the checkpoint file was edited)")
        highest = max(highest, cp.seq)
        if cp.seq == 0:
            continue
        if cp.seq > last:
            bad.add(f"{where}: the head was record {cp.seq}, the log ends at record {last}: "
                    f"records {last + 1}..{cp.seq} cut off the end")
            continue
        if cp.seq not in heads:
            bad.add(f"{where}: record {cp.seq} is missing from the log")
            continue
        stored_hash, mac = heads[cp.seq]
        if stored_hash != cp.hash or (cp.mac is not None and mac != cp.mac):
            what = "hash" if stored_hash != cp.hash else "MAC"
            bad.add(f"{where}: record {cp.seq}'s {what} differs from the one published "
                    f"(the chain was rewritten)")
    bad.close()
    if checkpoints:
        f.notes.append(f"{len(checkpoints)} checkpoints held against the log "
                       f"(latest: record {checkpoints[-1].seq})")
    else:
        f.notes.append("the checkpoint file is empty: a cut tail cannot be seen")



def _check_events(conn, f: Findings) -> None:
    """Every event an audit record says was received is stored, as received; and
    every stored event the engine has applied is in an audit record."""
    tables = dialect_of(conn).tables(conn)
    table = "event_log" if "event_log" in tables else "events" if "events" in tables else None
    if table is None:
        return
    # event_log: a row at or below the engine's cursor was applied, so audited.
    applied = -1
    if table == "event_log" and "log_cursors" in tables:
        row = conn.execute("SELECT seq FROM log_cursors WHERE name = 'engine'").fetchone()
        applied = row[0] if row else 0
    stored = {}
    sql = ("SELECT agent, observed_at, id, branch, kind, check_name, old_state, new_state, "
           "reason, diagnosis, " + ("seq" if table == "event_log" else "NULL") +
           f" FROM {table}")
    for agent, obs, id_, *rest, seq in conn.execute(sql):
        stored[(agent, obs, id_)] = (tuple(rest), seq)
    missing = _Capped(f.problems, "event rows missing")
    changed = _Capped(f.problems, "event rows changed")
    listed, n_missing = set(), 0
    for seq, data in conn.execute("SELECT seq, data FROM audit WHERE kind = 'events.received' "
                                  "ORDER BY seq"):
        for e in _events_of(data):
            k = (e.agent, round(e.observed_at.timestamp() * 1_000_000), e.id)
            listed.add(k)
            row = stored.get(k)
            if row is None:
                n_missing += 1
                missing.add(f"event {e.id} of {e.agent} (audit record {seq}): "
                            f"missing from {table} (deleted)")
            elif row[0] != (e.branch, e.kind, e.check, e.old_state, e.new_state, e.reason,
                            e.diagnosis):
                changed.add(f"event {e.id} of {e.agent} (audit record {seq}): "
                            f"the stored row differs from what was received (changed)")
    missing.close()
    changed.close()
    if n_missing > SHOWN:
        f.problems.append(f"{n_missing} event rows in all are missing")
    extra = _Capped(f.problems, "event rows without an audit record")
    for k, (_, seq) in stored.items():
        if seq is not None and seq <= applied and k not in listed:
            extra.add(f"event {k[2]} of {k[0]}: in {table}, applied, but in no audit record "
                      f"(inserted behind the collector)")
    extra.close()


class _ListedEvent(msgspec.Struct):
    """An event as an audit record lists it: the stored columns only, loosely typed
    (wire bounds may tighten later; what was received then is still evidence)."""

    id: str
    agent: str
    observed_at: datetime
    branch: str
    kind: str
    check: str
    new_state: str
    reason: str
    old_state: str | None = None
    diagnosis: str | None = None


class _Received(msgspec.Struct):
    """The part of an events.received record verify reads (decoded at C speed)."""

    events: list[_ListedEvent] = []


_received = msgspec.json.Decoder(_Received)


def _events_of(data: str) -> list[_ListedEvent]:
    """The events an events.received record lists ([] when it is not that shape)."""
    try:
        return _received.decode(data).events
    except msgspec.DecodeError:
        return []


def _check_fault_rows(conn, faults: dict, since: int, written: dict, bad) -> None:
    """Every fault row is the one the last "rows.written" record that touched it
    describes; a row recorded and gone was deleted. Incidents last written before
    fault rows were digested are left alone (their rows were never described)."""
    present = set()
    for incident, agent, check, body in conn.execute(
            "SELECT incident, agent, check_name, body FROM incident_faults"):
        key = f"{incident}|{agent}|{check}"
        present.add(key)
        last = faults.get(key)
        if last is None:
            if written.get(incident, (0,))[0] >= since:
                bad.add(f"fault {key}: no audit record wrote this row (inserted behind the "
                        f"collector)")
        elif last[1] is None:
            bad.add(f"fault {key}: deleted by audit record {last[0]}, yet present "
                    f"(put back behind the collector)")
        elif row_digest([key, body]) != last[1]:
            bad.add(f"fault {key}: the row differs from what audit record {last[0]} wrote "
                    f"(edited behind the collector)")
    for key, (seq, digest) in faults.items():
        if digest is not None and key not in present:
            bad.add(f"fault {key}: written by audit record {seq}, missing (deleted)")


def _check_incidents(conn, f: Findings) -> None:
    """Every incident row is the one its last "rows.written" record describes."""
    import json
    tables = dialect_of(conn).tables(conn)
    if "incident_audit" not in tables:
        return
    written: dict[str, tuple[int, str]] = {}     # id -> (seq, digest) of the last write
    faults: dict[str, tuple[int, str | None]] = {}   # fault row -> (seq, digest or None: deleted)
    faults_since: int | None = None              # the first record that digests fault rows
    for seq, data in conn.execute("SELECT seq, data FROM audit WHERE kind = ? ORDER BY seq",
                                  (ROWS_WRITTEN,)):
        d = json.loads(data)
        if d.get("table") == "incidents":
            for id_, digest in d.get("rows", {}).items():
                written[id_] = (seq, digest)
            if "faults" in d:
                faults_since = seq if faults_since is None else faults_since
                for key, digest in d["faults"].items():
                    faults[key] = (seq, digest)
    bad = _Capped(f.problems, "incident rows changed")
    older, present = 0, set()
    for id_, branch, status, opened, body, seq in conn.execute(
            "SELECT i.id, i.branch, i.status, i.opened_at, i.body, a.audit_seq "
            "FROM incidents i LEFT JOIN incident_audit a ON a.id = i.id"):
        present.add(id_)
        last = written.get(id_)
        if last is None:
            if seq is None:
                older += 1
            else:
                bad.add(f"incident {id_}: names audit record {seq}, which wrote no such row "
                        f"(inserted or edited behind the collector)")
            continue
        if seq != last[0]:
            bad.add(f"incident {id_}: the row is not the one audit record {last[0]} wrote "
                    f"last (edited or put back behind the collector)")
        elif row_digest([id_, branch, status, opened, body]) != last[1]:
            bad.add(f"incident {id_}: the row differs from what audit record {seq} wrote "
                    f"(status {status!r}; edited behind the collector)")
    for id_ in written.keys() - present:
        bad.add(f"incident {id_}: written by audit record {written[id_][0]}, "
                f"missing from incidents (deleted)")
    if "incident_faults" in tables and faults_since is not None:
        _check_fault_rows(conn, faults, faults_since, written, bad)
    bad.close()
    if older:
        f.notes.append(f"{older} incident rows from before row digests: not checked")
