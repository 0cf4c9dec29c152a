"""Silences by people, over the API (operators):

    POST /api/v1/silences               {"branches", "regions", "starts"?, "ends", "why"} -> 201
    GET  /api/v1/silences                                                      -> every silence
    POST /api/v1/silences/{id}/expire   {"why"}                                -> the silence

A silence holds back fault alerts in its scope (never regulatory deadlines:
collector/notify/routing.py); where incidents are forwarded to Alertmanager,
the same silence is set there (and expired with it), so Prometheus's alerts
for those branches are quiet too."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone
from typing import Annotated

import aiohttp
import msgspec
from aiohttp import web

from ..api_base import STATE, STORE, Rejected, _body, _json, _operator, decode_as, read_json
from .settings import Silence
from .silences import StoredSilence, am_matchers, in_force

log = logging.getLogger("branchwatch.collector")
Why = Annotated[str, msgspec.Meta(min_length=1, max_length=2000)]


class Expiry(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    why: Why


def add_silence_routes(app: web.Application) -> None:
    """Mount the silence routes."""
    app.router.add_post("/api/v1/silences", create)
    app.router.add_get("/api/v1/silences", listing)
    app.router.add_post("/api/v1/silences/{id}/expire", expire)


async def refresh(app: web.Application) -> None:
    """Hand the silences in force to the notifier (on the writer thread, where it lives)."""
    st, store = app[STATE], app[STORE]

    def swap():
        n = st.desk.notifier
        if n is not None:
            n.rules = dataclasses.replace(n.rules, stored=in_force(store.silences(), st.clock()))
    await st.run(swap)


def _view(row: StoredSilence, now: float) -> dict:
    d = msgspec.to_builtins(row)
    d["active"] = row.active(datetime.fromtimestamp(now, timezone.utc))
    return d



async def create(request: web.Request) -> web.Response:
    """Set a silence; forwarded to Alertmanager where incidents go there."""
    st = request.app[STATE]
    who = _operator(st, request)
    # read_json: garbage or JSON nested thousands deep is a 400, not a 500.
    raw = await read_json(st, request) if request.can_read_body else None
    if not isinstance(raw, dict):
        raise Rejected(400, "body: expected a JSON object with ends and why")
    raw.setdefault("starts", datetime.fromtimestamp(st.clock(), timezone.utc).isoformat())
    silence = decode_as(msgspec.json.encode(raw), Silence)
    if silence.ends <= silence.starts:
        raise Rejected(400, "ends: expected after starts")
    row = await st.run(request.app[STORE].add_silence, silence, who, st.clock())
    forwarded = await _forward(st, row, who)
    if forwarded["ids"]:
        await st.run(request.app[STORE].note_am_silences, row.id, forwarded["ids"])
        row.am_ids = forwarded["ids"]
    await refresh(request.app)
    return web.json_response({**_view(row, st.clock()), "alertmanager": forwarded["results"]},
                             status=201)


async def listing(request: web.Request) -> web.Response:
    """Every silence set by people, newest first, with whether it is in force."""
    st = request.app[STATE]
    _operator(st, request)
    rows = await st.run(request.app[STORE].silences)
    return _json({"silences": [_view(r, st.clock()) for r in rows]})


async def expire(request: web.Request) -> web.Response:
    """End a silence now (and its Alertmanager twins)."""
    st = request.app[STATE]
    who = _operator(st, request)
    why = decode_as(await _body(st, request), Expiry).why
    row = await st.run(request.app[STORE].expire_silence, request.match_info["id"], who, why,
                       st.clock())
    if row is None:
        raise Rejected(404, f"no silence {request.match_info['id']!r} in force")
    await _expire_forwarded(st, row)
    await refresh(request.app)
    return _json(_view(row, st.clock()))


async def _forward(st, row: StoredSilence, who: str) -> dict:
    s = row.silence
    body = {"matchers": am_matchers(s), "startsAt": s.starts.isoformat(),
            "endsAt": s.ends.isoformat(), "createdBy": who,
            "comment": f"{s.why} (branchwatch {row.id})"}
    ids, results = [], []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for base in st.config.notify.alertmanager.forward:
            try:
                async with http.post(f"{base.rstrip('/')}/api/v2/silences", json=body) as r:
                    data = await r.json(content_type=None)
                    if r.status >= 300:
                        raise aiohttp.ClientError(f"{r.status}: {data}")
                ids.append(f"{base}|{data['silenceID']}")
                results.append({"url": base, "silence": data["silenceID"]})
            except (aiohttp.ClientError, OSError, KeyError, ValueError, TimeoutError) as e:
                log.warning("silence %s not set at Alertmanager %s: %s", row.id, base, e)
                results.append({"url": base, "error": str(e) or type(e).__name__})
    return {"ids": ids, "results": results}


async def _expire_forwarded(st, row: StoredSilence) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for ref in row.am_ids:
            base, _, am_id = ref.rpartition("|")
            try:
                async with http.delete(f"{base.rstrip('/')}/api/v2/silence/{am_id}") as r:
                    if r.status >= 300:
                        raise aiohttp.ClientError(str(r.status))
            except (aiohttp.ClientError, OSError, TimeoutError) as e:
                log.warning("silence %s not expired at Alertmanager %s: %s", row.id, base, e)
