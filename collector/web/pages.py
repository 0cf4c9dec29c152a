"""The console's pages (GET): log in and out, incidents, one incident, branches,
drills, report downloads. A request from htmx (a live-update poll) gets the
page's live fragment only; the same URL without it gets the whole page."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from datetime import datetime, timezone

from aiohttp import web

from .. import incident_reads as reads
from ..api_base import STATE, STORE, Rejected, read_form
from ..api_people import read, region_branches
from ..api_reports import REPORTS, pdf_response, report_response
from ..reports.desk import preview
from ..reports.render import CONSOLE_STYLE
from ..store import read_agents
from ..reports.model import CONTACT, EDITABLE, SECTIONS
from ..drills.http import DRILLS
from ..fleet.storage import read_about
from ..fleet.view import fleet_lines
from ..person_reports import CAUSES, KINDS
from .console import (CONSOLE, COOKIE, HEADERS, LANG_COOKIE, Console, check_origin, lang_of, page,
                      public, render, save_sessions)
from ..texts import Reader
from .i18n import LANGUAGES
from .passwords import UNKNOWN_USER, Busy
from .throttle import normalise
from .views import (branch_tiles, checklist, fault_view, grade_labels, incident_rows,
                    notifications, shown_branches, timeline)


def _now(request) -> datetime:
    return datetime.fromtimestamp(request.app[STATE].clock(), timezone.utc)


# The console asks for what it shows: every open incident up to a bound, the
# newest of the rest (a page refreshes every few seconds per viewer); and it
# renders the most severe SHOWN_ROWS open ones (rendering a row costs more than
# reading it).
SHOWN_OPEN, SHOWN_RECENT, SHOWN_ROWS = 5000, 100, 100


async def _incidents(request, status: str | None, limit: int, drill: str = "no",
                     branches: frozenset[str] | None = None) -> list[dict]:
    """The newest `limit` incidents of a status, read off the writer (incident_reads.py)."""
    query = reads.IncidentQuery(status=status, drill=drill, branches=branches, limit=limit,
                                newest_first=True)
    page_, _ = await read(request, reads.list_incidents, query)
    return page_


def _words(request, tables) -> Reader:
    """The visitor's words: their language, the collector's zone."""
    return Reader(lang_of(request), request.app[CONSOLE].zone, tables)


def _live(request) -> bool:
    return bool(request.headers.get("HX-Request"))


async def login_form(request: web.Request) -> web.Response:
    """GET /console/login."""
    return render(request, "login.html", error=None, user="",
                  next=request.query.get("next", "/console/incidents"),
                  expired=request.query.get("expired") == "1")


@public
async def login(request: web.Request) -> web.Response:
    """POST /console/login {user, password, next}: a new session, or the form again.

    A source that failed too often lately waits (429 + Retry-After); a wrong
    password for a name guessed too often (or during a spray) is answered
    slowly, a right one at once, never refused (throttle.py); the password
    is checked off the event loop, 503 + Retry-After when too many checks
    are under way (passwords.py)."""
    con: Console = request.app[CONSOLE]
    check_origin(request)              # login CSRF: no logging people in from elsewhere
    if con.hasher.full():
        # Refused before reading the form or rendering a page, and (during a
        # spray) answered late: a spray's requests cost the loop as little as can be.
        await _hold(con, con.throttle.spray_delay())
        raise Rejected(503, "too many logins at once; try again in a second",
                       headers={"Retry-After": "1"})
    form = await read_form(request)
    raw, password, nxt = (form.get(k, "") for k in ("user", "password", "next"))
    if not all(isinstance(v, str) for v in (raw, password, nxt)):
        raise Rejected(400, "user, password, next: expected text fields, not files")
    if len(password) > MAX_PASSWORD:
        raise Rejected(400, f"password: longer than {MAX_PASSWORD} characters")
    name, source = normalise(raw), request.remote or ""
    nxt = nxt if nxt.startswith("/console/") and not nxt.startswith("//") else "/console/incidents"

    def again(status: int, error: str, **headers) -> web.Response:
        response = render(request, "login.html", status=status, error=error, user=name,
                          next=nxt, expired=False)
        response.headers.update(headers)
        return response

    await pull_counts(request, con, source, name)       # other collectors' counts too
    wait = con.throttle.source_wait(source)
    if wait > 0:
        await _audit(request, con.throttle.take_audit())
        await _hold(con, min(wait, con.throttle.failure_delay(name)))
        return again(429, "login_throttled", **{"Retry-After": str(math.ceil(wait))})
    user = con.users.get(name)
    try:
        # Checked even for an unknown name, so timing does not tell which names exist.
        ok = await con.hasher.check(password, user.password if user else UNKNOWN_USER)
    except Busy:
        return again(503, "login_busy", **{"Retry-After": "1"})
    if not ok or user is None:
        quiet = con.throttle.throttled(source, name)    # in a burst: one record for it all
        con.throttle.failed(source, name)
        await push_counts(request, con, source, name)
        records = [] if quiet else [("console.login_failed", name, {"remote": source})]
        await _audit(request, records + con.throttle.take_audit())
        await _hold(con, con.throttle.failure_delay(name))
        return again(401, "login_failed")
    con.throttle.succeeded(source)
    await push_counts(request, con, source, name)
    s = con.sessions.start(user.name, user.roles)
    await save_sessions(request)
    await _audit(request, [("console.login", user.name,
                            {"roles": list(user.roles), "remote": source})]
                 + con.throttle.take_audit())
    response = web.HTTPSeeOther(nxt, headers=HEADERS)
    response.set_cookie(COOKIE, s.id, path="/console", httponly=True, samesite="Strict",
                        secure=con.tls)
    raise response


MAX_PASSWORD = 1024
HELD_MAX = 256          # wrong-password answers held back at once; past that, at once


async def _hold(con: Console, delay: float) -> None:
    """Hold a wrong password's answer back: a guesser waiting for it is slowed
    to one try per delay. Bounded, so a flood cannot pile up held requests."""
    if delay <= 0 or con.held >= HELD_MAX:
        return
    con.held += 1
    try:
        await asyncio.sleep(delay)
    finally:
        con.held -= 1


async def pull_counts(request: web.Request, con, source: str, name: str) -> None:
    """On a shared store: this login's throttle keys as every collector counted them."""
    if con.shared:
        from ..api_people import READERS
        from ..storage.throttle_rows import read_keys
        keys = con.throttle.keys_for(source, name)
        con.throttle.absorb(keys, await request.app[READERS].run(read_keys, keys))


