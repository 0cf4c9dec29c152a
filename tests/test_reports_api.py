"""Reports over the collector's API and the `report` CLI (issue 7; domain.md §3):
the collector app (build_app, its store, writer thread and dead-man loop) with
add_report_routes, served on 127.0.0.1; an incident opened by real event
batches over HTTP, and the fixed closed incident of the golden tests stored
beforehand. The CLI runs as its own process.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import build_app, token_hash
from collector.api_reports import add_report_routes
from collector.config import parse
from collector.incident_codec import from_dict, to_dict
from collector.reports.model import EDITABLE
from collector.reports.render import pdf_problem
from collector.reports.settings import ReportSettings
from collector.store import SqliteStore

from .support.paths import REPO
from .support.report_incident import ID, incident
from .support.report_server import AppThread
from .test_collector_api import request

OPERATOR = "operator-reports-api-token-xxxxxxxxxxx"
OTHER = "operator-reports-api-token-bob-xxxxxxx"
AGENT = "token-reports-api-a1-xxxxxxxxxxxxxxxx"


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports-api")
    config = parse(
        f"storage: {{data_dir: {folder}}}\n"
        f"agents:\n  - {{id: a1, branch: B1, region: north, token_sha256: {token_hash(AGENT)}}}\n"
        f"operators:\n  - {{name: alice, roles: [leadership], token_sha256: {token_hash(OPERATOR)}}}\n"
        f"  - {{name: bob, roles: [leadership], token_sha256: {token_hash(OTHER)}}}\n"
        "incidents: {window: 120, deadman_grace: 86400}\n"
        "grading: {tables: [cbrc]}\n")
    store = SqliteStore(config.db_path())
    # The closed incident of the golden tests, as if it had happened here 105 weeks
    # earlier (in the past whatever today is; the same weekday and times of day).
    store.save_incidents([from_dict(shifted(to_dict(incident("13:40")), -WEEKS_105))],
                         time.time())
    app = build_app(config, store)
    add_report_routes(app, ReportSettings(language="en", unit="County RCC",
                                          contact="Zhang San", phone="110",
                                          timezone="Asia/Shanghai"))
    server = AppThread(app).start()
    server.db = config.db_path()
    try:
        yield server
    finally:
        server.stop()
        store.close()


WEEKS_105 = timedelta(weeks=105)


def shifted(data, by: timedelta):
    """Every datetime in plain data moved by `by`."""
    if isinstance(data, datetime):
        return data + by
    if isinstance(data, dict):
        return {k: shifted(v, by) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(shifted(v, by) for v in data)
    if hasattr(data, "__dataclass_fields__") or hasattr(data, "__struct_fields__"):
        return shifted(msgspec.to_builtins(data, builtin_types=(datetime,)), by)
    return data


def call(c, method: str, path: str, body=None, token: str | None = OPERATOR):
    raw = None if body is None else json.dumps(body).encode()
    status, data = request(c.url + path, raw, token, method=method)
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data


_ages = itertools.count(1)


def open_incident(c, check: str) -> str:
    """A fault at B1 over HTTP, as the agent sends it (apart from every other test's:
    no grouping); the incident's id."""
    now = datetime.now(timezone.utc)
    e = Event(id=new_event_id(), kind="state", agent="a1", branch="B1", check=check,
              old_state="ok", new_state="critical", reason="connect timed out <b>",
              observed_at=now - timedelta(minutes=10 * next(_ages)))
    status, _ = request(c.url + "/api/v1/events",
                        encode(Batch(agent="a1", branch="B1", sent_at=now, events=[e])), AGENT)
    assert status == 200
    status, data = call(c, "GET", "/api/v1/incidents?status=open")
    [inc] = [i for i in data["incidents"] if any(f["check"] == check for f in i["faults"])]
    return inc["id"]


def audit_rows(c, kind: str) -> list[tuple[str, str, dict]]:
    """The audit records of one kind: (kind, actor, data), oldest first."""
    import sqlite3
    conn = sqlite3.connect(f"file:{c.db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT kind, actor, data FROM audit WHERE kind = ? ORDER BY seq",
                            (kind,)).fetchall()
    finally:
        conn.close()
    return [(k, a, json.loads(d)) for k, a, d in rows]


def cli(c, *args: str, token: str = OPERATOR) -> subprocess.CompletedProcess:
    env = dict(os.environ, BRANCHWATCH_TOKEN=token)
    return subprocess.run([sys.executable, "-m", "collector.cli", "report", *args,
                           "--url", c.url], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=60)


