"""The collector's configuration: schema, loading and validation.

Loading and error wording are the agent's (`agent.config`): one line that
names the file, the key path and what was expected. Only the schema and
the rules a type cannot say live here.
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec
import yaml

from agent.config import ConfigError, _StrictLoader, _unwrap, _yaml_problem
from agent.config import _explain as _agent_explain
from agent.schema_network import _S, Name

__all__ = ["Config", "ConfigError", "load", "parse", "AgentEntry"]

Sha256Hex = typing.Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
ListenPort = typing.Annotated[int, msgspec.Meta(ge=0, le=65535)]
Bytes = typing.Annotated[int, msgspec.Meta(ge=1024, le=1_073_741_824)]


class Listen(_S):
    address: str = "127.0.0.1"
    port: ListenPort = 9812
    tls_cert: str | None = None
    tls_key: str | None = None


class Storage(_S):
    data_dir: typing.Annotated[str, msgspec.Meta(min_length=1)] = "/var/lib/branchwatch-collector"


class Limits(_S):
    max_body: Bytes = 1_048_576


class AgentEntry(_S, kw_only=True):
    """One enrolled agent: its id, the branch it may write, its token's hash."""

    id: Name
    branch: Name
    region: str = ""
    token_sha256: Sha256Hex


class Config(_S):
    listen: Listen = msgspec.field(default_factory=Listen)
    storage: Storage = msgspec.field(default_factory=Storage)
    limits: Limits = msgspec.field(default_factory=Limits)
    agents: list[AgentEntry] = []

    def db_path(self) -> Path:
        """The SQLite file inside the data directory."""
        return Path(self.storage.data_dir) / "collector.db"


def load(path: str | Path) -> Config:
    """Read, parse and validate a collector config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ConfigError(f"{path}: cannot read the file: {reason}") from None
    return parse(text, str(path))


def parse(text: str, source: str = "<config>") -> Config:
    """Parse and validate collector config text; `source` names it in errors."""
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: {_yaml_problem(e)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of settings at the top level, "
                          f"got a {type(data).__name__}")
    try:
        config = msgspec.convert(data, Config, str_keys=True)
    except msgspec.ValidationError as e:
        raise ConfigError(f"{source}: {_explain(str(e))}") from None
    for key, problem in _semantic_problems(config):
        raise ConfigError(f"{source}: {key}: {problem}")
    return config


def _semantic_problems(c: Config):
    """Rules a type cannot say: TLS pairs, unique agent ids and tokens."""
    if (c.listen.tls_cert is None) != (c.listen.tls_key is None):
        yield "listen", "expected both tls_cert and tls_key, or neither"
    ids, hashes = set(), set()
    for i, a in enumerate(c.agents):
        if a.id in ids:
            yield f"agents[{i}].id", f"duplicate agent id {a.id!r}"
        if a.token_sha256 in hashes:
            yield f"agents[{i}].token_sha256", "the same token is enrolled twice"
        ids.add(a.id)
        hashes.add(a.token_sha256)


_UNKNOWN = re.compile(r"^Object contains unknown field `(.*?)`(?: - at `\$(.*)`)?$")


def _explain(message: str) -> str:
    """The agent's wording, with allowed keys taken from this schema."""
    if found := _UNKNOWN.match(message):
        path = (found[2] or "").lstrip(".")
        t = _unwrap(_type_at(path))
        allowed = ", ".join(getattr(t, "__struct_fields__", ())) or "none"
        where = f"{path}.{found[1]}" if path else found[1]
        return f"{where}: unknown key (expected one of: {allowed})"
    text = _agent_explain(message)
    if "token_sha256" in text and "matching regex" in text:
        return text.split(":")[0] + ": expected 64 lowercase hex digits (from `branchwatch collector token`)"
    return text


def _type_at(path: str):
    """The schema type at a key path of the collector config."""
    t: typing.Any = Config
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        t = _unwrap(t)
        t = typing.get_args(t)[0] if part.startswith("[") else typing.get_type_hints(t)[part]
    return t
