"""`branchwatch runbook list|show|start|confirm|skip|fail`: the operator's side of
the runbooks on incidents (issue 6), over the collector's API with an operator
token, like `branchwatch incidents`.

  branchwatch runbook show INC-…                       # steps done, the one waiting
  branchwatch runbook confirm INC-… find-cause --note "tree on the supply line"
  branchwatch runbook confirm INC-… long-outage --choice long --note "power co.: 4 h"
  branchwatch runbook skip INC-… call-vendor --why "vendor already on site"
  branchwatch runbook fail INC-… bypass --why "bypass switch jammed"
  branchwatch runbook start INC-… ups-fault --why "the UPS itself is failing"
"""

from __future__ import annotations

import argparse

from .incidents_cli import common_arguments, finish, request


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `runbook SUBCOMMAND` to a `branchwatch` subparser set."""
    p = sub.add_parser("runbook", help="show and carry out the runbooks of incidents")
    common = common_arguments()
    rsub = p.add_subparsers(dest="runbook_command", metavar="SUBCOMMAND", required=True)
    rsub.add_parser("list", parents=[common], help="the runbooks the collector knows")
    rsub.add_parser("show", parents=[common], help="an incident's runbooks and their steps"
                    ).add_argument("incident")
    s = rsub.add_parser("start", parents=[common], help="start another runbook by hand")
    s.add_argument("incident")
    s.add_argument("runbook")
    s.add_argument("--why", required=True)
    for action, field, text in (("confirm", "note", "confirm the step waiting for a person"),
                                ("skip", "why", "skip a step (recorded with why)"),
                                ("fail", "why", "mark a step failed: plan failed, fallback")):
        a = rsub.add_parser(action, parents=[common], help=text)
        a.add_argument("incident")
        a.add_argument("step")
        a.add_argument(f"--{field}", required=True)
        a.add_argument("--run", help="the run (R1, R2, ...); default: the one at that step")
        if action == "confirm":
            a.add_argument("--choice", help="a decision's answer")


def show(inc: dict) -> str:
    """An incident's runbooks as text: each step done, and what waits."""
    out = [f"{inc['id']}  {inc['status']}  {inc['title']}"]
    if not inc.get("runbooks"):
        out.append("  no runbook")
    for run in inc.get("runbooks", []):
        rb = run["runbook"]
        out.append(f"  {run['id']} {rb['id']} ({run['status']}): {rb['title']}"
                   f"  started {run['started_at']} by {run['started_by']}")
        titles = {s["id"]: s for s in rb["steps"]}
        for r in run["records"]:
            step = titles[r["step"]]
            mark = {"done": "x", "skipped": "-", "failed": "!", "running": ">",
                    "waiting": ">", "not_needed": "~"}[r["status"]]
            who = f" by {r['who']}" if r["who"] else ""
            note = f": {r['note']}" if r["note"] else ""
            choice = f" [{r['choice']}]" if r["choice"] else ""
            role = f" ({step['role']})" if step.get("role") else ""
            out.append(f"    [{mark}] {r['step']}{choice} {r['status']}{who}{note}")
            if r["status"] in ("waiting", "running"):
                out.append(f"        {step['title']}{role}: {step.get('text') or step.get('question') or ''}")
                if step.get("options"):
                    out.append(f"        choices: {', '.join(step['options'])}")
    for a in inc.get("actions", []):
        out.append(f"  agent {a['at']} {a['check']} {'ok' if a['ok'] else 'FAILED'}: {a['reason']}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Carry out one `runbook` subcommand; 0 ok, 1 refused/not found, 2 unusable."""
    cmd = args.runbook_command
    if cmd == "list":
        answer = request(args, "GET", "/api/v1/runbooks")
    elif cmd == "show":
        answer = request(args, "GET", f"/api/v1/incidents/{args.incident}")
    elif cmd == "start":
        answer = request(args, "POST", f"/api/v1/incidents/{args.incident}/runbooks",
                         {"runbook": args.runbook, "why": args.why})
    else:
        body = {k: getattr(args, k) for k in ("note", "why", "run", "choice")
                if getattr(args, k, None) is not None}
        answer = request(args, "POST",
                         f"/api/v1/incidents/{args.incident}/steps/{args.step}/{cmd}", body)
    return finish(args, answer, lambda data: "\n".join(
        f"{r['id']:<20} {r['title']}  ({len(r['steps'])} steps; {r['source']})"
        for r in data["runbooks"]) or "no runbooks" if cmd == "list" else show(data))
