"""The collector's API as the demo operator uses it: read incidents, work runbook
steps, record deadlines, draft reports (collector/api_people.py, api_reports.py).

Everything the story says the collector did is read back here, never taken
from the collector's insides.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
import urllib.parse
from collections.abc import Awaitable, Callable

import aiohttp


class DemoError(Exception):
    """The story cannot go on; str() says why in one line."""


class CollectorClient:
    """HTTP calls to the collector with the demo operator's token."""

    def __init__(self, url: str, token: str):
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> "CollectorClient":
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        return self

    async def __aexit__(self, *exc) -> None:
        await self._session.close()

    async def _call(self, method: str, path: str, body: dict | None = None,
                    raw: bool = False):
        async with self._session.request(method, self.url + path, json=body,
                                         headers=self._headers) as r:
            data = await r.read()
            if r.status >= 400:
                try:
                    why = json.loads(data)["error"]
                except (ValueError, KeyError, TypeError):
                    why = data[:200].decode("utf-8", "replace")
                raise DemoError(f"{method} {path}: {r.status}: {why}")
            return data.decode("utf-8") if raw else json.loads(data)

    # --- incidents ---------------------------------------------------------------
    async def incidents(self) -> list[dict]:
        """Every real incident, oldest first."""
        return (await self._call("GET", "/api/v1/incidents"))["incidents"]

    async def incident(self, incident_id: str) -> dict:
        return await self._call("GET", f"/api/v1/incidents/{_q(incident_id)}")

    async def act(self, incident_id: str, action: str, **body) -> dict:
        """ack|note|resolve|close|deadline|... as the demo operator."""
        return await self._call("POST", f"/api/v1/incidents/{_q(incident_id)}/{action}", body)

    async def step(self, incident_id: str, step: str, action: str, **body) -> dict:
        """confirm|skip|fail a runbook step as the demo operator."""
        return await self._call(
            "POST", f"/api/v1/incidents/{_q(incident_id)}/steps/{_q(step)}/{action}", body)

    # --- reports -----------------------------------------------------------------
    async def draft_report(self, incident_id: str, kind: str) -> dict:
        return await self._call("POST", "/api/v1/reports", {"incident": incident_id,
                                                            "kind": kind})

    async def edit_report(self, report_id: str, fields: dict[str, str]) -> dict:
        return await self._call("POST", f"/api/v1/reports/{_q(report_id)}/edit", {"set": fields})

    async def issue_report(self, report_id: str, why: str) -> dict:
        return await self._call("POST", f"/api/v1/reports/{_q(report_id)}/issue", {"why": why})

    async def report_text(self, report_id: str, fmt: str) -> str:
        return await self._call("GET", f"/api/v1/reports/{_q(report_id)}?format={fmt}",
                                raw=True)

    async def follow(self, link: str) -> None:
        """POST an acknowledgement link from a message, as the person's browser does when
        they press its button (signed for that person: no operator token sent)."""
        async with self._session.post(link) as r:
            if r.status != 200:
                raise DemoError(f"POST {link.split('?')[0]}: {r.status}: "
                                f"{(await r.text())[:200]}")

    # --- the collector itself ------------------------------------------------------
    async def metric(self, name: str) -> dict[str, float]:
        """One metric from /metrics: the value of each series by its first label's value."""
        text = await self._call("GET", "/metrics", raw=True)
        out = {}
        for line in text.splitlines():
            if line.startswith(name + "{") or line.startswith(name + " "):
                series, _, value = line.rpartition(" ")
                label = series.partition('="')[2].partition('"')[0]
                out[label] = float(value)
        return out

    async def console_answers(self) -> bool:
        """Whether this collector serves the web console (/console/)."""
        try:
            async with self._session.get(self.url + "/console/", allow_redirects=False) as r:
                return r.status < 400
        except aiohttp.ClientError:
            return False


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


async def wait_for(check: Callable[[], Awaitable], what: str, timeout: float = 60.0,
                   every: float = 0.2):
    """Call `check` (plain or async) until it gives something true; that value.
    DemoError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoError(f"gave up waiting for {what} after {timeout:g} s")
        await asyncio.sleep(every)
