"""The reports side of the collector's API (issue 7; domain.md §3, 第二十八條,
第三十四條). Operators only; who acted is the token's operator.

    GET  /api/v1/reports?incident=ID          the incident's reports (no text)
    POST /api/v1/reports {incident, kind?, language?}   a new draft (201)
    GET  /api/v1/reports/{id}[?format=json|md|html|pdf]   (pdf: WeasyPrint, seconds)
    POST /api/v1/reports/{id}/edit {set: {field: text, ...}}   a draft only
    POST /api/v1/reports/{id}/issue {why}                       freezes it

404 unknown incident or report, 409 an issued report (frozen) or a summary
of an incident still open, 400 a field a machine fills or a bad body, 501
a PDF where WeasyPrint or the CJK font is missing. `add_report_routes(app)`
registers them on the app `collector.api.build_app` made.
"""

from __future__ import annotations

import asyncio

import msgspec
from aiohttp import web

from .api_base import STATE, STORE, Rejected, _json, authorised, read_json
from .incidents import Refused
from .reports.desk import ReportDesk, rendered
from .reports.facts import Scope
from .reports.model import EDITABLE, NotYet
from .reports.render import pdf, pdf_problem
from .reports.settings import ReportSettings
from .reports.storage import StoredReport

REPORTS = web.AppKey("reports", ReportDesk)
TYPES = {"md": "text/markdown", "html": "text/html"}


def add_report_routes(app: web.Application, settings: ReportSettings | None = None) -> None:
    """Register the report routes on a collector app (after build_app). Settings:
    given, or the config's `reports:` section, or the defaults."""
    st = app[STATE]
    settings = settings or getattr(st.config, "reports", None) or ReportSettings()
    scope = Scope.from_grader(st.desk.grader, settings.timezone)
    app[REPORTS] = ReportDesk(app[STORE], st.desk.get, scope, settings, st.clock)
    app.router.add_get("/api/v1/reports", list_reports)
    app.router.add_post("/api/v1/reports", draft_report)
    app.router.add_get("/api/v1/reports/{rid}", get_report)
    app.router.add_post("/api/v1/reports/{rid}/{action}", act_on_report)


def _refusal(noun, fn, *args):
    """Run fn on the writer thread, turning a refusal into a value: nothing was
    written, so the job need not fail (a failed job rebuilds the incident book)."""
    try:
        return True, fn(*args)
    except KeyError as e:
        return False, (404, f"no such {noun} {e.args[0]!r}")
    except (Refused, NotYet) as e:
        return False, (409, str(e))
    except ValueError as e:
        return False, (400, str(e))


async def _run(request: web.Request, noun: str, fn, *args):
    """fn(*args) on the writer; a refusal as a 4xx (404 names the missing `noun`)."""
    st = request.app[STATE]
    ok, value = await st.run(_refusal, noun, fn, *args)
    if not ok:
        raise Rejected(*value)
    return value


def _summary(r: StoredReport) -> dict:
    return {"id": r.id, "incident": r.incident, "kind": r.kind, "language": r.language,
            "status": r.status, "supersedes": r.supersedes, "created_at": r.created_at,
            "created_by": r.created_by, "updated_at": r.updated_at, "issued_at": r.issued_at,
            "issued_by": r.issued_by, "issued_why": r.issued_why}


def _whole(r: StoredReport) -> dict:
    return {**_summary(r), "editable": [] if r.status == "issued" else list(EDITABLE[r.kind]),
            "fields": r.fields, "markdown": rendered(r, "md"), "html": rendered(r, "html")}


async def _object(request: web.Request) -> dict:
    return await read_json(request.app[STATE], request)      # bounded depth (api_base.py)


def _text(body: dict, key: str, required: bool = True) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise Rejected(400, f"{key}: expected text, got {type(value).__name__}")
    if required and (value is None or not value.strip()):
        raise Rejected(400, f"{key}: missing, and it is required")
    return value


async def list_reports(request: web.Request) -> web.Response:
    """GET /api/v1/reports[?incident=ID]: reports, oldest first, without their text."""
    authorised(request.app[STATE], request, "read")
    found = await _run(request, "incident", request.app[REPORTS].list,
                       request.query.get("incident"))
    return _json({"reports": [_summary(r) for r in found]})


async def draft_report(request: web.Request) -> web.Response:
    """POST /api/v1/reports {incident, kind (written), language (settings)}: 201."""
    who = authorised(request.app[STATE], request, "draft")
    body = await _object(request)
    incident = _text(body, "incident")
    kind = _text(body, "kind", required=False) or "written"
    language = _text(body, "language", required=False)
    report = await _run(request, "incident", request.app[REPORTS].draft, incident, kind,
                        language, who)
    return web.Response(status=201, body=msgspec.json.encode(_whole(report)),
                        content_type="application/json")


async def get_report(request: web.Request) -> web.Response:
    """GET /api/v1/reports/{id}?format=json|md|html|pdf."""
    authorised(request.app[STATE], request, "read")
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "md", "html", "pdf"):
        raise Rejected(400, f"format: expected json, md, html or pdf, got {fmt!r}")
    rid = request.match_info["rid"]
    report = await request.app[STATE].run(request.app[REPORTS].get, rid)
    if report is None:
        raise Rejected(404, f"no such report {rid!r}")
    return await report_response(report, fmt)


async def report_response(report: StoredReport, fmt: str, attachment: bool = False
                          ) -> web.Response:
    """A report as json, md, html or pdf; `attachment`: as a file to save (the console)."""
    if fmt not in ("json", "md", "html", "pdf"):
        raise Rejected(404, f"format: expected json, md, html or pdf, got {fmt!r}")
    disposition = {"Content-Disposition": f'{"attachment" if attachment else "inline"}; '
                                          f'filename="{report.id}.{fmt}"'}
    if fmt == "json":
        return _json(_whole(report))
    if fmt in TYPES:
        return web.Response(text=rendered(report, fmt), content_type=TYPES[fmt],
                            charset="utf-8", headers=disposition if attachment else None)
    return await pdf_response(rendered(report, "html"), f"{report.id}.pdf", attachment)


async def pdf_response(html: str, filename: str, attachment: bool = False) -> web.Response:
    """An HTML report page (an incident's or a drill's) as PDF; 501 saying what to
    install where WeasyPrint or the CJK font is missing."""
    if (problem := pdf_problem()) is not None:
        raise Rejected(501, problem)
    # WeasyPrint takes seconds: off the event loop, and never on the writer thread.
    body = await asyncio.to_thread(pdf, html)
    return web.Response(body=body, content_type="application/pdf", headers={
        "Content-Disposition": f'{"attachment" if attachment else "inline"}; '
                               f'filename="{filename}"'})


async def act_on_report(request: web.Request) -> web.Response:
    """POST /api/v1/reports/{id}/edit {set: {...}} | /issue {why} (issuing: leadership)."""
    action, rid = request.match_info["action"], request.match_info["rid"]
    who = authorised(request.app[STATE], request, "issue" if action == "issue" else "draft")
    action, rid = request.match_info["action"], request.match_info["rid"]
    if action not in ("edit", "issue"):
        raise Rejected(404, f"no action {action!r}; expected edit or issue")
    body = await _object(request)
    desk = request.app[REPORTS]
    if action == "issue":
        report = await _run(request, "report", desk.issue, rid, who, _text(body, "why"))
    else:
        changes = body.get("set")
        if not isinstance(changes, dict) or not changes:
            raise Rejected(400, "set: expected an object of field: text, at least one")
        report = await _run(request, "report", desk.edit, rid, changes, who)
    return _json(_whole(report))
