"""Channels: how one Outgoing item is sent, and whether a failure is worth retrying
(Alertmanager's notifiers say the same). Errors are typed here, at the edge.

- email, wecom, dingtalk, sms, apprise: Apprise (a well-kept library; realstack.md
  "Notifications through Apprise"). Apprise is synchronous: it runs in a thread,
  so a slow SMTP server holds only its own channel's queue.
- webhook: branchwatch's own JSON body, POSTed with aiohttp.
- alertmanager: POST {url}/api/v2/alerts with the incident as one alert.
Chat robots answer HTTP 200 even when their body carries an errcode; Apprise
counts that as sent (a limit noted in docs/notifications.md).
"""

from __future__ import annotations

import asyncio
import threading
from urllib.parse import quote

import aiohttp

from .pipeline import Outgoing

APPRISE_CHANNELS = frozenset({"email", "wecom", "dingtalk", "sms", "apprise"})
RETRY_STATUS = frozenset({408, 425, 429})


class NotifyError(Exception):
    """A channel could not deliver; `retry` says whether trying again may help."""

    def __init__(self, message: str, retry: bool = True):
        super().__init__(message)
        self.retry = retry


def idempotency_key(item: Outgoing) -> str | None:
    """The key a delivery carries to its receiver: fixed by the incident and the
    delivery (stored on the incident), None for an Alertmanager post (Alertmanager
    dedupes alerts by their labels itself). Percent-encoded: a header is ASCII, and a
    delivery names its person (李娜)."""
    if item.delivery is None:
        return None
    return quote(f"notify:{item.incident}:{item.delivery}", safe=":/@")


class Channels:
    """Send Outgoing items; one instance per collector (an HTTP session, Apprise objects)."""

    def __init__(self, email_url: str | None, timeout: float):
        self.email_url, self.timeout = email_url, timeout
        self._session: aiohttp.ClientSession | None = None
        self._apprise: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    async def send(self, item: Outgoing) -> None:
        """Deliver one item; NotifyError when it did not go out."""
        if item.channel in APPRISE_CHANNELS:
            urls = self._urls(item)
            # Apprise waits 5.5 s between two sends of one plugin object (vendor rate
            # limits): kept per robot, whose queue alone it slows; a fresh one per mail,
            # since every mail shares the SMTP server's queue.
            await asyncio.to_thread(self._apprise_send, urls, item.subject, item.text,
                                    item.channel != "email")
        elif item.channel == "webhook":
            key = idempotency_key(item)
            # The same key on every attempt of one delivery, before and after a
            # restart: a receiver that honours it shows the message once.
            body = item.payload if key is None else {**item.payload, "idempotency_key": key}
            await self._post(item.address, body, {} if key is None else {"Idempotency-Key": key})
        elif item.channel == "alertmanager":
            await self._post(item.address.rstrip("/") + "/api/v2/alerts", item.payload)
        else:
            raise NotifyError(f"unknown channel {item.channel!r}", retry=False)

    def _urls(self, item: Outgoing) -> tuple[str, ...]:
        if item.channel != "email":
            return tuple(item.address.split("\n"))
        if not self.email_url:
            raise NotifyError("notify.email (the SMTP server) is not configured", retry=False)
        sep = "&" if "?" in self.email_url else "?"
        return (f"{self.email_url}{sep}to={quote(item.address, safe='@')}",)

    def _apprise_send(self, urls: tuple[str, ...], subject: str, text: str,
                      keep: bool) -> None:
        import apprise                 # the collector only (realstack.md: ~0.2 s, ~27 MB)
        with self._lock:
            obj = self._apprise.get(urls) if keep else None
            if obj is None:
                obj = apprise.Apprise()
                for url in urls:
                    if not obj.add(url):
                        raise NotifyError(f"Apprise does not know the URL {url.split(':')[0]}://",
                                          retry=False)
                if keep:
                    self._apprise[urls] = obj
        result = obj.notify(body=text, title=subject, body_format=apprise.NotifyFormat.TEXT,
                            timeout=self.timeout)
        if not result:
            raise NotifyError(_apprise_problem(result))

    async def _post(self, url: str, body, headers: dict | None = None) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        try:
            async with self._session.post(url, json=body, headers=headers) as r:
                if 200 <= r.status < 300:
                    return
                text = (await r.text())[:200]
                raise NotifyError(f"HTTP {r.status}: {text}",
                                  retry=r.status >= 500 or r.status in RETRY_STATUS)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
            raise NotifyError(f"{type(e).__name__}: {e}" if str(e) else type(e).__name__)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _apprise_problem(result) -> str:
    """The last warning Apprise logged for a failed call, one line."""
    try:
        lines = [str(entry) for entry in result.logs()]
    except Exception:          # older result objects: no logs
        lines = []
    last = lines[-1] if lines else f"Apprise: {getattr(result, 'status', 'failed')!s}"
    return last.split(" - ", 2)[-1].replace("\n", " ")[:300]
