"""What the collector's API handlers share: app keys, refusals, tokens, bodies,
JSON answers, and starting the runbook executions a request asked for."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
from aiohttp import web

from .incident_codec import encode as encode_incidents
from .engine.actions import EXECUTE, outbox_key
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
    """Claim the webhooks and commands runbooks asked for (the stored outbox) and run
    each in a task of its own; the outcome marks it done."""
    if st.desk.waiting[EXECUTE]:
        st.desk.waiting[EXECUTE] = 0          # claimed next: not twice
        _spawn(st, _claim(st))


def _spawn(st: _State, coro) -> None:
    task = asyncio.create_task(coro)
    st.tasks.add(task)
    task.add_done_callback(st.tasks.discard)


async def _claim(st: _State) -> None:
    for x in await st.run(st.desk.claim, EXECUTE):
        _spawn(st, _execute(st, x))


async def _execute(st: _State, x) -> None:
    # The key goes with the request: a retry after a crash is the same request.
    ok, message = await execute(x, st.config.runbooks, outbox_key(EXECUTE, x))
    await st.run(st.desk.runbook_result, x, ok, message)
    start_executions(st)


def decode_as(body: bytes, kind):
    """A request body as the msgspec type `kind`; 400 naming what is wrong."""
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as e:
        raise Rejected(400, str(e)) from None
    except msgspec.DecodeError as e:
        raise Rejected(400, f"body: expected JSON ({e})") from None
