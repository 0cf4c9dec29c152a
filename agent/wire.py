"""The wire schema shared by the agent and the collector.

Both sides import this module and nothing else of each other.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec

# Constraints the collector checks on decode (the agent always meets them):
# times carry a timezone, ids are not empty, intervals are positive.
Time = Annotated[datetime, msgspec.Meta(tz=True)]
Id = Annotated[str, msgspec.Meta(min_length=1)]
# "action": something the agent did (a failover step, a runbook action):
# check "action/<what>/<step>", new_state ok (done) or critical (failed).
EventKind = Literal["state", "flapping", "flapping_end", "action"]
StateName = Literal["ok", "warning", "critical", "unknown"]


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A check's state changed (or started/stopped flapping) at an agent."""

    id: Id
    kind: EventKind
    agent: str
    branch: str
    check: str
    old_state: StateName | None
    new_state: StateName
    reason: str
    observed_at: Time
    # Network faults: "device", "line" or "local" (domain.md §4.1); else None.
    diagnosis: Literal["device", "line", "local"] | None = None


class CheckStatus(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One check's current debounced state, as a heartbeat carries it."""

    check: str
    state: StateName
    reason: str
    since: Time | None = None
    diagnosis: Literal["device", "line", "local"] | None = None


class Batch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/events: events from one agent, oldest first.

    Resends are expected: the collector accepts an event id once and
    acknowledges it again, unchanged, every time it is sent.
    """

    agent: str
    branch: str
    sent_at: Time
    events: list[Event]


class Ack(msgspec.Struct, kw_only=True):
    """The collector's answer to a Batch: which ids it now holds."""

    accepted: list[str]        # new, stored now
    duplicates: list[str]      # stored before (a resend): also safe to delete


class MetricsEndpoint(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Where Prometheus scrapes this agent: the scheme and port it serves, and
    `advertise` (host:port) when the collector cannot use the address the
    heartbeat came from (NAT, a proxy)."""

    scheme: Literal["http", "https"] = "http"
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)]
    advertise: Annotated[str, msgspec.Meta(max_length=261)] | None = None


class AgentAbout(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The agent's version and config hash (drift from the fleet's template) and
    its /metrics endpoint (Prometheus service discovery at the collector)."""

    version: Annotated[str, msgspec.Meta(max_length=64)]
    config_sha256: Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]
    metrics: MetricsEndpoint | None = None


class Heartbeat(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/heartbeat: the agent's whole current truth.

    `interval` is how often heartbeats come; the collector's dead-man
    timer allows that plus a grace. `checks` lets the collector rebuild
    the state after any gap (a cut line, a spool overflow).
    """

    agent: str
    branch: str
    region: str = ""
    sent_at: Time
    interval: Annotated[float, msgspec.Meta(gt=0)]
    spool_depth: int = 0
    checks: list[CheckStatus]
    about: AgentAbout | None = None      # absent from agents older than 0.2


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


class Command(msgspec.Struct, kw_only=True):
    """A runbook action the collector hands to a branch's agent (issue 6).

    `action` is the runbook step's action (type snmp_port or nut_command, with
    its fields). The agent carries it out and reports an `action` event with
    check `check` (action/runbook/INCIDENT/RUN/STEP): ok if done, else critical.
    """

    id: Id
    check: Id
    action: dict


class HeartbeatAnswer(msgspec.Struct, kw_only=True):
    """The collector's 200 answer to a heartbeat when it has work for the agent
    (otherwise 204, no body)."""

    commands: list[Command] = []
