"""Console sessions in the collector's SQLite database, so a restart keeps
people logged in (collector/web/sessions.py holds the rules; this is rows).

The table keys a session by the sha256 of its cookie's id, never the id
itself: someone reading the database (a backup) cannot log in with what is
in it. Times are wall-clock seconds (time.time, not a drill's shifted clock).
"""

from __future__ import annotations

import json

# Appended to collector.store.MIGRATIONS (a migration of its own).
SCHEMA = [
    """CREATE TABLE console_sessions (
        id_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL, roles TEXT NOT NULL,
        csrf TEXT NOT NULL, started REAL NOT NULL, last_seen REAL NOT NULL)""",
    "CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen)",
]


class SessionRows:
    """Mixed into SqliteStore: `self._conn` and `self._transaction()` are its."""

    def put_session(self, id_sha256: str, user: str, roles: list[str], csrf: str,
                    started: float, last_seen: float) -> None:
        """Keep a new session."""
        with self._transaction() as c:
            c.execute("INSERT OR REPLACE INTO console_sessions VALUES (?,?,?,?,?,?)",
                      (id_sha256, user, json.dumps(list(roles)), csrf, started, last_seen))

    def touch_session(self, id_sha256: str, last_seen: float) -> None:
        """Move a session's last activity on."""
        with self._transaction() as c:
            c.execute("UPDATE console_sessions SET last_seen = ? WHERE id_sha256 = ?",
                      (last_seen, id_sha256))

    def drop_sessions(self, ids_sha256: list[str]) -> None:
        """Forget sessions (logged out, or expired)."""
        with self._transaction() as c:
            c.executemany("DELETE FROM console_sessions WHERE id_sha256 = ?",
                          [(i,) for i in ids_sha256])

    def live_sessions(self, now: float, idle: float, max_age: float) -> list[tuple]:
        """Sessions not yet expired: (id_sha256, user, roles, csrf, started, last_seen)."""
        rows = self._conn.execute(
            "SELECT id_sha256, user, roles, csrf, started, last_seen FROM console_sessions "
            "WHERE last_seen > ? AND started > ?", (now - idle, now - max_age)).fetchall()
        return [(i, u, tuple(json.loads(r)), c, s, ls) for i, u, r, c, s, ls in rows]
