"""The demo's story, in three acts, each read back from the collector's API:

1. a power cut at BR-north-01: the UPS on battery, the power-cut runbook
   (generator) worked by the demo operator, mains back (domain.md §4.2);
2. a line cut at BR-south-01: the agent's own failover to the backup line,
   verified on the switch, and back when the primary is repaired (§4.1);
3. the core system lost at two of the province's three branches (half,
   rounded up: the province cannot do business), then at its data centre
   (the key site) alone: one incident graded III, II, I as time passes, with
   its deadlines and the regulator's reports (§2.1, §3).

Hours of an incident are not waited for: the collector's clock is moved
forward (as a drill does), and the story waits until the collector has
seen the agents' clocks follow (collector/clock_offset.py) before anything
else happens at a branch.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path

from . import views as v
from .acts import Acts
from .branch import Branch
from .client import CollectorClient, DemoError, wait_for
from .config import DATA_CENTRE
from .narrator import Narrator

OFFSET_METRIC = "branchwatch_collector_agent_clock_offset_seconds"
SCENES = 12          # scenes the acts announce, and "story over"
BEAT = 7.0           # s a reader gets after each part of the story, at speed 1


def expected_seconds(speed: float) -> float:
    """About how long the story takes: its pauses, and what the agents and the
    collector take to notice things (about 40 s, whatever the speed)."""
    return 40 + 100 / speed


class DemoClock:
    """The collector's clock in the demo: wall time plus a shift that only grows."""

    def __init__(self):
        self.shift = 0.0

    def __call__(self) -> float:
        return time.time() + self.shift


class Story(Acts):
    """The three acts over the branches, the collector's API and its clock."""

    def __init__(self, branches: list[Branch], client: CollectorClient, clock: DemoClock,
                 narrator: Narrator, data_dir: Path, url: str, speed: float,
                 console: bool = True):
        self.by_name = {b.name: b for b in branches}
        self.client, self.clock, self.n = client, clock, narrator
        self.reports_dir = data_dir / "reports"
        self.url, self.speed, self.console = url, speed, console
        self.saved: list[Path] = []

    async def play(self) -> None:
        """Settle, then the three acts."""
        await self.settle()
        await self.power_cut(self.by_name["BR-north-01"])
        await self.line_cut(self.by_name["BR-south-01"])
        await self.province_outage([self.by_name["BR-north-01"], self.by_name["BR-north-02"]],
                                   self.by_name[DATA_CENTRE])
        self.n.progress_done()

    # --- pacing and time -----------------------------------------------------------
    async def beat(self, n: float = 1.0) -> None:
        """A pause for the reader, shorter at higher speeds."""
        await asyncio.sleep(BEAT * n / self.speed)

    def collector_now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), tz=timezone.utc)

    async def move_clock(self, seconds: float, why: str) -> None:
        """Move the collector's clock forward; wait until it sees every agent's
        clock offset by as much (the agents' clocks stay where they are)."""
        self.clock.shift += seconds
        self.n.clock(f"{why}: the collector's clock moves {_span(seconds)} forward")
        want = self.clock.shift

        async def followed():
            offsets = await self.client.metric(OFFSET_METRIC)
            return all(abs(offsets.get(b.spec.agent, 0.0) - want) < 1.5
                       for b in self.by_name.values())
        await wait_for(followed, "the collector to follow the moved clock", timeout=90)

    async def move_clock_to(self, when: datetime, why: str) -> None:
        await self.move_clock(max(0.0, (when - self.collector_now()).total_seconds()), why)

    # --- reading back ----------------------------------------------------------------
    async def incident(self, test, what: str, timeout: float = 60.0) -> dict:
        """The first incident `test` accepts (it returns the incident or None)."""
        async def find():
            for inc in await self.client.incidents():
                if (found := test(inc)) is not None:
                    return found
            return None
        return await wait_for(find, what, timeout)

    async def opened(self, b, check: str, runbook: str, where: str = "") -> dict:
        """The open incident at branch `b` with a fault of `check` and `runbook`
        started; printed with its first fault."""
        inc = await self.incident(
            lambda i: i if i["status"] == "open" and v.faults(i, check, b.name)
            and v.run_of(i, runbook) else None, f"the {runbook} incident at {b.name}")
        fault = v.faults(inc, check)[0]
        self.n.collector(f"incident {inc['id']} opened: \"{inc['title']}\"{where} "
                         f"({fault['check']}: {fault['reason']})")
        return inc

    async def same(self, inc: dict, test, what: str, timeout: float = 60.0) -> dict:
        """The incident once `test` accepts it."""
        async def check():
            return test(await self.client.incident(inc["id"]))
        return await wait_for(check, what, timeout)

    async def agent_step(self, branch: Branch, step: str, since: float) -> None:
        """Wait for the branch's agent to report a failover step; print it."""
        events = await wait_for(
            lambda: [e for e in branch.failover_steps(since) if e.check.endswith("/" + step)],
            f"the agent at {branch.name} to report {step}", timeout=60)
        e = events[0]
        self.n.agent(f"{branch.spec.agent}: {step} {e.new_state}: {e.reason}")
        if e.new_state != "ok":
            raise DemoError(f"the failover at {branch.name} failed at {step}: {e.reason}")

    async def settle(self) -> None:
        """Wait until every agent reports and every check has its first state."""
        self.n.scene("The branches come up")
        wanted = ("ups/main/on_battery", "tcp/core", "line/primary/gw", "line/backup/gw",
                  "switch/funds/if/backup/link")
        for b in self.by_name.values():
            await wait_for(lambda b=b: all(b.log.find(c, "ok") for c in wanted),
                           f"the agent at {b.name} to see its equipment", timeout=60)
        seen = await wait_for(lambda: _at_least(self.client.metric(OFFSET_METRIC),
                                                len(self.by_name)),
                              "the agents' first heartbeats", timeout=60)
        for b in self.by_name.values():
            self.n.agent(f"{b.spec.agent} at {b.name} (province {b.spec.region}): UPS on mains, "
                         f"primary line up, backup port shut ({b.backup_port()}), "
                         f"core system reachable")
        self.n.collector(f"{len(seen)} agents reporting; "
                         f"{len(await self.client.incidents())} incidents open")
        await self.beat()

    # --- reports ---------------------------------------------------------------------
    async def save_report(self, inc: dict, kind: str, fields: dict | None = None,
                          issue: str | None = None) -> dict:
        """Draft a report of the incident (fill in `fields`, issue it if asked), and save
        its Markdown and HTML in the data dir."""
        report = await self.client.draft_report(inc["id"], kind)
        self.n.collector(f"report {report['id']} drafted ({kind}, {report['language']})")
        if fields:
            await self.client.edit_report(report["id"], fields)
            self.n.operator(f"fills in {', '.join(fields)} of {report['id']}")
        if issue:
            report = await self.client.issue_report(report["id"], issue)
            self.n.operator(f"issues {report['id']} ({issue}): it is frozen now")
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for fmt in ("md", "html"):
            path = self.reports_dir / f"{report['id']}.{fmt}"
            path.write_text(await self.client.report_text(report["id"], fmt), encoding="utf-8")
            paths.append(path)
        self.saved += paths
        self.n.note(f"  saved {paths[0]} (and .html)")
        rid = report["id"]
        self.n.note(f"  download: {self.url}/console/reports/{rid}.pdf (console, "
                    f"also .md, .html)" if self.console else
                    f"  download: {self.url}/api/v1/reports/{rid}?format=pdf (API)")
        return report


def _span(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


async def _at_least(metric, n: int):
    values = await metric
    return values if len(values) >= n else None
