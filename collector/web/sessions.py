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

When several collectors share one database (PostgreSQL), a person's
requests may reach any of them: the console reads the stored session on
every request (on a reader connection, off the event loop) and hands it to
`get(..., stored=row)`, so a login on one collector is known on the others,
and a logout or expiry on one ends the session on all of them at once (this
memory is then only a cache of what the store holds).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TOUCH_SAVE = 60.0
NOT_READ = object()      # Sessions.get: no stored row was read (the store is ours alone)


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

    def get(self, session_id: str | None, touch: bool = True,
            stored: tuple | None | object = NOT_READ) -> Session | None:
        """The live session with this id, or None if unknown or expired. `touch`:
        this request is the person's activity (a live-update poll is not).
        `stored`: the session's row as a shared store holds it (None: not there),
        read by the caller; NOT_READ when the store is this collector's alone."""
        if not session_id:
            return None
        key = id_hash(session_id)
        s = self._by_key.get(key)
        if stored is not NOT_READ:
            s = self._as_stored(key, s, stored)
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

    def _as_stored(self, key: str, s: Session | None, row: tuple | None) -> Session | None:
        """The session as the shared store holds it (another collector may have
        started, touched or ended it)."""
        if row is None:                  # ended (or never begun) on any collector
            self._by_key.pop(key, None)
            return None
        _, user, roles, csrf, started, last_seen = row
        if s is None:
            s = Session(key, user, tuple(roles), csrf, started, last_seen, saved_seen=last_seen)
            self._by_key[key] = s
        else:
            s.last_seen = max(s.last_seen, last_seen)
            s.saved_seen = max(s.saved_seen, last_seen)
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
