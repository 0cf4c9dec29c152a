"""The collector's commands: `collector` (serve), `collector token`, `audit verify`.

`agent/cli.py` wires them in with `add_commands(sub)` and `run(args)`;
`python -m collector.cli ...` runs them alone.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import secrets
import sqlite3
import sys

from .config import ConfigError, load

COMMANDS = ("collector", "audit", "incidents", "runbook", "report", "drill", "fleet")


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Add `collector [token]` and `audit verify` to a `branchwatch` subparser set."""
    p = sub.add_parser("collector", help="run the central collector (or: collector token)")
    p.add_argument("--config", metavar="FILE", help="collector config (YAML)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    csub = p.add_subparsers(dest="collector_command", metavar="SUBCOMMAND")
    t = csub.add_parser("token", help="make a new agent token; print it and its config line")
    t.add_argument("--agent", metavar="ID", help="print a whole agents[] entry for this agent id")
    t.add_argument("--branch", metavar="CODE", help="the branch this agent may write")
    t.add_argument("--region", metavar="NAME", default="", help="the branch's region")
    w = csub.add_parser("password", help="hash a console password (read from stdin or "
                                         "asked for); print the console.users entry")
    w.add_argument("--user", metavar="NAME", help="print a whole console.users[] entry")
    w.add_argument("--roles", metavar="R,R", default="operator",
                   help="viewer, operator and/or leadership (comma-separated)")
    from .fleet.cli import add_enrol_commands
    add_enrol_commands(csub)       # collector enrol, collector revoke (over the API)

    p = sub.add_parser("audit", help="the collector's audit trail")
    asub = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND", required=True)
    v = asub.add_parser("verify", help="check the chain, its MACs, the checkpoints and the "
                                       "rows it wrote; exit 1 if anything was tampered with")
    v.add_argument("--config", required=True, metavar="FILE", help="collector config (YAML)")
    v.add_argument("--checkpoint", metavar="FILE",
                   help="the checkpoint file to hold the log against (default: the "
                        "config's audit.checkpoint_file, when it exists)")
    k = asub.add_parser("new-key", help="create a new audit key file (mode 0600; refuses "
                                        "to overwrite one)")
    k.add_argument("file", metavar="FILE")

    from .incidents_cli import add_command as add_incidents
    add_incidents(sub)
    from .runbook_cli import add_command as add_runbook
    add_runbook(sub)
    from .report_cli import add_command as add_report    # issue 7
    add_report(sub)
    from .drill_cli import add_command as add_drill      # issue 7: drills (domain.md §5)
    add_drill(sub)
    from .fleet.cli import add_command as add_fleet      # versions, drift (collector/fleet/)
    add_fleet(sub)


def run(args: argparse.Namespace) -> int:
    """Carry out a `collector` or `audit` command; the exit status."""
    try:
        if args.command == "collector" and args.collector_command == "token":
            return print_token(args.agent, args.branch, args.region)
        if args.command == "collector" and args.collector_command == "password":
            return print_password(args.user, args.roles)
        if args.command == "collector" and args.collector_command in ("enrol", "revoke"):
            from .fleet.cli import run_enrol
            return run_enrol(args)
        if args.command == "collector":
            if not args.config:
                print("branchwatch: collector: --config FILE is required", file=sys.stderr)
                return 2
            return serve(args.config)
        if args.command == "audit" and args.audit_command == "new-key":
            return new_key(args.file)
        if args.command == "audit":
            return verify(args.config, args.checkpoint)
        if args.command == "incidents":
            from .incidents_cli import run as run_incidents
            return run_incidents(args)
        if args.command == "runbook":
            from .runbook_cli import run as run_runbook
            return run_runbook(args)
        if args.command == "report":
            from .report_cli import run as run_report
            return run_report(args)
        if args.command == "drill":
            from .drill_cli import run as run_drill
            return run_drill(args)
        if args.command == "fleet":
            from .fleet.cli import run as run_fleet
            return run_fleet(args)
    except ConfigError as e:
        print(f"branchwatch: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def print_password(user: str | None, roles: str) -> int:
    """Hash a console password (issue 8): asked for on a terminal, else one stdin line."""
    import getpass

    from .web.passwords import hash_password
    bad = [r for r in roles.split(",") if r not in ("viewer", "operator", "leadership")]
    if bad:
        print(f"branchwatch: collector password: --roles: unknown role {bad[0]!r}; "
              f"expected viewer, operator or leadership", file=sys.stderr)
        return 2
    password = (getpass.getpass("password: ") if sys.stdin.isatty()
                else sys.stdin.readline().rstrip("\n"))
    if len(password) < 8:
        print("branchwatch: collector password: use at least 8 characters", file=sys.stderr)
        return 2
    digest = hash_password(password)
    if user is None:
        print(f"password: '{digest}'")
    else:
        print(f"  - {{name: {user}, roles: [{', '.join(roles.split(','))}], "
              f"password: '{digest}'}}")
    return 0


def print_token(agent: str | None, branch: str | None, region: str = "") -> int:
    """Print a fresh token (shown this once) and the hash the config keeps."""
    if (agent is None) != (branch is None):
        print("branchwatch: collector token: give both --agent and --branch, or neither",
              file=sys.stderr)
        return 2
    token = secrets.token_urlsafe(32)
    digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
    print(f"# the agent's token (shown once; put it in the agent's config): {token}")
    if agent is None:
        print(f"token_sha256: {digest}")
    else:
        print("  # append to agents: in the collector config")
        print(f"  - {{id: {agent}, branch: {branch}, region: {json.dumps(region)}, "
              f"token_sha256: {digest}}}")
    return 0


def serve(config_path: str) -> int:
    """Run the collector until SIGTERM/SIGINT."""
    from .config_files import collector_file_problems
    from .service import serve as serve_async
    from .store import StoreError
    config = load(config_path)
    if problems := list(collector_file_problems(config)):
        for line in problems:       # every one, before anything starts
            print(f"branchwatch: {config_path}: {line}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(serve_async(config, path=config_path))
    except ConfigError as e:        # found on the way up (bind, TLS, key, checkpoints)
        print(f"branchwatch: {config_path}: {e}", file=sys.stderr)
        return 2
    except (StoreError, OSError) as e:
        print(f"branchwatch: collector: {e}", file=sys.stderr)
        return 2


def new_key(path: str) -> int:
    """Write 32 random bytes (hex) to a new file only its owner can read."""
    import os
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        print(f"branchwatch: audit new-key: {path}: {e.strerror or e}", file=sys.stderr)
        return 2
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    print(f"audit key written to {path}; name it in audit.key_file")
    return 0


def verify(config_path: str, checkpoint: str | None = None) -> int:
    """Verify the audit trail: 0 intact, 1 with the problems listed, 2 unusable."""
    from .audit_checkpoint import CheckpointError, read_checkpoints
    config = load(config_path)
    key = config.audit_key()
    cp_path = checkpoint or (config.checkpoint_path() if config.checkpoint_path().exists()
                             else None)
    try:
        checkpoints = read_checkpoints(cp_path) if cp_path else None
    except CheckpointError as e:
        print(f"branchwatch: audit: {e}", file=sys.stderr)
        return 2
    found = (_verify_sqlite(config, key, checkpoints) if config.storage.postgresql is None
             else _verify_postgresql(config, key, checkpoints))
    if found is None:
        return 2
    for p in found.problems:
        print(p)
    for n in found.notes:
        print(f"note: {n}", file=sys.stderr)
    if found.problems:
        print(f"audit: NOT intact: {len(found.problems)} problems in {found.count} records",
              file=sys.stderr)
        return 1
    # The head, to keep elsewhere: only a head kept outside shows records cut off the end.
    mac = f" mac {found.head_mac}" if found.head_mac else ""
    print(f"audit: intact: {found.count} records; head {found.head_seq} {found.head_hash}{mac}")
    return 0


def _verify_sqlite(config, key, checkpoints):
    """verify_database over the SQLite file, read only; None (said why) when unusable."""
    from .audit_verify import verify_database
    path = config.db_path()
    if not path.exists():
        print(f"branchwatch: audit: no collector database at {path}", file=sys.stderr)
        return None
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return verify_database(conn, key, checkpoints)
        finally:
            conn.close()
    except sqlite3.Error as e:
        print(f"branchwatch: audit: {path}: {e}", file=sys.stderr)
        return None


def _verify_postgresql(config, key, checkpoints):
    """verify_database over the PostgreSQL store, on a read-only session of its own."""
    import psycopg

    from .audit_verify import verify_database
    from .storage.dialect import PgConnection
    from .storage.postgres import CONNECT_TIMEOUT, describe, one_line
    dsn = config.store_dsn()
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT,
                             cursor_factory=psycopg.RawCursor,
                             application_name="branchwatch-audit-verify") as raw:
            raw.execute("SET default_transaction_read_only = on")
            # One snapshot for the whole walk: a collector writing meanwhile adds
            # records after it, never half a transaction.
            raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            return verify_database(PgConnection(raw), key, checkpoints)
    except psycopg.Error as e:
        print(f"branchwatch: audit: {describe(dsn)}: {one_line(e)}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    """`python -m collector.cli COMMAND ...`: the collector's commands alone."""
    parser = argparse.ArgumentParser(prog="branchwatch")
    add_commands(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if getattr(args, "verbose", False) else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
