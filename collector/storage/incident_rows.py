"""Incidents in the store with their faults as rows of their own.

An incident's body (title, status, grades, runbooks, notifications...) is
one row; each fault is a row keyed by (incident, agent, check). A save
writes the body only if it changed and only the faults that changed, so a
batch that moves one fault of an incident with hundreds writes one fault
row, not the whole incident again.

What was last written is remembered as a hash per row, for the incidents
saved since the store opened; the first save of an incident after a start
rewrites it whole. The digests follow the transaction: staged while it
runs, kept on COMMIT, dropped on ROLLBACK (a savepoint rolled back drops
what it staged), so a rolled-back write is never taken as written.
"""

from __future__ import annotations

import json

import msgspec

from ..incident_codec import encode, from_dict, to_dict
from ..incidents import Incident

SCHEMA = [
    # pos: the fault's place in the incident (the order people read them in).
    """CREATE TABLE incident_faults (
        incident TEXT NOT NULL, agent TEXT NOT NULL, check_name TEXT NOT NULL,
        pos INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (incident, agent, check_name)) WITHOUT ROWID""",
]

_decode = msgspec.json.Decoder()


def _digest(data: bytes) -> int:
    # Python's own 64-bit hash of the text (SipHash; no extra pass like a
    # cryptographic digest): two different texts of one fault compare equal
    # about once in 10^19 saves; that fault's row then waits for its next change.
    return hash(data)


def fault_key(incident: str, agent: str, check: str) -> str:
    """How an audit record names one fault row."""
    return f"{incident}|{agent}|{check}"


class Written(msgspec.Struct):
    """What is stored of one incident: its body's digest and each fault's."""

    body: int
    faults: dict[tuple[str, str], int]


def migrate_fault_rows(conn) -> None:
    """Move every stored incident's faults out of its body into rows."""
    for incident_id, body in conn.execute("SELECT id, body FROM incidents").fetchall():
        data = json.loads(body)
        for pos, f in enumerate(data.get("faults", [])):
            conn.execute("INSERT INTO incident_faults VALUES (?, ?, ?, ?, ?)",
                         (incident_id, f["agent"], f["check"], pos, json.dumps(f)))
        data["faults"] = []
        conn.execute("UPDATE incidents SET body = ? WHERE id = ?", (json.dumps(data), incident_id))


class IncidentRows:
    """The incident methods of SqliteStore (a mixin: it uses the store's connection
    and `transaction`, and calls `_rows_committed`/`_rows_rolled_back` from there)."""

    def _rows_init(self) -> None:
        self._written: dict[str, Written] = {}     # committed
        self._staged: dict[str, Written | None] = {}   # this transaction's (None: forget)

    def _rows_mark(self) -> dict:
        return dict(self._staged)

    def _rows_back_to(self, mark: dict) -> None:
        self._staged = mark

    def _rows_committed(self) -> None:
        for incident_id, w in self._staged.items():
            if w is None:
                self._written.pop(incident_id, None)
            else:
                self._written[incident_id] = w
        self._staged = {}

    def _rows_rolled_back(self) -> None:
        self._staged = {}

    def _known(self, incident_id: str) -> Written | None:
        if incident_id in self._staged:
            return self._staged[incident_id]
        return self._written.get(incident_id)

    def write_incidents(self, conn, incidents: list[Incident], at: float) -> tuple[list, dict]:
        """Write what changed of these incidents (in the caller's transaction).
        Returns the ids of the incidents whose row was written, and the fault rows
        written, "incident|agent|check" -> their text, or deleted -> None (what the
        audit record of this write digests)."""
        changed: dict[str, str | None] = {}
        rewritten: list[str] = []
        for inc in incidents:
            data = to_dict(inc, stored=True)
            faults = data.pop("faults")
            data["faults"] = []
            body = encode(data)
            before = self._known(inc.id)
            now = Written(_digest(body), {})
            if before is None or before.body != now.body:
                rewritten.append(inc.id)
                conn.execute(
                    "INSERT INTO incidents VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                    "status = excluded.status, opened_at = excluded.opened_at, "
                    "updated_at = excluded.updated_at, body = excluded.body",
                    (inc.id, inc.branch, inc.status, inc.started_at.isoformat(), at,
                     body.decode()))
            if before is None:            # not written since the store opened: whole
                for agent, check in conn.execute("SELECT agent, check_name FROM incident_faults "
                                                 "WHERE incident = ?", (inc.id,)).fetchall():
                    changed[fault_key(inc.id, agent, check)] = None
                conn.execute("DELETE FROM incident_faults WHERE incident = ?", (inc.id,))
            rows = []
            for pos, f in enumerate(faults):
                key = (f.agent, f.check)
                text = encode(f)
                now.faults[key] = digest = _digest(text)
                if before is None or before.faults.get(key) != digest:
                    rows.append((inc.id, f.agent, f.check, pos, text.decode()))
            if rows:
                conn.executemany(
                    "INSERT INTO incident_faults VALUES (?,?,?,?,?) ON CONFLICT "
                    "(incident, agent, check_name) DO UPDATE SET body = excluded.body", rows)
                for iid, agent, check, _, text in rows:
                    changed[fault_key(iid, agent, check)] = text
            if before is not None:
                gone = [(inc.id, *k) for k in before.faults if k not in now.faults]
                conn.executemany("DELETE FROM incident_faults WHERE incident = ? AND agent = ? "
                                 "AND check_name = ?", gone)
                for iid, agent, check in gone:
                    changed[fault_key(iid, agent, check)] = None
            # A closed incident is not saved often again: nothing to remember.
            self._staged[inc.id] = None if inc.status == "closed" else now
        return rewritten, changed

    def read_incidents(self, conn, where: str = "", args: tuple = ()) -> list[Incident]:
        """Incidents with their faults (`where` over the incidents table), oldest first."""
        bodies = conn.execute("SELECT id, body FROM incidents " + where
                              + " ORDER BY opened_at, id", args).fetchall()
        if not bodies:
            return []
        faults: dict[str, list] = {i: [] for i, _ in bodies}
        sql = "SELECT f.incident, f.body FROM incident_faults f"
        if where:
            sql += " JOIN incidents ON incidents.id = f.incident " + where
        for incident_id, body in conn.execute(sql + " ORDER BY f.incident, f.pos", args):
            if incident_id in faults:
                faults[incident_id].append(_decode.decode(body))
        out = []
        for incident_id, body in bodies:
            data = _decode.decode(body)
            data["faults"] = faults[incident_id] + data.get("faults", [])
            out.append(from_dict(data))
        return out
