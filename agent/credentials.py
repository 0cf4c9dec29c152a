"""Secrets in files, and systemd's credentials (issue 17, README "Install").

Under systemd, `LoadCredential=NAME:/etc/branchwatch/credentials/NAME`
copies a secret into a directory only the service can read and names it in
$CREDENTIALS_DIRECTORY. A config keeps naming the installed file
(`token_file: /etc/branchwatch/credentials/agent.token`); when the service
runs with credentials, the file of that name in $CREDENTIALS_DIRECTORY is
read instead, so one config works with and without systemd.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "CREDENTIALS_DIRECTORY"


def credential_path(path: str | Path) -> Path:
    """Where a secret file is really read: systemd's copy when there is one."""
    path = Path(path)
    folder = os.environ.get(ENV)
    if folder:
        passed = Path(folder) / path.name
        if passed.is_file():
            return passed
    return path


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
