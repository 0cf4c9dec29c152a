"""The console's drills (domain.md §5, 第十五條 to 第二十四條): the list with the form
that starts one, each drill's page, and its end, plan and archive.

The same desk calls as the API (collector/drills/http.py), role-checked by the
same table (`action("drill")`, collector/roles.py) and audited by the desk
(drill.started, drill.plan_attached, drill.ended, drill.archived). A mistake in a
form is answered with the page again, status 400, the message in the page's
language and what was chosen kept; never a bare error page.
"""

from __future__ import annotations

from datetime import datetime, timezone

from aiohttp import web

from agent.config import ConfigError

from .. import incident_reads as reads
from ..api_people import read
from ..api_base import STATE, Rejected
from ..api_reports import _run
from ..drills.desk import DrillDesk
from ..drills.http import DRILLS
from ..drills.plan import parse_plan
from .console import action, lang_of, page, render, who
from .i18n import translate
from .views import incident_rows

# How long an uploaded plan may be: a plan is a page of YAML.
PLAN_MAX = 64 * 1024
# The drill incidents a page shows, newest first (a drill's own are among them).
SHOWN_DRILL_INCIDENTS = 100
# What the start form keeps of a refused attempt (the file input cannot be refilled).
CHOSEN = ("scenario", "branch", "region", "plan_file", "speed")
# How fast a drill from the console plays its scenario (the CLI's --speed takes any).
SPEEDS = (1, 10, 60)


class FormError(Exception):
    """A mistake in a drill form: the WORDS key of its message, the field, a detail."""

    def __init__(self, key: str, field: str, detail: str = ""):
        super().__init__(key)
        self.key, self.field, self.detail = key, field, detail


def _now(request: web.Request) -> datetime:
    return datetime.fromtimestamp(request.app[STATE].clock(), timezone.utc)


async def _drill_incidents(request: web.Request, since: datetime | None = None) -> list[dict]:
    """Drill incidents read off the writer (incident_reads.py): the newest, or the first
    from `since` on (a drill's start: its own incidents are among the first)."""
    query = reads.IncidentQuery(status=None, drill="only", limit=SHOWN_DRILL_INCIDENTS,
                                since=since, newest_first=since is None)
    found, _ = await read(request, reads.list_incidents, query)
    return found


def _field(form, name: str) -> str | None:
    value = form.get(name)
    if value is None or not isinstance(value, str):
        return None
    return value.strip() or None


async def _drills_page(request: web.Request, status: int = 200, **extra) -> web.Response:
    """GET /console/drills (and the same page again with a refusal)."""
    st = request.app[STATE]
    desk: DrillDesk = request.app[DRILLS]
    runs = [r.summary() for r in await st.run(desk.list)]
    tables = st.desk.grader.tables if st.desk.grader else {}
    drill_incidents = incident_rows(await _drill_incidents(request), tables, _now(request))
    if request.headers.get("HX-Request"):           # a live-update poll: the fragment
        return render(request, "_drills_live.html", runs=runs, drill_incidents=drill_incidents)
    counts: dict[str, int] = {}
    for region in desk.branches.values():
        if region:
            counts[region] = counts.get(region, 0) + 1
    data = dict(runs=runs, drill_incidents=drill_incidents,
                scenarios=sorted(desk.scenarios.values(), key=lambda s: s.id),
                branch_names=sorted(desk.branches), regions=[(r, counts[r]) for r in
                                                             desk.regions()],
                plan_names=sorted(desk.plans()), chosen=dict.fromkeys(CHOSEN, ""), error=None,
                speeds=SPEEDS)
    data.update(extra)
    return render(request, "drills.html", status=status, **data)


@page
async def drills(request: web.Request) -> web.Response:
    """GET /console/drills: the drill form, the runs and the drill incidents."""
    return await _drills_page(request)


def _plan(desk: DrillDesk, form, required: bool):
    """The plan a form gives (a file of plans/ chosen, or one uploaded); FormError if wrong."""
    chosen, upload = _field(form, "plan_file"), form.get("plan_upload")
    text, source = None, ""
    if isinstance(upload, web.FileField) and upload.filename:
        raw = upload.file.read(PLAN_MAX + 1)
        if len(raw) > PLAN_MAX:
            raise FormError("drill_err_plan", "plan", f"over {PLAN_MAX // 1024} KiB")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormError("drill_err_plan", "plan", f"{upload.filename}: not UTF-8 text")
        source = f"uploaded {upload.filename[:100]}"
    if text is not None and chosen:
        raise FormError("drill_err_plan_both", "plan")
    if chosen:
        files = desk.plans()
        if chosen not in files:          # a name from the list, never a path
            raise FormError("drill_err_plan", "plan", f"plans/{chosen[:100]}: no such file")
        text, source = files[chosen].read_text(encoding="utf-8"), f"plans/{chosen}"
    if text is None:
        if required:
            raise FormError("drill_err_plan_missing", "plan")
        return None, ""
    try:
        return parse_plan(text, source), source
    except ConfigError as e:
        raise FormError("drill_err_plan", "plan", str(e))


