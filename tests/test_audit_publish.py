"""The audit head leaves the database (docs/audit.md): a real collector
with an audit key publishes its committed head in /metrics, at the end of every
notification (a real SMTP server on 127.0.0.1), in issued reports' footers and
in the checkpoint file; each one names a record the log really holds. On both
stores (the SQLite file, a real PostgreSQL)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timezone

from agent.wire import Batch, Event, encode, new_event_id
from collector.reports.render import render

from .support.collector import CollectorProcess
from .support.notify import SmtpSink
from .support.paths import REPO
from .support.store_backend import backend, pg_server  # noqa: F401
from .test_collector_api import metric, request
from .test_delivery_e2e import wait_for
from .test_reports_golden import CASES, report_fields

TOKEN = "publish-test-token-0123456789"
LINA = "lina@example.com"


def _records(c: CollectorProcess) -> dict[int, str]:
    if c.dsn is not None:
        import psycopg
        with psycopg.connect(c.dsn, autocommit=True) as pg:
            return dict(pg.execute("SELECT seq, mac FROM audit").fetchall())
    conn = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT seq, mac FROM audit"))
    finally:
        conn.close()


def test_head_in_metrics_mail_and_checkpoint(backend):
    tmp_path = backend.folder
    key = tmp_path / "audit.key"
    subprocess.run([sys.executable, "-m", "collector.cli", "audit", "new-key", str(key)],
                   cwd=REPO, check=True, capture_output=True)
    with SmtpSink() as smtp:
        c = CollectorProcess(tmp_path / "c", {"a1": ("BR-1", TOKEN)}, extra=f"""audit: {{key_file: {key}}}
runbooks: {{auto_start: false}}
notify:
  email: "{smtp.url()}"
  people: [{{name: 李娜, roles: [execution, leadership], email: {LINA}}}]
  routes: [{{name: any, notify: [execution]}}]
""", dsn=backend.dsn)
        with c:
            now = datetime.now(timezone.utc)
            ev = Event(id=new_event_id(), kind="state", agent="a1", branch="BR-1",
                       check="tcp/core", old_state=None, new_state="critical",
                       reason="核心系统不可达", observed_at=now)
            status, _ = request(c.url + "/api/v1/events", encode(Batch(
                agent="a1", branch="BR-1", sent_at=now, events=[ev])), TOKEN)
            assert status == 200
            mail = wait_for(lambda: smtp.to(LINA), timeout=60, what="the incident's mail")[0]
            last = mail.get_content().strip().splitlines()[-1]
            _, _, seq, _, mac = last.split()
            assert last.startswith("audit: record ") and int(seq) > 0
            assert _records(c)[int(seq)] == mac
            # Records keep coming (the mail's delivery is audited too): wait for the
            # collector to go quiet, then /metrics names the last committed record.
            def settled():
                head, records = metric(c, "branchwatch_collector_audit_head_seq"), _records(c)
                return (head, records) if head == max(records) else None
            head, records = wait_for(settled, timeout=60, what="the head in /metrics")
            assert metric(c, "branchwatch_collector_audit_head_seq",
                          mac=records[max(records)]) == head
        final = max(_records(c))
    lines = (c.folder / "data" / "audit.checkpoints").read_text().splitlines()
    assert lines[0].split()[1] == "0" and int(lines[-1].split()[1]) == final


def test_issued_report_footer_names_the_head():
    fields = report_fields("written", "zh")
    meta = {"id": "R-1", **CASES["written"][1], "audit_head": "audit: record 7 mac " + "a" * 64}
    assert render(meta, fields, "md").rstrip().endswith("audit: record 7 mac " + "a" * 64)
    assert '<p class="note">audit: record 7 mac ' + "a" * 64 in render(meta, fields, "html")
    del meta["audit_head"]
    assert "audit: record" not in render(meta, fields, "md")
