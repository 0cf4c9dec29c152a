"""What grading reads and what it returns: frozen values, no behaviour.

Times are aware datetimes (UTC by convention). A naive time is refused at
construction: a grade computed on local wall time would be wrong by the
offset, silently (design.md: time is always passed in, never guessed).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .calendar import Calendar


def require_aware(t: datetime | None, what: str) -> None:
    """Raise ValueError unless t is None or a time-zone-aware datetime."""
    if t is not None and (not isinstance(t, datetime) or t.utcoffset() is None):
        raise ValueError(f"{what}: expected an aware datetime, got {t!r}")


def _check_span(start: datetime, end: datetime | None, what: str) -> None:
    require_aware(start, f"{what}.start")
    require_aware(end, f"{what}.end")
    if end is not None and end < start:
        raise ValueError(f"{what}: end {end.isoformat()} is before start {start.isoformat()}")


@dataclass(frozen=True)
class Outage:
    """A span during which one scope unit (region: the regulation's province,
    domain.md §2.1) could not do business, on one channel's calendar."""

    region: str
    start: datetime
    end: datetime | None          # None = still out
    cause: str = ""               # e.g. "branch B1: tcp/core critical" (for reasons)
    calendar: Calendar | None = None   # the channel's business hours; None = classify's calendar
    channel: str = ""             # counter, atm, ebanking... (for reasons)
    out_of: tuple[int, int] = (0, 0)   # (branches out, branches enrolled) at the span's worst
    key_site: str = ""            # the key site that put the whole unit out, if that was it

    def __post_init__(self) -> None:
        _check_span(self.start, self.end, f"outage {self.region!r}")


@dataclass(frozen=True)
class Observed:
    """An observed fault kind (hospital classes), e.g. "server_down"."""

    kind: str
    start: datetime
    end: datetime | None
    detail: str = ""

    def __post_init__(self) -> None:
        _check_span(self.start, self.end, f"observed {self.kind!r}")


@dataclass(frozen=True)
class Assertion:
    """A criterion set by a person (data damage, cause, or a correction), with a reason."""

    criterion: str                # an id defined by the table, e.g. "data_major"
    who: str
    why: str
    at: datetime
    withdrawn: bool = False       # domain.md §2.1: a person withdrawing is how a grade goes down

    def __post_init__(self) -> None:
        require_aware(self.at, f"assertion {self.criterion!r}.at")


@dataclass(frozen=True)
class IncidentFacts:
    """Everything known about one incident that grading may use."""

    started_at: datetime
    ended_at: datetime | None
    outages: tuple[Outage, ...] = ()
    observed: tuple[Observed, ...] = ()
    assertions: tuple[Assertion, ...] = ()

    def __post_init__(self) -> None:
        _check_span(self.started_at, self.ended_at, "incident")


@dataclass(frozen=True)
class RuleMatch:
    """One table rule that held by `now`: its grade and the moment it first held."""

    rule: str
    grade: str
    reached_at: datetime
    provisional: bool = False
    reason: str = ""
    reason_zh: str = ""


@dataclass(frozen=True)
class Grading:
    """The result of classify(): the winning grade, why, and since when."""

    table: str                    # table name, e.g. "cbrc"
    grade: str | None             # None = below the table (ungraded)
    rule: str | None              # id of the rule that gave it
    provisional: bool             # domain.md §2.1 outside-business-hours criterion
    reached_at: datetime | None   # the moment the winning rule first held (computed, not "now")
    reasons: tuple[str, ...]      # human lines: which rule, which regions, how long
    matches: tuple[RuleMatch, ...] = ()   # every rule that held, in table order (for deadlines)
    reasons_zh: tuple[str, ...] = ()      # the same lines in Chinese (domain.md §2.1: a person's words)