def _checked_start(desk: DrillDesk, form) -> dict:
    """What a start form asks for, checked as the desk would check it (scenario.py
    branches_for), so a mistake is said in the page's language."""
    scenario = _field(form, "scenario")
    branch, region = _field(form, "branch"), _field(form, "region")
    if scenario not in desk.scenarios:
        raise FormError("drill_err_scenario", "scenario")
    s = desk.scenarios[scenario]
    if branch is not None and branch not in desk.branches:
        raise FormError("drill_err_branch", "branch")
    if s.scope == "branch":
        if branch is None:
            raise FormError("drill_err_need_branch", "branch")
        region = None                    # a branch drill takes its branch's region
    else:
        if region is None:
            raise FormError("drill_err_need_region", "region")
        if region not in desk.regions():
            raise FormError("drill_err_region", "region")
        if branch is not None and desk.branches[branch] != region:
            raise FormError("drill_err_branch_region", "branch")
    speed = _field(form, "speed") or "1"
    if speed not in {str(n) for n in SPEEDS}:
        raise FormError("drill_err_speed", "speed")
    plan, _ = _plan(desk, form, required=False)
    if plan is not None and plan.scenario not in (None, s.id):
        raise FormError("drill_err_plan_scenario", "plan")
    return {"scenario": s.id, "branch": branch, "region": region, "plan": plan,
            "speed": float(speed)}


def _refusal(request: web.Request, e: FormError) -> dict:
    t = translate(lang_of(request))
    return {"field": e.field, "text": t(e.key) + (f" ({e.detail})" if e.detail else "")}


@action("drill")
async def start_drill(request: web.Request) -> web.Response:
    """POST /console/drills {scenario, branch, region, plan_file | plan_upload}: a drill
    through the real pipeline, then its page; a mistake: the form again, 400."""
    desk: DrillDesk = request.app[DRILLS]
    form = request["form"]
    chosen = {k: _field(form, k) or "" for k in CHOSEN}
    try:
        asked = _checked_start(desk, form)
        run = await _run(request, "drill", desk.start, asked["scenario"], asked["branch"],
                         asked["region"], asked["plan"], asked["speed"], who(request))
    except FormError as e:
        return await _drills_page(request, 400, chosen=chosen, error=_refusal(request, e))
    except Rejected as r:
        if r.status not in (400, 409):
            raise
        t = translate(lang_of(request))
        return await _drills_page(request, r.status, chosen=chosen, error={
            "field": "", "text": f"{t('drill_err_other')} ({r})"})
    raise web.HTTPSeeOther(f"/console/drills/{run.id}")


async def _drill_page(request: web.Request, did: str, status: int = 200,
                      error: dict | None = None) -> web.Response:
    st = request.app[STATE]
    desk: DrillDesk = request.app[DRILLS]
    try:
        run = await st.run(desk.get, did)
    except KeyError:
        t = translate(lang_of(request))
        return await _drills_page(request, 404, error={"field": "", "text":
                                                       f"{t('no_such_drill')}: {did[:80]}"})

    mine = set(run.incidents)
    incs = [i for i in await _drill_incidents(request, run.started_at) if i["id"] in mine]
    tables = st.desk.grader.tables if st.desk.grader else {}
    template = "_drill_live.html" if request.headers.get("HX-Request") else "drill.html"
    return render(request, template, status=status, run=run, d=run.summary(),
                  incidents=incident_rows(incs, tables, _now(request)),
                  plan_names=sorted(desk.plans()), error=error)


@page
async def drill(request: web.Request) -> web.Response:
    """GET /console/drills/{did}: one drill, its plan, incidents and reports; end,
    attach a plan, archive."""
    return await _drill_page(request, request.match_info["did"])


@action("drill")
async def on_drill(request: web.Request) -> web.Response:
    """POST /console/drills/{did}/end {why} | /plan {plan_file | plan_upload} |
    /archive {why}: back to the drill's page; a mistake: the page again, 4xx."""
    desk: DrillDesk = request.app[DRILLS]
    st = request.app[STATE]
    name, did = request.match_info["action"], request.match_info["did"]
    if name not in ("end", "plan", "archive"):
        raise Rejected(404, f"no action {name!r}; expected end, plan or archive")
    form = request["form"]
    try:
        run = await st.run(desk.get, did)
    except KeyError:
        return await _drill_page(request, did)        # says there is no such drill (404)
    t = translate(lang_of(request))
    try:
        # What the desk would refuse (409), said first in the page's language.
        if run.status == "archived":
            raise FormError("drill_err_archived", name)
        if name == "end":
            if run.status != "running":
                raise FormError("drill_err_ended", name)
            why = _field(form, "why") or t("end_why_default")
            call = _run(request, "drill", desk.end, did, who(request), why)
        elif name == "archive":
            if run.status == "running":
                raise FormError("drill_err_end_first", name)
            why = _field(form, "why")
            if why is None:
                raise FormError("drill_err_why", name)
            call = _run(request, "drill", desk.archive, did, who(request), why)
        else:
            plan, source = _plan(desk, form, required=True)
            if plan.scenario not in (None, run.scenario.id):
                raise FormError("drill_err_plan_scenario", name)
            call = _run(request, "drill", desk.attach_plan, did, plan, who(request), source)
        await call
    except FormError as e:
        code = 409 if e.key in ("drill_err_archived", "drill_err_ended",
                                "drill_err_end_first") else 400
        return await _drill_page(request, did, code, _refusal(request, e))
    except Rejected as r:
        if r.status not in (400, 409):
            raise
        return await _drill_page(request, did, r.status, {"field": name, "text": str(r)})
    # To the drill's page itself: after a refusal the form's `next` is the POST's path.
    request["session"].flash.append(("ok", ""))
    raise web.HTTPSeeOther(f"/console/drills/{did}")


@page
async def to_drill(request: web.Request) -> web.Response:
    """GET /console/drills/{did}/{action}: a refused form's address reloaded, or the
    language switched on it: the drill's page."""
    raise web.HTTPSeeOther(f"/console/drills/{request.match_info['did']}")
