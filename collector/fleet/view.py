"""The fleet as people and Prometheus read it (pure): service-discovery
target groups, and each branch's version and drift from the fleet's template."""

from __future__ import annotations

from collections import Counter

from .storage import AgentAboutRow


def metrics_target(address: str | None, port: int, advertise: str | None) -> str | None:
    """host:port to scrape: what the agent advertises, or the address its
    heartbeat came from with the port it serves."""
    if advertise:
        return advertise
    if not address:
        return None
    host = f"[{address}]" if ":" in address else address
    return f"{host}:{port}"


def sd_groups(rows: list[AgentAboutRow], regions: dict[str, str]) -> list[dict]:
    """Prometheus HTTP SD: one target group per scheme, each target labelled with
    its agent, branch and region (the collector's word, not the agent's), so
    `up` and every alert on it carry the branch."""
    groups = []
    for r in rows:
        if not r.metrics_target:
            continue
        labels = {"agent": r.agent, "branch": r.branch, "region": regions.get(r.agent, ""),
                  "__scheme__": r.metrics_scheme or "http"}
        groups.append({"targets": [r.metrics_target], "labels": labels})
    return groups


def expected_template(rows: list[AgentAboutRow], declared: str | None) -> str | None:
    """The template hash branches should have: the declared one, else the one most
    branches share (at least two, and more than any other); None when no hash is
    shared that way (every config its own: nothing to call drift)."""
    if declared:
        return declared
    top = Counter(r.config_sha256 for r in rows).most_common(2)
    if not top or top[0][1] < 2 or (len(top) > 1 and top[1][1] == top[0][1]):
        return None
    return top[0][0]


def fleet_lines(rows: list[AgentAboutRow], regions: dict[str, str], declared: str | None) -> list[dict]:
    """Each agent with its version and whether its config drifted from the template."""
    want = expected_template(rows, declared)
    return [{"agent": r.agent, "branch": r.branch, "region": regions.get(r.agent, ""),
             "version": r.version, "config_sha256": r.config_sha256,
             "drift": want is not None and r.config_sha256 != want,
             "metrics": f"{r.metrics_scheme or 'http'}://{r.metrics_target}/metrics" if r.metrics_target else None,
             "reported_at": r.reported_at} for r in rows]
