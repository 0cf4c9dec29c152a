"""Console sessions: who is logged in, their CSRF token, when they expire.

A session ends after `idle` seconds without a request or `max_age` seconds
in all, whichever comes first (OWASP session management: both timeouts).
Sessions are kept in the collector's store (collector/storage/sessions.py)
as well as here, so a collector restart keeps people logged in: the store
is written through `take_writes`, which the console runs on the store's
writer after each request that changed something. A session's activity is
written at most every TOUCH_SAVE seconds (not at every page), so after a
restart a session may expire up to that much early, never late.

Times are the real wall clock (time.time), which survives a restart; a
drill shifts only the incident clock (collector/clock.py), never this one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TOUCH_SAVE = 60.0


def id_hash(session_id: str) -> str:
    """What the store keys a session by: the sha256 of its cookie's id."""
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


@dataclass
class Session:
    """One logged-in person."""

    key: str                   # id_hash(id)
    user: str
    roles: tuple[str, ...]
    csrf: str
    started: float
    last_seen: float
    id: str = ""               # the cookie's value; known only in the process that made it
    saved_seen: float = 0.0    # last_seen as the store has it
    flash: list[tuple[str, str]] = field(default_factory=list)   # (kind, text) shown once


class Sessions:
    """Every live session, by the hash of its (random, unguessable) id."""

    def __init__(self, idle: float, max_age: float,
                 clock: Callable[[], float] = time.time):
        self.idle, self.max_age, self.clock = idle, max_age, clock
        self._by_key: dict[str, Session] = {}
        self._writes: list[tuple[str, tuple]] = []

    def __len__(self) -> int:
        return len(self._by_key)

    def load(self, rows: list[tuple]) -> None:
        """Sessions kept in the store (SessionRows.live_sessions) before a restart."""
        for key, user, roles, csrf, started, last_seen in rows:
            self._by_key[key] = Session(key, user, tuple(roles), csrf, started, last_seen,
                                        saved_seen=last_seen)

    def start(self, user: str, roles) -> Session:
        """A new session (a new id at every login: no session fixation)."""
        self._sweep()
        now = self.clock()
        sid = secrets.token_urlsafe(32)
        s = Session(id_hash(sid), user, tuple(roles), secrets.token_urlsafe(32), now, now,
                    id=sid, saved_seen=now)
        self._by_key[s.key] = s
        self._writes.append(("put_session", (s.key, s.user, list(s.roles), s.csrf,
                                             s.started, s.last_seen)))
        return s

    def get(self, session_id: str | None, touch: bool = True) -> Session | None:
        """The live session with this id, or None if unknown or expired. `touch`:
        this request is the person's activity (a live-update poll is not)."""
        if not session_id:
            return None
        s = self._by_key.get(id_hash(session_id))
        if s is None:
            return None
        now = self.clock()
        if self._expired(s, now):
            self._forget([s.key])
            return None
        if touch:
            s.last_seen = now
            if now - s.saved_seen >= TOUCH_SAVE:
                s.saved_seen = now
                self._writes.append(("touch_session", (s.key, now)))
        return s

    def end(self, session_id: str | None) -> Session | None:
        """Log out: the session is gone at once."""
        s = self._by_key.get(id_hash(session_id or ""))
        if s is not None:
            self._forget([s.key])
        return s

    def csrf_ok(self, s: Session, token: str | None) -> bool:
        """True when the form carried this session's CSRF token."""
        return isinstance(token, str) and hmac.compare_digest(s.csrf.encode(),
                                                              token.encode("utf-8", "replace"))

    def take_writes(self) -> list[tuple[str, tuple]]:
        """The store calls (SessionRows method, args) owed since the last call."""
        out, self._writes = self._writes, []
        return out

    def _expired(self, s: Session, now: float) -> bool:
        return now - s.last_seen > self.idle or now - s.started > self.max_age

    def _forget(self, keys: list[str]) -> None:
        for k in keys:
            self._by_key.pop(k, None)
        self._writes.append(("drop_sessions", (keys,)))

    def _sweep(self) -> None:
        """Forget expired sessions (at each login; they are refused on use anyway)."""
        now = self.clock()
        gone = [k for k, s in self._by_key.items() if self._expired(s, now)]
        if gone:
            self._forget(gone)


def apply_writes(store, writes: list[tuple[str, tuple]]) -> None:
    """Run `Sessions.take_writes()` on the store (on its writer thread)."""
    for method, args in writes:
        getattr(store, method)(*args)
