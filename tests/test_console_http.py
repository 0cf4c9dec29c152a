"""The web console's security and pages over plain HTTP (no browser): logins,
throttling, CSRF, origins, roles, redirects, headers, expiry, the refusals a
person sees; and its pure parts (sessions, views, words, passwords)."""

from __future__ import annotations

import http.cookiejar
import re
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from agent.wire import CheckStatus
from collector.reports.render import pdf_problem
from collector.web.i18n import WORDS, duration
from collector.web.passwords import check_password, hash_password
from collector.web.sessions import Sessions
from collector.web.views import branch_tiles, incident_rows

from .support.collector import CollectorProcess, audit_records
from .support.console import USERS, console_yaml, fault_batch
from .support.paths import REPO
from .test_collector_api import request

TOKEN = "console-http-agent-token-1"
AGENTS = {"a1": ("BR-1", "east", TOKEN)}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Visitor:
    """A person's browser, by hand: cookies kept, redirects not followed."""

    def __init__(self, base: str):
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar),
                                                  NoRedirect)

    def go(self, path: str, form: dict | None = None, headers: dict | None = None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers or {})
        try:
            with self.opener.open(req, timeout=10) as r:
                return r.status, dict(r.headers), r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read().decode()

    def login(self, user: str, password: str | None = None):
        return self.go("/console/login", {"user": user, "password": password or USERS[user][1],
                                          "next": "/console/incidents"})

    def csrf(self) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.go("/console/incidents")[2])[1]


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    with CollectorProcess(tmp_path_factory.mktemp("console-http"), AGENTS,
                          extra=console_yaml({**USERS, "tom": (["viewer"], "tom-password")})) as c:
        status, body = request(c.url + "/api/v1/events",
                               fault_batch("a1", "BR-1", "tcp/core-system", "critical", "down"),
                               TOKEN)
        assert status == 200, body
        yield c


def incident_id(v: Visitor) -> str:
    return re.search(r'data-incident="([^"]+)"', v.go("/console/incidents")[2])[1]


def test_pages_need_a_login_and_say_where_to_go(collector):
    v = Visitor(collector.url)
    status, headers, _ = v.go("/console/incidents")
    assert status == 303 and headers["Location"].startswith("/console/login?next=")
    # A live-update poll gets a 401 that tells htmx to load the login page.
    status, headers, _ = v.go("/console/incidents?poll=1", headers={"HX-Request": "true"})
    assert status == 401 and headers["HX-Redirect"].startswith("/console/login")
    assert v.go("/")[1]["Location"] == "/console/incidents"


def test_login_sets_a_strict_cookie_and_safe_headers(collector):
    v = Visitor(collector.url)
    status, headers, _ = v.login("alice")
    assert status == 303 and headers["Location"] == "/console/incidents"
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    status, headers, body = v.go("/console/incidents")
    assert status == 200 and "BR-1" in body
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    assert "<script>" not in body and "style=" not in body       # nothing inline (CSP)


def test_wrong_passwords_are_refused_audited_and_throttled(collector):
    v = Visitor(collector.url)
    status, _, body = v.login("alice", "not-her-password")
    assert status == 401 and "用户名或密码错误" in body
    status, _, _ = v.login("nobody", "whatever")
    assert status == 401
    failed = [a for a, _ in audit_records(collector, "console.login_failed")]
    assert "alice" in failed and "nobody" in failed


def test_a_login_never_redirects_off_the_site(collector):
    v = Visitor(collector.url)
    status, headers, _ = v.go("/console/login", {"user": "alice", "password": USERS["alice"][1],
                                                 "next": "//evil.example/"})
    assert headers["Location"] == "/console/incidents"


