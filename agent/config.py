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


class MetricsListen(_S):
    address: str = "127.0.0.1"
    port: typing.Annotated[int, msgspec.Meta(ge=0, le=65535)] = 9811


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


MAX_DEPTH = 64        # nesting levels a config may use (the schema needs about 8)


def read_yaml(text: str, source: str, empty_ok: bool = False) -> dict:
    """The YAML mapping at the top of a config; ConfigError (one line) otherwise."""
    if (deep := _too_deep(text)) is not None:
        raise ConfigError(f"{source}: line {deep}: nested more than {MAX_DEPTH} levels deep "
                          f"(expected a config of at most {MAX_DEPTH})")
    try:
        loader = _StrictLoader(text)
        try:
            node = loader.get_single_node()
            if (dup := _duplicate_key(node)) is not None:
                raise ConfigError(f"{source}: {dup}")
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {_yaml_problem(e)}") from None
    except RecursionError:     # aliases can nest deeper than the text shows
        raise ConfigError(f"{source}: nested too deep (expected a config of at most "
                          f"{MAX_DEPTH} levels)") from None
    if data is None and empty_ok:
        data = {}
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, got {got}")
    return data


def parse_as(text: str, source: str, root: type, problems, empty_ok: bool = False):
    """Parse YAML into `root`; `problems(config)` yields (key, problem) rules."""
    data = read_yaml(text, source, empty_ok)
    try:
        config = msgspec.convert(data, root, str_keys=True)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_explain(str(e), root)}") from None
    for key, problem in problems(config):
        raise ConfigError(f"{source}: {key}: {problem}")
    return config


def every_problem(data: dict, root: type, problems) -> tuple[object | None, list[str]]:
    """(config or None, every "key: problem" line) for a YAML mapping: each schema
    error is reported, the bad value set aside and the rest checked again, then
    the rules a type cannot say (those touching a key already reported are
    consequences of it, and left out)."""
    import copy
    data, found, reported = copy.deepcopy(data), [], []
    tainted = []     # objects a bad value was set aside in: their rules would only echo it
    removed: dict[tuple, list[int]] = {}          # list path -> original indexes removed
    for _ in range(200):
        try:
            config = msgspec.convert(data, root, str_keys=True)
            break
        except msgspec.ValidationError as e:
            line = _explain(str(e), root)
            m = _MSGSPEC.match(str(e))
            parts = _parts((m["path"] or "").lstrip("."))
            field = re.match(r"Object (?:contains unknown|missing required) field `(.*)`",
                             m["msg"])
            here = parts + ([field[1]] if field else [])
            key = _key(_original(here, removed))
            # Name the key as the file numbers it, not as the pruned data does.
            line = line.replace(_key(here) + ": ", key + ": ", 1) if _key(here) else line
            if not any(keys_overlap(key, k) for k in reported):
                found.append(line)
                reported.append(key)
            missing = m["msg"].startswith("Object missing required")
            if not parts and (missing or not field):
                return None, found            # nothing left to set aside
            if not (field and not missing):   # an unknown key changes nothing when removed
                tainted.append(_key(_original(parts[:-1], removed)) or key)
            _set_aside(data, parts if missing or not field else parts + [field[1]], removed)
    else:
        return None, found
    for key, problem in problems(config):
        if not any(keys_overlap(key, k) for k in reported + tainted):
            found.append(f"{key}: {problem}")
    return config, found


def _parts(path: str) -> list:
    return [int(p[1:-1]) if p.startswith("[") else p
            for p in re.findall(r"[^.\[\]]+|\[\d+\]", path)]


def _key(parts: list) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def keys_overlap(a: str, b: str) -> bool:
    """One key path is the other or inside it (a problem caused by another)."""
    def inside(x, y):
        return x == y or x.startswith(y + ".") or x.startswith(y + "[")
    return inside(a, b) or inside(b, a)


def _original(parts: list, removed: dict) -> list:
    """A path in the pruned data as a path in the file (list items removed before)."""
    out = []
    for p in parts:
        if isinstance(p, int):
            for r in sorted(removed.get(tuple(out), [])):
                if r <= p:
                    p += 1
        out.append(p)
    return out


def _set_aside(data, parts: list, removed: dict) -> None:
    """Remove the value at a path (so the schema's default, or the next error, shows)."""
    parent = data
    for p in parts[:-1]:
        parent = parent[p]
    last = parts[-1]
    if isinstance(parent, list):
        removed.setdefault(tuple(_original(parts[:-1], removed)), []).append(
            _original(parts, removed)[-1])
        parent.pop(last)
    elif isinstance(parent, dict):
        parent.pop(last, None)


def _too_deep(text: str) -> int | None:
    """The line where the YAML nests deeper than MAX_DEPTH (scanned, not parsed: a
    parser would recurse), or None."""
    depth = 0
    try:
        for tok in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(tok, (yaml.BlockMappingStartToken, yaml.BlockSequenceStartToken,
                                yaml.FlowMappingStartToken, yaml.FlowSequenceStartToken)):
                depth += 1
                if depth > MAX_DEPTH:
                    return tok.start_mark.line + 1
            elif isinstance(tok, (yaml.BlockEndToken, yaml.FlowMappingEndToken,
                                  yaml.FlowSequenceEndToken)):
                depth -= 1
    except yaml.YAMLError:
        return None           # the parser words it
    return None


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


def _duplicate_key(root) -> str | None:
    """'key.path: line L column C: key 'k' is given twice' for the first key given twice
    in a mapping (YAML would keep the last silently), or None. Walked without recursion."""
    stack = [(root, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, value in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    m = key_node.start_mark
                    return (f"{_key(path + [key])}: line {m.line + 1} column {m.column + 1}: "
                            f"key {key!r} is given twice (expected each key once)")
                seen.add(key)
                stack.append((value, path + [key if key is not None else "?"]))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend((item, path + [i]) for i, item in enumerate(node.value))
    return None


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
    problem = getattr(e, "problem", None) or str(e).splitlines()[0]
    if isinstance(e, yaml.reader.ReaderError):  # bad character: says where by offset only
        problem = f"{problem} at character {e.position}"
    return f"{where}not valid YAML: {problem}"
