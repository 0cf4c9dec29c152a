"""Drafts and issued reports in the collector's database (migration 3).

An issued report is frozen (domain.md §3: the issued version is kept): the
store only ever updates a row `WHERE status = 'draft'`, and triggers refuse
any UPDATE or DELETE of an issued row, whoever tries. Every draft, edit and
issue is an audit record written in the same transaction as the row
(第二十九條: every step recorded); the issue record holds the sha256 of the
issued Markdown and HTML, so the audit chain pins the text that went out.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone

import msgspec

from ..incidents import Refused
from ..storage.dialect import Both

# Appended to collector.store.MIGRATIONS as version 3.
SCHEMA = [
    # PostgreSQL has no rowid: a `rowid` column of its own keeps insertion order
    # (reports() orders by it after created_at, on both).
    Both(sqlite="""CREATE TABLE reports (
        id TEXT PRIMARY KEY, incident TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('written', 'progress', 'summary')),
        language TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('draft', 'issued')),
        fields TEXT NOT NULL, supersedes TEXT,
        created_at TEXT NOT NULL, created_by TEXT NOT NULL, updated_at TEXT NOT NULL,
        issued_at TEXT, issued_by TEXT, issued_why TEXT,
        markdown TEXT, html TEXT)""",
         postgresql="""CREATE TABLE reports (
        id TEXT COLLATE "C" PRIMARY KEY, incident TEXT COLLATE "C" NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('written', 'progress', 'summary')),
        language TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('draft', 'issued')),
        fields TEXT NOT NULL, supersedes TEXT,
        created_at TEXT COLLATE "C" NOT NULL, created_by TEXT NOT NULL,
        updated_at TEXT NOT NULL, issued_at TEXT, issued_by TEXT, issued_why TEXT,
        markdown TEXT, html TEXT, rowid BIGINT GENERATED ALWAYS AS IDENTITY)"""),
    "CREATE INDEX reports_incident ON reports (incident, created_at)",
    Both(sqlite="""CREATE TRIGGER reports_issued_frozen BEFORE UPDATE ON reports
       WHEN OLD.status = 'issued'
       BEGIN SELECT RAISE(ABORT, 'report is issued: an issued report is frozen'); END""",
         postgresql="""CREATE FUNCTION reports_issued_refuse() RETURNS trigger
       LANGUAGE plpgsql AS $$ BEGIN
         IF TG_OP = 'DELETE' THEN
           RAISE EXCEPTION 'report is issued: an issued report is kept'
             USING ERRCODE = 'integrity_constraint_violation';
         END IF;
         RAISE EXCEPTION 'report is issued: an issued report is frozen'
           USING ERRCODE = 'integrity_constraint_violation';
       END $$"""),
    Both(sqlite="""CREATE TRIGGER reports_issued_kept BEFORE DELETE ON reports
       WHEN OLD.status = 'issued'
       BEGIN SELECT RAISE(ABORT, 'report is issued: an issued report is kept'); END""",
         postgresql="""CREATE TRIGGER reports_issued_frozen BEFORE UPDATE OR DELETE ON reports
       FOR EACH ROW WHEN (OLD.status = 'issued') EXECUTE FUNCTION reports_issued_refuse()"""),
]

_COLUMNS = ("id, incident, kind, language, status, fields, supersedes, created_at, "
            "created_by, updated_at, issued_at, issued_by, issued_why, markdown, html")


class ReportFrozen(Refused):
    """An issued report was to be changed (-> 409)."""


class StoredReport(msgspec.Struct, kw_only=True):
    """One report as kept: its fields, and once issued, who issued it and its text."""

    id: str
    incident: str
    kind: str                        # written | progress | summary
    language: str                    # zh | en
    status: str                      # draft | issued
    fields: dict
    supersedes: str | None = None    # the report of this incident and kind it replaces
    created_at: datetime
    created_by: str
    updated_at: datetime
    issued_at: datetime | None = None
    issued_by: str | None = None
    issued_why: str | None = None
    markdown: str | None = None      # rendered when issued (a draft renders on demand)
    html: str | None = None

    def meta(self) -> dict:
        """What the templates read about the report itself."""
        return {"id": self.id, "status": self.status, "issued_at": self.issued_at,
                "issued_by": self.issued_by, "supersedes": self.supersedes}


def frozen(r: StoredReport) -> ReportFrozen:
    """The refusal for changing an issued report, saying what to do instead."""
    return ReportFrozen(
        f"{r.id} was issued by {r.issued_by} at {r.issued_at.isoformat()} and is frozen; "
        f"draft a new {r.kind} report of {r.incident} to supersede it")


def sha256(text: str) -> str:
    """Hex sha256 of text (UTF-8)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _text(dt: datetime | None) -> str | None:
    return None if dt is None else dt.astimezone(timezone.utc).isoformat()


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, tz=timezone.utc)