def test_posts_need_the_csrf_token_the_same_origin_and_the_role(collector):
    v = Visitor(collector.url)
    v.login("alice")
    iid, csrf = incident_id(v), v.csrf()
    assert v.go(f"/console/incidents/{iid}/note", {"text": "x"})[0] == 403
    assert v.go(f"/console/incidents/{iid}/note", {"text": "x", "csrf": "forged"})[0] == 403
    status, _, body = v.go(f"/console/incidents/{iid}/note", {"text": "x", "csrf": csrf},
                           headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-origin" in body
    # An operator may not set a grade: leadership's.
    status, _, body = v.go(f"/console/incidents/{iid}/grade",
                           {"grade": "I", "why": "x", "csrf": csrf})
    assert status == 403 and "无权人工定级" in body          # zh, the default: domain.md §4
    status, headers, _ = v.go(f"/console/incidents/{iid}/note",
                              {"text": "on site", "csrf": csrf, "next": f"/console/incidents/{iid}"})
    assert status == 303 and headers["Location"] == f"/console/incidents/{iid}"
    assert ("alice", "on site") in [(a, d.get("detail", "").split(": ", 1)[-1])
                                    for a, d in audit_records(collector, "incident.noted")]


def test_leadership_grades_and_a_refusal_comes_back_as_a_message(collector):
    v = Visitor(collector.url)
    v.login("boss")
    iid, csrf = incident_id(v), v.csrf()
    status, _, _ = v.go(f"/console/incidents/{iid}/grade",
                        {"grade": "III", "table": "cbrc", "why": "head office says so",
                         "csrf": csrf, "next": f"/console/incidents/{iid}"})
    assert status == 303
    assert any(a == "boss" for a, _ in audit_records(collector, "incident.graded"))
    # Closing an open incident is refused by the collector (409): the page says why.
    status, _, _ = v.go(f"/console/incidents/{iid}/close",
                        {"why": "done", "csrf": csrf, "next": f"/console/incidents/{iid}"})
    assert status == 303
    page = v.go(f"/console/incidents/{iid}")[2]
    assert 'class="flash error"' in page and "III" in page
    assert v.go(f"/console/incidents/{iid}")[2].count('class="flash') == 0   # shown once


def test_incidents_filter_by_region(collector):
    v = Visitor(collector.url)
    v.login("vera")
    assert "BR-1" in v.go("/console/incidents?region=east")[2]
    page = v.go("/console/incidents?region=west")[2]
    assert "data-incident" not in page and "region=west" in page     # the poll keeps the filter


def test_operators_fill_a_report_and_leadership_issues_it(collector):
    v, boss = Visitor(collector.url), Visitor(collector.url)
    v.login("alice")
    boss.login("boss")
    iid, csrf = incident_id(v), v.csrf()
    assert v.go(f"/console/incidents/{iid}/reports", {"csrf": csrf})[0] == 303
    rid = re.search(r'data-report="([^"]+)"', v.go(f"/console/incidents/{iid}")[2])[1]
    status, _, _ = v.go(f"/console/reports/{rid}/edit", {"csrf": csrf,
                                                        "next_steps": "更换光模块",
                                                        "kind": "not a field"})
    assert status == 303 and "更换光模块" in v.go(f"/console/reports/{rid}")[2]
    assert v.go(f"/console/reports/{rid}/issue", {"csrf": csrf, "why": "x"})[0] == 403
    assert boss.go(f"/console/reports/{rid}/issue", {"csrf": boss.csrf(), "why": "faxed"})[0] == 303
    page = v.go(f"/console/reports/{rid}")[2]
    assert ">已签发<" in page and 'id="report-form"' not in page
    # A frozen report refuses an edit; the page says why.
    v.go(f"/console/reports/{rid}/edit", {"csrf": csrf, "next_steps": "x",
                                          "next": f"/console/reports/{rid}"})
    assert 'class="flash error"' in v.go(f"/console/reports/{rid}")[2]


def test_unknown_things_are_404_with_a_reason(collector):
    v = Visitor(collector.url)
    v.login("alice")
    status, _, body = v.go("/console/incidents/INC-nope")
    assert status == 404 and "INC-nope" in body
    assert v.go("/console/reports/R-nope.md")[0] == 404
    assert v.go("/console/lang/fr")[0] == 404


def test_logout_ends_the_session(collector):
    v = Visitor(collector.url)
    v.login("vera")
    csrf = v.csrf()
    assert v.go("/console/logout", {"csrf": csrf})[0] == 303
    assert v.go("/console/incidents")[0] == 303
    assert "vera" in [a for a, _ in audit_records(collector, "console.logout")]


def test_a_bad_console_user_stops_the_collector_with_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("console:\n  users:\n    - {name: a, roles: [boss], password: x}\n")
    r = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "--config",
                        str(config)], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "console.users[0].roles" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    config.write_text("console:\n  users:\n    - {name: a, roles: [viewer], password: x}\n")
    r = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "--config",
                        str(config)], capture_output=True, text=True, cwd=REPO, timeout=30)
    assert "console.users[0].password" in r.stderr and "collector password" in r.stderr


def test_the_password_command_prints_a_hash_that_checks():
    r = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "password",
                        "--user", "lina", "--roles", "operator,leadership"],
                       input="a long password\n", capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr
    stored = re.search(r"password: '([^']+)'", r.stdout)[1]
    assert stored.startswith("$argon2id$")            # new hashes are argon2id
    assert "roles: [operator, leadership]" in r.stdout
    assert check_password("a long password", stored) and not check_password("other", stored)
    short = subprocess.run([sys.executable, "-m", "collector.cli", "collector", "password"],
                           input="short\n", capture_output=True, text=True, cwd=REPO)
    assert short.returncode == 2


# --- pure parts ---------------------------------------------------------------------
def test_sessions_expire_when_idle_or_old_and_polls_do_not_count():
    now = [0.0]
    s = Sessions(idle=60, max_age=300, clock=lambda: now[0])
    a = s.start("alice", ["operator"])
    now[0] = 50
    assert s.get(a.id, touch=False) is a            # a poll: still valid, not refreshed
    now[0] = 61
    assert s.get(a.id) is None                      # idle 61 s since the last activity
    b = s.start("alice", ["operator"])
    for t in range(100, 361, 50):
        now[0] = t
        assert s.get(b.id) is b                     # active: kept alive...
    now[0] = 362
    assert s.get(b.id) is None                      # ...but never past max_age
    assert s.end(b.id) is None and a.id != b.id


