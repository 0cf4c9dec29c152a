"""The agent's configuration: schema, loading and validation.

The schema is the set of msgspec structs below; `load()` turns a YAML file
into a `Config` or raises `ConfigError` whose message names the file, the
key path and what was expected, in one line.
"""

from __future__ import annotations

import re
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
# Reading and error wording live in config_reading; these names stay importable here.
from .config_reading import (MAX_DEPTH, ConfigError, every_problem, keys_overlap,  # noqa: F401
                             load_as, parse_as, read_yaml)


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


def load(path: str | Path) -> Config:
    """Read, parse and validate a config file."""
    return load_as(path, Config, _semantic_problems)


def parse(text: str, source: str = "<config>") -> Config:
    """Parse and validate config text; `source` names it in errors."""
    return parse_as(text, source, Config, _semantic_problems)


def problems_in(data: dict) -> tuple[Config | None, list[str]]:
    """Every "key: problem" of an agent config's YAML mapping (check-config)."""
    return every_problem(data, Config, _semantic_problems)


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
