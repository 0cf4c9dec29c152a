"""The collector's configuration: schema, loading and validation.

Loading and error wording are the agent's (`agent.config`): one line that
names the file, the key path and what was expected. Only the schema and
the rules a type cannot say live here.
"""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec

from agent.config import ConfigError, every_problem, load_as, parse_as
from agent.schema_network import _S, Name

from .reports.settings import ReportSettings
from .web.passwords import PATTERN as PASSWORD_PATTERN
from .web.throttle import normalise

from .notify.settings import Notify
from .notify.settings import problems as _notify_problems

__all__ = ["Config", "ConfigError", "load", "parse", "AgentEntry", "Operator"]

Sha256Hex = typing.Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
ListenPort = typing.Annotated[int, msgspec.Meta(ge=0, le=65535)]
Bytes = typing.Annotated[int, msgspec.Meta(ge=1024, le=1_073_741_824)]


class Listen(_S):
    address: str = "127.0.0.1"
    port: ListenPort = 9812
    tls_cert: str | None = None
    tls_key: str | None = None


class Postgresql(_S):
    """The store on PostgreSQL (collector/storage/postgres.py): the libpq connection
    string is read from a file (it may hold a password), or from systemd's
    LoadCredential copy of it, never written in the config."""

    dsn_file: typing.Annotated[str, msgspec.Meta(min_length=1)]
    readers: typing.Annotated[int, msgspec.Meta(ge=1, le=64)] = 4   # pooled read connections


class Storage(_S):
    # The SQLite file lives here, and the audit checkpoints by default (both backends).
    data_dir: typing.Annotated[str, msgspec.Meta(min_length=1)] = "/var/lib/branchwatch-collector"
    postgresql: Postgresql | None = None      # set: the store is on PostgreSQL, not SQLite


class AuditSettings(_S):
    """The audit trail's key and checkpoints (docs/audit.md): the key file
    is created at install, readable by the collector only, never in the database."""

    key_file: str | None = None
    checkpoint_file: str | None = None          # default: <data_dir>/audit.checkpoints
    checkpoint_interval: typing.Annotated[float, msgspec.Meta(gt=0, le=86400)] = 60.0


class Limits(_S):
    max_body: Bytes = 1_048_576


Role = typing.Literal["viewer", "operator", "leadership"]


class AgentEntry(_S, kw_only=True):
    """One enrolled agent: its id, the branch it may write, its token's hash."""

    id: Name
    branch: Name
    region: str = ""
    token_sha256: Sha256Hex


class Fleet(_S):
    """The fleet's config template: agents whose config hash (agent/about.py)
    differs from it are listed as drifted; unset, the most common hash is the template."""

    template_sha256: Sha256Hex | None = None


class Operator(_S, kw_only=True):
    """A person who acts on incidents through the API and the CLI, with the same
    roles as console users (collector/roles.py; domain.md §4, 第四條)."""

    name: Name
    token_sha256: Sha256Hex
    roles: typing.Annotated[list[Role], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: ["operator"])


class Incidents(_S):
    """Incident grouping window and the dead-man's grace (issue 4)."""

    window: typing.Annotated[float, msgspec.Meta(gt=0)] = 120.0
    deadman_grace: typing.Annotated[float, msgspec.Meta(ge=0)] | None = None


class BusinessStop(_S, kw_only=True):
    """A fault that means a branch cannot do business (domain.md §2.1): faults of
    one of `checks`, or faults of every one of `all_of` at once (both uplinks)."""

    name: typing.Annotated[str, msgspec.Meta(min_length=1)]
    checks: list[str] = []
    all_of: list[str] = []
    states: list[typing.Literal["warning", "critical", "unknown"]] = msgspec.field(
        default_factory=lambda: ["critical", "unknown"])


class ObservedKind(_S, kw_only=True):
    """Checks whose faults are an observed kind for the hospital table (domain.md §2.2)."""

    kind: typing.Annotated[str, msgspec.Meta(min_length=1)]
    checks: list[str]


# domain.md §2.1: "core system unreachable, both uplinks down, branch
# unreachable, UPS exhausted; configurable per deployment". Check ids for the
# core system and uplink ports are the deployment's; these are the names the
# example configs use.
DEFAULT_BUSINESS_STOPS = [
    BusinessStop(name="branch unreachable", checks=["agent/*/silent"]),
    BusinessStop(name="core system unreachable", checks=["tcp/core*", "line/*/core*"]),
    BusinessStop(name="UPS exhausted", checks=["ups/*/battery_low"], states=["critical"]),
]

