"""`branchwatch hospital status|declare|over|announce|restore-test|restore-tests`:
IT's side of the hospital API (/api/v1/hospital, domain.md §2.3), over HTTP(S) with
a Bearer operator token from --token-file or $BRANCHWATCH_TOKEN."""

from __future__ import annotations

import argparse

from ..incidents_cli import common_arguments, finish, request


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `hospital SUBCOMMAND` to a `branchwatch` subparser set."""
    p = sub.add_parser("hospital", help="whole-network outage, departments' notices, "
                                        "restore tests (a hospital's collector)")
    common = common_arguments()
    hsub = p.add_subparsers(dest="hospital_command", metavar="SUBCOMMAND", required=True)
    hsub.add_parser("status", parents=[common], help="is the whole network out; restore tests")
    for name, text in (("declare", "IT declares a whole-network outage (网络整体故障)"),
                       ("over", "IT says the declared whole-network outage is over")):
        a = hsub.add_parser(name, parents=[common], help=text)
        a.add_argument("--why", required=True)
    a = hsub.add_parser("announce", parents=[common],
                        help="IT's notice to the departments: manual (start manual work) or "
                             "resume (the time to resume computer work)")
    a.add_argument("kind", choices=("manual", "resume"))
    a.add_argument("--text", required=True, help="what the departments read (e.g. the time)")
    a.add_argument("--incident", help="the outage's incident (default: the one open)")
    a.add_argument("--department", action="append", metavar="ROLE",
                   help="tell this department (a notify role); repeat; default: those "
                        "the milestones reached (manual) or everyone told (resume)")
    r = hsub.add_parser("restore-test", parents=[common],
                        help="record the monthly restore test (hospital §5.5)")
    r.add_argument("--restored", required=True, help="what was restored (systems, backup sets)")
    r.add_argument("--result", required=True, choices=("passed", "failed"))
    r.add_argument("--at", help="when it was done (ISO 8601 with offset; default: now)")
    r.add_argument("--note", default="")
    hsub.add_parser("restore-tests", parents=[common],
                    help="the restore tests recorded and when the next one is due")


def run(args: argparse.Namespace) -> int:
    """Carry out a `hospital` command; the exit status."""
    c = args.hospital_command
    if c == "status":
        return finish(args, request(args, "GET", "/api/v1/hospital"), _status)
    if c in ("declare", "over"):
        return finish(args, request(args, "POST", f"/api/v1/hospital/outage/{c}",
                                    {"why": args.why}), _incident)
    if c == "announce":
        body = {"kind": args.kind, "text": args.text}
        if args.incident:
            body["incident"] = args.incident
        if args.department:
            body["departments"] = args.department
        return finish(args, request(args, "POST", "/api/v1/hospital/notices", body), _incident)
    if c == "restore-test":
        body = {"restored": args.restored, "result": args.result, "note": args.note}
        if args.at:
            body["at"] = args.at                  # default: the collector's now
        return finish(args, request(args, "POST", "/api/v1/hospital/restore-tests", body),
                      lambda d: d["status"])
    return finish(args, request(args, "GET", "/api/v1/hospital/restore-tests"), _tests)


def _incident(d: dict) -> str:
    return f"{d['id']} {d['status']} {d['title']}"


def _status(d: dict) -> str:
    o = d.get("outage")
    lines = [("whole network OUT since " + o["since"] + f" ({o['incident']}): {o['reason']}")
             if o else "whole network: not out"]
    if "restore_tests" in d:
        lines.append("restore tests: " + d["restore_tests"]["status"])
    return "\n".join(lines)


def _tests(d: dict) -> str:
    rows = [f"{t['at']}  {t['result']:<6}  {t['who']}: {t['restored']}"
            + (f" ({t['note']})" if t.get("note") else "") for t in d["tests"]]
    return "\n".join(rows + [d["status"]])
