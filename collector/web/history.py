"""The console's history: every incident, closed ones too, searched and
filtered (status, grade, region, branch, time range, words) and paged in SQL
by the same query the API answers (api_people.incident_query,
incident_reads.IncidentQuery). A bad filter is the page again with the
filter's message (400), never a server error."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from urllib.parse import urlencode

from aiohttp import web

from .. import incident_reads as reads
from ..api_base import STATE, Rejected
from ..api_people import incident_query, read
from .console import CONSOLE, page, render
from .views import incident_row

PAGE = 50                       # incidents on one page of the history
FILTERS = ("q", "status", "grade", "region", "branch", "since", "until")


@page
async def history(request: web.Request) -> web.Response:
    """GET /console/history?q=&status=&grade=&region=&branch=&since=&until=&after=:
    one page of incidents, newest first; dates in the console's time zone."""
    st = request.app[STATE]
    con = request.app[CONSOLE]
    q = request.query.copy()
    q["order"] = "newest"
    until = q.get("until", "")
    if len(until) == 10:
        # A date from the form's date field: up to the end of that day.
        try:
            q["until"] = (date.fromisoformat(until) + timedelta(days=1)).isoformat()
        except ValueError:
            pass                    # the query says what is wrong with it
    tables = st.desk.grader.tables if st.desk.grader else {}
    chosen = {k: request.query.get(k, "") for k in FILTERS}
    error, rows, cursor = None, [], None
    try:
        query = incident_query(st, q, zone=con.zone, limit=PAGE)
        found, cursor = await read(request, reads.list_incidents, query)
        now = datetime.fromtimestamp(st.clock(), timezone.utc)
        rows = [incident_row(i, tables, now) for i in found]
    except Rejected as r:
        error = str(r)
    region_of = {a.branch: a.region for a in st.config.agents}
    grades = []
    for name, table in tables.items():
        # (grade, its table): the page names it in the reader's language (words.grade)
        grades += [(g, name) for g in table.grades if g not in {x for x, _ in grades}]
    # The pager keeps the filters (and a page size given in the URL).
    keep = urlencode({k: v for k, v in chosen.items() if v}
                     | ({"limit": q["limit"]} if q.get("limit") else {}))
    return render(request, "history.html", status=400 if error else 200, rows=rows,
                  error=error, chosen=chosen, grades=grades,
                  regions=sorted(set(region_of.values()) - {""}),
                  branch_names=sorted(region_of),
                  next_page=(f"/console/history?{keep}&{urlencode({'after': cursor})}"
                             if cursor else None),
                  first_page=f"/console/history?{keep}" if request.query.get("after") else None)

