"""`branchwatch report draft|edit|issue|show|list`: the regulator's reports
(issue 7; domain.md §3) over the collector's API (/api/v1/reports) with an
operator token, like `branchwatch incidents`.

  branchwatch report draft INC-… [--kind written|progress|summary] [--lang zh|en]
  branchwatch report edit INC-…-W1 --set cause_analysis="主线路被施工挖断" --set signer=王五
      (every section is a field: measures_text, symptoms_text, …; docs/reports.md)
  branchwatch report issue INC-…-W1 --why "sent to the regulator by fax"
  branchwatch report show INC-…-W1 [--format md|html|pdf] [--output FILE]
  branchwatch report list INC-…

Exit status: 0 done, 1 refused (an issued report is frozen: 409) or not
found (404), 2 the collector could not be asked or the request was wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from .incidents_cli import common_arguments, get_raw, local_times, refused, request


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `report SUBCOMMAND` to a `branchwatch` subparser set."""
    p = sub.add_parser("report", help="draft, edit, issue and show the regulator's reports")
    common = common_arguments()
    rsub = p.add_subparsers(dest="report_command", metavar="SUBCOMMAND", required=True)
    d = rsub.add_parser("draft", parents=[common], help="draft a report from an incident")
    d.add_argument("incident")
    d.add_argument("--kind", choices=("written", "progress", "summary"), default="written",
                   help="written (第二十八條, default), progress, summary (第三十四條)")
    d.add_argument("--lang", choices=("zh", "en"), help="default: the collector's "
                                                       "reports.language")
    e = rsub.add_parser("edit", parents=[common], help="set fields a person fills (drafts)")
    e.add_argument("report")
    e.add_argument("--set", dest="sets", action="append", required=True, metavar="FIELD=TEXT",
                   help="a field and its text (repeat for more)")
    i = rsub.add_parser("issue", parents=[common], help="issue a draft: it is frozen")
    i.add_argument("report")
    i.add_argument("--why", required=True, help="why it is issued (e.g. where it was sent)")
    s = rsub.add_parser("show", parents=[common], help="print a report")
    s.add_argument("report")
    s.add_argument("--format", choices=("md", "html", "pdf"), default="md")
    s.add_argument("--output", "-o", metavar="FILE", help="write to FILE (needed for pdf)")
    rsub.add_parser("list", parents=[common], help="an incident's reports").add_argument(
        "incident")


def _pairs(sets: list[str]) -> dict | str:
    out = {}
    for item in sets:
        field, eq, text = item.partition("=")
        if not eq or not field.strip():
            return f"--set {item!r}: expected FIELD=TEXT"
        out[field.strip()] = text
    return out


def _line(r: dict) -> str:
    issued = f"  issued {r['issued_at']} by {r['issued_by']}" if r["issued_at"] else ""
    sup = f"  supersedes {r['supersedes']}" if r["supersedes"] else ""
    return (f"{r['id']}  {r['kind']:<8} {r['language']}  {r['status']:<6} "
            f"drafted {r['created_at']} by {r['created_by']}{issued}{sup}")


def _show(args) -> int:
    rid = urllib.parse.quote(args.report)
    if args.format == "pdf":
        if not args.output:
            print("branchwatch: report show: --format pdf needs --output FILE", file=sys.stderr)
            return 2
        answer = get_raw(args, f"/api/v1/reports/{rid}?format=pdf", timeout=120)
    else:
        answer = request(args, "GET", f"/api/v1/reports/{rid}")
    if isinstance(answer, int):
        return answer
    status, data = answer
    if (code := refused(args, status, data)) is not None:
        return code
    body = data if args.format == "pdf" else \
        data["markdown" if args.format == "md" else "html"].encode("utf-8")
    if args.output:
        with open(args.output, "wb") as f:
            f.write(body)
        print(f"{args.report}: {args.format} written to {args.output}")
    else:
        sys.stdout.write(body.decode("utf-8"))
    return 0


def run(args: argparse.Namespace) -> int:
    """Carry out one `report` subcommand; 0 ok, 1 refused/not found, 2 unusable."""
    cmd = args.report_command
    if cmd == "show":
        return _show(args)
    if cmd == "list":
        answer = request(args, "GET", "/api/v1/reports?incident="
                         + urllib.parse.quote(args.incident))
    elif cmd == "draft":
        body = {"incident": args.incident, "kind": args.kind}
        if args.lang:
            body["language"] = args.lang
        answer = request(args, "POST", "/api/v1/reports", body)
    elif cmd == "edit":
        changes = _pairs(args.sets)
        if isinstance(changes, str):
            print(f"branchwatch: report edit: {changes}", file=sys.stderr)
            return 2
        answer = request(args, "POST", f"/api/v1/reports/{urllib.parse.quote(args.report)}"
                         "/edit", {"set": changes})
    else:
        answer = request(args, "POST", f"/api/v1/reports/{urllib.parse.quote(args.report)}"
                         "/issue", {"why": args.why})
    if isinstance(answer, int):
        return answer
    status, data = answer
    if (code := refused(args, status, data)) is not None:
        return code
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    data = local_times(data, getattr(args, "zone", None))
    if cmd == "list":
        print("\n".join(_line(r) for r in data["reports"]) or "no reports")
    else:
        print(_line(data))
        if data["editable"]:
            print("  fields a person fills: " + ", ".join(
                f"{k}{'' if data['fields'].get(k) else ' (empty)'}" for k in data["editable"]))
    return 0
