"""Drill scenarios as data (issue 7; domain.md §5, 第十五條: power-system
takeover, power-outage drill, network failure, ...).

A scenario file (config/drills/*.yaml) is a timeline of faults as a branch's
agent would report them, and the clears that come by themselves:

    id: power-cut
    title: Power cut at a branch
    title_zh: 网点停电
    source: domain.md §5 (第十五條); branch plan 五(二)
    scope: branch            # branch: run with --branch; region: with --region
    stagger: 0               # region: seconds between one branch and the next
    runbook: power-cut       # the runbook it exercises (the report names it)
    events:
      - {at: 0, check: ups/rack/on_battery, state: critical, reason: mains lost}
      - {at: 5, check: "agent/{agent}/silent", reason: the branch went silent}
    clears:                  # the rest clear when the drill ends (`drill end`)
      - {at: 900, check: ups/rack/on_battery, reason: mains back}
    actions: {bypass: failed}   # how rehearsed runbook actions turn out (default done)

`{agent}` and `{branch}` in a check are the drill's agent id and the branch.
`expand` turns a scenario into one run's injections: which drill agent
(`drill:RUN:BRANCH`), branch, check and state, due at which second after the
start (offset / speed). Pure; loading uses the config loader's wording.
"""

from __future__ import annotations

import sys
import typing
from datetime import datetime
from pathlib import Path

import msgspec

from agent.config import ConfigError, load_as, parse_as
from agent.schema_network import _S, Name

from ..incident_rules import DRILL_AGENT
from ..texts import zh_problem

Text = typing.Annotated[str, msgspec.Meta(min_length=1)]
Offset = typing.Annotated[float, msgspec.Meta(ge=0, le=31_536_000)]
State = typing.Literal["ok", "warning", "critical", "unknown"]
ROOT = Path(__file__).resolve().parents[2]


class Fault(_S, kw_only=True):
    """One entry of a scenario's timeline."""

    at: Offset                                   # seconds after the drill starts
    check: Text
    state: State = "critical"
    reason: str = ""
    reason_zh: str = ""                          # the same in Chinese, for zh drill reports
    diagnosis: typing.Literal["device", "line", "local"] | None = None
    kind: typing.Literal["state", "flapping", "flapping_end", "action"] = "state"
    branch: Name | None = None                   # a fixed branch (default: the drill's)


class Clear(_S, kw_only=True):
    """A check of the timeline that comes back by itself."""

    at: Offset
    check: Text
    reason: str = "back to normal"
    reason_zh: str = "恢复正常"
    branch: Name | None = None


class Scenario(_S, kw_only=True):
    """A drill's script: what goes wrong where, and when."""

    id: Name
    title: Text
    title_zh: str = ""
    source: str = ""
    source_zh: str = ""
    scope: typing.Literal["branch", "region"] = "branch"
    stagger: Offset = 0
    runbook: Name | None = None
    events: typing.Annotated[list[Fault], msgspec.Meta(min_length=1)]
    clears: list[Clear] = []
    actions: dict[str, typing.Literal["done", "failed"]] = {}


class Injection(msgspec.Struct, kw_only=True):
    """One event a run injects: as an agent would send it, and when."""

    due: float                     # seconds after the drill's start (offset / speed)
    offset: float                  # the scenario's `at`
    branch: str
    agent: str                     # drill:RUN:BRANCH
    check: str
    kind: str
    state: str
    reason: str
    reason_zh: str = ""            # the reason in Chinese (a zh drill report says it)
    diagnosis: str | None = None
    event: str                     # the event id
    injected_at: datetime | None = None