def test_an_operator_drafts_edits_and_issues_a_written_report(collector):
    inc = open_incident(collector, "tcp/core-banking")
    status, r = call(collector, "POST", "/api/v1/reports", {"incident": inc})
    assert status == 201, r
    assert (r["id"], r["kind"], r["language"], r["status"]) == (f"{inc}-W1", "written", "en",
                                                                "draft")
    assert "tcp/core-banking" in r["markdown"] and r["fields"]["unit"] == "County RCC"
    assert "cause_analysis" in r["editable"] and "symptoms" not in r["editable"]
    status, r = call(collector, "POST", f"/api/v1/reports/{r['id']}/edit",
                     {"set": {"cause_analysis": "<script>alert(1)</script> cut cable"}})
    assert status == 200 and r["fields"]["cause_analysis"].startswith("<script>")
    status, html = request(f"{collector.url}/api/v1/reports/{r['id']}?format=html", None,
                           OPERATOR)
    assert status == 200 and b"&lt;script&gt;alert(1)&lt;/script&gt; cut cable" in html
    assert b"<script>" not in html and b"connect timed out &lt;b&gt;" in html
    status, r = call(collector, "POST", f"/api/v1/reports/{r['id']}/issue",
                     {"why": "faxed"}, token=OTHER)
    assert status == 200 and (r["status"], r["issued_by"], r["editable"]) == ("issued", "bob", [])
    # Frozen: 409 with the reason, for anyone.
    status, err = call(collector, "POST", f"/api/v1/reports/{r['id']}/edit",
                       {"set": {"other": "more"}})
    assert status == 409 and "is frozen; draft a new written report" in err["error"]
    status, err = call(collector, "POST", f"/api/v1/reports/{r['id']}/issue", {"why": "x"})
    assert status == 409
    status, md = request(f"{collector.url}/api/v1/reports/{r['id']}?format=md", None, OPERATOR)
    assert md.decode() == r["markdown"] and "issued by bob" in r["markdown"]


def test_every_section_and_the_sign_off_can_be_edited_while_a_draft(collector):
    # 第二十八條 and 第三十四條: a person may write every section, measures taken too;
    # the record's words come first (prefilled), an edit replaces them, audited.
    inc = open_incident(collector, "tcp/sections")
    status, r = call(collector, "POST", "/api/v1/reports", {"incident": inc})
    assert status == 201, r
    assert r["editable"] == list(EDITABLE["written"])
    assert {"measures_text", "time_text", "symptoms_text", "signer"} <= set(r["editable"])
    assert "branch B1: business system unreachable (sections)" in r["fields"]["symptoms_text"]
    assert "connect timed out" not in r["fields"]["symptoms_text"]          # raw: annex only
    body, annex = r["markdown"].split("## Annex: technical details")
    assert "connect timed out &lt;b>" in annex and "connect timed out" not in body
    assert "- **Signed by**: ________" in body                                # not configured
    every = {name: f"{name} as the reporter wrote it" for name in r["editable"]}
    status, r = call(collector, "POST", f"/api/v1/reports/{r['id']}/edit", {"set": every})
    assert status == 200, r
    assert all(r["fields"][k] == v for k, v in every.items())
    assert "measures_text as the reporter wrote it" in r["markdown"]
    assert "- **Signed by**: signer as the reporter wrote it" in r["markdown"]
    [(_, _, audited)] = [row for row in audit_rows(collector, "report.edited")
                         if row[2]["report"] == r["id"]]
    assert set(audited["changed"]) == set(every)
    status, r = call(collector, "POST", f"/api/v1/reports/{r['id']}/issue", {"why": "faxed"})
    assert status == 200
    assert "- **Date**: " in r["markdown"] and "- **Date**: ________" not in r["markdown"]
    for name in ("measures_text", "signer", "time_text"):
        status, err = call(collector, "POST", f"/api/v1/reports/{r['id']}/edit",
                           {"set": {name: "later"}})
        assert status == 409 and "frozen" in err["error"], name


def test_refusals(collector):
    inc = open_incident(collector, "tcp/app-refusals")
    rid = call(collector, "POST", "/api/v1/reports", {"incident": inc})[1]["id"]
    cases = [
        ("GET", "/api/v1/reports", None, AGENT, 403, "agent tokens may not"),
        ("GET", "/api/v1/reports", None, None, 401, "Authorization: Bearer"),
        ("POST", "/api/v1/reports", {"incident": "INC-nope"}, OPERATOR, 404,
         "no such incident 'INC-nope'"),
        ("POST", "/api/v1/reports", {"incident": inc, "kind": "summary"}, OPERATOR, 409,
         "still open: the closing summary"),
        ("POST", "/api/v1/reports", {"incident": inc, "kind": "weekly"}, OPERATOR, 400,
         "kind: expected one of"),
        ("POST", "/api/v1/reports", {}, OPERATOR, 400, "incident: missing"),
        ("GET", "/api/v1/reports/INC-nope-W1", None, OPERATOR, 404, "no such report"),
        ("POST", "/api/v1/reports/INC-nope-W1/edit", {"set": {"other": "x"}}, OPERATOR, 404,
         "no such report"),
        ("POST", f"/api/v1/reports/{rid}/edit", {"set": {"symptoms": "x"}}, OPERATOR, 400,
         "symptoms: not a field a person fills"),
        ("POST", f"/api/v1/reports/{rid}/edit", {"set": {}}, OPERATOR, 400, "set: expected"),
        ("POST", f"/api/v1/reports/{rid}/issue", {}, OPERATOR, 400, "why: missing"),
        ("POST", f"/api/v1/reports/{rid}/sign", {}, OPERATOR, 404, "no action 'sign'"),
        ("GET", f"/api/v1/reports/{rid}?format=docx", None, OPERATOR, 400, "format: expected"),
        ("GET", "/api/v1/reports?incident=INC-nope", None, OPERATOR, 404, "no such incident"),
    ]
    for method, path, body, token, code, words in cases:
        status, data = call(collector, method, path, body, token)
        assert (status, words in data.get("error", "")) == (code, True), (path, data)


