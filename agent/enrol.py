"""`branchwatch agent enrol --config FILE --code CODE [--collector URL]`: exchange
the one-time code a person got from the collector (`branchwatch collector
enrol`) for this agent's token, and keep it in the config's
`collector.token_file` (0640; never printed). Run once, at first start."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request

from .config import load
from .schema_collector_link import link_urls


def add_command(sub: argparse._SubParsersAction) -> None:
    """Add `enrol` (also spelled `agent enrol`) to a `branchwatch` subparser set."""
    p = sub.add_parser("enrol", help="exchange a one-time enrolment code for this agent's token")
    p.add_argument("--config", required=True, metavar="FILE", help="agent config (YAML)")
    p.add_argument("--code", required=True, help="the one-time code from `collector enrol`")
    p.add_argument("--collector", metavar="URL", help="the collector (default: collector.url, or the first of collector.urls)")
    p.add_argument("--ca-file", metavar="FILE", help="CA bundle for an HTTPS collector")
    p.add_argument("--force", action="store_true", help="replace an existing token file")


def run(args: argparse.Namespace) -> int:
    """Enrol; the exit status (2 for anything the person must fix)."""
    config = load(args.config)
    link = config.collector
    if link is None or not link.token_file:
        return _fail(f"{args.config}: collector.token_file: expected the file to keep the token in")
    url = (args.collector or link_urls(link)[0]).rstrip("/")
    if os.path.exists(link.token_file) and not args.force:
        return _fail(f"{link.token_file} exists: this agent is enrolled (--force replaces it)")
    body = json.dumps({"agent": config.agent.id, "code": args.code}).encode()
    req = urllib.request.Request(f"{url}/api/v1/enrol", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    ctx = ssl.create_default_context(cafile=args.ca_file) if args.ca_file else None
    try:
        with urllib.request.urlopen(req, timeout=30, context=ctx) as r:
            answer = json.load(r)
    except urllib.error.HTTPError as e:
        try:
            why = json.loads(e.read()).get("error", "")
        except ValueError:
            why = ""
        return _fail(f"the collector refused the code ({e.code}): {why or e.reason}")
    except (OSError, ValueError) as e:
        return _fail(f"cannot reach the collector at {url}: {getattr(e, 'reason', e)}")
    fd = os.open(link.token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as f:
        f.write(answer["token"] + "\n")
    print(f"enrolled {answer['agent']} (branch {answer['branch']}"
          + (f", region {answer['region']}" if answer.get("region") else "")
          + f") at {url}; token kept in {link.token_file}")
    return 0


def _fail(message: str) -> int:
    print(f"branchwatch: enrol: {message}", file=sys.stderr)
    return 2
