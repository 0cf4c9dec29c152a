"""The `branchwatch` command: agent, port, ups-command, check-config, demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from . import __version__
from .config import Config, ConfigError, load


# The agent's own commands. Everything else (collector/cli.py's COMMANDS) is
# mounted only when asked for: `branchwatch agent ...` never imports the
# collector package, so a branch machine pays for none of it.
AGENT_COMMANDS = ("agent", "port", "ups-command", "check-config", "demo", "spool", "enrol")


def wants_collector(argv: list[str]) -> bool:
    """Whether to mount the collector's commands: unless the command is the agent's own
    (with no command, or a wrong one, they are mounted so help and errors list them)."""
    command = next((a for a in argv if not a.startswith("-")), None)
    return command not in AGENT_COMMANDS


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `branchwatch` console script."""
    argv = sys.argv[1:] if argv is None else argv
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

    p = sub.add_parser("port", help="bring a switch port up or down by SNMP SET (if allowed)")
    p.add_argument("--config", required=True, metavar="FILE", help="agent config (YAML)")
    p.add_argument("switch", help="switch name (switches[].name)")
    p.add_argument("port", help="interface id (switches[].interfaces[].id or its name)")
    p.add_argument("state", choices=["up", "down"])
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("ups-command", help="run a NUT instant command on a UPS (if allowed)")
    p.add_argument("--config", required=True, metavar="FILE", help="agent config (YAML)")
    p.add_argument("ups", help="UPS name (ups[].name, read through nut)")
    p.add_argument("instcmd", metavar="COMMAND",
                   help="NUT instant command, listed in ups[].nut.actions.commands "
                        "(e.g. test.battery.start.quick)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("check-config", help="validate an agent or collector config and the "
                                            "files it names; every error, exit 2 if any")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--collector", action="store_true",
                   help="the file is a collector config (default: told by its content)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--no-files", action="store_true",
                   help="check the config alone, not the files it names (a config for "
                        "another machine)")

    p = sub.add_parser("demo", help="the collector and three simulated branches play a "
                                    "story (no root, nothing installed)")
    p.add_argument("--port", type=int, default=9812,
                   help="the collector's port on 127.0.0.1, console and API (0: any free port)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="play the story faster (e.g. 4); about 2.5 min at 1")
    p.add_argument("--duration", type=float, default=None,
                   help="stop this many seconds after the start, or when the story is over "
                        "if that is later (default: run until Ctrl-C)")
    p.add_argument("--no-browser", action="store_true", help="do not open the console")
    p.add_argument("--lang", choices=("zh", "en"), default="zh",
                   help="the story's language: zh (简体中文, the default) or en")
    p.add_argument("--data-dir", metavar="DIR",
                   help="keep the collector's data and the reports in DIR (default: a "
                        "temporary directory, removed at the end)")

    from .spool_cli import add_commands as add_spool_commands
    add_spool_commands(sub)       # spool dead-letters
    from .enrol import add_command as add_enrol
    add_enrol(sub)                # enrol (also `agent enrol`): a one-time code for a token

    if wants_collector(argv):
        try:
            from collector.cli import add_commands as add_collector_commands
        except ModuleNotFoundError as e:    # a branch machine: the agent's package only
            command = next((a for a in argv if not a.startswith("-")), None)
            if command is not None:
                print(f"branchwatch: {command}: this installation carries the agent only "
                      f"(no module {e.name!r}); the collector's commands come with "
                      f"branchwatch[collector] or the branchwatch-collector package",
                      file=sys.stderr)
                return 2
        else:
            add_collector_commands(sub)   # collector, collector token, audit verify, ...

    if argv[:2] == ["agent", "enrol"]:
        argv = ["enrol", *argv[2:]]
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        if args.command in ("collector", "audit", "incidents", "runbook", "report", "drill", "fleet",
                            "hospital"):
            from collector.cli import run as run_collector
            return run_collector(args)
        if args.command == "enrol":
            from .enrol import run as run_enrol
            return run_enrol(args)
        if args.command == "spool":
            from .spool_cli import run as run_spool
            return run_spool(args)
        if args.command == "check-config":
            return check_config(args.file, "collector" if args.collector else None,
                                as_json=args.json, files=not args.no_files)
        if args.command == "agent":
            config = load(args.config)
            from .config_check import agent_file_problems
            if problems := list(agent_file_problems(config)):
                for line in problems:     # every one, before anything starts
                    print(f"branchwatch: {args.config}: {line}", file=sys.stderr)
                return 2
            config = _with_secrets(args.config, config)
            try:
                return run_agent(config, once=args.once, events=args.events)
            except ConfigError as e:   # found on the way up (a port, the spool): name the file
                raise ConfigError(f"{args.config}: {e}") from None
        if args.command == "port":
            return run_port_action(_with_secrets(args.config, load(args.config)), args.switch,
                                   args.port, args.state == "up", as_json=args.json)
        if args.command == "ups-command":
            return run_ups_command(_with_secrets(args.config, load(args.config)), args.ups,
                                   args.instcmd, as_json=args.json)
        if args.command == "demo":
            from collector.demo.run import run_demo   # the collector side: only when asked
            return run_demo(port=args.port, speed=args.speed, duration=args.duration,
                            no_browser=args.no_browser, data_dir=args.data_dir,
                            lang=args.lang)
    except ConfigError as e:
        print(f"branchwatch: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _with_secrets(path: str, config: Config) -> Config:
    """The config with its secret files read (systemd's credentials when passed)."""
    from .credentials import with_secrets
    try:
        return with_secrets(config)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def check_config(path: str, kind: str | None, as_json: bool = False, files: bool = True) -> int:
    """Print every error of a config (or that it is fine); 0 ok, 2 with errors."""
    from .config_check import check_file
    checked = check_file(path, kind, files=files)
    if as_json:
        print(checked.as_json())
    elif checked.errors:
        print("\n".join(checked.lines()), file=sys.stderr)
    else:
        print(f"{path}: ok ({checked.kind}: {checked.summary})")
    return 2 if checked.errors else 0


def run_port_action(config: Config, switch: str, port: str, up: bool, as_json: bool = False) -> int:
    """Set a port's admin state, read it back; 0 if confirmed, 1 otherwise."""
    import json

    from .snmp.actions import set_port_admin
    result = asyncio.run(set_port_admin(config, switch, port, up))
    if as_json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"{result.outcome}: {result.message}", file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def run_ups_command(config: Config, ups: str, command: str, as_json: bool = False) -> int:
    """Run a NUT instant command and print the outcome; 0 if done, 1 otherwise."""
    import json

    from .ups.instcmd import ups_command
    result = asyncio.run(ups_command(config, ups, command))
    if as_json:
        print(json.dumps(result.as_dict()))
    else:
        print(f"{result.outcome}: {result.message}", file=sys.stdout if result.ok else sys.stderr)
    return 0 if result.ok else 1


def run_agent(config: Config, *, once: bool = False, events: str = "json") -> int:
    """Run the agent until SIGTERM/SIGINT (or once, with `once`)."""
    from .links import LinkView
    from .probes import build_probes
    from .runner import once as run_once

    links = LinkView()
    probes = build_probes(config, links)
    if once:
        return run_once(config, probes)
    from .service import serve
    return asyncio.run(serve(config, probes, events, links=links))


if __name__ == "__main__":
    sys.exit(main())
