"""The wire schema shared by the agent and the collector.

Both sides import this module and nothing else of each other.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Literal

import msgspec

EventKind = Literal["state", "flapping", "flapping_end"]
StateName = Literal["ok", "warning", "critical", "unknown"]


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A check's state changed (or started/stopped flapping) at an agent."""

    id: str
    kind: EventKind
    agent: str
    branch: str
    check: str
    old_state: StateName | None
    new_state: StateName
    reason: str
    observed_at: datetime
    # Network faults: "device", "line" or "local" (domain.md §4.1); else None.
    diagnosis: Literal["device", "line", "local"] | None = None


def new_event_id() -> str:
    """A fresh, unique event id (makes resends idempotent)."""
    return uuid.uuid4().hex


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=timezone.utc)


_encoder = msgspec.json.Encoder()


def encode(obj) -> bytes:
    """JSON bytes of a wire object."""
    return _encoder.encode(obj)