# domain.md §2.2, class 2 and 3 from observation.
DEFAULT_OBSERVED = [
    ObservedKind(kind="network_down_whole", checks=["agent/*/silent"]),
    ObservedKind(kind="uplink_down", checks=["line/*"]),
    ObservedKind(kind="switch_down", checks=["switch/*/reachable"]),
    ObservedKind(kind="backup_failed", checks=["backup/*"]),
    ObservedKind(kind="server_down", checks=["tcp/server-*", "tcp/his*", "process/*"]),
    ObservedKind(kind="service_down", checks=["tcp/*", "listen/*"]),
]


Share = typing.Annotated[float, msgspec.Meta(gt=0, le=1)]


class UnitSettings(_S, kw_only=True):
    """One unit's own share of branches (domain.md §2.1)."""

    share: Share


class ScopeSettings(_S):
    """The scope unit (domain.md §2.1): the regulation's province. Branches of
    agents without a region form ONE unit, named `unit`; a unit is out while
    business-stopping faults hold at `share` of its enrolled branches (rounded
    up) or at one of `key_sites` (the branches of a data centre or the core
    system's probe)."""

    unit: str = ""
    share: Share = 0.5
    key_sites: list[Name] = []
    units: dict[str, UnitSettings] = {}


class Grading(_S):
    """Which grading tables apply, the business-hours calendar, and which faults
    stop business (issue 5; domain.md §2); the scope unit and the channels with
    their own calendars (domain.md §2.1)."""

    tables: list[typing.Annotated[str, msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=lambda: ["cbrc"])
    calendar: dict = {}
    business_stopping: list[BusinessStop] = msgspec.field(
        default_factory=lambda: list(DEFAULT_BUSINESS_STOPS))
    observed: list[ObservedKind] = msgspec.field(default_factory=lambda: list(DEFAULT_OBSERVED))
    scope: ScopeSettings = msgspec.field(default_factory=ScopeSettings)
    channels: dict[str, dict] = {}                # name -> calendar keys over `calendar`
    default_channels: list[str] = []              # a branch's channels; default: all
    branch_channels: dict[str, list[str]] = {}    # branch -> its channels


class RunbookSettings(_S):
    """Runbooks (issue 6): where they are, whether incidents start them, and the
    collector-side commands a runbook may run (an allow list: name -> argv)."""

    folder: str | None = None            # default: the shipped config/runbooks
    auto_start: bool = True
    commands: dict[str, typing.Annotated[list[str], msgspec.Meta(min_length=1)]] = {}
    timeout: typing.Annotated[float, msgspec.Meta(gt=0)] = 30.0   # webhook/command, seconds
    # Branches (patterns) without a pre-wired backup port: a line fault there gets
    # the cable swap by hand (config/runbooks/cable-swap.yaml; domain.md §4).
    no_backup_port: list[typing.Annotated[str, msgspec.Meta(min_length=1)]] = []


class DrillSettings(_S):
    """Drills (issue 7; domain.md §5): where the scenarios are (collector/drills/)."""

    folder: str | None = None            # default: the shipped config/drills


class ConsoleUser(_S, kw_only=True):
    """A person who logs in to the web console (issue 8). viewer reads;
    operator also acknowledges, notes, works runbook steps and resolves;
    leadership also sets grades and criteria and closes incidents."""

    name: Name
    roles: typing.Annotated[list[Role], msgspec.Meta(min_length=1)]
    password: typing.Annotated[str, msgspec.Meta(pattern=PASSWORD_PATTERN)]


class Console(_S):
    """The web console (issue 8; collector/web/): who may log in, how long a
    session lasts (idle and in all), and the language by default."""

    enabled: bool = True
    users: list[ConsoleUser] = []
    session_idle: typing.Annotated[float, msgspec.Meta(gt=0)] = 1800.0     # seconds
    session_max: typing.Annotated[float, msgspec.Meta(gt=0)] = 43200.0     # seconds
    language: typing.Literal["zh", "en"] = "zh"
    refresh: typing.Annotated[float, msgspec.Meta(ge=1, le=60)] = 2.0      # live-update seconds


class Config(_S):
    listen: Listen = msgspec.field(default_factory=Listen)
    storage: Storage = msgspec.field(default_factory=Storage)
    limits: Limits = msgspec.field(default_factory=Limits)
    agents: list[AgentEntry] = []
    fleet: Fleet = msgspec.field(default_factory=Fleet)
    operators: list[Operator] = []
    incidents: Incidents = msgspec.field(default_factory=Incidents)
    grading: Grading = msgspec.field(default_factory=Grading)
    runbooks: RunbookSettings = msgspec.field(default_factory=RunbookSettings)
    reports: ReportSettings = msgspec.field(default_factory=ReportSettings)
    notify: Notify = msgspec.field(default_factory=Notify)    # issue 7: collector/notify/
    drills: DrillSettings = msgspec.field(default_factory=DrillSettings)   # domain.md §5
    console: Console = msgspec.field(default_factory=Console)   # issue 8: collector/web/
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)

    def checkpoint_path(self) -> Path:
        """The append-only file the audit head is written to."""
        return Path(self.audit.checkpoint_file or Path(self.storage.data_dir) / "audit.checkpoints")

    def audit_key(self) -> bytes | None:
        """The audit key's bytes (systemd's credential when passed), or None when no
        key_file is set; ConfigError names the key when it cannot be used."""
        if self.audit.key_file is None:
            return None
        from agent.credentials import credential_path
        path = credential_path(self.audit.key_file)
        try:
            key = path.read_bytes().strip()
        except OSError as e:
            raise ConfigError(f"audit.key_file: expected a readable key file, {path}: "
                              f"{e.strerror or e}") from None
        if len(key) < 32:
            raise ConfigError(f"audit.key_file: expected at least 32 bytes of key in {path} "
                              f"(make one with `branchwatch audit new-key FILE`)")
        return key

    def db_path(self) -> Path:
        """The SQLite file inside the data directory."""
        return Path(self.storage.data_dir) / "collector.db"

    def store_dsn(self) -> str:
        """The PostgreSQL connection string from storage.postgresql.dsn_file (systemd's
        credential when passed); ConfigError names the key when it cannot be used."""
        from agent.credentials import credential_path
        path = credential_path(self.storage.postgresql.dsn_file)
        key = "storage.postgresql.dsn_file"
        try:
            dsn = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{key}: expected a readable file holding a PostgreSQL "
                              f"connection string, {path}: "
                              f"{getattr(e, 'strerror', None) or e}") from None
        if not dsn:
            raise ConfigError(f"{key}: expected a PostgreSQL connection string "
                              f"(host=... dbname=... or postgresql://...), {path} is empty")
        try:
            from psycopg.conninfo import conninfo_to_dict
        except ImportError:
            raise ConfigError(f"{key}: the PostgreSQL store needs psycopg "
                              f"(install branchwatch[postgresql] or python3-psycopg)") from None
        try:
            conninfo_to_dict(dsn)
        except Exception:
            # Not libpq's wording: it quotes the text it stumbled on, which may be
            # part of a password.
            raise ConfigError(f"{key}: expected a PostgreSQL connection string "
                              f"(key=value pairs such as host=... dbname=..., or a "
                              f"postgresql:// URI) in {path}: libpq cannot read it") from None
        return dsn