def test_the_summary_of_a_closed_incident_in_chinese_and_the_list(collector):
    status, r = call(collector, "POST", "/api/v1/reports",
                     {"incident": ID, "kind": "summary", "language": "zh"})
    assert status == 201, r
    assert "信息科技突发事件总结报告" in r["markdown"] and "（八）事件时间线" in r["markdown"]
    assert "| 2024-12-02 13:30 | 事件关闭 |" in r["markdown"]      # Asia/Shanghai
    status, data = call(collector, "GET", f"/api/v1/reports?incident={ID}")
    assert [x["id"] for x in data["reports"]] == [f"{ID}-S1"] and "fields" not in data["reports"][0]
    # Every 第三十四條 section is the person's to edit, prefilled from the record in zh.
    assert r["editable"] == list(EDITABLE["summary"])
    assert "主要处置过程：" in r["fields"]["handling_text"]
    assert "预案步骤“Start the generator”执行失败" in r["fields"]["plan_review"]
    status, r = call(collector, "POST", f"/api/v1/reports/{r['id']}/edit",
                     {"set": {"handling_text": "09:40 停电；09:48 确认接报；13:10 恢复。"}})
    assert status == 200 and "09:48 确认接报；13:10 恢复。" in r["markdown"]


def test_the_cli_drafts_edits_issues_shows_and_lists_and_an_issued_report_is_exit_1(collector):
    inc = open_incident(collector, "tcp/app-cli")
    done = cli(collector, "draft", inc, "--kind", "written", "--lang", "zh")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{inc}-W1  written  zh  draft")
    assert "cause_analysis (empty)" in done.stdout
    rid = f"{inc}-W1"
    done = cli(collector, "edit", rid, "--set", "cause_analysis=主线路被施工挖断, a=b",
               "--set", "consequences=一个网点停业")
    assert done.returncode == 0, done.stderr
    done = cli(collector, "show", rid)
    assert done.returncode == 0 and "主线路被施工挖断, a=b" in done.stdout
    assert "# 信息科技突发事件书面报告" in done.stdout and "草稿，未签发" in done.stdout
    done = cli(collector, "issue", rid, "--why", "报送监管部门")
    assert done.returncode == 0 and " issued " in done.stdout
    done = cli(collector, "edit", rid, "--set", "other=too late")
    assert done.returncode == 1
    assert "409" in done.stderr and "is frozen" in done.stderr and done.stdout == ""
    done = cli(collector, "show", rid, "--format", "html")
    assert done.returncode == 0 and done.stdout.startswith("<!DOCTYPE html>")
    done = cli(collector, "list", inc)
    assert done.returncode == 0 and done.stdout.count(rid) == 1 and "issued" in done.stdout
    done = cli(collector, "edit", rid, "--set", "no-equals-sign")
    assert done.returncode == 2 and "expected FIELD=TEXT" in done.stderr
    done = cli(collector, "show", "INC-nope-W1")
    assert done.returncode == 1 and "404" in done.stderr
    done = cli(collector, "list", inc, token=AGENT)
    assert done.returncode == 2 and "403" in done.stderr


def test_every_report_action_is_in_the_audit_trail(collector):
    import sqlite3
    conn = sqlite3.connect(f"file:{collector.db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT kind, actor, data FROM audit WHERE kind LIKE 'report.%' "
                            "ORDER BY seq").fetchall()
    finally:
        conn.close()
    issued = [(a, json.loads(d)) for k, a, d in rows if k == "report.issued"]
    assert issued and all(d["markdown_sha256"] and d["why"] for _, d in issued)
    assert {k for k, _, _ in rows} == {"report.drafted", "report.edited", "report.issued"}


def test_a_report_as_pdf_or_501_saying_what_is_missing(collector, tmp_path):
    rid = f"{ID}-S1"
    if call(collector, "GET", f"/api/v1/reports/{rid}")[0] == 404:
        call(collector, "POST", "/api/v1/reports", {"incident": ID, "kind": "summary",
                                                     "language": "zh"})
    req = urllib.request.Request(f"{collector.url}/api/v1/reports/{rid}?format=pdf",
                                 headers={"Authorization": f"Bearer {OPERATOR}"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:      # WeasyPrint: seconds
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    problem = pdf_problem()
    if problem is not None:
        assert status == 501 and json.loads(body)["error"] == problem
        pytest.skip(problem)
    assert status == 200 and body.startswith(b"%PDF-")
    out = tmp_path / "r.pdf"
    done = cli(collector, "show", rid, "--format", "pdf", "--output", str(out))
    assert done.returncode == 0 and out.read_bytes().startswith(b"%PDF-")
