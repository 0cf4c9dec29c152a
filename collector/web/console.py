"""The console's plumbing: routes, who is logged in, roles, CSRF, rendering.

Pages (collector/web/pages.py) and actions (collector/web/actions.py) are
plain aiohttp handlers wrapped by `page` and `action` here, which do the
security once for all of them:

- a session cookie (HttpOnly, SameSite=Strict, Path=/console, Secure over
  TLS) names a server-side session (collector/web/sessions.py);
- every POST needs the session's CSRF token (a hidden form field) and, when
  the browser sends an Origin, the collector's own origin (`Origin: null`,
  sent from sandboxed frames and file: pages, is refused too);
- sessions are kept in the store as well, so a restart keeps people logged
  in (sessions.py); failed logins slow the guesser (throttle.py) and
  passwords are checked off the event loop (passwords.py);
- each action needs a role: viewer reads, operator works incidents,
  leadership also grades, closes and issues reports (collector/roles.py);
- who acted is the session's user, recorded in the audit trail by the same
  desk calls the API uses (never a name from the form).

Live updates are htmx polls of page fragments; a poll does not count as
activity, so an open tab does not keep an idle session alive.
"""

from __future__ import annotations

import time

import functools
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web

from ..api_base import STATE, STORE, Rejected, read_form
from ..roles import allowed as role_allows, refusal
from ..refusals import refusal_zh
from ..texts import Reader
from .i18n import LANGUAGES, duration, translate
from .passwords import Hasher
from ..storage.sessions import read_session
from .sessions import NOT_READ, Session, Sessions, apply_writes, id_hash
from .throttle import Throttle, normalise

CONSOLE = web.AppKey("console", object)
COOKIE, LANG_COOKIE = "bw_session", "bw_lang"
STATIC = Path(__file__).parent / "static"

# domain.md §4 (第四條): who may do what is one table for the console, the
# API and the CLI alike (collector/roles.py).
HEADERS = {
    # No inline script or style anywhere: htmx's indicator styles are turned off
    # in base.html's htmx-config.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
}


class Console:
    """What every console handler shares: sessions, users, templates, time zone."""

    def __init__(self, config, tz: str, store=None, readers=None):
        c = config.console
        # Looked up by the normalised name: "Boss " and "boss" are one person.
        self.users = {normalise(u.name): u for u in c.users}
        # Several collectors on one database: each request reads the stored session
        # (one indexed row, on a reader connection, never the writer's; web/sessions.py).
        self.readers = readers if getattr(store, "shared", False) else None
        self.sessions = Sessions(c.session_idle, c.session_max)
        if store is not None:
            self.sessions.load(store.live_sessions(self.sessions.clock(), c.session_idle,
                                                   c.session_max))
        # Several collectors count failed logins together in the store (wall-clock
        # times: they share no monotonic clock); the sole one counts in memory.
        self.shared = getattr(store, "shared", False)
        self.throttle = Throttle(clock=time.time) if self.shared else Throttle()
        self.hasher = Hasher()
        self.held = 0                  # wrong-password answers being held back (pages.py)
        self.language, self.refresh = c.language, c.refresh
        self.tls = config.listen.tls_cert is not None
        self.zone = ZoneInfo(tz)
        self.env = jinja2.Environment(
            loader=jinja2.PackageLoader("collector.web", "templates"),
            autoescape=True, trim_blocks=True, lstrip_blocks=True,
            undefined=jinja2.StrictUndefined)

    def allowed(self, s: Session | None, action: str) -> bool:
        return s is not None and role_allows(s.roles, action)


def lang_of(request: web.Request) -> str:
    lang = request.cookies.get(LANG_COOKIE)
    return lang if lang in LANGUAGES else request.app[CONSOLE].language


def render(request: web.Request, template: str, status: int = 200, **data) -> web.Response:
    """A page or fragment in the visitor's language, with the console's headers."""
    con: Console = request.app[CONSOLE]
    st = request.app[STATE]
    lang = lang_of(request)
    now = datetime.fromtimestamp(st.clock(), timezone.utc)
    s: Session | None = request.get("session")

    tables = st.desk.grader.tables if st.desk.grader else {}
    words = Reader(lang, con.zone, tables)

    def local(dt: datetime | None, seconds: bool = True) -> str:
        # by Babel, in the visitor's locale; the zone is said once per page (base.html,
        # "时间均为 北京时间"), and with the moments that matter (words.when)
        return words.when(dt, seconds=seconds, with_zone=False)

    flash = list(s.flash) if s else []
    if s and not request.headers.get("HX-Request"):
        s.flash.clear()                 # shown once, on the next full page
    html = con.env.get_template(template).render(
        t=translate(lang), lang=lang, other_lang="en" if lang == "zh" else "zh",
        now=now, now_ms=int(now.timestamp() * 1000), local=local,
        ago=lambda seconds: duration(seconds, lang), session=s, flash=flash, words=words,
        can=lambda action: con.allowed(s, action), refresh=con.refresh,
        path=request.path_qs, **data)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8",
                        headers=HEADERS)