def _row(row) -> StoredReport:
    (id_, inc, kind, lang, status, fields, supersedes, created_at, created_by, updated_at,
     issued_at, issued_by, issued_why, markdown, html) = row
    dt = datetime.fromisoformat
    return StoredReport(id=id_, incident=inc, kind=kind, language=lang, status=status,
                        fields=json.loads(fields), supersedes=supersedes,
                        created_at=dt(created_at), created_by=created_by,
                        updated_at=dt(updated_at), issued_at=issued_at and dt(issued_at),
                        issued_by=issued_by, issued_why=issued_why, markdown=markdown,
                        html=html)


class ReportRows:
    """The `reports` methods of SqliteStore (a mixin: it uses the store's connection,
    `_transaction` and `audit`)."""

    def add_report(self, report: StoredReport, at: float) -> None:
        """Keep a new draft, with its "report.drafted" audit record."""
        with self._transaction() as c:
            c.execute(f"INSERT INTO reports ({_COLUMNS}) VALUES "
                      "(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                      (report.id, report.incident, report.kind, report.language, "draft",
                       json.dumps(report.fields, ensure_ascii=False), report.supersedes,
                       _text(report.created_at), report.created_by, _text(report.updated_at),
                       None, None, None, None, None))
            self.audit.append(at, "report.drafted", report.created_by, {
                "report": report.id, "incident": report.incident, "kind": report.kind,
                "language": report.language, "supersedes": report.supersedes})

    def edit_report(self, report_id: str, fields: dict, changed: dict, at: float,
                    who: str) -> None:
        """Replace a draft's fields; "report.edited" names what changed. ReportFrozen
        when the report is issued (KeyError when there is none)."""
        with self._transaction() as c:
            cur = c.execute("UPDATE reports SET fields = ?, updated_at = ? "
                            "WHERE id = ? AND status = 'draft'",
                            (json.dumps(fields, ensure_ascii=False), _text(_utc(at)),
                             report_id))
            if cur.rowcount != 1:
                raise self._not_draft(report_id)
            self.audit.append(at, "report.edited", who, {"report": report_id,
                                                          "changed": changed})

    def issue_report(self, report_id: str, markdown: str, html: str, at: float, who: str,
                     why: str) -> None:
        """Freeze a draft with its rendered text; "report.issued" holds their sha256."""
        with self._transaction() as c:
            cur = c.execute("UPDATE reports SET status = 'issued', issued_at = ?, "
                            "issued_by = ?, issued_why = ?, markdown = ?, html = ?, "
                            "updated_at = ? WHERE id = ? AND status = 'draft'",
                            (_text(_utc(at)), who, why, markdown, html, _text(_utc(at)),
                             report_id))
            if cur.rowcount != 1:
                raise self._not_draft(report_id)
            r = self.report(report_id)
            self.audit.append(at, "report.issued", who, {
                "report": report_id, "incident": r.incident, "kind": r.kind,
                "language": r.language, "why": why, "supersedes": r.supersedes,
                "markdown_sha256": sha256(markdown), "html_sha256": sha256(html)})

    def _not_draft(self, report_id: str) -> Exception:
        r = self.report(report_id)
        return KeyError(report_id) if r is None else frozen(r)

    def report(self, report_id: str) -> StoredReport | None:
        """One report, or None."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM reports WHERE id = ?",
                                 (report_id,)).fetchone()
        return None if row is None else _row(row)

    def reports(self, incident: str | None = None) -> list[StoredReport]:
        """Reports (of one incident), oldest first."""
        sql, args = f"SELECT {_COLUMNS} FROM reports", ()
        if incident is not None:
            sql, args = sql + " WHERE incident = ?", (incident,)
        return [_row(r) for r in self._conn.execute(sql + " ORDER BY created_at, rowid", args)]
