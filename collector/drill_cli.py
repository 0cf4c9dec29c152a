"""`branchwatch drill run|end|list|show|report|edit|archive|scenarios`: drills
(issue 7; domain.md §5) over the collector's API (/api/v1/drills) with an
operator token, like `branchwatch incidents`.

  branchwatch drill run power-cut --branch BR-0417 [--plan plan.yaml] [--speed 10]
  branchwatch drill run region-outage --region north
  branchwatch drill run ./my-scenario.yaml --branch BR-0417     # a scenario file
  branchwatch drill end DRILL-20260615-1a2b3c [--why "drill over"]
  branchwatch drill edit DRILL-… --set followups="replace the UPS batteries by July"
  branchwatch drill report DRILL-… [--lang zh|en] [--format md|html|pdf] [-o FILE]
  branchwatch drill archive DRILL-… --why "reviewed at the June meeting"
  branchwatch drill plan DRILL-… --plan plans/north-2026.yaml    # attach (or replace) its plan

Exit status: 0 done, 1 refused (409: ended, archived) or not found (404),
2 the collector could not be asked or the request was wrong.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .incidents_cli import common_arguments, finish, get_raw, refused, request
from .report_cli import _pairs


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `drill SUBCOMMAND` to a `branchwatch` subparser set."""
    p = sub.add_parser("drill", help="run drills through the real pipeline; their reports")
    common = common_arguments()
    dsub = p.add_subparsers(dest="drill_command", metavar="SUBCOMMAND", required=True)
    r = dsub.add_parser("run", parents=[common], help="start a drill: inject a scenario")
    r.add_argument("scenario", help="a scenario id (drill scenarios), or a scenario file")
    r.add_argument("--branch", help="the branch it strikes (branch scenarios)")
    r.add_argument("--region", help="the region it strikes (region scenarios)")
    r.add_argument("--plan", metavar="FILE", help="the drill's plan (YAML; docs/drills.md)")
    r.add_argument("--speed", type=float, default=1.0,
                   help="divide the scenario's offsets by this (default 1: real time)")
    e = dsub.add_parser("end", parents=[common], help="end a drill: clear and close its "
                                                     "incidents")
    e.add_argument("drill")
    e.add_argument("--why", default="drill over")
    dsub.add_parser("list", parents=[common], help="every drill, oldest first")
    dsub.add_parser("scenarios", parents=[common], help="the scenarios the collector knows")
    dsub.add_parser("show", parents=[common], help="one drill: timeline, incidents"
                    ).add_argument("drill")
    rep = dsub.add_parser("report", parents=[common], help="print the drill report")
    rep.add_argument("drill")
    rep.add_argument("--lang", choices=("zh", "en"), help="default: reports.language")
    rep.add_argument("--format", choices=("md", "html", "pdf"), default="md")
    rep.add_argument("--output", "-o", metavar="FILE", help="write to FILE (needed for pdf)")
    ed = dsub.add_parser("edit", parents=[common], help="write the report's follow-ups "
                                                       "and assessment")
    ed.add_argument("drill")
    ed.add_argument("--set", dest="sets", action="append", required=True, metavar="FIELD=TEXT",
                    help="followups=TEXT or assessment=TEXT (repeat for both)")
    pl = dsub.add_parser("plan", parents=[common], help="attach (or replace) a drill's plan, "
                                                       "until it is archived")
    pl.add_argument("drill")
    pl.add_argument("--plan", metavar="FILE", required=True, help="the plan (YAML)")
    a = dsub.add_parser("archive", parents=[common], help="freeze an ended drill and its report")
    a.add_argument("drill")
    a.add_argument("--why", required=True)


def line(d: dict) -> str:
    """One drill in one line."""
    where = ", ".join(d["branches"]) + (f" ({d['region']})" if d.get("region") else "")
    ended = f"  ended {d['ended_at']} by {d['ended_by']}" if d.get("ended_at") else ""
    return (f"{d['id']}  {d['status']:<8} {d['scenario']:<14} {where}  started "
            f"{d['started_at']} by {d['started_by']}{ended}  "
            f"{d['injected']}/{d['events']} events")