def load(path: str | Path) -> Config:
    """Read, parse and validate a collector config file (an empty file is an error:
    a collector on every default is never what was meant)."""
    try:
        return load_as(path, Config, _semantic_problems)
    except ConfigError as e:
        raise ConfigError(_token_wording(str(e))) from None


def parse(text: str, source: str = "<config>") -> Config:
    """Parse and validate collector config text; `source` names it in errors."""
    try:
        return parse_as(text, source, Config, _semantic_problems, empty_ok=True)
    except ConfigError as e:
        raise ConfigError(_token_wording(str(e))) from None


def problems_in(data: dict) -> tuple[Config | None, list[str]]:
    """Every "key: problem" of a collector config's YAML mapping (check-config)."""
    config, lines = every_problem(data, Config, _semantic_problems)
    return config, [_token_wording(line) for line in lines]


def _semantic_problems(c: Config):
    """Rules a type cannot say: TLS pairs, unique agent ids and tokens, grading."""
    if (c.listen.tls_cert is None) != (c.listen.tls_key is None):
        yield "listen", "expected both tls_cert and tls_key, or neither"
    hashes: set[str] = set()   # one token, one identity: agents and operators alike
    for section, key, what in (("agents", "id", "agent id"), ("operators", "name", "operator name")):
        names: set[str] = set()
        for i, entry in enumerate(getattr(c, section)):
            name = getattr(entry, key)
            if name in names:
                yield f"{section}[{i}].{key}", f"duplicate {what} {name!r}"
            if entry.token_sha256 in hashes:
                yield f"{section}[{i}].token_sha256", "the same token is enrolled twice"
            names.add(name)
            hashes.add(entry.token_sha256)
    for i, a in enumerate(c.agents):
        if a.id.startswith("drill:"):      # domain.md §5: a drill's faults, never a real agent's
            yield f"agents[{i}].id", "ids starting with 'drill:' are kept for drills"
    yield from _grading_problems(c.grading)
    yield from _scope_problems(c.grading, c.agents)
    yield from _runbook_problems(c.runbooks)
    yield from _drill_problems(c.drills)
    names: dict[str, str] = {}
    for i, u in enumerate(c.console.users):
        # Logins look names up normalised (collector/web/throttle.py): "Boss" and
        # "boss" would be one person, so two such users are one too many.
        key = normalise(u.name)
        if key in names:
            same = "" if names[key] == u.name else f" (the same as {names[key]!r} at login)"
            yield f"console.users[{i}].name", f"duplicate user name {u.name!r}{same}"
        names.setdefault(key, u.name)
    if c.notify != Notify():
        yield from _notify_problems(c.notify, _tables(c.grading))


