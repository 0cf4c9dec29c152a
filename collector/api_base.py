"""What the collector's API handlers share: app keys, refusals, tokens, bodies,
JSON answers, and starting the runbook executions a request asked for."""

from __future__ import annotations

import asyncio
import hashlib

from aiohttp import web

from .incident_codec import encode as encode_incidents
from .roles import allowed, refusal
from .runbook_executor import execute

_State = object   # collector.api._State (typing only: avoids an import cycle)


STORE = web.AppKey("store", object)
STATE = web.AppKey("state", object)
DEADMAN = web.AppKey("deadman", asyncio.Task)


class Rejected(Exception):
    """A request refused with a status and a one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def token_hash(token: str) -> str:
    """The sha256 hex digest the config stores for a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _bearer_hash(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Rejected(401, "expected an Authorization: Bearer TOKEN header")
    return token_hash(token.strip())


def _operator(st: _State, request: web.Request) -> str:
    """The operator's name for this request's token; agents get 403."""
    digest = _bearer_hash(request)
    name = st.operators.get(digest)
    if name is not None:
        return name
    if digest in st.by_hash:
        raise Rejected(403, "agent tokens may not read or act on incidents; use an "
                            "operator token")
    raise Rejected(401, "unknown operator token")


def authorised(st: _State, request: web.Request, action: str) -> str:
    """The operator's name when the token's roles allow `action` (collector/roles.py);
    403 with the reason otherwise (domain.md §4: the same roles as the console)."""
    name = _operator(st, request)
    roles = st.operator_roles.get(name, ())
    if not allowed(roles, action):
        raise Rejected(403, refusal(name, roles, action))
    return name


async def _body(st: _State, request: web.Request) -> bytes:
    limit = st.config.limits.max_body
    if request.content_length is not None and request.content_length > limit:
        raise Rejected(413, f"body of {request.content_length} bytes is over the limit of "
                            f"{limit} bytes; send smaller batches")
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise Rejected(413, f"body is over the limit of {limit} bytes; send smaller batches")


def _json(data) -> web.Response:
    """A 200 JSON response for incident data (datetimes as RFC 3339)."""
    return web.Response(body=encode_incidents(data), content_type="application/json")


def start_executions(st: _State) -> None:
    """Run the webhooks and commands runbooks asked for, each in a task of its own."""
    while st.desk.outbox:
        x = st.desk.outbox.pop(0)
        task = asyncio.create_task(_execute(st, x))
        st.tasks.add(task)
        task.add_done_callback(st.tasks.discard)


async def _execute(st: _State, x) -> None:
    ok, message = await execute(x, st.config.runbooks)
    await st.run(st.desk.runbook_result, x, ok, message)
    start_executions(st)
