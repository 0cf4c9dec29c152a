"""The agent's configuration: schema, loading and validation.

The schema is the set of msgspec structs below; `load()` turns a YAML file
into a `Config` or raises `ConfigError` whose message names the file, the
key path and what was expected, in one line.
"""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Literal

import msgspec
import yaml

# Seconds is at most a year: .inf would pass "> 0" and then never poll.
from .schema_collector_link import CollectorLink, link_problems
from .schema_failover import Failover, failover_problems
from .schema_network import (Line, Name, Port, Ratio, Seconds, SnmpUpsTarget, Switch,
                             TrapListen, _S, network_problems)


class AgentIdentity(_S):
    id: Name
    branch: Name
    region: str = ""


class MetricsAuth(_S, kw_only=True):
    """HTTP basic auth for /metrics: Prometheus's `basic_auth` user and the
    sha256 of its password (`printf %s PASSWORD | sha256sum`)."""

    user: Name
    password_sha256: typing.Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class MetricsListen(_S):
    # Every interface: Prometheus scrapes the branch from outside (as node_exporter's :9100).
    address: str = "0.0.0.0"
    port: typing.Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9811
    # TLS (both or neither) and, with it, optional client certificates; basic auth.
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_client_ca: str | None = None
    basic_auth: MetricsAuth | None = None
    # host:port Prometheus should scrape when it is not this machine's address as
    # the collector sees it (NAT, a proxy); the collector's service discovery uses it.
    advertise: typing.Annotated[str, msgspec.Meta(pattern=r"^[^\s/:]+:[0-9]{1,5}$|^\[[0-9a-fA-F:.]+\]:[0-9]{1,5}$")] | None = None


class StatePolicy(_S):
    debounce: typing.Annotated[int, msgspec.Meta(ge=1)] = 2
    flap_window: Seconds = 600.0
    flap_threshold: typing.Annotated[int, msgspec.Meta(ge=2)] = 6
    recheck_interval: Seconds = 0.5


# A NUT instant command name (`test.battery.start.quick`, `outlet.1.load.off`):
# no spaces or line breaks, so it can never smuggle a second protocol line.
CommandName = typing.Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


class NutActions(_S):
    """Which NUT instant commands the agent may run on this UPS (pre-authorised)."""

    commands: list[CommandName]


class NutTarget(_S):
    ups: Name
    host: str = "127.0.0.1"
    port: Port = 3493
    user: str | None = None
    password: str | None = None
    timeout: Seconds = 3.0
    # New keys go last: unknown-key errors list keys in this order (older ones first).
    password_file: str | None = None   # or the password in a file (stripped)
    actions: NutActions | None = None  # instant commands allowed (agent/ups/instcmd.py)


class SerialTarget(_S):
    port: typing.Annotated[str, msgspec.Meta(min_length=1)]
    baud: typing.Annotated[int, msgspec.Meta(gt=0)] = 2400
    timeout: Seconds = 1.0


class UpsThresholds(_S):
    charge_warning: Ratio = 0.5
    charge_critical: Ratio = 0.2
    runtime_warning: Seconds = 600.0
    runtime_critical: Seconds = 300.0
    load_warning: Ratio = 0.8
    load_critical: Ratio = 0.95


class Ups(_S):
    name: Name
    nut: NutTarget | None = None
    serial: SerialTarget | None = None
    snmp: SnmpUpsTarget | None = None
    interval: Seconds = 2.0
    thresholds: UpsThresholds = msgspec.field(default_factory=UpsThresholds)


class ProcessSpec(_S):
    name: Name
    process: str | None = None
    cmdline: str | None = None
    min_count: typing.Annotated[int, msgspec.Meta(ge=1)] = 1


class ListenSpec(_S):
    name: Name
    port: Port
    address: str | None = None


class TcpSpec(_S):
    name: Name
    host: str
    port: Port
    timeout: Seconds = 3.0
    latency_warning: Seconds = 0.5
    interval: Seconds | None = None


class DiskSpec(_S):
    mount: str
    warning: Ratio = 0.85
    critical: Ratio = 0.95


class MemorySpec(_S):
    warning: Ratio = 0.90
    critical: Ratio = 0.97


