"""What probes produce: readings made of metric samples and check results."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class State(enum.IntEnum):
    """A check's state; the value is what `branchwatch_check_state` exports."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class CheckResult:
    """One check's verdict from one reading, with the reason a person reads."""

    check: str
    state: State
    reason: str
    # For network faults: "device", "line" or "local" (branch plan §5.1,
    # domain.md §4.1: device or line decides the runbook); None elsewhere.
    diagnosis: str | None = None


@dataclass(frozen=True)
class Sample:
    """One metric value; `name` must be listed in agent.metrics.CATALOGUE."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    @classmethod
    def of(cls, name: str, value: float, /, **labels: str) -> "Sample":
        """Build a sample with labels given as keywords."""
        return cls(name, tuple(sorted(labels.items())), float(value))


@dataclass
class Reading:
    """Everything one run of one probe saw.

    `ok` is False when the probe could not see its target at all; `error`
    then says why, and `checks` carry that as unknown/critical verdicts.
    """

    probe: str
    ok: bool
    samples: list[Sample] = field(default_factory=list)
    checks: list[CheckResult] = field(default_factory=list)
    detail: dict = field(default_factory=dict)
    error: str | None = None
    at: float = 0.0
    duration: float = 0.0


class ProbeError(Exception):
    """A probe could not read its target; the message is shown to operators."""

    def __init__(self, message: str, *, recoverable: bool = True):
        super().__init__(message)
        self.recoverable = recoverable

