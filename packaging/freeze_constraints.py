"""Print constraints.txt: the installed version of every package branchwatch
needs with all its extras, closed over their requirements.

Run in an environment where `pip install -e '.[agent,collector,postgresql,pdf,test]'`
worked and the tests passed: `python3 packaging/freeze_constraints.py > constraints.txt`.
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import Requirement

ROOT = "branchwatch"
EXTRAS = ("agent", "collector", "postgresql", "pdf", "test")


def _name(s: str) -> str:
    return re.sub(r"[-_.]+", "-", s).lower()


def closure() -> dict[str, str]:
    """Every distribution reached from branchwatch[EXTRAS], with its version."""
    seen: dict[str, str] = {}
    todo = [(ROOT, set(EXTRAS))]
    while todo:
        dist_name, extras = todo.pop()
        try:
            dist = metadata.distribution(dist_name)
        except metadata.PackageNotFoundError:
            continue          # a marker-excluded or optional requirement not installed here
        for line in dist.requires or []:
            req = Requirement(line)
            env_ok = any(req.marker is None or req.marker.evaluate({"extra": e})
                         for e in (extras or {""}))
            if not env_ok:
                continue
            key = _name(req.name)
            if key in seen:
                continue
            try:
                seen[key] = metadata.version(req.name)
            except metadata.PackageNotFoundError:
                continue
            todo.append((req.name, set(req.extras)))
    seen.pop(_name(ROOT), None)
    return seen


if __name__ == "__main__":
    print("# Versions CI tests; install with: pip install -c constraints.txt '.[agent]' (or [collector])")
    print("# Regenerate: python3 packaging/freeze_constraints.py > constraints.txt")
    for name, version in sorted(closure().items()):
        print(f"{name}=={version}")
