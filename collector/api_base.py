"""What the collector's API handlers share: app keys, refusals, tokens, bodies,
JSON answers, and starting the runbook executions a request asked for.

Every request that can fail is answered 4xx with a one-line message, or 503
with Retry-After when the collector cannot write (a full disk, a store
locked by another process): `answer_failures` is the app's outermost
middleware, and `read_json` / `read_form` turn any body the client could
send (nested 2,000 deep, a multipart body cut short) into a 4xx.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import logging
import sqlite3
import sys

import msgspec
from aiohttp import web

from .incident_codec import encode as encode_incidents
from .engine.actions import EXECUTE, outbox_key
from .roles import allowed, refusal
from .runbook_executor import execute

_State = object   # collector.api._State (typing only: avoids an import cycle)


STORE = web.AppKey("store", object)
STATE = web.AppKey("state", object)
DEADMAN = web.AppKey("deadman", asyncio.Task)


class Rejected(Exception):
    """A request refused with a status and a one-line reason."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}      # e.g. Retry-After on a 429 or 503


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


MAX_DEPTH = 32          # nesting of an operator's JSON body: theirs are two levels deep
STORE_RETRY_AFTER = 30  # seconds: a full disk or a locked store is not fixed at once
UNWRITABLE = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO)
# SQLite's words for the same (SQLITE_FULL, BUSY, LOCKED, IOERR, READONLY, CANTOPEN);
# any other OperationalError ("no such table") is a bug of ours, a 500.
UNWRITABLE_WORDS = ("full", "locked", "busy", "disk i/o", "readonly", "read-only",
                    "unable to open")

log = logging.getLogger("branchwatch.collector")


async def read_json(st: _State, request: web.Request) -> dict:
    """The body as a JSON object (an empty body is {}); 400 naming what was wrong."""
    raw = await _body(st, request)
    try:
        body = json.loads(raw or b"{}")
    except RecursionError:
        raise Rejected(400, f"(body): JSON nested deeper than {MAX_DEPTH} levels")
    except ValueError as e:
        raise Rejected(400, f"body is not valid JSON: {e}")
    if not isinstance(body, dict):
        raise Rejected(400, "(body): expected a JSON object")
    if _depth(body) > MAX_DEPTH:
        raise Rejected(400, f"(body): JSON nested deeper than {MAX_DEPTH} levels")
    return body


def _depth(value) -> int:
    # Iterative: a recursive walk is what failed on a body nested 2,000 deep.
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, (dict, list)):
            deepest = max(deepest, d)
            if d <= MAX_DEPTH:
                stack.extend((x, d + 1) for x in (v.values() if isinstance(v, dict) else v))
    return deepest


async def read_form(request: web.Request):
    """The form of a POST (urlencoded or multipart); 400 for a body that cannot be
    read (cut short, a bad boundary), 413 over the size limit."""
    try:
        return await request.post()
    except web.HTTPRequestEntityTooLarge as e:
        raise Rejected(413, f"form is over the limit of {request.client_max_size} "
                            f"bytes") from e
    except Exception as e:
        # Whatever aiohttp's parser raises on a client's body (InvalidHeader, a
        # payload cut short, a bad boundary, ValueError...) is the body's fault.
        raise Rejected(400, f"form could not be read ({type(e).__name__}): "
                            f"{_one_line(str(e))}") from e


def _one_line(text: str) -> str:
    return " ".join(text.split())[:200]


def store_unavailable(e: BaseException) -> bool:
    """True for a failure of the disk or the store's lock, not of the request."""
    if isinstance(e, sqlite3.OperationalError):
        text = str(e).lower()
        return any(w in text for w in UNWRITABLE_WORDS)
    if _postgres_unreachable(e):
        return True
    return isinstance(e, OSError) and e.errno in UNWRITABLE


def _postgres_unreachable(e: BaseException) -> bool:
    """PostgreSQL gone (server down, session cut, pool empty): the store, not the request."""
    psycopg = sys.modules.get("psycopg")     # only a PostgreSQL store has loaded it
    if psycopg is None:
        return False
    if isinstance(e, psycopg.OperationalError):
        return True
    pool = sys.modules.get("psycopg_pool")
    return pool is not None and isinstance(e, pool.PoolTimeout)


@web.middleware
async def answer_failures(request: web.Request, handler):
    """The outermost middleware: 503 + Retry-After when the store cannot write,
    and a one-line 500 (logged) for a bug, never aiohttp's bare page."""
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except asyncio.CancelledError:
        raise
    except Exception as e:
        if isinstance(e, OverflowError):
            # A number or time past what SQLite or datetime can hold (2**70, the
            # year 1 moved by a time zone): the request's values, not a bug of
            # ours. The wire schema bounds them by name (agent/wire.py); this
            # answers any the schema does not (yet) name.
            log.warning("%s %s: value out of range: %s", request.method, request.path, e)
            return _answer(request, 400, f"(body): a number or time is out of the range the "
                                         f"collector can keep ({_one_line(str(e))})")
        if store_unavailable(e):
            log.error("%s %s: the store cannot write: %s", request.method, request.path, e)
            return _answer(request, 503, f"the collector cannot write its store now ({e}); "
                                         f"nothing was stored, try again later",
                           {"Retry-After": str(STORE_RETRY_AFTER)})
        log.exception("%s %s failed", request.method, request.path)
        return _answer(request, 500, f"internal error ({type(e).__name__}); the collector's "
                                     f"log has the details")


def _answer(request: web.Request, status: int, message: str,
            headers: dict | None = None) -> web.Response:
    if request.path.startswith("/console"):
        return web.Response(text=f"{status}: {message}\n", status=status,
                            content_type="text/plain", charset="utf-8", headers=headers)
    return web.json_response({"error": message}, status=status, headers=headers)


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
    except RecursionError:       # a free-form field nested thousands deep
        raise Rejected(400, f"(body): JSON nested deeper than {MAX_DEPTH} levels") from None
