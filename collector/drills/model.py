"""A drill run as kept (issue 7; domain.md §5): the scenario and plan frozen
onto it when it starts (an edit of either file cannot change a drill already
running), the timeline it injects, the incidents its faults opened, a
person's text for the report, and once archived, the report's texts.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from .plan import Plan
from .scenario import Injection, Scenario

# The drill report's fields a person writes (drill edit --set FIELD=TEXT).
EDITABLE = ("followups", "assessment")


class DrillRun(msgspec.Struct, kw_only=True):
    """One drill, from `drill run` to `drill archive`."""

    id: str
    scenario: Scenario
    branch: str | None = None          # as asked (--branch)
    region: str | None = None          # as asked (--region)
    branches: list[str]                # the branches it strikes
    speed: float = 1.0
    plan: Plan | None = None
    status: str = "running"            # running | ended | archived
    started_at: datetime
    started_by: str
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_why: str | None = None
    injections: list[Injection] = []
    incidents: list[str] = []          # ids, in the order they opened
    fields: dict[str, str] = {}        # EDITABLE -> text
    archived_at: datetime | None = None
    archived_by: str | None = None
    archived_why: str | None = None
    archive: dict[str, str] = {}       # "zh.md", "zh.html", "en.md", "en.html" -> text

    def pending(self) -> list[Injection]:
        """Injections not yet made."""
        return [x for x in self.injections if x.injected_at is None]

    def summary(self) -> dict:
        """The run without its timeline and texts (lists, audit records)."""
        return {"id": self.id, "scenario": self.scenario.id, "title": self.scenario.title,
                "title_zh": self.scenario.title_zh,
                "branch": self.branch, "region": self.region, "branches": self.branches,
                "speed": self.speed, "status": self.status, "started_at": self.started_at,
                "started_by": self.started_by, "ended_at": self.ended_at,
                "ended_by": self.ended_by, "end_why": self.end_why,
                "plan_title": self.plan.title if self.plan else None, "incidents": self.incidents,
                "injected": sum(x.injected_at is not None for x in self.injections),
                "events": len(self.injections), "archived_at": self.archived_at,
                "archived_by": self.archived_by}