def show(d: dict) -> str:
    """A drill with its incidents and timeline."""
    out = [line(d)]
    if d.get("plan"):
        out.append(f"  plan: {d['plan']['title']} (owner {d['plan']['owner']})")
    out += [f"  incident {i['id']}  {i['status']:<8} {i['title']}" for i in d["incidents"]]
    for x in d["injections"]:
        at = x["injected_at"] or f"due +{x['due']:g} s"
        out.append(f"  {'*' if x['injected_at'] else ' '} {at}  {x['branch']} {x['check']} "
                   f"{x['state']}: {x['reason']}")
    if d["status"] == "running":
        out.append(f"  end it: branchwatch drill end {d['id']}")
    return "\n".join(out)


def _report(args) -> int:
    if args.format == "pdf" and not args.output:
        print("branchwatch: drill report: --format pdf needs --output FILE", file=sys.stderr)
        return 2
    query = urllib.parse.urlencode({k: v for k, v in (("lang", args.lang),
                                                      ("format", args.format)) if v})
    answer = get_raw(args, f"/api/v1/drills/{urllib.parse.quote(args.drill)}/report?{query}",
                     **({"timeout": 120} if args.format == "pdf" else {}))
    if isinstance(answer, int):
        return answer
    status, data = answer
    if (code := refused(args, status, data)) is not None:
        return code
    if args.output:
        Path(args.output).write_bytes(data)
        print(f"{args.drill}: {args.format} written to {args.output}")
    else:
        sys.stdout.write(data.decode("utf-8"))
    return 0


def _start_body(args) -> dict | str:
    body: dict = {"speed": args.speed}
    path = Path(args.scenario)
    if args.scenario.endswith((".yaml", ".yml")) or path.is_file():
        try:
            body["scenario_yaml"] = path.read_text(encoding="utf-8")
        except OSError as e:
            return f"{args.scenario}: {e.strerror or e}"
    else:
        body["scenario"] = args.scenario
    if args.plan:
        try:
            body["plan_yaml"] = Path(args.plan).read_text(encoding="utf-8")
        except OSError as e:
            return f"--plan {args.plan}: {e.strerror or e}"
    body.update({k: getattr(args, k) for k in ("branch", "region") if getattr(args, k)})
    return body


def run(args: argparse.Namespace) -> int:
    """Carry out one `drill` subcommand; 0 ok, 1 refused/not found, 2 unusable."""
    cmd = args.drill_command
    if cmd == "report":
        return _report(args)
    did = urllib.parse.quote(getattr(args, "drill", "") or "")
    if cmd == "list":
        answer = request(args, "GET", "/api/v1/drills")
    elif cmd == "scenarios":
        answer = request(args, "GET", "/api/v1/drills/scenarios")
    elif cmd == "show":
        answer = request(args, "GET", f"/api/v1/drills/{did}")
    elif cmd == "plan":
        try:
            text = Path(args.plan).read_text(encoding="utf-8")
        except OSError as e:
            print(f"branchwatch: drill plan: --plan {args.plan}: {e.strerror or e}",
                  file=sys.stderr)
            return 2
        answer = request(args, "POST", f"/api/v1/drills/{did}/plan", {"plan_yaml": text})
    elif cmd in ("run", "edit"):
        body = _start_body(args) if cmd == "run" else _pairs(args.sets)
        if isinstance(body, str):
            print(f"branchwatch: drill {cmd}: {body}", file=sys.stderr)
            return 2
        answer = request(args, "POST", "/api/v1/drills" if cmd == "run"
                         else f"/api/v1/drills/{did}/edit", body if cmd == "run" else
                         {"set": body})
    else:
        answer = request(args, "POST", f"/api/v1/drills/{did}/{cmd}", {"why": args.why})
    def render(data: dict) -> str:
        if cmd == "list":
            return "\n".join(line(d) for d in data["drills"]) or "no drills"
        if cmd == "scenarios":
            return "\n".join(f"{s['id']:<16} {s['scope']:<7} {s['title']}  ({s['source']})"
                             for s in data["scenarios"]) or "no scenarios"
        return show(data)
    return finish(args, answer, render)
