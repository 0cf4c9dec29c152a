"""`branchwatch fleet`: every branch's agent by version, its /metrics, and
whether its config drifted from the fleet's template (GET /api/v1/fleet)."""

from __future__ import annotations

import argparse
from collections import defaultdict

from ..incidents_cli import common_arguments, finish, request


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `fleet` to a `branchwatch` subparser set."""
    sub.add_parser("fleet", parents=[common_arguments()],
                   help="branches by agent version, with config drift from the template")


def run(args: argparse.Namespace) -> int:
    """List the fleet; the exit status."""
    return finish(args, request(args, "GET", "/api/v1/fleet"), render)


def render(data: dict) -> str:
    """Branches grouped by version, newest first; drifted configs marked."""
    by_version: dict[str, list[dict]] = defaultdict(list)
    for a in data["agents"]:
        by_version[a["version"]].append(a)
    if not by_version:
        return "no agent has reported its version yet"
    lines = []
    template = data.get("template_sha256")
    drifted = sum(a["drift"] for a in data["agents"])
    lines.append(f"{len(data['agents'])} agents, {len(by_version)} versions, "
                 f"{drifted} with config drift"
                 + (f" (template {template[:12]})" if template else " (template: the most common config)"))
    for version in sorted(by_version, key=_version_key, reverse=True):
        agents = by_version[version]
        lines.append(f"{version}  ({len(agents)})")
        for a in sorted(agents, key=lambda a: (a["region"], a["branch"], a["agent"])):
            mark = "DRIFT " if a["drift"] else "      "
            lines.append(f"  {mark}{a['branch']:<14} {a['region'] or '-':<10} {a['agent']:<24} "
                         f"config {a['config_sha256'][:12]}  {a['metrics'] or ''}".rstrip())
    return "\n".join(lines)


def _version_key(v: str) -> tuple:
    return tuple(int(p) if p.isdigit() else -1 for p in v.replace("-", ".").split("."))
