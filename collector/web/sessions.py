"""Console sessions: who is logged in, their CSRF token, when they expire.

Kept in memory (a collector restart logs everyone out, which is safe) and
timed on a monotonic clock: a drill that shifts the collector's clock
(collector/clock.py) must not expire or extend anyone's session. A session
ends after `idle` seconds without a request or `max_age` seconds in all,
whichever comes first (OWASP session management: both timeouts). Failed
logins for one name are throttled: after FAILURES_ALLOWED failures within
THROTTLE_WINDOW seconds, that name is refused until the window passes.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FAILURES_ALLOWED = 5
THROTTLE_WINDOW = 300.0


@dataclass
class Session:
    """One logged-in person."""

    id: str
    user: str
    roles: tuple[str, ...]
    csrf: str
    started: float
    last_seen: float
    flash: list[tuple[str, str]] = field(default_factory=list)   # (kind, text) shown once


class Sessions:
    """Every live session, by its (random, unguessable) id."""

    def __init__(self, idle: float, max_age: float,
                 clock: Callable[[], float] = time.monotonic):
        self.idle, self.max_age, self.clock = idle, max_age, clock
        self._by_id: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}

    def start(self, user: str, roles) -> Session:
        """A new session (a new id at every login: no session fixation)."""
        self._sweep()
        now = self.clock()
        s = Session(secrets.token_urlsafe(32), user, tuple(roles), secrets.token_urlsafe(32),
                    now, now)
        self._by_id[s.id] = s
        self._failures.pop(user, None)
        return s

    def get(self, session_id: str | None, touch: bool = True) -> Session | None:
        """The live session with this id, or None if unknown or expired. `touch`:
        this request is the person's activity (a live-update poll is not)."""
        s = self._by_id.get(session_id or "")
        if s is None:
            return None
        now = self.clock()
        if now - s.last_seen > self.idle or now - s.started > self.max_age:
            del self._by_id[s.id]
            return None
        if touch:
            s.last_seen = now
        return s

    def end(self, session_id: str | None) -> Session | None:
        """Log out: the session is gone at once."""
        return self._by_id.pop(session_id or "", None)

    def csrf_ok(self, s: Session, token: str | None) -> bool:
        return token is not None and hmac.compare_digest(s.csrf, token)

    def throttled(self, user: str) -> bool:
        """True while this name has had too many failed logins lately."""
        recent = [t for t in self._failures.get(user, []) if self.clock() - t < THROTTLE_WINDOW]
        self._failures[user] = recent
        return len(recent) >= FAILURES_ALLOWED

    def failed(self, user: str) -> None:
        self._failures.setdefault(user, []).append(self.clock())

    def _sweep(self) -> None:
        """Forget expired sessions (at each login; they are refused on use anyway)."""
        now = self.clock()
        for sid, s in list(self._by_id.items()):
            if now - s.last_seen > self.idle or now - s.started > self.max_age:
                del self._by_id[sid]
