"""Which incidents a once-a-second round must look at, without a scan.

A round (grading, runbooks) looks at an incident when it changed since the
last look, when its state moves every moment by itself (an outage in
progress, a runbook wait), or when a time it waits for has come (a deadline
falling due). After the look the round says which of these holds next
(`settle`): every round, at a time (kept in a heap), or not until it changes.
So a round costs what is due, not what the book holds: 3,000 resolved
incidents that wait for nothing are never looked at.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from datetime import datetime

EVERY_ROUND = "every round"


class RoundQueue:
    """Incident ids due for a round: changed ones, every-round ones, timed ones."""

    def __init__(self):
        self._now: set[str] = set()                    # look at them next round
        self._heap: list[tuple[datetime, str]] = []    # (when, id); stale entries skipped
        self._when: dict[str, datetime] = {}           # id -> its one live heap time

    def touch(self, ids: Iterable[str]) -> None:
        """These changed: look at them next round."""
        self._now.update(ids)

    def take(self, now: datetime) -> list[str]:
        """The ids due at `now` (each once); they wait again only as `settle` says."""
        while self._heap and self._heap[0][0] <= now:
            when, iid = heapq.heappop(self._heap)
            if self._when.get(iid) == when:
                del self._when[iid]
                self._now.add(iid)
        due, self._now = sorted(self._now), set()
        for iid in due:
            self._when.pop(iid, None)      # looked at now: an older time no longer holds
        return due

    def settle(self, iid: str, next_look: datetime | str | None) -> None:
        """After a look: EVERY_ROUND, at a time, or None (until it changes again)."""
        self._now.discard(iid)
        self._when.pop(iid, None)
        if next_look == EVERY_ROUND:
            self._now.add(iid)
        elif next_look is not None:
            self._when[iid] = next_look
            heapq.heappush(self._heap, (next_look, iid))

    def __len__(self) -> int:
        """How many incidents wait in it (every round or at a time)."""
        return len(self._now | self._when.keys())


def next_grading(inc, facts) -> datetime | str | None:
    """When time alone can next change an incident's grade or deadlines (grading
    reads facts as of `now` only through what is still open): every round while
    an outage or an observed fault is in progress or a person's criterion holds;
    else when its earliest due deadline falls due; else never by itself."""
    if facts.assertions or any(o.end is None for o in facts.outages) \
            or any(o.end is None for o in facts.observed):
        return EVERY_ROUND
    due = [d.due_at for d in inc.deadlines if d.status == "due"]
    return min(due) if due else None
