"""Console sessions in the collector's database, so a restart keeps
people logged in (collector/web/sessions.py holds the rules; this is rows).

The table keys a session by the sha256 of its cookie's id, never the id
itself: someone reading the database (a backup) cannot log in with what is
in it. Times are wall-clock seconds (time.time, not a drill's shifted clock).
"""

from __future__ import annotations

import json

from .dialect import Both

# Appended to collector.store.MIGRATIONS (a migration of its own).
SCHEMA = [
    # `user` is a reserved word in PostgreSQL: quoted there (and in every query).
    Both(sqlite="""CREATE TABLE console_sessions (
        id_sha256 TEXT PRIMARY KEY, user TEXT NOT NULL, roles TEXT NOT NULL,
        csrf TEXT NOT NULL, started REAL NOT NULL, last_seen REAL NOT NULL)""",
         postgresql="""CREATE TABLE console_sessions (
        id_sha256 TEXT COLLATE "C" PRIMARY KEY, "user" TEXT NOT NULL, roles TEXT NOT NULL,
        csrf TEXT NOT NULL, started DOUBLE PRECISION NOT NULL,
        last_seen DOUBLE PRECISION NOT NULL)"""),
    "CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen)",
]


class SessionRows:
    """Mixed into the store (SqlStore): `self._conn` and `self._transaction()` are its."""

    def put_session(self, id_sha256: str, user: str, roles: list[str], csrf: str,
                    started: float, last_seen: float) -> None:
        """Keep a new session."""
        with self._transaction() as c:
            c.execute("INSERT INTO console_sessions VALUES (?,?,?,?,?,?) ON CONFLICT (id_sha256) "
                      "DO UPDATE SET \"user\" = excluded.\"user\", roles = excluded.roles, "
                      "csrf = excluded.csrf, started = excluded.started, "
                      "last_seen = excluded.last_seen",
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
            'SELECT id_sha256, "user", roles, csrf, started, last_seen FROM console_sessions '
            "WHERE last_seen > ? AND started > ?", (now - idle, now - max_age)).fetchall()
        return [(i, u, tuple(json.loads(r)), c, s, ls) for i, u, r, c, s, ls in rows]

    def stored_session(self, id_sha256: str) -> tuple | None:
        """One session as stored, or None (see `read_session`)."""
        return read_session(self._conn, id_sha256)


def read_session(conn, id_sha256: str) -> tuple | None:
    """One session as stored (id_sha256, user, roles, csrf, started, last_seen), or None,
    on any connection (a reader's too): what another collector on the same database
    sees of a login here."""
    row = conn.execute(
        'SELECT id_sha256, "user", roles, csrf, started, last_seen FROM console_sessions '
        "WHERE id_sha256 = ?", (id_sha256,)).fetchone()
    if row is None:
        return None
    i, u, r, c, s, ls = row
    return (i, u, tuple(json.loads(r)), c, s, ls)
