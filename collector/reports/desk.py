"""Drafting, editing and issuing reports over a store (issue 7; domain.md §3).

Every method is synchronous and meant for the collector's one writer thread
(collector/writer.py): reading the incident, building the report and keeping
it (with its audit record) happen in one transaction. The rules:

- a draft is drawn from the incident as it is now; its machine facts do not
  change afterwards (draft again to refresh them);
- a person edits only the fields a machine cannot know (model.EDITABLE);
- issuing renders the Markdown and HTML and freezes the report: an issued
  report is never edited again (409); a new draft of the same incident and
  kind supersedes it and keeps the person's text (written, summary);
  progress reports are a series (第二十七條: grade I every 2 h) and each tells
  what changed since the last issued report of the incident.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone

from markupsafe import Markup

from ..audit import head_line
from . import KINDS
from .facts import Scope
from .model import build, carried_text, edit
from .render import body, render
from .settings import LANGUAGES, ReportSettings
from .storage import StoredReport, frozen

LETTER = {"written": "W", "progress": "P", "summary": "S"}


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=timezone.utc)


class ReportDesk:
    """Reports over a store; `incident` gives an incident as incident_codec.to_dict
    (or None), `clock` the time in epoch seconds."""

    def __init__(self, store, incident: Callable[[str], dict | None], scope: Scope,
                 settings: ReportSettings, clock: Callable[[], float]):
        self.store, self.incident, self.scope = store, incident, scope
        self.settings, self.clock = settings, clock

    def draft(self, incident_id: str, kind: str, language: str | None, who: str
              ) -> StoredReport:
        """A new draft of `kind` for the incident. KeyError: no such incident;
        ValueError: an unknown kind or language; model.NotYet: not allowed yet."""
        language = language or self.settings.language
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        if language not in LANGUAGES:
            raise ValueError(f"language: expected one of {', '.join(LANGUAGES)}, "
                             f"got {language!r}")
        inc = self.incident(incident_id)
        if inc is None:
            raise KeyError(incident_id)
        ts = self.clock()
        now = _utc(ts)
        earlier = self.store.reports(incident_id)
        same = [r for r in earlier if r.kind == kind]
        issued = [r for r in earlier if r.status == "issued"]
        last = max(issued, key=lambda r: r.issued_at) if issued else None
        progress = [r for r in issued if r.kind == "progress"]
        last_progress = max(progress, key=lambda r: r.issued_at) if progress else None
        prev = same[-1] if same else None
        carried = carried_text(prev.fields) if prev and prev.language == language else None
        fields = build(kind, inc, self.scope, self.settings, language, now,
                       since=datetime.fromisoformat(last.fields["as_of"]) if last else None,
                       since_report=last.id if last else None, carried=carried,
                       progress_since=datetime.fromisoformat(last_progress.fields["as_of"])
                       if last_progress else None)
        report = StoredReport(
            id=f"{incident_id}-{LETTER[kind]}{len(same) + 1}", incident=incident_id,
            kind=kind, language=language, status="draft", fields=fields,
            supersedes=prev.id if prev and kind != "progress" else None,
            created_at=now, created_by=who, updated_at=now)
        self.store.add_report(report, ts)
        return report

    def edit(self, report_id: str, changes: dict, who: str) -> StoredReport:
        """Set fields a person fills on a draft. KeyError: no such report;
        ReportFrozen: issued; ValueError: a field a machine fills, or not text."""
        report = self._get(report_id)
        if report.status == "issued":
            raise frozen(report)
        fields, changed = edit(report.fields, changes)
        if changed:
            self.store.edit_report(report_id, fields, changed, self.clock(), who)
        return self._get(report_id)

    def issue(self, report_id: str, who: str, why: str) -> StoredReport:
        """Render and freeze a draft (audited with the text's sha256)."""
        report = self._get(report_id)
        if report.status == "issued":
            raise frozen(report)
        ts = self.clock()
        meta = {**report.meta(), "status": "issued", "issued_at": _utc(ts), "issued_by": who}
        audit = getattr(self.store, "audit", None)
        if audit is not None:    # the audit head the report was issued on
            meta["audit_head"] = head_line(audit.live_head())
        markdown = render(meta, report.fields, "md")
        html = render(meta, report.fields, "html")
        self.store.issue_report(report_id, markdown, html, ts, who, why)
        return self._get(report_id)

    def get(self, report_id: str) -> StoredReport | None:
        """One report, or None."""
        return self.store.report(report_id)

    def list(self, incident_id: str | None) -> list[StoredReport]:
        """The reports of an incident (KeyError if there is no such incident), or all."""
        if incident_id is not None and self.incident(incident_id) is None:
            raise KeyError(incident_id)
        return self.store.reports(incident_id)

    def _get(self, report_id: str) -> StoredReport:
        report = self.store.report(report_id)
        if report is None:
            raise KeyError(report_id)
        return report


def preview(report: StoredReport) -> Markup:
    """The report's HTML body for the console's preview: as issued (frozen), or a draft
    rendered from its fields now. Rendered by render.body, so every value in it is
    escaped already."""
    if report.status != "issued":
        return Markup(body(report.meta(), report.fields, "html"))
    page = report.html or ""
    inner = page.split("<body>", 1)[-1].rsplit("</body>", 1)[0]
    inner = inner.strip()
    if inner.startswith('<div class="report-doc">'):     # the page's own wrapper
        inner = inner[len('<div class="report-doc">'):].rsplit("</div>", 1)[0]
    return Markup(inner)


def rendered(report: StoredReport, fmt: str) -> str:
    """The report's text: as issued (frozen), or a draft rendered from its fields now."""
    if report.status == "issued":
        return report.markdown if fmt == "md" else report.html
    return render(report.meta(), report.fields, fmt)
