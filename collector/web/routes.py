"""Where the console's pages and actions are mounted on the collector's app."""

from __future__ import annotations

from aiohttp import web

from ..api_base import STATE, STORE
from ..api_people import READERS
from . import actions, drill_pages, pages
from .branch_page import branch
from .history import history
from .console import CONSOLE, STATIC, Console


def add_console_routes(app: web.Application) -> None:
    """Mount the console under /console/ (issue 8); `/` leads to it."""
    from ..api import collector_zone            # api.py mounts this module
    st = app[STATE]
    app[CONSOLE] = Console(st.config, collector_zone(st), app[STORE], app.get(READERS))
    app.on_cleanup.append(lambda app: _stop_hashing(app[CONSOLE]))
    r = app.router
    r.add_get("/", pages.home)
    r.add_get("/console/", pages.home)
    r.add_get("/console/login", pages.login_form)
    r.add_post("/console/login", pages.login)
    r.add_post("/console/logout", actions.logout)
    r.add_get("/console/lang/{lang}", pages.set_language)
    r.add_get("/console/incidents", pages.incidents)
    r.add_get("/console/incidents/{id}", pages.incident)
    r.add_post("/console/incidents/{id}/reports", actions.draft_report)
    r.add_post("/console/incidents/{id}/steps/{step}/{action}", actions.on_step)
    r.add_post("/console/incidents/{id}/{action}", actions.on_incident)
    r.add_get("/console/report.css", pages.report_style)
    r.add_get("/console/reports/{rid}.{fmt}", pages.report_download)
    r.add_get("/console/reports/{rid}", pages.report)           # after {rid}.{fmt}
    r.add_post("/console/reports/{rid}/edit", actions.edit_report)
    r.add_post("/console/reports/{rid}/issue", actions.issue_report)
    r.add_post("/console/faults", actions.report_fault)         # a person reports a fault
    r.add_get("/console/branches", pages.branches)
    r.add_get("/console/branches/{branch}", branch)
    r.add_get("/console/history", history)
    r.add_get("/console/drills", drill_pages.drills)
    r.add_post("/console/drills", drill_pages.start_drill)
    r.add_get("/console/drills/{did}/report.{fmt}", pages.drill_report_download)
    r.add_get("/console/drills/{did}", drill_pages.drill)       # after report.{fmt}
    r.add_post("/console/drills/{did}/{action}", drill_pages.on_drill)
    r.add_get("/console/drills/{did}/{action}", drill_pages.to_drill)
    r.add_static("/console/static/", STATIC, append_version=True)


async def _stop_hashing(con: Console) -> None:
    con.hasher.close()
