"""Numbers as a person reads them in a check reason, and threshold verdicts."""

from __future__ import annotations

import math

from ..model import State


def pct(ratio: float) -> str:
    """A measured ratio as a whole percent, rounded down.

    Rounded down so "85% used" never shows next to "ok, warning at 85%"
    (84.7% would round up to the threshold it has not reached).
    """
    return f"{math.floor(ratio * 100 + 1e-9):.0f}%"


def pct_limit(ratio: float) -> str:
    """A configured threshold ratio as a percent, keeping given decimals."""
    return f"{round(ratio * 100, 2):g}%"


def size(n: float) -> str:
    """Bytes in binary units, like df -h."""
    if n < 1024:
        return f"{n:.0f} byte" + ("" if n == 1 else "s")
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        n /= 1024
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
    raise AssertionError("unreachable")


def hours(seconds: float) -> str:
    """A duration in hours with one decimal ("26.0 h"), days added past two days."""
    shown = f"{seconds / 3600:.1f} h"
    if seconds >= 2 * 86400:
        shown += f" ({seconds / 86400:.1f} days)"
    return shown


def secs(seconds: float) -> str:
    """A duration in seconds, without trailing zeros ("3 s", "0.5 s")."""
    return f"{seconds:g} s"


def ms(seconds: float) -> str:
    """A short duration in milliseconds ("0.4 ms", "512 ms")."""
    v = seconds * 1000
    return f"{v:.1f} ms" if v < 10 else f"{v:.0f} ms"


def at_least(value: float, warning: float, critical: float) -> State:
    """The state of a value that is bad when it reaches a threshold (≥)."""
    if value >= critical:
        return State.CRITICAL
    if value >= warning:
        return State.WARNING
    return State.OK


def limit_note(state: State, warning: str, critical: str) -> str:
    """The threshold a non-ok state crossed, for the end of a reason."""
    if state is State.CRITICAL:
        return f" (critical at {critical})"
    if state is State.WARNING:
        return f" (warning at {warning})"
    return ""
