"""Is the newest backup matching a glob recent enough and big enough.

domain.md §1 (backups) and §2.2: a stale or failing backup target is a
hospital class-2 fault; hospital §5 asks for backups to be checked daily.
"""

from __future__ import annotations

import glob
import os
import re
import stat
import time
from collections.abc import Callable

from ..config import BackupSpec
from ..model import CheckResult, Reading, Sample, State
from .human import hours, size

_MAGIC = re.compile(r"[*?[]")
# A backup dated this far ahead of "now" means a wrong clock on one side;
# left alone it would look fresh for ever.
_FUTURE_SLACK = 300.0


def glob_base(pattern: str) -> str:
    """The directory part of a glob before its first wildcard ('/b/**/x*' → '/b')."""
    parts = pattern.split(os.sep)
    for i, part in enumerate(parts):
        if _MAGIC.search(part):
            return os.sep.join(parts[:i]) or (os.sep if pattern.startswith(os.sep) else ".")
    return os.path.dirname(pattern) or "."


def why_nothing(pattern: str) -> str:
    """A hint for an empty match: the folder is missing or unreadable."""
    base = glob_base(pattern)
    if not os.path.isdir(base):
        return f" ({base} does not exist: is the backup disk or share mounted?)"
    if not os.access(base, os.R_OK | os.X_OK):
        return f" (cannot read {base}: permission denied)"
    return ""


def backup_files(pattern: str) -> list[tuple[str, os.stat_result]]:
    """Regular files matching the glob (** recurses), with their stat."""
    out = []
    for path in glob.glob(pattern, recursive=True):
        try:
            st = os.stat(path)
        except OSError:
            continue  # rotated away or unreadable since the glob listed it
        if stat.S_ISREG(st.st_mode):
            out.append((path, st))
    return out


class BackupProbe:
    """One backup set: the newest matching file's age and size."""

    def __init__(self, spec: BackupSpec, interval: float, clock: Callable[[], float] = time.time):
        self.spec = spec
        self.name = f"backup/{spec.name}"
        self.interval = spec.interval or interval
        # A recursive glob over a large share can take a while.
        self.timeout = 30.0
        self.clock = clock

    def read(self) -> Reading:
        """Glob, pick the newest by mtime, judge its age and size."""
        s = self.spec
        files = backup_files(s.glob)
        samples = [Sample.of("branchwatch_backup_files", len(files), name=s.name)]
        detail: dict = {"glob": s.glob, "files": len(files)}
        if not files:
            reason = f"no backup matching {s.glob}{why_nothing(s.glob)}"
            return Reading(self.name, True, samples,
                           [CheckResult(self.name, State.CRITICAL, reason)], detail)
        path, st = max(files, key=lambda f: f[1].st_mtime)
        age = self.clock() - st.st_mtime
        samples += [Sample.of("branchwatch_backup_age_seconds", max(age, 0.0), name=s.name),
                    Sample.of("branchwatch_backup_size_bytes", st.st_size, name=s.name)]
        detail.update(newest=path, mtime=st.st_mtime, age_s=round(age, 1), size_bytes=st.st_size)
        state, reason = self._verdict(path, age, st.st_size, len(files))
        return Reading(self.name, True, samples, [CheckResult(self.name, state, reason)], detail)

    def _verdict(self, path: str, age: float, nbytes: int, n: int) -> tuple[State, str]:
        """Critical if too old or too small (both said when both), else ok."""
        s = self.spec
        problems = []
        if age > s.max_age:
            problems.append(f"is {hours(age)} old (limit {hours(s.max_age)})")
        if nbytes < s.min_size:
            problems.append(f"is only {size(nbytes)} (expected at least {size(s.min_size)})")
        if problems:
            return State.CRITICAL, f"newest backup {path} " + " and ".join(problems)
        if age < -_FUTURE_SLACK:
            return State.WARNING, (f"newest backup {path} is dated {hours(-age)} in the future "
                                   f"(is the clock right?)")
        files = "file" if n == 1 else "files"
        return State.OK, (f"newest backup {path} is {hours(max(age, 0.0))} old, "
                          f"{size(nbytes)} ({n} {files})")

    def close(self) -> None:
        """Nothing to release."""
