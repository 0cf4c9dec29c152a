"""The demo's story, in three acts, each read back from the collector's API:

1. a power cut at BR-north-01: the UPS on battery, the power-cut runbook
   (generator) worked by the demo operator, mains back (domain.md §4.2);
2. a line cut at BR-south-01: the agent's own failover to the backup line,
   verified on the switch, and back when the primary is repaired (§4.1);
3. the core system lost at two of the province's three branches (half,
   rounded up: the province cannot do business), then at its data centre
   (the key site) alone: one incident graded III, II, I as time passes, with
   its deadlines and the regulator's reports (§2.1, §3).

Every incident is told to the person on duty through the demo's webhook inbox
(inbox.py): the power cut's she acknowledges by the link in her message, so
nobody else is troubled; the province outage's nobody acknowledges, so it
escalates to the leadership group (docs/notifications.md).

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
from .config import DATA_CENTRE, ESCALATE_AFTER
from .inbox import Inbox
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
                 console: bool = True, inbox: Inbox | None = None):
        self.by_name = {b.name: b for b in branches}
        self.inbox = inbox or Inbox()
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
        self.n.clock("{why}: the collector's clock moves {span} forward", why=self.n.tr(why),
                     span=_span(seconds, self.n.tr))
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

    async def opened(self, b, check: str, runbook: str, at: str = "") -> dict:
        """The open incident at branch `b` with a fault of `check` and `runbook`
        started; printed with its first fault."""
        inc = await self.incident(
            lambda i: i if i["status"] == "open" and v.faults(i, check, b.name)
            and v.run_of(i, runbook) else None, f"the {runbook} incident at {b.name}")
        fault = v.faults(inc, check)[0]
        self.n.collector("incident {id} opened: \"{title}\"{where} ({check}: {reason})",
                         id=inc["id"], title=inc["title"],
                         where=self.n.tr(" at {branch}", branch=at) if at else "",
                         check=fault["check"], reason=fault["reason"])
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
        self.n.agent("{agent}: {step} {state}: {reason}", agent=branch.spec.agent, step=step,
                     state=e.new_state, reason=e.reason)
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
            self.n.agent("{agent} at {branch} (province {region}): UPS on mains, primary line "
                         "up, backup port shut ({port}), core system reachable",
                         agent=b.spec.agent, branch=b.name, region=b.spec.region,
                         port=b.backup_port())
        self.n.collector("{agents} agents reporting; {open} incidents open", agents=len(seen),
                         open=len(await self.client.incidents()))
        await self.beat()

    # --- reports ---------------------------------------------------------------------
    async def save_report(self, inc: dict, kind: str, fields: dict | None = None,
                          issue: str | None = None) -> dict:
        """Draft a report of the incident (fill in `fields`, issue it if asked), and save
        its Markdown and HTML in the data dir."""
        report = await self.client.draft_report(inc["id"], kind)
        self.n.collector("report {id} drafted ({kind}, {language})", id=report["id"],
                         kind=self.n.tr(kind), language=report["language"])
        if fields:
            await self.client.edit_report(report["id"], fields)
            self.n.operator("fills in {fields} of {id}", fields=", ".join(fields),
                            id=report["id"])
        if issue:
            report = await self.client.issue_report(report["id"], issue)
            self.n.operator("issues {id} ({why}): it is frozen now", id=report["id"], why=issue)
        self.reports_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for fmt in ("md", "html"):
            path = self.reports_dir / f"{report['id']}.{fmt}"
            path.write_text(await self.client.report_text(report["id"], fmt), encoding="utf-8")
            paths.append(path)
        self.saved += paths
        self.n.note("  saved {path} (and .html)", path=paths[0])
        rid = report["id"]
        if self.console:
            self.n.note("  download: {url}/console/reports/{id}.pdf (console, also .md, .html)",
                        url=self.url, id=rid)
        else:
            self.n.note("  download: {url}/api/v1/reports/{id}?format=pdf (API)", url=self.url,
                        id=rid)
        return report

    # --- notifications ----------------------------------------------------------------
    async def told(self, inc: dict, reason: str, person: str):
        """Wait for the collector's message about `inc` to arrive at `person`'s hook in
        the inbox; print it."""
        [m, *_] = await wait_for(lambda: self.inbox.find(inc["id"], reason, person),
                                 f"a {reason} message for {person} at the inbox", timeout=60)
        level = m.body.get("level")
        self.n.inbox("{person} ({role}) received a message ({reason}{level}): {subject}",
                     person=person, role=m.body.get("role") or "-", reason=self.n.tr(reason),
                     level=self.n.tr(", level {n}", n=level)
                     if reason == "escalation" and level is not None else "",
                     subject=m.body.get("subject", ""))
        if self.console:
            self.n.note("  inbox: {url}/console/demo/inbox", url=self.url)
        return m

    async def ack_by_link(self, inc: dict, person: str) -> dict:
        """The person acknowledges by the signed link in their message (POST: a GET never
        acknowledges); the incident as the collector has it then."""
        [m, *_] = self.inbox.find(inc["id"], "opened", person)
        link = m.body.get("ack_url")
        if not link:
            raise DemoError(f"the message to {person} carries no acknowledgement link")
        await self.client.follow(link)
        inc = await self.same(inc, lambda i: i if any(a["who"] == person for a in i["acks"])
                              else None, f"{person}'s acknowledgement")
        self.n.person(person, "acknowledges {id} by the link in the message: escalation to "
                      "the leadership group stops", id=inc["id"])
        return inc

    async def no_escalation(self, inc: dict, person: str) -> None:
        """Say, once the escalation's minutes have passed, that none went out: someone
        acknowledged (read from the inbox and the collector's delivery records)."""
        inc = await self.client.incident(inc["id"])
        opened = datetime.fromisoformat(inc["started_at"])
        if (self.collector_now() - opened).total_seconds() < ESCALATE_AFTER * 60:
            raise DemoError("the story did not keep the incident open past the escalation")
        if self.inbox.find(inc["id"], "escalation"):
            raise DemoError(f"{inc['id']} escalated although it was acknowledged")
        self.n.collector("{id} open {minutes} min, past the {after}-min escalation: nothing "
                         "sent to {person}, {who} acknowledged", id=inc["id"],
                         minutes=round((self.collector_now() - opened).total_seconds() / 60),
                         after=ESCALATE_AFTER, person=person,
                         who=", ".join(a["who"] for a in inc["acks"]))


def _span(seconds: float, tr) -> str:
    minutes = round(seconds / 60)
    return tr("{h} h {m:02d} min", h=minutes // 60, m=minutes % 60) if minutes >= 60 \
        else tr("{m} min", m=minutes)


async def _at_least(metric, n: int):
    values = await metric
    return values if len(values) >= n else None
