"""Who leads the engine and how far behind it is: `branchwatch collector status`
and the collector's metrics for the same.

One read of the store (any connection, read only): the lease row and every
node's last word (PostgreSQL; on SQLite the one collector holding the data
directory's lock leads), the event log's head against the engine's cursor
(entries and the age of the oldest not applied), and the outbox entries not
done, by kind.
"""

from __future__ import annotations

import json
import sys
import time

from prometheus_client.core import GaugeMetricFamily

from ..storage import event_log
from .lease import lease_status


def read_status(conn, now: float | None = None) -> dict:
    """The engine's progress and the outbox depth, from one connection."""
    now = time.time() if now is None else now
    head = event_log.head(conn)
    cursor = event_log.cursor(conn, "engine")
    row = conn.execute("SELECT min(received_at) FROM event_log WHERE seq > ?",
                       (cursor,)).fetchone()
    oldest = row[0] / 1_000_000 if row and row[0] is not None else None
    depth = {kind: n for kind, n in conn.execute(
        "SELECT kind, count(*) FROM outbox WHERE status <> 'done' GROUP BY kind")}
    return {"log_head": head, "cursor": cursor, "lag_entries": head - cursor,
            "lag_seconds": max(0.0, now - oldest) if oldest is not None else 0.0,
            "outbox_depth": depth}


def leader_status(conn, shared: bool) -> dict:
    """The lease on a shared store; on SQLite the sole collector leads."""
    if not shared:
        return {"leader": "the one collector on this SQLite data directory", "epoch": 1,
                "renewed_ago": None, "nodes": []}
    try:
        return lease_status(conn)
    except Exception:           # no collector has taken the lease yet (no table)
        return {"leader": None, "epoch": None, "renewed_ago": None, "nodes": []}


def render(status: dict) -> str:
    """The status as lines a person reads."""
    lines = [f"leader:       {status['leader'] or 'none (no collector leads now)'}"
             + (f" (epoch {status['epoch']}" + (f", renewed {status['renewed_ago']:.1f} s ago"
                                               if status["renewed_ago"] is not None else "")
                + ")" if status["epoch"] is not None else ""),
             f"cursor lag:   {status['lag_entries']} entries, {status['lag_seconds']:.1f} s "
             f"(log head {status['log_head']}, engine at {status['cursor']})",
             "outbox depth: " + (", ".join(f"{k} {n}" for k, n in
                                           sorted(status["outbox_depth"].items())) or "0")]
    for n in status["nodes"]:
        lines.append(f"node {n['node']}: {'leads' if n['leading'] else 'standby'}, "
                     f"seen {n['seen_ago']:.1f} s ago")
    return "\n".join(lines)


def run(config_path: str, as_json: bool = False) -> int:
    """`branchwatch collector status --config FILE`; exit 0, or 2 when the store
    cannot be read (one line)."""
    from ..config import ConfigError, load
    try:
        config = load(config_path)
        conn, shared = _connect(config)
    except ConfigError as e:
        print(f"branchwatch: {config_path}: {e}", file=sys.stderr)
        return 2
    except Exception as e:      # noqa: BLE001 - unreachable database, no file: one line
        print(f"branchwatch: collector status: {str(e).strip().splitlines()[0] if str(e) else e}",
              file=sys.stderr)
        return 2
    try:
        status = {**leader_status(conn, shared), **read_status(conn)}
    finally:
        conn.close()
    print(json.dumps(status, ensure_ascii=False) if as_json else render(status))
    return 0


def _connect(config):
    if config.storage.postgresql is None:
        import sqlite3
        path = config.db_path()
        if not path.exists():
            raise FileNotFoundError(f"no collector database at {path}")
        from ..storage.dialect import SqliteConnection
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, factory=SqliteConnection), False
    from ..storage.dialect import PgConnection
    return PgConnection.connect(config.store_dsn(), connect_timeout=10,
                                application_name="branchwatch-status"), True


class LeaderMetrics:
    """branchwatch_collector_leader, _lease_epoch (from memory), _cursor_lag_*,
    _outbox_depth (from the last status read off the writer: `refresh`)."""

    def __init__(self, lead):
        self.lead = lead
        self.last: dict | None = None

    def refresh(self, conn) -> None:
        """Read the status on a reader connection (called once a second)."""
        self.last = read_status(conn)

    def collect(self):
        leading = GaugeMetricFamily("branchwatch_collector_leader",
                                    "1 while this collector runs the engine (holds the lease)")
        leading.add_metric([], 1.0 if self.lead.leading() else 0.0)
        yield leading
        epoch = GaugeMetricFamily("branchwatch_collector_lease_epoch",
                                  "The lease epoch (fencing token) this collector leads with; "
                                  "0 on a standby")
        epoch.add_metric([], float(self.lead.lease.epoch or 0))
        yield epoch
        if self.last is None:
            return
        yield GaugeMetricFamily("branchwatch_collector_cursor_lag_entries",
                                "Event log entries not yet applied by the engine",
                                value=self.last["lag_entries"])
        yield GaugeMetricFamily("branchwatch_collector_cursor_lag_seconds",
                                "Age of the oldest event log entry not yet applied",
                                value=self.last["lag_seconds"])
        depth = GaugeMetricFamily("branchwatch_collector_outbox_depth",
                                  "Outbox entries not done, by kind", labels=["kind"])
        for kind, n in sorted(self.last["outbox_depth"].items()):
            depth.add_metric([kind], n)
        yield depth