async def push_counts(request: web.Request, con, source: str, name: str) -> None:
    """On a shared store: this login's throttle keys written back for the others."""
    if con.shared:
        from .throttle import FORGET
        st, store = request.app[STATE], request.app[STORE]
        await st.run(store.save_throttle,
                     con.throttle.export(con.throttle.keys_for(source, name)),
                     con.throttle.clock() - FORGET)


async def _audit(request: web.Request, records: list[tuple[str, str, dict]]) -> None:
    """Write (kind, actor, data) audit records in one store job."""
    if records:
        st, store = request.app[STATE], request.app[STORE]
        await st.run(_record_all, store, st.clock(), records)


def _record_all(store, at: float, records: list[tuple[str, str, dict]]) -> None:
    for kind, actor, data in records:
        store.record(at, kind, actor, data)


async def set_language(request: web.Request) -> web.Response:
    """GET /console/lang/{lang}?next=PATH: remember the language in a cookie."""
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound(text=f"no language {lang!r}; expected zh or en")
    nxt = request.query.get("next", "/console/incidents")
    nxt = nxt if nxt.startswith("/console/") and not nxt.startswith("//") else "/console/incidents"
    response = web.HTTPSeeOther(nxt)
    response.set_cookie(LANG_COOKIE, lang, path="/console", samesite="Strict",
                        max_age=365 * 86400)
    raise response


async def home(request: web.Request) -> web.Response:
    raise web.HTTPFound("/console/incidents")


@page
async def incidents(request: web.Request) -> web.Response:
    """GET /console/incidents: open incidents (grade, age, deadline, ack) and resolved
    ones not yet closed; drills are on the drills page (domain.md §5)."""
    st = request.app[STATE]
    now, tables = _now(request), st.desk.grader.tables if st.desk.grader else {}
    region = request.query.get("region") or None
    at = region_branches(st, region) if region else None
    shown = {status: incident_rows(await _incidents(request, status, limit, branches=at),
                                   tables, now)
             for status, limit in (("open", SHOWN_OPEN), ("resolved", SHOWN_RECENT))}
    region_of = {a.branch: a.region for a in st.config.agents}
    return render(request, "_incidents_live.html" if _live(request) else "incidents.html",
                  open=shown["open"][:SHOWN_ROWS], open_total=len(shown["open"]),
                  resolved=shown["resolved"][:SHOWN_ROWS], region=region,
                  regions=sorted(set(region_of.values()) - {""}),
                  report_branches=sorted(region_of), report_kinds=list(KINDS),
                  report_causes=CAUSES)


