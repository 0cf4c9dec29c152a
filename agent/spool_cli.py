"""`branchwatch spool dead-letters --config FILE`: the events set aside.

An event the collector refused on its own (too large, out of the wire's
bounds) is kept in the spool's dead letters so that the events behind it
flow; this lists them, oldest first, with the refusal, for a person to
read (and to fix the probe or the collector's limit that caused it).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from .config import ConfigError, load


def add_commands(sub) -> None:
    """Mount `spool dead-letters` on the `branchwatch` parser."""
    p = sub.add_parser("spool", help="look into the agent's spool")
    spool_sub = p.add_subparsers(dest="spool_command", required=True, metavar="COMMAND")
    d = spool_sub.add_parser("dead-letters", help="list the events the collector refused for "
                                                  "good, set aside so the rest flows")
    d.add_argument("--config", required=True, metavar="FILE", help="agent config (YAML)")
    d.add_argument("--json", action="store_true", help="one JSON object per line")


def run(args, out=sys.stdout) -> int:
    """List the dead letters of the config's spool; 0 (none is not an error)."""
    from .spool import Spool
    config = load(args.config)
    if config.collector is None:
        raise ConfigError(f"{args.config}: collector: missing; without it the agent keeps "
                          f"no spool")
    path = Path(config.collector.spool.path)
    if not path.exists():
        print(f"no spool at {path} yet: nothing set aside", file=out)
        return 0
    spool = Spool(path, config.collector.spool.max_events)
    try:
        letters = spool.dead_letters()
    finally:
        spool.close()
    for d in letters:
        at = datetime.fromtimestamp(d.at, tz=timezone.utc).isoformat(timespec="seconds")
        if args.json:
            print(json.dumps({"id": d.id, "check": d.check, "set_aside_at": at,
                              "refusal": d.refusal, "event": d.body.decode("utf-8", "replace")}),
                  file=out)
        else:
            print(f"{at}  {d.id}  {d.check}  {d.refusal}", file=out)
    if not letters and not args.json:
        print(f"no dead letters in {path}", file=out)
    return 0
