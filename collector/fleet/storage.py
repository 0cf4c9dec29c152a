"""What each agent last said about itself (version, template hash, /metrics
endpoint), kept in the collector's database. Written only when it changes,
so a heartbeat costs no write for it."""

from __future__ import annotations

import msgspec

SCHEMA = [
    """CREATE TABLE agent_about (
        agent TEXT PRIMARY KEY, branch TEXT NOT NULL, version TEXT NOT NULL,
        config_sha256 TEXT NOT NULL, metrics_scheme TEXT, metrics_target TEXT,
        reported_at REAL NOT NULL)""",
]


class AgentAboutRow(msgspec.Struct, kw_only=True):
    """One agent's last word about itself; `metrics_target` is host:port."""

    agent: str
    branch: str
    version: str
    config_sha256: str
    metrics_scheme: str | None
    metrics_target: str | None
    reported_at: float


def read_about(conn) -> list[AgentAboutRow]:
    """Every agent's last word about itself, on any connection (a reader's too)."""
    rows = conn.execute("SELECT agent, branch, version, config_sha256, metrics_scheme, "
                        "metrics_target, reported_at FROM agent_about ORDER BY agent")
    return [AgentAboutRow(agent=r[0], branch=r[1], version=r[2], config_sha256=r[3],
                          metrics_scheme=r[4], metrics_target=r[5], reported_at=r[6]) for r in rows]


class FleetRows:
    """Store mixin: agent_about rows (the store gives `_transaction` and `_conn`)."""

    def put_about(self, row: AgentAboutRow) -> None:
        """Keep what an agent said about itself (replacing what it said before)."""
        with self._transaction() as c:
            c.execute("INSERT INTO agent_about (agent, branch, version, config_sha256, "
                      "metrics_scheme, metrics_target, reported_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                      "ON CONFLICT (agent) DO UPDATE SET branch = excluded.branch, "
                      "version = excluded.version, config_sha256 = excluded.config_sha256, "
                      "metrics_scheme = excluded.metrics_scheme, "
                      "metrics_target = excluded.metrics_target, reported_at = excluded.reported_at",
                      (row.agent, row.branch, row.version, row.config_sha256, row.metrics_scheme,
                       row.metrics_target, row.reported_at))

    def about_rows(self) -> list[AgentAboutRow]:
        """Every agent's last word about itself, by agent id."""
        return read_about(self._conn)
