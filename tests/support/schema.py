"""Databases as an older collector left them: for migration tests."""

from __future__ import annotations

import sqlite3

from collector.storage.dialect import SQLITE
from collector.store import MIGRATIONS


def schema_before(path, step) -> sqlite3.Connection:
    """A database with every migration before the one holding `step` applied."""
    [version] = [v for v, statements in MIGRATIONS if step in statements]
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
                 "applied_at TEXT NOT NULL)")
    for v, statements in MIGRATIONS:
        if v < version:
            for sql in statements:
                sql(conn) if callable(sql) else conn.execute(SQLITE.ddl(sql))
            conn.execute("INSERT INTO schema_version VALUES (?, 'before')", (v,))
    return conn
