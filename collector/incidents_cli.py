"""`branchwatch incidents list|show|ack|note|resolve|close|deadline|criterion|
withdraw|grade|reporter|report|clear`: the operator's
side of the incident API (/api/v1/incidents), over HTTP(S) with a Bearer
operator token from --token-file or $BRANCHWATCH_TOKEN.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime

from .timewords import when, zone_of

DEFAULT_URL = "http://127.0.0.1:9812"
ZONE_HEADER = "X-Branchwatch-Timezone"     # collector/api.py sends the collector's zone


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `incidents SUBCOMMAND` to a `branchwatch` subparser set."""
    p = sub.add_parser("incidents", help="list, show and act on the collector's incidents")
    common = common_arguments()
    isub = p.add_subparsers(dest="incidents_command", metavar="SUBCOMMAND", required=True)
    ls = isub.add_parser("list", parents=[common], help="incidents, oldest first")
    ls.add_argument("--status", choices=("open", "resolved", "closed"))
    ls.add_argument("--drill", nargs="?", const="1", choices=("1", "only"),
                    help="also list drill incidents (hidden by default); --drill only: "
                         "nothing else")
    isub.add_parser("show", parents=[common], help="one incident with its faults").add_argument(
        "id")
    for action, field, text in (("ack", "why", "acknowledge (records who and why)"),
                                ("note", "text", "add a note"),
                                ("resolve", "why", "declare the response over (leadership; "
                                                   "all faults cleared, or --force)"),
                                ("close", "why", "close a resolved incident (leadership)")):
        a = isub.add_parser(action, parents=[common], help=text)
        a.add_argument("id")
        a.add_argument(f"--{field}", required=True)
        if action == "resolve":
            a.add_argument("--force", action="store_true",
                           help="resolve even with faults still active")
    # issue 5: grading and deadlines (domain.md §2, §3).
    for action, value, field, text in (
            ("deadline", "key", "what", "mark a deadline met, with what was sent"),
            ("criterion", "criterion", "why", "set a criterion only a person can judge "
                                              "(data damage, cause)"),
            ("withdraw", "criterion", "why", "withdraw a criterion (the grade is judged afresh)"),
            ("grade", "grade", "why", "set the grade by hand (e.g. lower it), with a reason "
                                      "(leadership)"),
            ("reporter", "name", "why", "name another reporter (報告責任人, 第二十六條); the "
                                        "change is filed with the regulator")):
        a = isub.add_parser(action, parents=[common], help=text)
        a.add_argument("id")
        a.add_argument(value)
        a.add_argument(f"--{field}", required=True)
        if action == "grade":
            a.add_argument("--table", help="grading table (default: the first in use)")
    # a fault a person reports, and its end (collector/person_reports.py).
    from .person_reports import CAUSES, KINDS
    rp = isub.add_parser("report", parents=[common],
                         help="report a fault a person sees (a ward, a branch)")
    rp.add_argument("--branch", required=True, help="the enrolled branch (site) it is at")
    rp.add_argument("--kind", required=True, choices=tuple(KINDS))
    rp.add_argument("--where", required=True, help="where exactly (ward, counter, room)")
    rp.add_argument("--sees", required=True, help="what the person sees")
    rp.add_argument("--contact", help="who to call back (name, phone)")
    rp.add_argument("--cause", choices=CAUSES, help="the cause, when a person knows it "
                                                    "(hospital class 1 or 4)")
    cl = isub.add_parser("clear", parents=[common], help="a fault a person reported is over")
    cl.add_argument("id")
    cl.add_argument("check", help="the reported fault's check (see `incidents show`)")
    cl.add_argument("--why", required=True)