async def _session(request: web.Request, poll: bool) -> Session | None:
    # A live-update poll is never the person's activity.
    con: Console = request.app[CONSOLE]
    sid = request.cookies.get(COOKIE)
    stored = NOT_READ
    if con.readers is not None and sid:
        stored = await con.readers.run(read_session, id_hash(sid))
    s = con.sessions.get(sid, touch=not poll, stored=stored)
    await save_sessions(request)
    return s


async def save_sessions(request: web.Request) -> None:
    """Write what changed in the sessions (new, touched, ended) to the store."""
    writes = request.app[CONSOLE].sessions.take_writes()
    if writes:
        st = request.app[STATE]
        await st.run(apply_writes, request.app[STORE], writes)


def _refused(r: Rejected, request: web.Request | None = None) -> web.Response:
    """A refusal on a console path: a short text page in the visitor's language, not
    the API's JSON."""
    lang = lang_of(request) if request is not None else "en"
    text = (f"{r.status}：{translate(lang)('refused')}：{refusal_zh(str(r))}" if lang == "zh"
            else f"{r.status}: {r}")
    return web.Response(text=text + "\n", status=r.status, content_type="text/plain",
                        charset="utf-8", headers={**HEADERS, **r.headers})


def _to_login(request: web.Request, expired: bool) -> web.Response:
    target = "/console/login?next=" + quote(request.path_qs) + ("&expired=1" if expired else "")
    if request.headers.get("HX-Request"):
        # htmx follows HX-Redirect with a full page load.
        return web.Response(status=401, headers={"HX-Redirect": target, **HEADERS})
    raise web.HTTPSeeOther(target)


def public(handler):
    """A console handler needing no session (the login): refusals as text pages."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request):
        try:
            return await handler(request)
        except Rejected as r:
            return _refused(r, request)
    return wrapped


def page(handler):
    """A GET page: logged in (or sent to the login page), rendered with the session."""
    @functools.wraps(handler)
    async def wrapped(request: web.Request):
        poll = request.query.get("poll") == "1"
        s = await _session(request, poll)
        if s is None:
            return _to_login(request, expired=COOKIE in request.cookies)
        request["session"] = s
        try:
            return await handler(request)
        except Rejected as r:
            return _refused(r, request)
    return wrapped


def action(name: str | None):
    """A POST: logged in, same origin, the CSRF token, and a role allowed to do
    `name` (None: the action names itself in the path as {action})."""
    def wrap(handler):
        @functools.wraps(handler)
        async def wrapped(request: web.Request):
            s = await _session(request, poll=False)
            if s is None:
                return _to_login(request, expired=True)
            request["session"] = s
            try:
                await _check_post(request, s, name or request.match_info.get("action", ""))
                return await handler(request)
            except Rejected as r:
                return _refused(r, request)
        return wrapped
    return wrap


def check_origin(request: web.Request) -> None:
    """403 for a POST from another site, or from an opaque origin (`Origin: null`:
    a sandboxed frame, a file: page, some redirects; never our own pages)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return             # older browsers and scripts: the CSRF token still guards
    if origin == "null" or urlsplit(origin).netloc != request.host:
        raise Rejected(403, f"cross-origin request from {origin[:100]} refused")


async def _check_post(request: web.Request, s: Session, what: str) -> None:
    con: Console = request.app[CONSOLE]
    check_origin(request)
    form = await read_form(request)
    if not con.sessions.csrf_ok(s, form.get("csrf")):
        raise Rejected(403, "the form's CSRF token is missing or stale: reload the page "
                            "and try again")
    if not con.allowed(s, what):
        raise Rejected(403, refusal(s.user, s.roles, what))
    request["form"] = form


def back(request: web.Request, default: str, kind: str | None = None,
         text: str | None = None) -> web.Response:
    """Post/redirect/get: back to the page the form was on, with a message shown once."""
    if kind:
        request["session"].flash.append((kind, text or ""))
    target = request["form"].get("next") or default
    if not target.startswith("/console/") or target.startswith("//"):
        target = default           # never redirect off this site
    raise web.HTTPSeeOther(target)


def who(request: web.Request) -> str:
    return request["session"].user
