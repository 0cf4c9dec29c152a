"""A drill plan (domain.md §5, 第十五條 to 第二十四條): the annual plan states each
drill's time, content, basis, purpose, owner and partners; branchwatch adds
how long each runbook step and each milestone is expected to take, so the
drill report can say how the drill went against the plan.

    title: 2026 年度网点停电应急演练
    time: "2026-06-15 14:00"
    content: 网点停电, UPS 接管, 发电机启动
    basis: 应急管理细则 第十五條至第二十四條; 基层网点信息科技应急预案 五(二)
    purpose: 检验停电预案是否可用, 人员是否熟悉
    owner: 科技部 张伟
    partners: [营业部, 供电公司]
    scenario: power-cut               # optional: the scenario it is for (checked)
    steps:                            # runbook id -> step id -> expected duration
      power-cut: {find-cause: 10m, call-power-company: 5m, long-outage: 2m}
    milestones:                       # expected time from the drill's start
      notified: 1m
      acknowledged: 10m
      runbook_started: 1m
      deadline:regulator-notice: 60m

Durations are seconds (a number) or text with a unit: "90s", "10m", "1.5h".
"""

from __future__ import annotations

import re
import typing
from pathlib import Path

import msgspec

from agent.config import parse_as
from agent.schema_network import _S, Name

Text = typing.Annotated[str, msgspec.Meta(min_length=1)]
Duration = typing.Annotated[float, msgspec.Meta(ge=0)] | typing.Annotated[
    str, msgspec.Meta(pattern=r"^\s*\d+(\.\d+)?\s*(s|sec|m|min|h)?\s*$")]

# What a drill report measures from the drill's start (report.py finds them);
# `deadline:KEY` is a regulatory deadline of a drill incident met (domain.md §3).
MILESTONES = ("opened", "notified", "acknowledged", "runbook_started", "runbook_done",
              "resolved", "ended")
_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}


class Plan(_S, kw_only=True):
    """One drill's entry in the annual plan (第十五條), and what it expects."""

    title: Text
    time: Text                     # when it is held, as the plan says it
    content: Text
    basis: Text
    purpose: Text
    owner: Text
    partners: list[Text] = []
    scenario: Name | None = None
    steps: dict[str, dict[str, Duration]] = {}
    milestones: dict[str, Duration] = {}


def seconds(d: float | str) -> float:
    """A plan duration in seconds."""
    if isinstance(d, (int, float)):
        return float(d)
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", d)
    return float(m[1]) * _UNITS[m[2]]


def _problems(p: Plan):
    for name in p.milestones:
        if name not in MILESTONES and not (name.startswith("deadline:") and len(name) > 9):
            yield (f"milestones.{name}",
                   f"expected one of {', '.join(MILESTONES)} or deadline:KEY")


def parse_plan(text: str, source: str = "<plan>") -> Plan:
    """A plan from YAML text; ConfigError names the key. Durations become seconds."""
    p = parse_as(text, source, Plan, _problems)
    return msgspec.structs.replace(
        p, steps={rb: {s: seconds(d) for s, d in steps.items()} for rb, steps in p.steps.items()},
        milestones={k: seconds(d) for k, d in p.milestones.items()})


def plan_files(folder: str | Path) -> dict[str, Path]:
    """The plan files kept beside the scenarios (`<drills folder>/plans/*.yaml`), by
    file name: what the console offers to choose from."""
    plans = Path(folder) / "plans"
    return {p.name: p for p in sorted(plans.glob("*.yaml"))} if plans.is_dir() else {}
