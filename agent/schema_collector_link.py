"""Config schema for the agent's link to the collector (issue 4).

Split from config.py like schema_network.py: this module owns the structs
and their semantic rules; config.py owns loading and error wording.

    collector:
      url: https://collector.example:8443         # or several, tried in turn:
      # urls: [https://c1.example:8443, https://c2.example:8443]
      token_file: /etc/branchwatch/token      # or token: "..." (exactly one)
      ca_file: /etc/branchwatch/collector-ca.pem
      batch_size: 100
      heartbeat_interval: 30
      timeout: 10
      spool: {path: /var/lib/branchwatch/spool.db, max_events: 100000}
"""

from __future__ import annotations

import typing
from pathlib import Path
from urllib.parse import urlsplit

import msgspec

from .schema_network import Seconds, Text, _S


class SpoolSettings(_S):
    """Where undelivered events wait, and how many may wait (oldest dropped first)."""

    path: Text = "/var/lib/branchwatch/spool.db"
    max_events: typing.Annotated[int, msgspec.Meta(ge=1)] = 100_000


class CollectorLink(_S):
    """How the agent reaches the collector: URL(s), per-agent token, TLS, batching."""

    url: Text | None = None
    # Several collectors on one PostgreSQL store: the agent keeps to the one that
    # answers and moves to the next when it does not (agent/sender.py).
    urls: list[Text] | None = None
    token: Text | None = None
    token_file: Text | None = None
    ca_file: Text | None = None
    batch_size: typing.Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 100
    heartbeat_interval: Seconds = 30.0
    timeout: Seconds = 10.0
    spool: SpoolSettings = msgspec.field(default_factory=SpoolSettings)


def link_urls(link: CollectorLink) -> list[str]:
    """The collector base URLs in the order the agent tries them."""
    return [link.url] if link.url is not None else list(link.urls or [])


def link_problems(link: CollectorLink, key: str = "collector"):
    """Rules a type cannot say for the collector link: yields (key, problem)."""
    if (link.url is None) == (link.urls is None):
        yield key, "expected exactly one of 'url' or 'urls'"
    elif link.urls is not None and not link.urls:
        yield f"{key}.urls", "expected at least one URL"
    elif link.urls is not None and len(set(u.rstrip("/") for u in link.urls)) < len(link.urls):
        yield f"{key}.urls", "expected each URL once"
    named = [(f"{key}.url", link.url)] if link.url is not None else [
        (f"{key}.urls[{i}]", u) for i, u in enumerate(link.urls or [])]
    schemes = set()
    for where, url in named:
        parts = urlsplit(url)
        schemes.add(parts.scheme)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            yield where, f"expected an http:// or https:// URL with a host, got {url!r}"
        if parts.query or parts.fragment:
            yield where, "expected a base URL without query or fragment"
    if (link.token is None) == (link.token_file is None):
        yield key, "expected exactly one of 'token' or 'token_file'"
    if link.ca_file is not None and "https" not in schemes:
        yield f"{key}.ca_file", "only used with an https:// url"
    if link.timeout >= link.heartbeat_interval:
        # A heartbeat that may hang past the next one would hide a silent line.
        yield f"{key}.timeout", "expected less than heartbeat_interval"


def read_token(link: CollectorLink) -> str:
    """The token itself: given inline or read (stripped) from token_file."""
    if link.token is not None:
        return link.token
    return Path(link.token_file).read_text(encoding="utf-8").strip()