def common_arguments() -> argparse.ArgumentParser:
    """--url, --token-file, --ca-file, --json: every operator command has them."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("BRANCHWATCH_URL", DEFAULT_URL),
                        help=f"the collector (default $BRANCHWATCH_URL or {DEFAULT_URL})")
    common.add_argument("--token-file", metavar="FILE",
                        help="operator token (default: $BRANCHWATCH_TOKEN)")
    common.add_argument("--ca-file", metavar="FILE", help="CA bundle for an HTTPS collector")
    common.add_argument("--json", action="store_true", help="print the API's JSON")
    return common


def request(args, method: str, path: str, body: dict | None = None
            ) -> tuple[int, dict] | int:
    """One API call for a CLI command: (status, data), or an exit status (2) after
    printing why the collector could not be asked."""
    if not _token(args):
        print(f"branchwatch: {args.command}: give --token-file FILE or set BRANCHWATCH_TOKEN",
              file=sys.stderr)
        return 2
    try:
        return _call(args, method, path, body)
    except (OSError, ValueError) as e:
        print(f"branchwatch: {args.command}: {args.url}: {e}", file=sys.stderr)
        return 2


def refused(args, status: int, data: dict) -> int | None:
    """Print a refusal in one line; its exit status (1 refused/not found, 2 else)."""
    if status < 400:
        return None
    print(f"branchwatch: {args.command}: {status}: {data.get('error', data)}", file=sys.stderr)
    return 1 if status in (404, 409) else 2


def get_raw(args, path: str, timeout: float = 30.0) -> tuple[int, dict | bytes] | int:
    """GET a non-JSON answer (a PDF, a rendered report): (200, bytes), (status, the
    JSON refusal), or an exit status after saying why the collector was not reached."""
    if not _token(args):
        return request(args, "GET", path)       # says how to give a token
    req = urllib.request.Request(args.url.rstrip("/") + path)
    req.add_header("Authorization", f"Bearer {_token(args)}")
    ctx = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {"error": e.reason}
    except OSError as e:
        print(f"branchwatch: {args.command}: {args.url}: {e}", file=sys.stderr)
        return 2


def finish(args, answer, render: Callable[[dict], str]) -> int:
    """The end of every operator command: the exit status of a refusal or an
    unreachable collector, else the answer printed (as JSON with --json) and 0."""
    if isinstance(answer, int):
        return answer
    status, data = answer
    if (code := refused(args, status, data)) is not None:
        return code
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print(render(local_times(data, getattr(args, "zone", None))))
    return 0


_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def local_times(data, zone_name: str | None):
    """The API's data with each RFC 3339 time as people read it, in the collector's zone
    and saying it: '2026-12-02 14:05:03 (CST, UTC+8)', no microseconds."""
    try:
        zone = zone_of(zone_name)
    except (ValueError, KeyError):
        zone = zone_of(None)                 # an unknown zone name: UTC, which is said
    def walk(v):
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, str) and _RFC3339.match(v):
            return when(datetime.fromisoformat(v.replace("Z", "+00:00")), "en", zone,
                        seconds=True)
        return v
    return walk(data)


def _token(args) -> str | None:
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            return f.read().strip()
    return os.environ.get("BRANCHWATCH_TOKEN")


def _call(args, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(args.url.rstrip("/") + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", f"Bearer {_token(args)}")
    req.add_header("Content-Type", "application/json")
    ctx = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    try:
        with urllib.request.urlopen(req, timeout=15, context=ctx) as r:
            args.zone = r.headers.get(ZONE_HEADER)      # times are printed in it
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        try:
            return e.code, json.loads(e.read() or b"{}")
        except ValueError:
            return e.code, {"error": e.reason}


def _line(inc: dict) -> str:
    active = sum(f["active"] for f in inc["faults"])
    return (f"{inc['id']}  {inc['status']:<8} {inc['branch']:<10} {inc['started_at']}  "
            f"{inc['title']}  ({active}/{len(inc['faults'])} faults active)")


def _show(inc: dict) -> str:
    out = [_line(inc)]
    for f in inc["faults"]:
        tag = (" [suppressed]" if f["suppressed"] else "") + (
            " [reported by a person]" if f["agent"] == "person" else "")
        out.append(f"  {'*' if f['active'] else ' '} {f['check']} {f['state']}: "
                   f"{f['reason']}{tag}")
    for kind in ("acks", "notes"):
        out += [f"  {kind[:-1]} {a['at']} {a['who']}: {a['why']}" for a in inc[kind]]
    for kind in ("resolved_by", "closed"):
        if inc[kind]:
            a = inc[kind]
            out.append(f"  {kind.replace('_by', '')} {a['at']} {a['who']}: {a['why']}")
    for name, g in inc.get("grades", {}).items():
        grade = g["grade"] or "ungraded"
        out.append(f"  grade {name}: {grade}{' (provisional)' if g['provisional'] else ''}"
                   + (f" since {g['reached_at']} by {g['rule']}" if g["grade"] else ""))
        if g.get("handler"):
            out.append(f"    handled by: {g['handler']}")
        out += [f"    {r}" for r in g["reasons"][:3]]
    for i, r in enumerate(inc.get("reporters", [])):
        out.append(f"  {'reporter' if i == 0 else 'reporter now'} {r['name']} {r['at']} "
                   f"by {r['by']}: {r['why']}")
    for a in inc.get("assertions", []):
        out.append(f"  criterion {a['criterion']}{' (withdrawn)' if a['withdrawn'] else ''} "
                   f"{a['at']} {a['who']}: {a['why']}")
    for d in inc.get("deadlines", []):
        done = (f" met {d['met_at']} by {d['met_by']}: {d['what']}" if d["status"] == "met"
                else "")
        out.append(f"  deadline {d['key']} {d['status']:<6} due {d['due_at']}  {d['title']}"
                   f"{done}")
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    """Carry out one `incidents` subcommand; 0 ok, 1 refused/not found, 2 unusable."""
    cmd = args.incidents_command
    if cmd == "list":
        query = "&".join(f"{k}={v}" for k, v in (("status", args.status),
                                                  ("drill", args.drill)) if v)
        answer = request(args, "GET", "/api/v1/incidents" + (f"?{query}" if query else ""))
    elif cmd == "show":
        answer = request(args, "GET", f"/api/v1/incidents/{args.id}")
    elif cmd == "report":
        body = {k: getattr(args, k) for k in ("branch", "kind", "where", "sees", "contact",
                                              "cause") if getattr(args, k) is not None}
        answer = request(args, "POST", "/api/v1/faults", body)
    else:
        body = {k: getattr(args, k) for k in ("text", "why", "what", "key", "criterion",
                                              "grade", "table", "name", "check")
                if getattr(args, k, None) is not None}
        if getattr(args, "force", False):
            body["force"] = True
        answer = request(args, "POST", f"/api/v1/incidents/{args.id}/{cmd}", body)
    return finish(args, answer, lambda data: (
        "\n".join(_line(i) for i in data["incidents"]) or "no incidents") if cmd == "list"
        else _show(data))
