"""The collector config's `hospital:` section (domain.md §2.3).

A whole-network outage (網絡整體故障) is what IT determines it to be: declared
by a person, or observed when at least `core.share` of the core's members (the
HIS servers, the core switches) are down at once, never one silent agent alone.
The outage is kept as a fault at `branch` (default: the first member's branch),
so it goes through grading, runbooks, deadlines and notifications as any fault.
"""

from __future__ import annotations

import math
import typing

import msgspec

from agent.schema_network import Name, _S

Share = typing.Annotated[float, msgspec.Meta(gt=0, le=1)]
Check = typing.Annotated[str, msgspec.Meta(min_length=1)]


class CoreMember(_S, kw_only=True):
    """One member of the network's core: a check at a branch (a server's TCP probe,
    a core switch's reachability), and what people call it."""

    branch: Name
    check: Check
    name: str = ""

    def label(self) -> str:
        """How a reason names it: its name, else branch:check."""
        return self.name or f"{self.branch}:{self.check}"


class Core(_S):
    """The core of the network: the whole network is out while at least `share`
    of `members` (rounded up, at least one) are down in one of `states`."""

    members: list[CoreMember] = []
    share: Share = 0.5
    states: list[typing.Literal["warning", "critical", "unknown"]] = msgspec.field(
        default_factory=lambda: ["critical", "unknown"])

    def needed(self) -> int:
        """How many members down make the whole network out."""
        return max(1, math.ceil(self.share * len(self.members) - 1e-9))


class Hospital(_S):
    """The `hospital:` section; empty = not a hospital (nothing here runs)."""

    branch: Name | None = None          # where the outage fault is kept
    core: Core = msgspec.field(default_factory=Core)
    # hospital §5.5: the monthly restore test is tracked (a register, due monthly).
    restore_tests: bool = True

    def configured(self) -> bool:
        """Whether this collector watches a hospital."""
        return bool(self.branch or self.core.members)

    def outage_branch(self) -> str | None:
        """The branch the whole-network outage is kept at."""
        return self.branch or (self.core.members[0].branch if self.core.members else None)


def problems(h: Hospital, branches: set[str], tables: list[str], loaded: dict | None = None,
             held: set[str] | None = None):
    """(key, problem) for what a type cannot say: enrolled branches, one member once,
    the hospital table in use, and (when anyone is notified: `held` are the roles
    somebody holds) every department its milestones name reachable."""
    if not h.configured():
        return
    for name, table in (loaded or {}).items():
        for d in table.deadlines if held is not None else ():
            for dept in d.departments:
                if dept not in held:
                    yield ("notify", f"department {dept!r} (told by the {name} table's "
                                     f"{d.key} milestone) has nobody: give a person or a "
                                     f"group (notify.groups.{dept}) that role")
    if h.branch is not None and h.branch not in branches:
        yield "hospital.branch", f"expected the branch of an enrolled agent (agents[].branch), " \
                                 f"got {h.branch!r}"
    seen: set[tuple[str, str]] = set()
    for i, m in enumerate(h.core.members):
        if m.branch not in branches:
            yield (f"hospital.core.members[{i}].branch",
                   f"expected the branch of an enrolled agent (agents[].branch), got {m.branch!r}")
        if (m.branch, m.check) in seen:
            yield f"hospital.core.members[{i}]", f"duplicate member {m.branch}:{m.check}"
        seen.add((m.branch, m.check))
    if "hospital" not in tables:
        yield "grading.tables", "expected 'hospital' among the tables when the hospital " \
                                "section is set (its milestones and re-entry deadlines)"
