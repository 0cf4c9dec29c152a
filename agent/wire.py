"""The wire schema shared by the agent and the collector.

Both sides import this module and nothing else of each other.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec

# Every bound of the wire, in one place: numbers, dates, field and list sizes.
# The collector checks them on decode (`decode` below) and answers 400
# naming the field; the agent meets them by cutting text where it enters
# (`cut`, at the probe) and sets aside an event it could not keep within
# them (the spool's dead letters), never cutting at the sender.
ID_MAX = 128            # agent, branch, event and command ids (uuid4 hex is 32)
CHECK_MAX = 256         # check ids: "switch/core-1/port/Gi1/0/48" with room
REASON_MAX = 2048       # what a person reads; a 400 KB upsd reply is cut to this
REGION_MAX = 128
EVENTS_MAX = 10_000     # per batch (the body limit usually bites first)
CHECKS_MAX = 10_000     # per heartbeat: 2 x 48-port switches are ~200
SPOOL_DEPTH_MAX = 10**9  # more than any spool's max_events; a store INTEGER holds it
INTERVAL_MAX = 86_400.0  # heartbeats at least daily
COMMANDS_MAX = 1_000    # runbook commands in one heartbeat answer
# Times the collector accepts: years 2000..2100. Outside that a branch clock
# is broken (a machine without RTC battery boots in 1970) or the value is
# garbage; either would be stored, graded and ordered as if it were true.
YEAR_MIN, YEAR_MAX = 2000, 2100

Time = Annotated[datetime, msgspec.Meta(tz=True)]
Id = Annotated[str, msgspec.Meta(min_length=1, max_length=ID_MAX)]
CheckId = Annotated[str, msgspec.Meta(min_length=1, max_length=CHECK_MAX)]
Reason = Annotated[str, msgspec.Meta(max_length=REASON_MAX)]
# "action": something the agent did (a failover step, a runbook action):
# check "action/<what>/<step>", new_state ok (done) or critical (failed).
EventKind = Literal["state", "flapping", "flapping_end", "action"]
StateName = Literal["ok", "warning", "critical", "unknown"]


class Event(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A check's state changed (or started/stopped flapping) at an agent."""

    id: Id
    kind: EventKind
    agent: Id
    branch: Id
    check: CheckId
    old_state: StateName | None
    new_state: StateName
    reason: Reason
    observed_at: Time
    # Network faults: "device", "line" or "local" (domain.md §4.1); else None.
    diagnosis: Literal["device", "line", "local"] | None = None


class CheckStatus(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One check's current debounced state, as a heartbeat carries it."""

    check: CheckId
    state: StateName
    reason: Reason
    since: Time | None = None
    diagnosis: Literal["device", "line", "local"] | None = None


class Batch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """POST /api/v1/events: events from one agent, oldest first.

    Resends are expected: the collector accepts an event id once and
    acknowledges it again, unchanged, every time it is sent.
    """

    agent: Id
    branch: Id
    sent_at: Time
    events: Annotated[list[Event], msgspec.Meta(max_length=EVENTS_MAX)]


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

    agent: Id
    branch: Id
    region: Annotated[str, msgspec.Meta(max_length=REGION_MAX)] = ""
    sent_at: Time
    interval: Annotated[float, msgspec.Meta(gt=0, le=INTERVAL_MAX)]
    spool_depth: Annotated[int, msgspec.Meta(ge=0, le=SPOOL_DEPTH_MAX)] = 0
    checks: Annotated[list[CheckStatus], msgspec.Meta(max_length=CHECKS_MAX)]
    about: AgentAbout | None = None      # absent from agents older than 0.2


def new_event_id() -> str:
    """A fresh, unique event id (makes resends idempotent)."""
    return uuid.uuid4().hex


def utc(ts: float) -> datetime:
    """Epoch seconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=timezone.utc)


def cut(text: str, limit: int = REASON_MAX) -> str:
    """`text` within `limit` characters, a cut one ending in a visible marker
    with the original length ("… [cut, 409600 chars]")."""
    if len(text) <= limit:
        return text
    marker = f"… [cut, {len(text)} chars]"
    return text[:max(0, limit - len(marker))] + marker


_TIME_MIN = datetime(YEAR_MIN, 1, 1, tzinfo=timezone.utc)
_TIME_END = datetime(YEAR_MAX + 1, 1, 1, tzinfo=timezone.utc)


def time_problem(at: datetime | None) -> str | None:
    """Why a wire time is out of range (years YEAR_MIN..YEAR_MAX in UTC), or None."""
    # Compared, never converted: year 1 at +14:00 has no UTC year to convert to.
    if at is None or _TIME_MIN <= at < _TIME_END:
        return None
    return f"{at.isoformat()} is outside the years {YEAR_MIN}..{YEAR_MAX}"


def decode(body: bytes, type_):
    """Decode and validate a wire object: msgspec's constraints plus the time
    range, which msgspec cannot express. Raises msgspec.ValidationError whose
    text names the field (" - at `$.events[3].observed_at`")."""
    obj = msgspec.json.decode(body, type=type_)
    for path, at in _times(obj):
        if (why := time_problem(at)) is not None:
            raise msgspec.ValidationError(f"{why} - at `$.{path}`")
    return obj


def _times(obj):
    """(path, time) of every time a Batch or a Heartbeat carries."""
    if isinstance(obj, Batch):
        yield "sent_at", obj.sent_at
        for i, e in enumerate(obj.events):
            yield f"events[{i}].observed_at", e.observed_at
    elif isinstance(obj, Heartbeat):
        yield "sent_at", obj.sent_at
        for i, c in enumerate(obj.checks):
            yield f"checks[{i}].since", c.since
    elif isinstance(obj, Event):
        yield "observed_at", obj.observed_at


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
    check: CheckId
    action: dict


class HeartbeatAnswer(msgspec.Struct, kw_only=True):
    """The collector's 200 answer to a heartbeat when it has work for the agent
    (otherwise 204, no body)."""

    commands: Annotated[list[Command], msgspec.Meta(max_length=COMMANDS_MAX)] = []
