"""Secrets in files, and systemd's credentials (README "Install").

Under systemd, the units' `LoadCredential=branchwatch:/etc/branchwatch/credentials`
copies every file of that root-only directory into one only the service can
read, each named `branchwatch_<file>`, and names it in $CREDENTIALS_DIRECTORY.
A config keeps naming the installed file (`token_file:
/etc/branchwatch/credentials/agent.token`); when the service runs with
credentials, the copy of that file name is read instead (`branchwatch_<name>`,
or `<name>` from a single-file `LoadCredential=<name>:PATH`), so one config
works with and without systemd.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CREDENTIALS_DIRECTORY"
PREFIX = "branchwatch_"      # the credential id of the units' LoadCredential= directory


def credential_path(path: str | Path) -> Path:
    """Where a secret file is really read: systemd's copy when there is one."""
    path = Path(path)
    folder = os.environ.get(ENV)
    if folder:
        for name in (PREFIX + path.name, path.name):
            passed = Path(folder) / name
            if passed.is_file():
                return passed
    return path


def with_secrets(config):
    """The config with every `X_file` secret read into its `X` (token_file ->
    token, password_file -> password, community_file -> community, ...), from
    systemd's credentials when passed; ConfigError names the key that fails."""
    import msgspec

    from .config import ConfigError

    def walk(value, where: str):
        if isinstance(value, list):
            return [walk(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if not isinstance(value, msgspec.Struct):
            return value
        changes = {}
        for name in value.__struct_fields__:
            sub = getattr(value, name)
            key = f"{where}.{name}" if where else name
            if name.endswith("_file") and name[:-5] in value.__struct_fields__ and sub:
                try:
                    changes[name[:-5]] = read_secret(sub)
                    changes[name] = None       # read: every user sees the inline value
                except (OSError, UnicodeDecodeError) as e:
                    reason = getattr(e, "strerror", None) or e
                    raise ConfigError(f"{key}: expected a readable file, "
                                      f"{credential_path(sub)}: {reason}") from None
            elif isinstance(sub, (list, msgspec.Struct)):
                new = walk(sub, key)
                if new is not sub:
                    changes[name] = new
        return msgspec.structs.replace(value, **changes) if changes else value
    return walk(config, "")


def secret_files(config, where: str = ""):
    """(key, path) of every `X_file` secret a config names."""
    import msgspec
    if isinstance(config, list):
        for i, v in enumerate(config):
            yield from secret_files(v, f"{where}[{i}]")
        return
    if not isinstance(config, msgspec.Struct):
        return
    for name in config.__struct_fields__:
        sub = getattr(config, name)
        key = f"{where}.{name}" if where else name
        if name.endswith("_file") and name[:-5] in config.__struct_fields__ and sub:
            yield key, sub
        elif isinstance(sub, (list, msgspec.Struct)):
            yield from secret_files(sub, key)


def read_secret(path: str | Path) -> str:
    """A secret file's text, stripped (OSError as raised, for the caller to word)."""
    return credential_path(path).read_text(encoding="utf-8").strip()


def file_problem(path: str | Path, want_dir: bool = False) -> str | None:
    """Why a file a config names cannot be read, or None when it can."""
    real = credential_path(path)
    try:
        if want_dir:
            if not real.is_dir():
                return f"expected a directory, {real} is {'a file' if real.exists() else 'missing'}"
            return None
        with open(real, "rb"):
            pass
    except IsADirectoryError:
        return f"expected a file, {real} is a directory"
    except OSError as e:
        return f"expected a readable file, {real}: {e.strerror or e}"
    return None
