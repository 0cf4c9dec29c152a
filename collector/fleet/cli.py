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


def add_enrol_commands(csub: argparse._SubParsersAction) -> None:
    """Add `collector enrol` and `collector revoke` (the leadership, over the API)."""
    e = csub.add_parser("enrol", parents=[common_arguments()],
                        help="enrol an agent: print its one-time code (for `agent enrol`)")
    e.add_argument("--agent", required=True, metavar="ID")
    e.add_argument("--branch", required=True, metavar="CODE")
    e.add_argument("--region", default="", metavar="NAME")
    r = csub.add_parser("revoke", parents=[common_arguments()],
                        help="revoke an enrolled agent: its token is refused from now on")
    r.add_argument("--agent", required=True, metavar="ID")
    r.add_argument("--why", required=True)


def run_enrol(args: argparse.Namespace) -> int:
    """`collector enrol` or `collector revoke`; the exit status."""
    if args.collector_command == "enrol":
        answer = request(args, "POST", "/api/v1/enrolments",
                         {"agent": args.agent, "branch": args.branch, "region": args.region})
        return finish(args, answer, lambda d: (
            f"enrolled {d['agent']} (branch {d['branch']}); one-time code, valid until "
            f"{_when(d['code_expires_at'])}:\n{d['code']}\n"
            f"on the branch: branchwatch agent enrol --config /etc/branchwatch/agent.yaml "
            f"--code {d['code']}"))
    answer = request(args, "POST", f"/api/v1/enrolments/{args.agent}/revoke", {"why": args.why})
    return finish(args, answer, lambda d: f"revoked {d['agent']}: its token is refused from now on")


def _when(ts: float) -> str:
    from datetime import datetime, timezone
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


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
