"""History, branch pages and the branches grid over plain HTTP, against a real
collector process: incidents searched and filtered (status incl. closed,
grade, branch, region, time range, words) and paged in SQL in the console
and the API, bad filters answered 400 with a message; a branch page with its
UPS readings, lines, switches, incidents, every state change (paged) and its
Grafana link; a closed incident cannot be closed twice; the manual grade has
no default; an OK fault says when and why it cleared."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from agent.wire import CheckStatus
from collector.api import token_hash
from collector.web.branch_view import DASHBOARD_SLUG, DASHBOARD_UID, grafana_link, ups_readings

from .support.collector import CollectorProcess, audit_records
from .support.console import console_yaml, fault_batch, heartbeat
from .support.paths import REPO
from .support.store_backend import backend, pg_server  # noqa: F401
from .test_collector_api import request
from .test_console_http import Visitor

TOKENS = {f"a{n}": f"history-agent-token-{n:02d}-xxxxxxx" for n in range(1, 5)}
AGENTS = {"a1": ("BR-N1", "north", TOKENS["a1"]), "a2": ("BR-N2", "north", TOKENS["a2"]),
          "a3": ("BR-S1", "south", TOKENS["a3"]), "a4": ("BR-S2", "south", TOKENS["a4"])}
BOSS = "history-boss-operator-token-xxxxxxxxxx"
GRAFANA = "http://127.0.0.1:3000/grafana"

UPS_OK = {"ups/main/on_battery": ("ok", "on mains"),
          "ups/main/battery_charge": ("ok", "battery charge 87%"),
          "ups/main/battery_runtime": ("ok", "battery runtime 12.5 min"),
          "ups/main/load": ("ok", "load 41%"),
          "line/primary/core": ("ok", "reachable, 3 ms"),
          "switch/funds/if/1/oper": ("ok", "up")}


def send(c, agent: str, body: bytes, path: str = "events") -> None:
    status, data = request(f"{c.url}/api/v1/{path}", body, TOKENS[agent])
    assert status in (200, 204), data


def api(c, path: str, body: dict | None = None) -> tuple[int, dict]:
    status, data = request(c.url + path, json.dumps(body).encode() if body is not None else None,
                           BOSS)
    return status, json.loads(data)


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    extra = (console_yaml() + f"  grafana_url: {GRAFANA}\n"
             + f"operators:\n  - {{name: boss, roles: [operator, leadership], "
               f"token_sha256: {token_hash(BOSS)}}}\n")
    with CollectorProcess(tmp_path_factory.mktemp("console-history"), AGENTS, extra=extra) as c:
        b, a = heartbeat("a1", "BR-N1", "north", UPS_OK), "a1"
        send(c, a, b, "heartbeat")
        for agent, (branch, region, _) in AGENTS.items():
            if agent != "a1":
                send(c, agent, heartbeat(agent, branch, region, {"tcp/core": ("ok", "up")}),
                     "heartbeat")
        # BR-N1: a UPS fault that clears (resolved), then is closed by leadership.
        send(c, "a1", fault_batch("a1", "BR-N1", "ups/main/on_battery", "critical",
                                  "on battery: mains lost"))
        send(c, "a1", fault_batch("a1", "BR-N1", "ups/main/on_battery", "ok",
                                  "mains back: input 221 V", old="critical"))
        # BR-S1: the core system down, still open.
        send(c, "a3", fault_batch("a3", "BR-S1", "tcp/core", "critical", "核心系统无法连接"))
        yield c


def ids(page: str) -> list[str]:
    return re.findall(r'<tr class="incident[^"]*" id="row-[^"]+" data-incident="([^"]+)"', page)


def test_history_finds_closed_incidents_and_filters_in_console_and_api(collector):
    c = collector
    status, data = api(c, "/api/v1/incidents?branch=BR-N1")
    assert status == 200 and len(data["incidents"]) == 1
    n1 = data["incidents"][0]["id"]
    s1 = api(c, "/api/v1/incidents?branch=BR-S1")[1]["incidents"][0]["id"]
    assert api(c, f"/api/v1/incidents/{n1}/close", {"why": "市电恢复，已复核"})[0] == 200
    # A closed incident cannot be closed twice: 409 with the reason.
    status, again = api(c, f"/api/v1/incidents/{n1}/close", {"why": "again"})
    assert status == 409 and "closed" in again["error"]

    v = Visitor(c.url)
    v.login("vera")
    page = v.go("/console/history")[2]
    assert set(ids(page)) == {n1, s1} and "已关闭" in page and "处置中" in page
    assert ids(v.go("/console/history?status=closed")[2]) == [n1]
    assert ids(v.go("/console/history?region=south")[2]) == [s1]
    assert ids(v.go("/console/history?q=" + quote("核心"))[2]) == [s1]
    assert ids(v.go(f"/console/history?q={n1.lower()}")[2]) == [n1]
    assert ids(v.go("/console/history?grade=none&status=closed")[2]) == [n1]
    today = datetime.now(timezone.utc).date()
    assert len(ids(v.go(f"/console/history?since={today - timedelta(days=1)}"
                        f"&until={today + timedelta(days=1)}")[2])) == 2
    assert ids(v.go(f"/console/history?until={today - timedelta(days=2)}")[2]) == []
    # A grade set by leadership is found by it (in the console and the API).
    assert api(c, f"/api/v1/incidents/{s1}/grade", {"grade": "III", "why": "省联社要求"})[0] == 200
    assert ids(v.go("/console/history?grade=III")[2]) == [s1]
    assert ids(v.go("/console/history?grade=II")[2]) == []
    assert [i["id"] for i in api(c, "/api/v1/incidents?grade=III")[1]["incidents"]] == [s1]
    # The same filters on the API, with the grade too.
    status, data = api(c, "/api/v1/incidents?status=closed&q=" + quote(n1))
    assert status == 200 and [i["id"] for i in data["incidents"]] == [n1]
    # The closed incident's page offers no Close and no Acknowledge.
    page = v.go(f"/console/incidents/{n1}")[2]
    assert 'id="close-form"' not in page and 'id="ack-form"' not in page
    # A Close sent from a page left open before is refused, and the page says why.
    boss = Visitor(c.url)
    boss.login("boss")
    csrf = re.search(r'name="csrf" value="([^"]+)"', boss.go(f"/console/incidents/{n1}")[2])[1]
    assert boss.go(f"/console/incidents/{n1}/close", {"why": "again", "csrf": csrf,
                                                      "next": f"/console/incidents/{n1}"})[0] == 303
    shown = boss.go(f"/console/incidents/{n1}")[2]
    assert 'class="flash error"' in shown and "closed" in shown
    assert [d["incident"] for _, d in audit_records(c, "incident.closed")].count(n1) == 1



@pytest.mark.parametrize("query,message", [
    ("status=gone", "status: expected open, resolved or closed, got &#39;gone&#39;"),
    ("grade=IX", "grade: expected none or one of"),
    ("region=atlantis", "region: expected one of north, south, got &#39;atlantis&#39;"),
    ("since=yesterday", "since: expected an ISO 8601 time"),
    ("since=2026-12-02&until=2026-11-01", "until: expected a time after since"),
    ("q=" + "x" * 201, "text: expected 1 to 200 characters"),
])
def test_a_bad_filter_is_a_400_page_with_the_message(collector, query, message):
    v = Visitor(collector.url)
    v.login("vera")
    status, _, page = v.go("/console/history?" + query)
    assert status == 400 and message in page and 'id="history-form"' in page
    # The API takes the same query; its times carry their offset.
    api_query = query.replace("since=2026-12-02", "since=2026-12-02T00:00:00%2B08:00") \
        .replace("until=2026-11-01", "until=2026-11-01T00:00:00%2B08:00")
    api_status, data = api(collector, "/api/v1/incidents?" + api_query)
    assert api_status == 400 and data["error"].startswith(message.split("&#39;")[0].rstrip(" '"))


def test_history_pages_newest_first_without_gaps(collector):
    v = Visitor(collector.url)
    v.login("vera")
    first = v.go("/console/history")[2]
    want = ids(first)
    # A page of one (the same query the page makes, with a smaller limit).
    status, data = api(collector, "/api/v1/incidents?order=newest&limit=1")
    assert status == 200 and [i["id"] for i in data["incidents"]] == want[:1] and data["next"]
    rest = api(collector, f"/api/v1/incidents?order=newest&limit=1&after={quote(data['next'])}")[1]
    assert [i["id"] for i in rest["incidents"]] == want[1:2]


def test_a_branch_page_shows_ups_lines_switches_incidents_changes_and_grafana(collector):
    v = Visitor(collector.url)
    v.login("vera")
    status, _, page = v.go("/console/branches/BR-N1")
    assert status == 200
    ups = page.split('id="ups"', 1)[1].split("</section>", 1)[0]
    assert "87%" in ups and "12.5 分钟" in ups and "41%" in ups and "电池电量" in ups
    assert "primary" in page.split('id="lines"', 1)[1].split("</section>", 1)[0]
    assert "funds" in page.split('id="switches"', 1)[1].split("</section>", 1)[0]
    past = page.split('id="past-incidents"', 1)[1].split("</section>", 1)[0]
    assert "已关闭" in past or "已恢复" in past
    changes = page.split('id="changes"', 1)[1].split("</section>", 1)[0]
    assert "mains back: input 221 V" in changes and "on battery: mains lost" in changes
    assert changes.index("mains back") < changes.index("mains lost")      # newest first
    link = re.search(r'id="grafana-link"', page) and re.search(r'href="([^"]+)" id="grafana-link"',
                                                                page)[1]
    assert link == (f"{GRAFANA}/d/{DASHBOARD_UID}/{DASHBOARD_SLUG}?var-region=north&amp;"
                    "var-branch=BR-N1")
    assert v.go("/console/branches/BR-nowhere")[0] == 404
    assert v.go("/console/branches/BR-N1?before=soon")[0] == 400


def test_the_branches_grid_links_each_branch_and_filters_problems(collector):
    v = Visitor(collector.url)
    v.login("vera")
    page = v.go("/console/branches")[2]
    tiles = re.findall(r'<a class="tile state-(\w+)" id="branch-(BR-[\w-]+)" href="([^"]+)"', page)
    assert {b: (s, h) for s, b, h in tiles} == {
        "BR-N1": ("ok", "/console/branches/BR-N1"), "BR-N2": ("ok", "/console/branches/BR-N2"),
        "BR-S1": ("critical", "/console/branches/BR-S1"), "BR-S2": ("ok", "/console/branches/BR-S2")}
    problems = v.go("/console/branches?problems=1")[2]
    assert 'hx-get="/console/branches?poll=1&amp;problems=1"' in problems     # the poll keeps it
    assert set(re.findall(r'id="branch-(BR-[\w-]+)"', problems)) == {"BR-S1"}
    assert "1 / 4" in problems
    assert set(re.findall(r'id="branch-(BR-[\w-]+)"', v.go("/console/branches?problems=1&region=south")[2])) \
        == {"BR-S1"}
    assert v.go("/console/branches?region=atlantis")[0] == 400



def test_the_manual_grade_has_no_default_and_an_ok_fault_says_when_and_why(collector):
    v = Visitor(collector.url)
    v.login("boss")
    s1 = api(collector, "/api/v1/incidents?branch=BR-S1")[1]["incidents"][0]["id"]
    page = v.go(f"/console/incidents/{s1}")[2]
    select = re.search(r'<select name="grade"[^>]*>(.*?)</select>', page, re.S)
    assert 'required' in select[0] and '<option value="" selected disabled>' in select[1]
    assert select[1].count(" selected") == 1
    n1 = api(collector, "/api/v1/incidents?branch=BR-N1&status=closed")[1]["incidents"][0]["id"]
    faults = v.go(f"/console/incidents/{n1}")[2].split('id="faults"', 1)[1].split("</section>")[0]
    assert "恢复于" in faults and "mains back: input 221 V" in faults
    assert re.search(r'原故障: <span lang="en">on battery: mains lost</span>', faults), faults


def test_ups_readings_come_from_the_heartbeat_reasons():
    checks = [CheckStatus(check="ups/a/battery_charge", state="critical",
                          reason="battery charge 8% below 20%"),
              CheckStatus(check="ups/a/load", state="unknown", reason="ups.load '900' outside 0..200"),
              CheckStatus(check="ups/a/on_battery", state="critical", reason="on battery")]
    [a] = ups_readings(checks)
    got = dict(a["readings"])
    assert got["battery_charge"]["value"] == 8.0 and got["load"]["value"] is None
    assert got["battery_runtime"] is None and a["power"].state == "critical"


def test_the_grafana_link_opens_the_shipped_dashboard_on_the_branch():
    dash = json.loads((REPO / "config/grafana/dashboards/branchwatch.json").read_text())
    names = {v["name"] for v in dash["templating"]["list"]}
    assert dash["uid"] == DASHBOARD_UID and {"region", "branch"} <= names
    # A branch without a region asks for all regions: the variable must allow it.
    assert next(v for v in dash["templating"]["list"] if v["name"] == "region")["includeAll"]
    assert grafana_link(None, "B", "r") is None
    assert grafana_link("https://g.example/", "B 1", "") == \
        "https://g.example/d/branchwatch/branchwatch?var-region=%24__all&var-branch=B+1"


def test_in_a_region_the_branches_in_trouble_come_first():
    from collector.web.views import shown_branches
    regions = [{"region": "r", "state": "critical", "branches": [
        {"branch": n, "state": st} for n, st in (("A", "ok"), ("B", "warning"), ("C", "silent"),
                                                ("D", "critical"), ("E", "ok"))]}]
    assert [b["branch"] for b in shown_branches(regions, False, None)[0]["branches"]] == \
        ["C", "D", "B", "A", "E"]
    assert [b["branch"] for b in shown_branches(regions, True, None)[0]["branches"]] == \
        ["C", "D", "B"]
    assert shown_branches(regions, False, "elsewhere") == []


def test_a_branchs_state_changes_page_newest_first_without_gaps(backend):
    """On both store backends (SQLite and a real PostgreSQL)."""
    from agent.wire import Event, new_event_id
    from collector.storage.branch_log import branch_changes
    store = backend.open()
    t0 = datetime(2026, 12, 1, 1, 0, tzinfo=timezone.utc)

    def batch(branch: str, n: int, start: int) -> list:
        return [Event(id=new_event_id(), kind="state", agent=f"a-{branch}", branch=branch,
                      check="ups/main/on_battery", old_state="ok", new_state="critical",
                      reason=f"{branch} #{start + i}",
                      observed_at=t0 + timedelta(seconds=start + i)) for i in range(n)]
    try:
        for k in range(6):                       # two branches, interleaved batches
            store.add_events("a-B1", "B1", batch("B1", 20, 20 * k), 1.0 + k)
            store.add_events("a-B2", "B2", batch("B2", 7, 7 * k), 1.0 + k)
        readers = store.readers()
        try:
            got, before = [], None
            while True:
                page, before = readers.call(branch_changes, "B1", before, 50)
                got += [e["reason"] for e in page]
                assert len(page) <= 50
                if before is None:
                    break
            assert got == [f"B1 #{i}" for i in reversed(range(120))]
            assert readers.call(branch_changes, "B3", None, 50) == ([], None)
        finally:
            readers.close()
    finally:
        store.close()


def test_the_history_pages_through_with_its_filters_kept(collector):
    """The console's own pager: the next page keeps the filters, and pages meet."""
    v = Visitor(collector.url)
    v.login("vera")
    every = ids(v.go("/console/history")[2])
    assert len(every) >= 2 and 'id="next-page"' not in v.go("/console/history")[2]
    got, url = [], "/console/history?limit=1"
    while url:
        page = v.go(url)[2]
        got += ids(page)
        found = re.search(r'<a href="([^"]+)" id="next-page">', page)
        url = found[1].replace("&amp;", "&") if found else None
        assert url is None or "limit=1" in url
    assert got == every
    page = v.go("/console/history?limit=1&q=INC")[2]       # every id has it
    nxt = re.search(r'<a href="([^"]+)" id="next-page">', page)[1].replace("&amp;", "&")
    assert "q=INC" in nxt and "limit=1" in nxt
    assert ids(page) + ids(v.go(nxt)[2]) == every