@page
async def incident(request: web.Request) -> web.Response:
    """GET /console/incidents/{id}: everything about one incident."""
    st = request.app[STATE]
    iid = request.match_info["id"]
    inc = await read(request, reads.incident, iid)
    if inc is None:
        raise Rejected(404, f"no incident {iid!r}")
    tables = st.desk.grader.tables if st.desk.grader else {}
    reports = await st.run(request.app[REPORTS].list, iid)
    now = _now(request)
    row = incident_rows([inc], tables, now)[0]
    runs = [checklist(r) for r in inc["runbooks"]]
    # The step a person works now (the phone's action bar offers it).
    current = next(((c, s) for c in runs for s in c["steps"] if s["actionable"]), None)
    data = dict(inc=inc, row=row, grades=grade_labels(inc, tables), tables=tables,
                current=current,
                faults=[fault_view(f) for f in inc["faults"]],
                timeline=timeline(inc, words=_words(request, tables)), runs=runs,
                reports=reports, records=inc["grades"], notified=notifications(inc))
    return render(request, "_incident_live.html" if _live(request) else "incident.html",
                  **data)


@page
async def branches(request: web.Request) -> web.Response:
    """GET /console/branches[?problems=1][&region=R]: every branch by region as a
    grid of tiles, live; `problems` keeps only branches not ok."""
    st = request.app[STATE]
    agents = await read(request, read_agents)
    open_ = await _incidents(request, "open", SHOWN_OPEN)
    regions = branch_tiles(agents, st.config.agents, set(st.desk.silent), open_, _now(request))
    totals = Counter(b["state"] for r in regions for b in r["branches"])
    total = sum(totals.values())
    regions_all = [r["region"] for r in regions]
    problems = request.query.get("problems") == "1"
    region = request.query.get("region")
    if region is not None and region not in regions_all:
        raise Rejected(400, f"region: expected one of {', '.join(regions_all)}, "
                            f"got {region[:60]!r}")
    regions = shown_branches(regions, problems, region)
    about = await read(request, read_about)
    drift = {line["agent"]: line for line in fleet_lines(about, {}, st.config.fleet.template_sha256)}
    return render(request, "_branches_live.html" if _live(request) else "branches.html",
                  regions=regions, totals=totals, about=drift, problems=problems,
                  region=region, regions_all=regions_all, total=total,
                  shown=sum(len(r["branches"]) for r in regions))


# The drills page and a drill's page: drill_pages.py.


@page
async def report_download(request: web.Request) -> web.Response:
    """GET /console/reports/{rid}.{fmt}: a report as a file (md, html or pdf)."""
    st = request.app[STATE]
    rid, fmt = request.match_info["rid"], request.match_info["fmt"]
    report = await st.run(request.app[REPORTS].get, rid)
    if report is None:
        raise Rejected(404, f"no such report {rid!r}")
    return await report_response(report, fmt, attachment=True)


@page
async def report(request: web.Request) -> web.Response:
    """GET /console/reports/{rid}: a report's text, and its fields to fill while a draft."""
    st = request.app[STATE]
    rid = request.match_info["rid"]
    found = await st.run(request.app[REPORTS].get, rid)
    if found is None:
        raise Rejected(404, f"no such report {rid!r}")
    return render(request, "report.html", report=found, preview=preview(found),
                  editable=[] if found.status == "issued" else EDITABLE[found.kind],
                  sections=SECTIONS[found.kind], contact=CONTACT)


async def report_style(request: web.Request) -> web.Response:
    """GET /console/report.css: the reports' own style sheet, for the preview (the
    one every report's HTML and PDF carries), and the page around it."""
    return web.Response(text=CONSOLE_STYLE, content_type="text/css", charset="utf-8",
                        headers={"Cache-Control": "max-age=3600"})


@page
async def drill_report_download(request: web.Request) -> web.Response:
    """GET /console/drills/{did}/report.{fmt}?lang=: the drill report (md, html or pdf:
    the PDF from the HTML, by the incident reports' renderer)."""
    st = request.app[STATE]
    did, fmt = request.match_info["did"], request.match_info["fmt"]
    if fmt not in ("md", "html", "pdf"):
        raise Rejected(404, f"format: expected md, html or pdf, got {fmt!r}")
    try:
        text = await st.run(request.app[DRILLS].report, did, request.query.get("lang"),
                            "html" if fmt == "pdf" else fmt)
    except KeyError:
        raise Rejected(404, f"no such drill {did!r}")
    if fmt == "pdf":
        return await pdf_response(text, f"{did}.pdf", attachment=True)
    return web.Response(text=text, content_type="text/markdown" if fmt == "md" else "text/html",
                        charset="utf-8", headers={
                            "Content-Disposition": f'attachment; filename="{did}.{fmt}"'})
