"""The collector's clock: wall time, or wall time shifted for drills and tests.

domain.md's deadlines run for hours; a drill (or an end-to-end test) must
not wait for them. With BRANCHWATCH_CLOCK_OFFSET_FILE set, the collector's
clock is wall time plus the seconds written in that file, re-read whenever
the file changes, so a drill can move a running collector forward. A file
holding "@SECONDS" instead stops the clock at that epoch time (a test that
measures durations on the collector's clock gets them exact). Without it
(production), it is time.time and nothing else.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

ENV = "BRANCHWATCH_CLOCK_OFFSET_FILE"


def offset_clock(path: str) -> Callable[[], float]:
    """time.time() + the float in `path` (0 while the file is missing or unreadable),
    or the fixed time "@SECONDS" in it."""
    state = {"mtime": None, "offset": 0.0, "fixed": None}

    def now() -> float:
        try:
            mtime = os.stat(path).st_mtime_ns
            if mtime != state["mtime"]:
                with open(path, encoding="utf-8") as f:
                    text = f.read().strip()
                if text.startswith("@"):
                    state["fixed"] = float(text[1:])
                else:
                    state["offset"], state["fixed"] = float(text or 0), None
                state["mtime"] = mtime
        except (OSError, ValueError):
            pass                    # keep the last good offset
        if state["fixed"] is not None:
            return state["fixed"]
        return time.time() + state["offset"]
    return now


def clock_from_env(env=os.environ) -> Callable[[], float]:
    """The clock this process should use."""
    path = env.get(ENV)
    return offset_clock(path) if path else time.time