def test_history_and_branch_pages_on_a_collector_on_postgresql(pg_server, tmp_path):
    """The same pages from a collector whose store is a real PostgreSQL."""
    agents = {"a1": AGENTS["a1"], "a3": AGENTS["a3"]}
    with CollectorProcess(tmp_path / "pg-collector", agents, extra=console_yaml(),
                          dsn=pg_server.create_database()) as c:
        send(c, "a1", heartbeat("a1", "BR-N1", "north", UPS_OK), "heartbeat")
        send(c, "a1", fault_batch("a1", "BR-N1", "ups/main/on_battery", "critical",
                                  "on battery: mains lost"))
        send(c, "a3", fault_batch("a3", "BR-S1", "tcp/core", "critical", "核心系统无法连接"))
        v = Visitor(c.url)
        v.login("vera")
        assert len(ids(v.go("/console/history")[2])) == 2
        assert len(ids(v.go("/console/history?q=" + quote("核心"))[2])) == 1
        assert len(ids(v.go("/console/history?grade=none&region=north")[2])) == 1
        status, _, page = v.go("/console/branches/BR-N1")
        assert status == 200 and "87%" in page and "on battery: mains lost" in page
        assert "电池供电" in page.split('id="ups"', 1)[1].split("</section>", 1)[0]