def _tables(g: Grading) -> dict:
    """The grading tables in use, or none when they do not load (reported above)."""
    from .grading import TableError, load_tables
    try:
        return load_tables(g.tables)
    except TableError:
        return {}


def _runbook_problems(r: RunbookSettings):
    """Runbooks that load (each checked; a bad one names its file and key)."""
    from .incident_runbooks import Runbooks
    try:
        Runbooks.from_folder(r.folder)
    except ConfigError as e:
        yield "runbooks.folder", str(e)


def _drill_problems(d: DrillSettings):
    """Drill scenarios that load (each checked; a bad one names its file and key)."""
    from .drills.scenario import load_scenarios
    try:
        load_scenarios(d.folder)
    except ConfigError as e:
        yield "drills.folder", str(e)


def _grading_problems(g: Grading):
    """Tables that load, a calendar that parses, business stops that say what they match."""
    from .grading import Calendar, TableError, load_tables
    try:
        load_tables(g.tables)
    except TableError as e:
        yield "grading.tables", str(e)
    try:
        Calendar.from_dict(g.calendar, "", "grading.calendar") if g.calendar else None
    except ValueError as e:
        key, _, what = str(e).lstrip(": ").partition(": ")
        yield key, what
    for i, b in enumerate(g.business_stopping):
        if bool(b.checks) == bool(b.all_of):
            yield (f"grading.business_stopping[{i}]",
                   "expected exactly one of checks (any of) or all_of (every one at once)")


def _scope_problems(g: Grading, agents: list[AgentEntry]):
    """Key sites and channel lists that name what exists; channel calendars that parse."""
    from .grader import channel_calendars
    branches = {a.branch for a in agents}
    units = {a.region or g.scope.unit for a in agents} | {g.scope.unit}
    for i, site in enumerate(g.scope.key_sites):
        if site not in branches:
            yield (f"grading.scope.key_sites[{i}]",
                   f"expected the branch of an enrolled agent (agents[].branch), got {site!r}")
    for name in g.scope.units:
        if name not in units:
            yield (f"grading.scope.units.{name}", "expected a unit of the enrolled agents "
                   f"(an agents[].region, or grading.scope.unit), one of {sorted(units)}")
    try:
        channels = channel_calendars(g)
    except ValueError as e:
        key, _, what = str(e).lstrip(": ").partition(": ")
        yield key, what
        return
    listed = [("grading.default_channels", g.default_channels)] + [
        (f"grading.branch_channels.{b}", names) for b, names in g.branch_channels.items()]
    for key, names in listed:
        for i, name in enumerate(names):
            if name not in channels:
                yield (f"{key}[{i}]", f"expected a channel of grading.channels "
                       f"({', '.join(channels) or 'none are configured'}), got {name!r}")
    for b in g.branch_channels:
        if b not in branches:
            yield (f"grading.branch_channels.{b}",
                   "expected the branch of an enrolled agent (agents[].branch)")


def _token_wording(text: str) -> str:
    """Say how to get a valid token hash instead of quoting the regex."""
    if ".password" in text and "matching regex" in text:
        head = text.rsplit(": expected", 1)[0]
        return f"{head}: expected a scrypt hash (from `branchwatch collector password`)"
    if "token_sha256" in text and "matching regex" in text:
        head = text.rsplit(": expected", 1)[0]
        return f"{head}: expected 64 lowercase hex digits (from `branchwatch collector token`)"
    return text
