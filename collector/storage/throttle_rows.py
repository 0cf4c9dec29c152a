"""Login throttle counts in the store, so collectors on one database count together.

The console's throttle (collector/web/throttle.py) decides; on a shared store
(PostgreSQL) its three keys for a login (the source, the name, the spray) are
read from here before it decides and written back after a failure or a
success, so a guesser cannot multiply its tries by the number of collectors
and a person does not notice which collector answers. Times are wall-clock
seconds (collectors do not share a monotonic clock). A key quiet for the
throttle's FORGET seconds is deleted when it is next written or swept.

On the sole SQLite collector the counts stay in memory, as before.
"""

from __future__ import annotations

SCHEMA = [
    """CREATE TABLE login_throttle (
        by_kind TEXT NOT NULL, key TEXT NOT NULL, failures INTEGER NOT NULL,
        last REAL NOT NULL, burst_started REAL, tries INTEGER NOT NULL,
        PRIMARY KEY (by_kind, key))""",
    "CREATE INDEX login_throttle_last ON login_throttle (last)",
]

Row = tuple[int, float, float | None, int]      # failures, last, burst_started, tries


def read_keys(conn, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Row]:
    """The stored counts of these keys (absent: never failed, or forgotten)."""
    out = {}
    for by, key in keys:
        row = conn.execute("SELECT failures, last, burst_started, tries FROM login_throttle "
                           "WHERE by_kind = ? AND key = ?", (by, key)).fetchone()
        if row is not None:
            out[(by, key)] = (int(row[0]), float(row[1]), row[2], int(row[3]))
    return out


class ThrottleRows:
    """The store's side (a mixin on the store, like the other row classes)."""

    def save_throttle(self, rows: dict[tuple[str, str], Row | None], forget_before: float) -> None:
        """Write these keys' counts (None: the key is gone) and drop quiet ones."""
        with self._transaction() as c:
            for (by, key), row in rows.items():
                if row is None:
                    c.execute("DELETE FROM login_throttle WHERE by_kind = ? AND key = ?",
                              (by, key))
                    continue
                c.execute("INSERT INTO login_throttle (by_kind, key, failures, last, "
                          "burst_started, tries) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT "
                          "(by_kind, key) DO UPDATE SET failures = excluded.failures, "
                          "last = excluded.last, burst_started = excluded.burst_started, "
                          "tries = excluded.tries", (by, key, *row))
            c.execute("DELETE FROM login_throttle WHERE last < ?", (forget_before,))
