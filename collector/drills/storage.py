"""Drill runs in the collector's database (migration 4).

domain.md §5 (第二十四條): every drill's plan, records and results are archived.
A drills table of its own rather than a kind of report: a run is not one
incident's document but a process (running -> ended -> archived) over several
incidents, with its scenario, plan and injected timeline frozen onto it, and
the reports table's `incident` and `kind` constraints (migration 3, never
edited) do not fit it.

Every change to a run is written with its audit records in one transaction
(drill.started, drill.ended, drill.edited, drill.archived). Once archived, a
run is frozen: triggers refuse any UPDATE of an archived row, and any DELETE
of a run at all, whoever tries; the archive record holds the sha256 of every
archived text, so the audit chain pins what was kept.
"""

from __future__ import annotations

import msgspec

from ..storage.dialect import Both
from .model import DrillRun

# Appended to collector.store.MIGRATIONS as version 4.
SCHEMA = [
    """CREATE TABLE drills (
        id TEXT PRIMARY KEY, scenario TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('running', 'ended', 'archived')),
        started_at TEXT NOT NULL, updated_at REAL NOT NULL, body TEXT NOT NULL)""",
    "CREATE INDEX drills_started ON drills (started_at)",
    Both(sqlite="""CREATE TRIGGER drills_archived_frozen BEFORE UPDATE ON drills
       WHEN OLD.status = 'archived'
       BEGIN SELECT RAISE(ABORT, 'drill is archived: an archived drill is frozen'); END""",
         postgresql="""CREATE FUNCTION drills_refuse() RETURNS trigger
       LANGUAGE plpgsql AS $$ BEGIN
         IF TG_OP = 'DELETE' THEN
           RAISE EXCEPTION 'drills are kept: every drill is archived'
             USING ERRCODE = 'integrity_constraint_violation';
         END IF;
         RAISE EXCEPTION 'drill is archived: an archived drill is frozen'
           USING ERRCODE = 'integrity_constraint_violation';
       END $$"""),
    Both(sqlite="""CREATE TRIGGER drills_kept BEFORE DELETE ON drills
       BEGIN SELECT RAISE(ABORT, 'drills are kept: every drill is archived'); END""",
         postgresql="""CREATE TRIGGER drills_archived_frozen BEFORE UPDATE ON drills
       FOR EACH ROW WHEN (OLD.status = 'archived') EXECUTE FUNCTION drills_refuse()"""),
    Both(sqlite="SELECT 1",      # (SQLite: both triggers above)
         postgresql="""CREATE TRIGGER drills_kept BEFORE DELETE ON drills
       FOR EACH ROW EXECUTE FUNCTION drills_refuse()"""),
]

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(DrillRun)


class DrillRows:
    """The `drills` methods of SqliteStore (a mixin: it uses the store's connection,
    `_transaction` and `audit`)."""

    def put_drill(self, run: DrillRun, at: float,
                  audit: list[tuple[float, str, str, dict]] = ()) -> None:
        """Insert or update a run, with its audit records, in one commit."""
        with self._transaction() as c:
            c.execute("INSERT INTO drills VALUES (?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET "
                      "status = excluded.status, updated_at = excluded.updated_at, "
                      "body = excluded.body",
                      (run.id, run.scenario.id, run.status, run.started_at.isoformat(), at,
                       _encoder.encode(run).decode()))
            if audit:
                self.audit.append_many(list(audit))

    def drill(self, drill_id: str) -> DrillRun | None:
        """One run, or None."""
        row = self._conn.execute("SELECT body FROM drills WHERE id = ?",
                                 (drill_id,)).fetchone()
        return None if row is None else _decoder.decode(row[0])

    def drills(self, status: str | None = None) -> list[DrillRun]:
        """Runs (of one status), oldest first."""
        sql, args = "SELECT body FROM drills", ()
        if status is not None:
            sql, args = sql + " WHERE status = ?", (status,)
        return [_decoder.decode(b) for (b,) in
                self._conn.execute(sql + " ORDER BY started_at, id", args)]
