"""What a branch page shows, from the agent's last heartbeat (pure; no I/O).

The agent's UPS checks say their value in the reason (agent/ups/status.py:
"battery charge 85%", "battery runtime 12.5 min", "load 40%"): the charge,
runtime and load are read back from there, so the page needs nothing the
heartbeat does not already carry. A reason with no number (the UPS cannot
be seen, a value out of range) is shown as it is, beside an unknown value.
"""

from __future__ import annotations

import re
from urllib.parse import quote, urlencode

from agent.wire import CheckStatus

# The shipped dashboard (config/grafana/dashboards/branchwatch.json): its uid and
# the variables a link chooses (tests/test_console_branch.py checks both against it).
DASHBOARD_UID, DASHBOARD_SLUG = "branchwatch", "branchwatch"

_NUMBER = {"battery_charge": re.compile(r"(\d+(?:\.\d+)?)%"),
           "battery_runtime": re.compile(r"(\d+(?:\.\d+)?) min"),
           "load": re.compile(r"(\d+(?:\.\d+)?)%")}
READINGS = ("battery_charge", "battery_runtime", "load")


def current_checks(agents, changes: list[dict]) -> list:
    """The agents' heartbeat checks, each replaced by a state change the log
    received after that heartbeat (heartbeats come every 15 s or so; a power
    cut is sent at once). `changes`: the branch's newest changes, newest first."""
    out = []
    for a in agents:
        checks = {c.check: c for c in a.checks}
        for e in reversed(changes):                 # oldest first: the newest wins
            if e["agent"] == a.agent and e["kind"] == "state" and (
                    a.heartbeat_at is None or e["received_at"] > a.heartbeat_at):
                checks[e["check"]] = CheckStatus(check=e["check"], state=e["new"],
                                                 reason=e["reason"])
        out += checks.values()
    return out


def ups_readings(checks) -> list[dict]:
    """Per UPS: its power state and each reading (value, unit, state, reason)."""
    units: dict[str, dict] = {}
    for c in checks:
        parts = c.check.split("/")
        if len(parts) != 3 or parts[0] != "ups":
            continue
        u = units.setdefault(parts[1], {"ups": parts[1], "checks": {}, "readings": {}})
        u["checks"][parts[2]] = c
        pattern = _NUMBER.get(parts[2])
        if pattern is not None:
            m = pattern.search(c.reason)
            u["readings"][parts[2]] = {"value": float(m.group(1)) if m else None,
                                       "state": c.state, "reason": c.reason}
    out = []
    for name, u in sorted(units.items()):
        power = u["checks"].get("on_battery")
        comm = u["checks"].get("comm")
        out.append({"ups": name, "power": power, "comm": comm,
                    "readings": [(k, u["readings"].get(k)) for k in READINGS]})
    return out


def devices(checks, prefix: str) -> list[dict]:
    """Lines (`line/NAME/...`) or switches (`switch/NAME/...`): each device's checks."""
    found: dict[str, list] = {}
    for c in checks:
        parts = c.check.split("/", 2)
        if parts[0] == prefix and len(parts) > 1:
            found.setdefault(parts[1], []).append(c)
    rank = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}
    return [{"name": n, "state": max((c.state for c in cs), key=lambda s: rank.get(s, 1)),
             "checks": sorted(cs, key=lambda c: c.check)} for n, cs in sorted(found.items())]


def grafana_link(base: str | None, branch: str, region: str) -> str | None:
    """The shipped dashboard with this branch (and its region) chosen, or None."""
    if not base:
        return None
    query = urlencode({"var-region": region or "$__all", "var-branch": branch})
    return f"{base.rstrip('/')}/d/{quote(DASHBOARD_UID)}/{DASHBOARD_SLUG}?{query}"