def test_every_word_is_in_both_languages_and_durations_read_well():
    assert all(set(w) == {"zh", "en"} and all(w.values()) for w in WORDS.values())
    assert duration(3725, "en") == "1 hr, 2 min" and duration(3725, "zh") == "1小时2分钟"
    assert duration(45, "en") == "45 sec" and duration(-5, "zh") == "0秒"
    assert duration(90000, "en") == "1 day, 1 hr" and duration(90000, "zh") == "1天1小时"


def test_password_hashes_are_salted():
    a, b = hash_password("same"), hash_password("same")
    assert a != b and check_password("same", a) and check_password("same", b)
    assert not check_password("same", "garbage")


def test_branch_tiles_show_regions_silence_and_changes_since_the_heartbeat():
    now = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    hb = now - timedelta(seconds=10)
    agents = [SimpleNamespace(agent="n1", branch="N1", region="", heartbeat_at=hb, checks=[
                  CheckStatus(check="ups/main/on_battery", state="ok", reason="mains"),
                  CheckStatus(check="line/primary/core", state="ok", reason="up")]),
              SimpleNamespace(agent="s1", branch="S1", region="south", heartbeat_at=hb,
                              checks=[])]
    enrolled = [SimpleNamespace(id="n1", branch="N1", region="north"),
                SimpleNamespace(id="s1", branch="S1", region="south"),
                SimpleNamespace(id="n2", branch="N2", region="north")]
    incident = {"id": "INC-1", "branch": "N1", "faults": [
        {"agent": "n1", "branch": "N1", "check": "ups/main/on_battery", "state": "critical",
         "reason": "on battery", "active": True, "last_at": now - timedelta(seconds=2)}]}
    regions = branch_tiles(agents, enrolled, {"s1"}, [incident], now)
    assert [r["region"] for r in regions] == ["north", "south"]
    north = {b["branch"]: b for b in regions[0]["branches"]}
    assert north["N1"]["state"] == "critical" and north["N1"]["incidents"] == ["INC-1"]
    assert north["N1"]["group_state"] == {"ups": "critical", "uplinks": "ok",
                                          "services": "ok", "host": "ok"}
    assert north["N2"]["state"] == "unknown"             # enrolled, never heard
    assert regions[1]["branches"][0]["state"] == "silent"


def test_incidents_sort_most_severe_first():
    now = datetime(2026, 11, 28, 9, 0, tzinfo=timezone.utc)
    table = SimpleNamespace(grade_titles={"II": "重大"}, rank=lambda g: {"II": 2, None: 0}[g])

    def inc(iid, grade, minutes):
        rec = SimpleNamespace(grade=grade, provisional=False, rule=None)
        return {"id": iid, "title": iid, "status": "open", "drill": False, "branch": "B",
                "faults": [], "grades": {"cbrc": rec}, "deadlines": [], "acks": [],
                "started_at": now - timedelta(minutes=minutes)}
    rows = incident_rows([inc("old", None, 60), inc("graded", "II", 5), inc("new", None, 1)],
                         {"cbrc": table}, now)
    assert [r["id"] for r in rows] == ["graded", "old", "new"]
    assert rows[0]["grades"][0]["title"] == "重大"


def test_an_operator_starts_a_drill_and_gets_its_report(collector):
    v = Visitor(collector.url)
    v.login("alice")
    page = v.go("/console/drills")[2]
    assert 'value="power-cut"' in page
    status, headers, _ = v.go("/console/drills", {"scenario": "power-cut", "branch": "BR-1",
                                                  "csrf": v.csrf(), "next": "/console/drills"})
    # Started: to the drill's own page (end, plan, archive are there).
    assert status == 303 and re.fullmatch(r"/console/drills/DRILL-\S+", headers["Location"])
    page = v.go("/console/drills")[2]
    drill = re.search(r'data-drill="([^"]+)"', page)[1]
    assert headers["Location"] == f"/console/drills/{drill}"
    status, headers, text = v.go(f"/console/drills/{drill}/report.md?lang=en")
    assert status == 200 and drill in text
    assert headers["Content-Disposition"] == f'attachment; filename="{drill}.md"'
    assert f'/console/drills/{drill}/report.pdf?lang=' in page          # linked, and made
    if pdf_problem() is None:
        req = urllib.request.Request(f"{collector.url}/console/drills/{drill}/report.pdf?lang=zh")
        with v.opener.open(req, timeout=120) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/pdf"
            assert r.read(5) == b"%PDF-"
            assert r.headers["Content-Disposition"] == f'attachment; filename="{drill}.pdf"'
    assert v.go(f"/console/drills/{drill}/report.docx")[0] == 404
    assert any(a == "alice" for a, _ in audit_records(collector, "drill.started"))