def _problems(s: Scenario):
    """Rules a type cannot say."""
    for key in ("title_zh", "source_zh"):
        if getattr(s, key) and zh_problem(getattr(s, key)):
            yield key, zh_problem(getattr(s, key))
    for at, items in (("events", s.events), ("clears", s.clears)):
        for i, e in enumerate(items):
            if e.reason_zh and zh_problem(e.reason_zh):
                yield f"{at}[{i}].reason_zh", zh_problem(e.reason_zh)
    checks = {e.check for e in s.events}
    for i, e in enumerate(s.events):
        if e.kind == "action" and not e.check.startswith("action/"):
            yield f"events[{i}].check", "an action event's check starts with action/"
    for i, c in enumerate(s.clears):
        if c.check not in checks:
            yield f"clears[{i}].check", f"{c.check!r} is not a check of events"


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """A scenario from YAML text; ConfigError names the key."""
    return parse_as(text, source, Scenario, _problems)


def shipped_dir() -> Path:
    """config/drills in a checkout, <prefix>/share/branchwatch/drills installed."""
    source = ROOT / "config" / "drills"
    return source if source.is_dir() else Path(sys.prefix) / "share" / "branchwatch" / "drills"


def load_scenarios(folder: str | Path | None = None) -> dict[str, Scenario]:
    """Every *.yaml scenario in a folder (the shipped ones by default), by id."""
    folder = Path(folder) if folder else shipped_dir()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: drills: no such folder")
    out: dict[str, Scenario] = {}
    for p in sorted(folder.glob("*.yaml")):
        s = load_as(p, Scenario, _problems)
        if s.id in out:
            raise ConfigError(f"{p}: id: scenario {s.id!r} is also defined in another file")
        out[s.id] = s
    return out


def branches_for(s: Scenario, branch: str | None, region: str | None,
                 known: dict[str, str]) -> list[str]:
    """The branches a run of this scenario strikes; `known` is every enrolled branch
    and its region. ValueError names the parameter that is wrong."""
    if branch is not None and branch not in known:
        raise ValueError(f"branch: no enrolled agent at branch {branch!r}")
    if s.scope == "branch":
        if branch is None:
            raise ValueError(f"branch: scenario {s.id!r} strikes one branch: give --branch")
        if region is not None and known[branch] != region:
            raise ValueError(f"region: branch {branch!r} is in region {known[branch]!r}")
        return [branch]
    if region is None:
        raise ValueError(f"region: scenario {s.id!r} strikes a whole region: give --region")
    found = sorted(b for b, r in known.items() if r == region)
    if not found:
        regions = sorted({r for r in known.values() if r})
        raise ValueError(f"region: no enrolled branch in region {region!r}; "
                         f"regions: {', '.join(regions) or 'none'}")
    if branch is not None and branch not in found:
        raise ValueError(f"branch: {branch!r} is not in region {region!r}")
    return [branch] if branch is not None else found


def expand(s: Scenario, run_id: str, branches: list[str], speed: float = 1.0
           ) -> list[Injection]:
    """The run's injections, in the order they are due (`--speed` divides the offsets)."""
    out = []
    timeline = [(e.at, e.branch, e.check, e.kind, e.state, e.reason, e.reason_zh, e.diagnosis)
                for e in s.events]
    timeline += [(c.at, c.branch, c.check, "state", "ok", c.reason, c.reason_zh, None)
                 for c in s.clears]
    for n, (at, fixed, check, kind, state, reason, reason_zh, diagnosis) in enumerate(timeline):
        # A fixed branch fires once; otherwise every branch of the run, staggered.
        for i, branch in ([(0, fixed)] if fixed else enumerate(branches)):
            agent = f"{DRILL_AGENT}{run_id}:{branch}"
            name = check.replace("{agent}", agent).replace("{branch}", branch)
            offset = at + i * s.stagger
            out.append(Injection(due=offset / speed, offset=offset, branch=branch, agent=agent,
                                 check=name, kind=kind, state=state,
                                 reason=reason or f"{name} {state}", reason_zh=reason_zh,
                                 diagnosis=diagnosis,
                                 event=f"{run_id}/{n}/{branch}"))
    out.sort(key=lambda x: (x.due, x.state == "ok"))     # faults before clears at one moment
    return out
