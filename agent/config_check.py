"""`branchwatch check-config`: every error in an agent or collector config, one
line each.

The kind of config is told by its content (an agent config has `agent:`; a
collector config has only collector sections) or by `--collector`. Besides
the schema and its rules, the files a config names are looked at as the
service would use them (through $CREDENTIALS_DIRECTORY when systemd passes
credentials: agent/credentials.py).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError, read_yaml
from .credentials import file_problem


@dataclass
class Checked:
    """What check-config found in one file."""

    path: str
    kind: str | None = None               # "agent" or "collector"; None when unknown
    errors: list[str] = field(default_factory=list)    # "key: problem" (or a whole-file line)
    summary: str = ""

    def lines(self) -> list[str]:
        """The errors as the command prints them."""
        return [f"branchwatch: {self.path}: {e}" for e in self.errors]

    def as_json(self) -> str:
        """The result as one JSON document (--json)."""
        return json.dumps({"file": self.path, "kind": self.kind, "ok": not self.errors,
                           "errors": self.errors, "summary": self.summary},
                          ensure_ascii=False)


def check_file(path: str, kind: str | None = None, files: bool = True) -> Checked:
    """Every problem of a config file: read, kind, schema, rules, and named files."""
    out = Checked(path, kind)
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = read_yaml(text, path)
    except OSError as e:
        out.errors.append(f"cannot read the file: {e.strerror or e}")
        return out
    except UnicodeDecodeError as e:
        out.errors.append(f"cannot read the file: {e}")
        return out
    except ConfigError as e:
        out.errors.append(str(e).removeprefix(f"{path}: "))
        return out
    out.kind = kind or _kind(data)
    if out.kind is None:
        sections = _collector_sections()[:4] or ["listen", "storage", "agents"]
        out.errors.append(
            f"expected an agent config (with agent:) or a collector config (with "
            f"{', '.join(sections)}, ...), found keys "
            f"{', '.join(map(str, data)) or 'none'} (for a collector config: --collector)")
        return out
    if out.kind == "collector" and not _collector_sections():
        out.errors.append("a collector config, but the collector is not installed here "
                          "(expected branchwatch[collector])")
        return out
    if out.kind == "agent":
        from .config import problems_in
        config, out.errors = problems_in(data)
        if config is not None and files:
            out.errors += _unreported(agent_file_problems(config), out.errors)
        if config is not None:
            out.summary = agent_summary(config)
    else:
        from collector.config import problems_in
        from collector.config_files import collector_file_problems, summary
        config, out.errors = problems_in(data)
        if config is not None and files:
            out.errors += _unreported(collector_file_problems(config), out.errors)
        if config is not None:
            out.summary = summary(config)
    return out


def _unreported(lines, errors: list[str]) -> list[str]:
    """File problems whose key no error above names already (or is inside of)."""
    from .config import keys_overlap
    keys = [e.split(": ", 1)[0] for e in errors]
    return [line for line in lines
            if not any(keys_overlap(line.split(": ", 1)[0], k) for k in keys)]


def _collector_sections() -> list[str]:
    """The collector config's top-level sections; [] where only the agent is
    installed (its package carries no collector code)."""
    try:
        from collector.config import Config as CollectorConfig
    except ImportError:
        return []
    return list(CollectorConfig.__struct_fields__)


def _kind(data: dict) -> str | None:
    """'agent' or 'collector': whose top-level sections the mapping has more of
    (the two sets are disjoint), None when it has neither's."""
    from .config import Config as AgentConfig
    if "agent" in data:         # required in an agent config, absent from a collector's:
        return "agent"          # tell without importing the collector on a branch machine
    agent = len(set(data) & set(AgentConfig.__struct_fields__))
    collector = len(set(data) & set(_collector_sections()))
    if agent == collector == 0:
        return None
    return "agent" if agent >= collector else "collector"


def agent_summary(c) -> str:
    """One line of what an agent config watches."""
    h = c.host
    services = len(h.processes) + len(h.listening) + len(h.tcp) + len(h.backups) + len(h.disks)
    return (f"agent {c.agent.id}, branch {c.agent.branch}, {len(c.ups)} UPS, "
            f"{len(c.switches)} switches, {len(c.lines)} lines, {services} service checks")


def agent_file_problems(c):
    """Files an agent config names that the agent could not use: yields 'key: problem'."""
    from .credentials import secret_files
    for key, path in secret_files(c):     # token, upsd and SNMP secrets
        if why := file_problem(path):
            yield f"{key}: {why}"
    link = c.collector
    if link is not None:
        if link.ca_file is not None and (why := file_problem(link.ca_file)):
            yield f"collector.ca_file: {why}"
        if (why := writable_place(link.spool.path)) is not None:
            yield f"collector.spool.path: {why}"


def writable_place(path: str | Path, is_dir: bool = False) -> str | None:
    """Why a file (or directory) at `path` could not be created or written, or None."""
    p = Path(path)
    if p.exists():
        if is_dir and not p.is_dir():
            return f"expected a directory, {p} is a file"
        if not is_dir and p.is_dir():
            return f"expected a file, {p} is a directory"
        target = p if is_dir else p.parent
        if not os.access(target, os.W_OK | os.X_OK) or not os.access(p, os.W_OK):
            return f"expected a place this user ({_user()}) can write, {p} is not writable"
        return None
    parent = p.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"expected a directory, {parent} is a file"
    if not os.access(parent, os.W_OK | os.X_OK):
        return (f"expected a place this user ({_user()}) can create, {parent} is not "
                f"writable")
    return None


def _user() -> str:
    import pwd
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