class LoadSpec(_S):
    warning: typing.Annotated[float, msgspec.Meta(gt=0.0)] = 2.0
    critical: typing.Annotated[float, msgspec.Meta(gt=0.0)] = 4.0


class BackupSpec(_S):
    name: Name
    glob: str
    max_age: Seconds = 93600.0
    min_size: typing.Annotated[int, msgspec.Meta(ge=0)] = 1
    interval: Seconds | None = None


class Host(_S):
    interval: Seconds = 10.0
    processes: list[ProcessSpec] = []
    listening: list[ListenSpec] = []
    tcp: list[TcpSpec] = []
    disks: list[DiskSpec] = []
    memory: MemorySpec | None = None
    load: LoadSpec | None = None
    backups: list[BackupSpec] = []


class Config(_S):
    agent: AgentIdentity
    metrics: MetricsListen = msgspec.field(default_factory=MetricsListen)
    state: StatePolicy = msgspec.field(default_factory=StatePolicy)
    nut_client: Literal["auto", "nut2", "pynut"] = "auto"
    ups: list[Ups] = []
    host: Host = msgspec.field(default_factory=Host)
    switches: list[Switch] = []
    traps: TrapListen | None = None
    lines: list[Line] = []
    collector: CollectorLink | None = None
    failover: Failover | None = None


class ConfigError(Exception):
    """A config cannot be used; str() is the one line shown to the user."""


def load(path: str | Path) -> Config:
    """Read, parse and validate a config file."""
    return load_as(path, Config, _semantic_problems)


def parse(text: str, source: str = "<config>") -> Config:
    """Parse and validate config text; `source` names it in errors."""
    return parse_as(text, source, Config, _semantic_problems)


def load_as(path: str | Path, root: type, problems, empty_ok: bool = False):
    """`load` for any schema (the collector's too): same reading, same wording."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{path}: cannot read the file: {reason}") from None
    return parse_as(text, str(path), root, problems, empty_ok)


def parse_as(text: str, source: str, root: type, problems, empty_ok: bool = False):
    """Parse YAML into `root`; `problems(config)` yields (key, problem) rules."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {_yaml_problem(e)}") from None
    if data is None and empty_ok:
        data = {}
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {got}")
    try:
        config = msgspec.convert(data, root, str_keys=True)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_explain(str(e), root)}") from None
    for key, problem in problems(config):
        raise ConfigError(f"{source}: {key}: {problem}")
    return config


def from_dict(data: dict, source: str = "<embedded>") -> Config:
    """Validate a config given as Python data (used by the demo)."""
    return parse(yaml.safe_dump(data), source)


def _semantic_problems(c: Config):
    """Rules a type cannot say: one-of choices, orderings, uniqueness."""
    names = set()
    for i, u in enumerate(c.ups):
        where = f"ups[{i}]"
        if sum(x is not None for x in (u.nut, u.serial, u.snmp)) != 1:
            yield where, "expected exactly one of 'nut', 'serial' or 'snmp'"
        if u.name in names:
            yield f"{where}.name", f"duplicate UPS name {u.name!r}"
        names.add(u.name)
        if u.nut is not None:
            yield from _nut_problems(f"{where}.nut", u.nut)
        t = u.thresholds
        if t.charge_critical > t.charge_warning:
            yield f"{where}.thresholds.charge_critical", "expected at most charge_warning"
        if t.runtime_critical > t.runtime_warning:
            yield f"{where}.thresholds.runtime_critical", "expected at most runtime_warning"
        if t.load_warning > t.load_critical:
            yield f"{where}.thresholds.load_warning", "expected at most load_critical"
    yield from network_problems(c.switches, c.lines,
                                [(f"ups[{i}]", u.snmp) for i, u in enumerate(c.ups) if u.snmp])
    h = c.host
    for i, p in enumerate(h.processes):
        if (p.process is None) == (p.cmdline is None):
            yield f"host.processes[{i}]", "expected exactly one of 'process' or 'cmdline'"
        if p.cmdline is not None:
            try:
                re.compile(p.cmdline)
            except re.error as e:
                yield f"host.processes[{i}].cmdline", f"expected a regular expression ({e})"
    for section in ("processes", "listening", "tcp", "backups"):
        seen = set()
        for i, item in enumerate(getattr(h, section)):
            if item.name in seen:
                yield f"host.{section}[{i}].name", f"duplicate name {item.name!r}"
            seen.add(item.name)
    for i, d in enumerate(h.disks):
        if d.warning > d.critical:
            yield f"host.disks[{i}].warning", "expected at most critical"
    for key, spec in (("host.memory", h.memory), ("host.load", h.load)):
        if spec is not None and spec.warning > spec.critical:
            yield f"{key}.warning", "expected at most critical"
    m = c.metrics
    if (m.tls_cert is None) != (m.tls_key is None):
        yield "metrics.tls_cert", "expected tls_cert and tls_key together"
    if m.tls_client_ca is not None and m.tls_cert is None:
        yield "metrics.tls_client_ca", "expected tls_cert and tls_key as well (client certificates need TLS)"
    if c.collector is not None:
        yield from link_problems(c.collector)
    if c.failover is not None:
        yield from failover_problems(c.failover, c.lines, c.switches)


