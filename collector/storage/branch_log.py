"""One branch's state changes from the event log, newest first, a page at a
time: what the branch page shows as "every state change". Read on a reader
connection (incident_reads.StoreReaders), by the (branch, seq) index of
migration 14 (store.py), so a branch's page costs its own rows only."""

from __future__ import annotations

import sqlite3

from .event_log import from_us

MAX_PAGE = 500


def branch_changes(conn: sqlite3.Connection, branch: str, before: int | None = None,
                   limit: int = 100) -> tuple[list[dict], int | None]:
    """Up to `limit` state changes at `branch` with seq below `before` (newest first),
    and the `before` of the next page (None: no more)."""
    limit = max(1, min(limit, MAX_PAGE))
    sql = ("SELECT seq, agent, check_name, kind, old_state, new_state, reason, observed_at, "
           "received_at, diagnosis FROM event_log WHERE branch = ?")
    args: list = [branch]
    if before is not None:
        sql += " AND seq < ?"
        args.append(before)
    rows = conn.execute(sql + f" ORDER BY seq DESC LIMIT {limit + 1}", args).fetchall()
    more = len(rows) > limit
    out = [{"seq": seq, "agent": agent, "check": check, "kind": kind, "old": old, "new": new,
            "reason": reason, "observed_at": from_us(obs), "received_at": from_us(rx),
            "diagnosis": diag}
           for seq, agent, check, kind, old, new, reason, obs, rx, diag in rows[:limit]]
    return out, (out[-1]["seq"] if more else None)
