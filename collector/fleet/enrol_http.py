"""Enrolment routes: the leadership enrols and revokes agents (operator tokens
with that role), an agent exchanges its one-time code for its token.

    POST /api/v1/enrolments            {"agent", "branch", "region"}  -> 201 {"code", ...}
    GET  /api/v1/enrolments                                            -> every enrolment
    POST /api/v1/enrolments/{agent}/revoke {"why"}                     -> the enrolment
    POST /api/v1/enrol                 {"agent", "code"}               -> {"token", ...}

A token takes effect at once (the agent may deliver); its region counts for
grading and routing from the next reload (SIGHUP) or restart."""

from __future__ import annotations

from typing import Annotated

import msgspec
from aiohttp import web

from ..api_base import STATE, STORE, Rejected, _body, _json, _operator, decode_as
from agent.schema_network import Name
from agent.wire import REGION_MAX

from ..incidents import Refused
from .enrolment import BadCode, Enrolment
from .reload import apply_config


class NewEnrolment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    agent: Name
    branch: Name
    region: Annotated[str, msgspec.Meta(max_length=REGION_MAX)] = ""


class Revocation(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    why: Annotated[str, msgspec.Meta(max_length=2000)]


class CodeExchange(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    agent: Name
    code: Annotated[str, msgspec.Meta(max_length=200)]


def add_enrol_routes(app: web.Application) -> None:
    """Mount the enrolment routes."""
    app.router.add_post("/api/v1/enrolments", create)
    app.router.add_get("/api/v1/enrolments", listing)
    app.router.add_post("/api/v1/enrolments/{agent}/revoke", revoke)
    app.router.add_post("/api/v1/enrol", exchange)


def _leader(st, request: web.Request) -> str:
    who = _operator(st, request)
    roles = getattr(st, "operator_roles", {}).get(who)
    if roles is not None and "leadership" not in roles:
        raise Rejected(403, "enrolling and revoking agents is the leadership's act")
    return who



def _view(e: Enrolment) -> dict:
    d = msgspec.to_builtins(e)
    d.pop("token_sha256", None)
    d["state"] = e.state
    return d


async def create(request: web.Request) -> web.Response:
    """Enrol an agent; the one-time code is in this answer only."""
    st = request.app[STATE]
    who = _leader(st, request)
    new = decode_as(await _body(st, request), NewEnrolment)
    known = {a.id for a in st.file_config.agents}
    try:
        code = await st.run(request.app[STORE].enrol, new.agent, new.branch, new.region, who,
                            st.clock(), known)
    except Refused as e:
        raise Rejected(409, str(e)) from None
    e = await st.run(request.app[STORE].enrolment, new.agent)
    return web.json_response({**_view(e), "code": code}, status=201)


async def listing(request: web.Request) -> web.Response:
    """Every enrolment (no secrets)."""
    st = request.app[STATE]
    _operator(st, request)
    return _json({"enrolments": [_view(e) for e in await st.run(request.app[STORE].enrolments)]})


async def revoke(request: web.Request) -> web.Response:
    """Revoke an enrolment; its token is refused from now on."""
    st = request.app[STATE]
    who = _leader(st, request)
    why = decode_as(await _body(st, request), Revocation).why
    if not why.strip():
        raise Rejected(400, "why: expected a reason")
    agent = request.match_info["agent"]
    try:
        e = await st.run(request.app[STORE].revoke, agent, who, why, st.clock())
    except Refused as e:
        raise Rejected(404, str(e)) from None
    await apply_config(request.app, st.file_config)     # refused from now on
    return _json(_view(e))


async def exchange(request: web.Request) -> web.Response:
    """The agent's token for its one-time code (no other credential: the code is one)."""
    st = request.app[STATE]
    ask = decode_as(await _body(st, request), CodeExchange)
    try:
        e, token = await st.run(request.app[STORE].exchange_code, ask.agent, ask.code, st.clock())
    except BadCode as e:
        raise Rejected(403, str(e)) from None
    await apply_config(request.app, st.file_config)     # its token and region count at once
    return _json({"agent": e.agent, "branch": e.branch, "region": e.region, "token": token})