def _nut_problems(where: str, t: NutTarget):
    """Credentials and the allow list of a NUT target."""
    if t.password is not None and t.password_file is not None:
        yield where, "expected at most one of 'password' or 'password_file'"
    for key in ("user", "password"):
        value = getattr(t, key)
        if value is not None and ("\n" in value or "\r" in value):
            yield f"{where}.{key}", "expected no line breaks (upsd reads one line per request)"
    if t.actions is not None and t.user is None:
        # upsd runs INSTCMD only for a user logged in with instcmds in upsd.users.
        yield f"{where}.actions", "expected nut.user (upsd runs instant commands only for a user)"


_MSGSPEC = re.compile(r"^(?P<msg>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$")


def _explain(message: str, root: type | None = None) -> str:
    """Turn msgspec's wording into 'key.path: what was expected'."""
    root = root or Config
    m = _MSGSPEC.match(message)
    msg, path = m["msg"], (m["path"] or "").lstrip(".")
    if m["key"]:
        return f"{path or '(top level)'}: expected str keys, found a key that is not text " \
               f"(quote it: YAML reads on/off/yes/no as true/false and 1 as a number)"
    if found := re.match(r"Object missing required field `(.*)`", msg):
        return f"{_join(path, found[1])}: missing, and it is required"
    if found := re.match(r"Object contains unknown field `(.*)`", msg):
        allowed = ", ".join(_fields_at(path, root)) or "none"
        return f"{_join(path, found[1])}: unknown key (expected one of: {allowed})"
    msg = re.sub(r"`([^`]*)`", r"\1", msg)
    for word, said in (("array", "a list"), ("object", "a mapping"), ("null", "nothing")):
        msg = re.sub(rf"\b(Expected|got) {word}\b", rf"\1 {said}", msg)
    if msg.startswith("Invalid enum value"):
        allowed = ", ".join(typing.get_args(_type_at(path, root)))
        msg = f"{msg.replace('Invalid enum value', 'invalid value')} (expected one of: {allowed})"
    return f"{path or '(top level)'}: {msg[0].lower() + msg[1:]}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _fields_at(path: str, root: type | None = None) -> list[str]:
    """The keys allowed at a key path, by walking the schema's types."""
    t = _unwrap(_type_at(path, root))
    return list(t.__struct_fields__) if hasattr(t, "__struct_fields__") else []


def _type_at(path: str, root: type | None = None):
    """The schema type at a key path."""
    t: typing.Any = root or Config
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        t = _unwrap(t)
        if part.startswith("["):
            t = typing.get_args(t)[0]
        else:
            t = typing.get_type_hints(t)[part]
    return t


def _unwrap(t):
    """Strip Optional[...] and Annotated[...] down to the struct or list type."""
    while True:
        origin = typing.get_origin(t)
        if origin is typing.Annotated:
            t = typing.get_args(t)[0]
        elif origin in (typing.Union, types.UnionType):
            t = next(a for a in typing.get_args(t) if a is not type(None))
        else:
            return t


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (YAML would keep the last)."""


def _no_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, (str, int, float, bool, type(None))):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value, not a list or mapping",
                key_node.start_mark)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if isinstance(e, yaml.reader.ReaderError):  # bad character: says where by offset only
        problem = f"{problem} at character {e.position}"
    return f"{where}not valid YAML: {problem}"
