"""The collector's configuration: schema, loading and validation.

Loading and error wording are the agent's (`agent.config`): one line that
names the file, the key path and what was expected. Only the schema and
the rules a type cannot say live here.
"""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec

from agent.config import ConfigError, load_as, parse_as
from agent.schema_network import _S, Name

__all__ = ["Config", "ConfigError", "load", "parse", "AgentEntry", "Operator"]

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


class Operator(_S, kw_only=True):
    """A person who may ack, note, resolve and close incidents via the API."""

    name: Name
    token_sha256: Sha256Hex


class Incidents(_S):
    """Incident grouping window and the dead-man's grace (issue 4)."""

    window: typing.Annotated[float, msgspec.Meta(gt=0)] = 120.0
    deadman_grace: typing.Annotated[float, msgspec.Meta(ge=0)] | None = None


class Config(_S):
    listen: Listen = msgspec.field(default_factory=Listen)
    storage: Storage = msgspec.field(default_factory=Storage)
    limits: Limits = msgspec.field(default_factory=Limits)
    agents: list[AgentEntry] = []
    operators: list[Operator] = []
    incidents: Incidents = msgspec.field(default_factory=Incidents)

    def db_path(self) -> Path:
        """The SQLite file inside the data directory."""
        return Path(self.storage.data_dir) / "collector.db"


def load(path: str | Path) -> Config:
    """Read, parse and validate a collector config file (an empty file is all defaults)."""
    try:
        return load_as(path, Config, _semantic_problems, empty_ok=True)
    except ConfigError as e:
        raise ConfigError(_token_wording(str(e))) from None


def parse(text: str, source: str = "<config>") -> Config:
    """Parse and validate collector config text; `source` names it in errors."""
    try:
        return parse_as(text, source, Config, _semantic_problems, empty_ok=True)
    except ConfigError as e:
        raise ConfigError(_token_wording(str(e))) from None


def _semantic_problems(c: Config):
    """Rules a type cannot say: TLS pairs, unique agent ids and tokens."""
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


def _token_wording(text: str) -> str:
    """Say how to get a valid token hash instead of quoting the regex."""
    if "token_sha256" in text and "matching regex" in text:
        head = text.rsplit(": expected", 1)[0]
        return f"{head}: expected 64 lowercase hex digits (from `branchwatch collector token`)"
    return text
