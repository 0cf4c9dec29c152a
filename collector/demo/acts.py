"""The three acts of the demo's story (story.py holds the stage: pacing, the
clock, reading back). Every line that says what the collector did is read
from its API; the operator acts through the same API a person would use.
"""

from __future__ import annotations

import time
from datetime import timedelta

from . import views as v
from .config import LEADER, ON_DUTY

# domain.md §4.2: the power-cut runbook, as the demo operator works it.
POWER_STEPS = [
    ("find-cause", "a storm brought down the overhead supply line", None),
    ("call-power-company", "State Grid: a crew is on the way, about 4 h", None),
    ("long-outage", "4 h is far longer than the UPS can carry the branch (31 min)", "long"),
    ("disconnect-mains", "mains input breaker open (photo: breaker-open.jpg)", None),
    ("start-generator", "generator started, 230 V at its output", None),
]

# What a person writes into the written report before issuing it (第二十八條).
WRITTEN = {"cause_analysis": "（演示）核心系统至北区、南区网点的专线中断，原因待运营商确认。",
           "consequences": "（演示）北区、南区网点无法办理核心业务，未发现数据损坏。",
           "next_steps": "（演示）督促运营商抢修；网点启用应急服务流程。"}


class Acts:
    """The acts; mixed into story.Story, which gives n, client, clock, beat and the rest."""

    async def wait_passes(self, inc: dict, seconds: float, why: str, runbook: str,
                          step: str, then: str) -> dict:
        """Move the collector's clock past a runbook wait; the incident once the run
        is at `then`, with the wait's own record printed."""
        await self.move_clock(seconds, why)
        inc = await self.same(inc, lambda i: v.at_step(i, runbook, then), f"{step} to end")
        rec = v.step_record(v.run_of(inc, runbook), step)
        self.n.collector("{step} {status} by itself: {note}", step=step,
                         status=self.n.tr(rec["status"]), note=rec["note"])
        return inc

    async def power_cut(self, b) -> None:
        """Act 1 (domain.md §4.2): UPS on battery, the generator runbook, mains back."""
        self.n.scene("Power cut at {branch}", branch=b.name)
        self.n.world("A storm cuts the mains at {branch}: its UPS runs the branch on battery "
                     "(ups.status OB DISCHRG, input 0 V)", branch=b.name)
        b.mains_lost()
        inc = await self.opened(b, "ups/*/on_battery", "power-cut", b.name)
        run = v.run_of(inc, "power-cut")
        self.n.collector("runbook {id} ({title}) started; {where}", id=run["runbook"]["id"],
                         title=run["runbook"]["title"], where=v.where(run, self.n.tr))
        self.n.collector("cbrc: {grade}", grade=v.grade_text(inc, self.n.at, self.n.tr))
        # docs/notifications.md: the person on duty is told at once, and acknowledges
        # through the signed link in the message: the escalation to leadership stops.
        await self.told(inc, "opened", ON_DUTY)
        await self.ack_by_link(inc, ON_DUTY)
        await self.beat()
        for step, note, choice in POWER_STEPS:
            body = {"note": self.n.tr(note), **({"choice": choice} if choice else {})}
            inc = await self.client.step(inc["id"], step, "confirm", **body)
            self.n.operator("confirms {step}{choice}: {note}", step=step,
                            choice=f" [{choice}]" if choice else "", note=self.n.tr(note))
            self.n.collector("{where}", where=v.where(v.run_of(inc, "power-cut"), self.n.tr))
            await self.beat(0.5)

        self.n.scene("The generator settles")
        inc = await self.wait_passes(inc, 181, "generator-stable waits 3 min", "power-cut",
                                     "generator-stable", "connect-loads")
        await self.no_escalation(inc, LEADER)
        b.on_generator()
        self.n.world("The generator feeds {branch}: the UPS has input again "
                     "(ups.status OL CHRG, 226 V)", branch=b.name)
        # domain.md §4: not over while the branch runs on the generator.
        inc = await self.same(inc, lambda i: i if not any(
            f["active"] for f in i["faults"] if f["check"].startswith("ups/")) else None,
            "the UPS to see input")
        self.n.collector("{id} still {status}: the UPS sees the generator, "
                         "but the branch runs on the generator (power/generator held)",
                         id=inc["id"], status=self.n.tr(inc["status"]))
        inc = await self.client.step(inc["id"], "connect-loads", "confirm", note=self.n.tr(
            "loads on the generator; the UPS reads 226 V input"))
        self.n.operator("confirms connect-loads: loads on the generator")
        self.n.collector("{where}", where=v.where(v.run_of(inc, "power-cut"), self.n.tr))
        await self.beat()
        b.mains_back()
        self.n.world("Mains are back at {branch}: the transfer switch is on mains",
                     branch=b.name)
        for step, note in (("mains-back", "State Grid restored the line; ATS on mains"),
                           ("back-to-mains", "loads on mains, generator stopped")):
            inc = await self.client.step(inc["id"], step, "confirm", note=self.n.tr(note))
            self.n.operator("confirms {step}: {note}", step=step, note=self.n.tr(note))
        inc = await self.same(inc, lambda i: i if i["status"] == "resolved" else None,
                              "the incident to resolve")
        self.n.collector("{id} resolved: mains back, every fault cleared", id=inc["id"])
        inc = await self.wait_passes(inc, 301, "wait-ups needs the UPS on mains for 5 min",
                                     "power-cut", "wait-ups", "review")
        inc = await self.client.step(inc["id"], "review", "confirm", note=self.n.tr(
            "plan worked; test the generator monthly"))
        self.n.operator("confirms review (leadership group): the plan worked")
        self.n.collector("{where}", where=v.where(v.run_of(inc, "power-cut"), self.n.tr))
        inc = await self.client.act(inc["id"], "close",
                                    why=self.n.tr("mains back, generator off"))
        self.n.operator("closes {id}: mains back, generator off -> {status}", id=inc["id"],
                        status=self.n.tr(inc["status"]))
        await self.beat()

    async def line_cut(self, b) -> None:
        """Act 2 (domain.md §4.1): the agent fails over to the backup line and back."""
        self.n.scene("Line cut at {branch}", branch=b.name)
        self.n.world("A digger cuts carrier A's line at {branch}: the primary line's far "
                     "side stops answering", branch=b.name)
        since = time.time()
        await b.cut_primary()
        inc = await self.opened(b, "line/primary/*", "network-fault")
        self.n.collector("runbook network-fault started; {where}",
                         where=v.where(v.run_of(inc, "network-fault"), self.n.tr))
        await self.agent_step(b, "fail_over", since)
        self.n.note("  switch {switch} now: {port} (SNMP SET ifAdminStatus.{ifindex} = up)",
                    switch=b.switch.name, port=b.backup_port(), ifindex=b.switch.ifindex("gi2"))
        await self.agent_step(b, "verify_backup", since)
        inc = await self.same(inc, lambda i: i if (v.step_record(
            v.run_of(i, "network-fault"), "backup-line") or {}).get("status") == "done" else None,
            "the runbook to record the backup line")
        rec = v.step_record(v.run_of(inc, "network-fault"), "backup-line")
        self.n.collector("backup-line done (pre-authorised, by the agent): {note}",
                         note=rec["note"])
        self.n.collector("{where}", where=v.where(v.run_of(inc, "network-fault"), self.n.tr))
        await self.beat()
        inc = await self.client.step(inc["id"], "call-it-line", "confirm", note=self.n.tr(
            "county IT called; carrier ticket 4471"))
        self.n.operator("confirms call-it-line: county IT called, carrier ticket 4471")
        await self.beat(0.5)

        self.n.scene("The primary line is repaired at {branch}", branch=b.name)
        since = time.time()
        await b.repair_primary()
        self.n.world("Carrier A repairs the line: the primary's far side answers again")
        inc = await self.same(inc, lambda i: i if i["status"] == "resolved" else None,
                              "the line incident to resolve")
        self.n.collector("{id} resolved: the primary line answers", id=inc["id"])
        await self.agent_step(b, "swap_back", since)
        self.n.note("  switch {switch} now: {port}", switch=b.switch.name, port=b.backup_port())
        await self.agent_step(b, "verify_primary", since)
        await self.move_clock(601, "wait-primary needs the primary healthy for 10 min")
        # The agent's swap back arrived after the incident resolved; it still completes
        # the runbook's swap-back step (done_when: action/failover/verify_primary).
        inc = await self.same(inc, lambda i: v.at_step(i, "network-fault", "review"),
                              "the primary wait and the swap back to be recorded")
        rec = v.step_record(v.run_of(inc, "network-fault"), "swap-back")
        self.n.collector("wait-primary done by itself; swap-back done by the agent: {note}",
                         note=rec["note"])
        inc = await self.client.step(inc["id"], "review", "confirm", note=self.n.tr(
            "failover and swap back worked by themselves"))
        self.n.operator("confirms review: the failover worked by itself")
        inc = await self.client.act(inc["id"], "close", why=self.n.tr("back on the primary line"))
        self.n.operator("closes {id}: back on the primary line -> {status}", id=inc["id"],
                        status=self.n.tr(inc["status"]))
        await self.beat()

    async def province_outage(self, branches: list, centre) -> None:
        """Act 3 (domain.md §2.1, §3): one province out, by a share of its branches,
        then by its data centre alone; one incident graded III, II, I."""
        first, second = branches
        self.n.scene("The core system is lost at {branch}", branch=first.name)
        self.n.world("The core banking system stops answering {branch} (tcp/core refused)",
                     branch=first.name)
        await first.core_lost()
        inc = await self.incident(
            lambda i: i if i["status"] == "open" and v.faults(i, "tcp/core", first.name, True)
            else None, "the core-system incident")
        self.n.collector("incident {id} opened: \"{title}\" at {at} (collector time): 1 of 3 "
                         "branches of {region}, a fault but not yet the province's scope",
                         id=inc["id"], title=inc["title"], at=self.n.at(inc["started_at"]),
                         region=first.spec.region)
        await self.beat(0.5)
        self.n.world("... and {branch}: 2 of 3 branches, half the province (rounded up)",
                     branch=second.name)
        await second.core_lost()
        inc = await self.same(inc, lambda i: i if v.faults(i, "tcp/core", second.name, True)
                              else None, f"{second.name} to join the incident")
        t_out = v.fault_start(v.faults(inc, "tcp/core", second.name)[0])
        self.n.collector("{branch} joins {id}: \"{title}\"; {grade}", branch=second.name,
                         id=inc["id"], title=inc["title"],
                         grade=v.grade_text(inc, self.n.at, self.n.tr))
        await self.beat()

        self.n.scene("Half an hour with half the province out: grade III")
        await self.move_clock_to(t_out + timedelta(minutes=30, seconds=5),
                                 "30 min of business time pass")
        inc = await self.same(inc, v.grade_is("III"), "grade III")
        self.grade_report(inc)
        # Nobody acknowledged this one: after ESCALATE_AFTER the leader is told.
        await self.told(inc, "escalation", LEADER)
        inc = await self.client.act(inc["id"], "deadline", key="regulator-notice", what=self.n.tr(
            "phoned the regulator's duty desk, ref 0417"))
        self.n.operator("records regulator-notice as met: phoned the regulator, ref 0417")
        await self.beat()

        self.n.scene("The data centre {centre} loses the core system; the branches get it back",
                     centre=centre.name)
        await centre.core_lost()
        self.n.world("The core banking system stops answering {centre}, the province's key site",
                     centre=centre.name)
        inc = await self.same(inc, lambda i: i if v.faults(i, "tcp/core", centre.name, True)
                              else None, f"{centre.name} to join the incident")
        for b in branches:
            await b.core_back()
        self.n.world("{first} and {second} reach the core system again", first=first.name,
                     second=second.name)
        inc = await self.same(inc, lambda i: i if not v.faults(i, "tcp/core", second.name, True)
                              else None, f"{second.name} to recover")
        self.n.collector("{id}: \"{title}\": the key site alone keeps {region} out",
                         id=inc["id"], title=inc["title"], region=centre.spec.region)
        await self.beat()

        self.n.scene("The province out for 3 h: grade II")
        await self.move_clock_to(t_out + timedelta(hours=3, seconds=5), "2.5 h more pass")
        inc = await self.same(inc, v.grade_is("II"), "grade II")
        self.grade_report(inc)
        written = await self.save_report(inc, "written", WRITTEN,
                                         self.n.tr("faxed to the regulator"))
        inc = await self.client.act(inc["id"], "deadline", key="written-report", what=self.n.tr(
            "report {id} issued and faxed", id=written["id"]))
        self.n.operator("records written-report as met")
        await self.beat()

        self.n.scene("The province out for 6 h: grade I")
        await self.move_clock_to(t_out + timedelta(hours=6, seconds=5), "3 h more pass")
        inc = await self.same(inc, v.grade_is("I"), "grade I")
        self.grade_report(inc)
        await self.save_report(inc, "progress")
        await self.beat()

        self.n.scene("The core system is back")
        await centre.core_back()
        self.n.world("The core banking system answers the data centre again")
        inc = await self.same(inc, lambda i: i if i["status"] == "resolved" else None,
                              "the incident to resolve", timeout=90)
        self.n.collector("{id} resolved at {at}; grades went {grades}", id=inc["id"],
                         at=self.n.at(inc["resolved_at"]), grades=" -> ".join(
                             g or self.n.tr("none") for g in v.history(inc)))
        await self.save_report(inc, "summary")
        self.n.note("  {id} stays resolved: close it in the console (leadership) "
                    "when you have read it", id=inc["id"])

    def grade_report(self, inc: dict) -> None:
        """Print the grade and every deadline, as the collector has them."""
        self.n.collector("{id}: {grade}", id=inc["id"],
                         grade=v.grade_text(inc, self.n.at, self.n.tr))
        if (v.grade(inc) or {}).get("reasons"):
            self.n.note("  why: {reason}", reason=v.grade(inc)["reasons"][0])
        for line in v.deadline_lines(inc, self.n.at, self.n.tr):
            self.n.note("  deadline {line}", line=line)
