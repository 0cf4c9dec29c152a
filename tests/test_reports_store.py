"""Drafts and issued reports in the collector's store (issue 7; migration 3): the
desk on a real store (SQLite and PostgreSQL), its audit records (第二十九條) in the same
transaction, and an issued report that nothing can change (domain.md §3)."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

import collector.store as store_module
from collector.reports.desk import ReportDesk, rendered
from collector.reports.model import NotYet
from collector.reports.settings import ReportSettings
from collector.reports.storage import ReportFrozen
from tests.support.store_backend import backend, pg_server  # noqa: F401

from .support.report_incident import ID, at, incident_dict
from .test_reports_golden import SCOPE


class Clock:
    """The desk's clock, set by the test."""

    def __init__(self, hhmm: str):
        self.set(hhmm)

    def set(self, hhmm: str) -> None:
        self.now = at(hhmm).timestamp()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def desk(backend):
    store = backend.open()
    state = {"until": "11:00"}
    clock = Clock("11:00")
    d = ReportDesk(store, lambda i: incident_dict(state["until"]) if i == ID else None,
                   SCOPE, ReportSettings(unit="County RCC", contact="Zhang", phone="110"),
                   clock)
    d.state, d.clock_, d.backend = state, clock, backend
    return d


def test_migration_3_adds_the_reports_table_to_an_existing_database(backend, monkeypatch):
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
    old = backend.open()
    assert old.schema_version() == 2
    old.close()
    monkeypatch.undo()
    new = backend.open()
    assert new.schema_version() >= 3 and new.reports() == []


def test_draft_edit_issue_each_an_audit_record_and_the_chain_holds(desk):
    r = desk.draft(ID, "written", None, "alice")
    assert (r.id, r.status, r.language, r.kind) == (f"{ID}-W1", "draft", "zh", "written")
    assert r.fields["unit"] == "County RCC" and r.fields["as_of"] == "2026-12-07T03:00:00Z"
    r = desk.edit(r.id, {"cause_analysis": "供电线路故障", "consequences": "两个网点停业"},
                  "bob")
    assert r.fields["cause_analysis"] == "供电线路故障" and r.status == "draft"
    desk.clock_.set("11:05")
    r = desk.issue(r.id, "alice", "faxed to the regulator")
    assert (r.status, r.issued_by, r.issued_why) == ("issued", "alice", "faxed to the regulator")
    assert r.issued_at == at("11:05")
    assert "已签发（alice，2026-12-07 11:05）" in r.markdown and "供电线路故障" in r.html
    assert rendered(r, "md") == r.markdown

    records = desk.store.audit.records()
    kinds = [(x["kind"], x["actor"]) for x in records]
    assert kinds == [("report.drafted", "alice"), ("report.edited", "bob"),
                     ("report.issued", "alice")]
    assert records[1]["data"]["changed"] == {"cause_analysis": "供电线路故障",
                                             "consequences": "两个网点停业"}
    issued = records[2]["data"]
    assert issued["markdown_sha256"] == hashlib.sha256(r.markdown.encode()).hexdigest()
    assert issued["html_sha256"] == hashlib.sha256(r.html.encode()).hexdigest()
    assert desk.store.verify_audit() == []


def test_an_issued_report_can_never_be_edited_or_issued_again(desk):
    r = desk.issue(desk.draft(ID, "written", "en", "alice").id, "alice", "sent")
    with pytest.raises(ReportFrozen, match=f"{r.id} was issued by alice .* and is frozen; "
                                           "draft a new written report"):
        desk.edit(r.id, {"other": "late addition"}, "bob")
    with pytest.raises(ReportFrozen):
        desk.issue(r.id, "bob", "again")
    with pytest.raises(ReportFrozen):        # the store refuses too, not only the desk
        desk.store.edit_report(r.id, {}, {}, 0.0, "mallory")
    # ... and so does the database, whoever writes to it.
    conn = desk.store._conn
    with pytest.raises(desk.backend.integrity_error, match="issued report is frozen"):
        conn.execute("UPDATE reports SET markdown = 'changed' WHERE id = ?", (r.id,))
    with pytest.raises(desk.backend.integrity_error, match="issued report is kept"):
        conn.execute("DELETE FROM reports WHERE id = ?", (r.id,))
    assert desk.get(r.id).markdown == r.markdown
    assert [x["kind"] for x in desk.store.audit.records()] == ["report.drafted",
                                                               "report.issued"]


def test_issuing_and_its_audit_record_are_one_transaction(desk, monkeypatch):
    r = desk.draft(ID, "written", "en", "alice")

    def broken(records):
        raise sqlite3.OperationalError("disk I/O error")
    monkeypatch.setattr(desk.store.audit, "append_many", broken)
    with pytest.raises(sqlite3.OperationalError):
        desk.issue(r.id, "alice", "sent")
    monkeypatch.undo()
    assert desk.get(r.id).status == "draft" and desk.get(r.id).markdown is None


def test_a_new_draft_supersedes_and_keeps_the_text_progress_reports_are_a_series(desk):
    w1 = desk.draft(ID, "written", "zh", "alice")
    desk.edit(w1.id, {"cause_analysis": "线路故障"}, "alice")
    desk.issue(w1.id, "alice", "sent")
    desk.state["until"], desk.clock_.now = "12:52", at("12:52").timestamp()
    w2 = desk.draft(ID, "written", "zh", "bob")
    assert (w2.id, w2.supersedes, w2.fields["cause_analysis"]) == (f"{ID}-W2", w1.id, "线路故障")
    en = desk.draft(ID, "written", "en", "bob")       # another language: no text carried
    assert en.supersedes == w2.id and en.fields["cause_analysis"] == ""
    p1 = desk.draft(ID, "progress", "en", "bob")
    # since the last issued report, as of when it was drawn (11:00)
    assert (p1.id, p1.supersedes) == (f"{ID}-P1", None)
    assert (p1.fields["since"], p1.fields["since_report"]) == ("2026-12-07T03:00:00Z", w1.id)
    assert [c["check"] for c in p1.fields["cleared"]] == ["line/primary/gateway"]
    desk.issue(p1.id, "bob", "sent")
    p2 = desk.draft(ID, "progress", "en", "bob")
    assert p2.id == f"{ID}-P2" and p2.fields["since_report"] == p1.id
    assert [r.id for r in desk.list(ID)] == [w1.id, w2.id, en.id, p1.id, p2.id]


def test_drafting_refuses_what_does_not_exist_or_is_not_allowed_yet(desk):
    with pytest.raises(KeyError):
        desk.draft("INC-nope", "written", None, "alice")
    with pytest.raises(KeyError):
        desk.list("INC-nope")
    with pytest.raises(ValueError, match="kind: expected one of written, progress, summary"):
        desk.draft(ID, "weekly", None, "alice")
    with pytest.raises(ValueError, match="language: expected one of zh, en"):
        desk.draft(ID, "written", "fr", "alice")
    with pytest.raises(NotYet):
        desk.draft(ID, "summary", None, "alice")            # still open at 11:00
    with pytest.raises(KeyError):
        desk.edit("INC-nope-W1", {"other": "x"}, "alice")
    assert desk.store.audit.records() == []                 # nothing was written
