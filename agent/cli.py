"""The `branchwatch` command: agent, check-config, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import __version__
from .config import Config, ConfigError, load


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `branchwatch` console script."""
    parser = argparse.ArgumentParser(prog="branchwatch", description=(
        "Watch a branch's UPS, network and services; raise and handle incidents."))
    parser.add_argument("--version", action="version", version=f"branchwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("agent", help="run the branch agent")
    p.add_argument("--config", required=True, metavar="FILE", help="agent config (YAML)")
    p.add_argument("--once", action="store_true",
                   help="run every probe once, print each reading as a JSON line, exit "
                        "(status 1 if any probe could not read its target)")
    p.add_argument("--events", choices=["json", "text"], default="json",
                   help="how state-change events are printed on stdout (default json)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")

    p = sub.add_parser("check-config", help="validate an agent config; exit 2 if it is wrong")
    p.add_argument("file", metavar="FILE")

    p = sub.add_parser("demo", help="an agent against a simulated UPS and services")
    p.add_argument("--port", type=int, default=9811, help="/metrics port (0: any free port)")
    p.add_argument("--duration", type=float, default=None,
                   help="stop after this many seconds (default: run until Ctrl-C)")
    p.add_argument("--speed", type=float, default=1.0, help="play the story faster (e.g. 5)")

    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.command == "check-config":
            config = load(args.file)
            print(f"{args.file}: ok ({_summary(config)})")
            return 0
        if args.command == "agent":
            config = load(args.config)
            return run_agent(config, once=args.once, events=args.events)
        if args.command == "demo":
            from .demo import run_demo
            return run_demo(port=args.port, duration=args.duration, speed=args.speed)
    except ConfigError as e:
        print(f"branchwatch: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _summary(c: Config) -> str:
    h = c.host
    services = len(h.processes) + len(h.listening) + len(h.tcp) + len(h.backups) + len(h.disks)
    return f"agent {c.agent.id}, branch {c.agent.branch}, {len(c.ups)} UPS, {services} service checks"


def run_agent(config: Config, *, once: bool = False, events: str = "json") -> int:
    """Run the agent until SIGTERM/SIGINT (or once, with `once`)."""
    from .probes import build_probes
    from .runner import once as run_once

    probes = build_probes(config)
    if once:
        return run_once(config, probes)
    from .service import serve
    return asyncio.run(serve(config, probes, events))


if __name__ == "__main__":
    sys.exit(main())
