"""Poll one switch over SNMP: system group and IF-MIB, on the agent's event loop.

Each poll is one GET (sysName, sysDescr, sysUpTime) and one multi-column
GETBULK walk of the IF-MIB; the rules are in `interfaces.py`. The probe
keeps what it needs between polls (uptime, counters, ifIndex of each port)
and writes every poll into the shared LinkView for the line probes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Callable

from ..links import PortState, diagnose_silent_switch
from ..model import CheckResult, Reading, Sample, State
from ..schema_network import InterfaceSpec, Switch
from . import interfaces as ifs
from .client import SnmpError, SnmpSession
from .if_mib import (ADMIN_STATUS, COLUMNS, DISCARD_COUNTERS, ERROR_COUNTERS, IF_ALIAS, IF_DESCR,
                     IF_NAME, IF_OPER_STATUS, OPER_STATUS, SYSTEM)

# Port names change only when the interface table does (a restart, a module
# added), speeds only when a link comes up or goes down: re-read them then,
# or every NAMES_REFRESH polls, not on every poll. Decoding every value is
# most of a poll's CPU (pyasn1); these columns were 40 % of the values.
NAMES = (IF_DESCR, IF_NAME, IF_ALIAS, COLUMNS["ifSpeed"], COLUMNS["ifHighSpeed"])
NAMES_REFRESH = 30


@dataclass
class Memory:
    """What one switch's probe remembers between polls."""

    uptime_ticks: int | None = None
    wraps: int = 0                     # sysUpTime wraps seen since the last restart
    restarted_from: float | None = None   # uptime (s) before a restart seen, while it is recent
    polled_at: float | None = None     # monotonic time of the last answered poll
    counters: dict[tuple[str, str], ifs.CounterState] = field(default_factory=dict)
    ifindex_of: dict[str, int] = field(default_factory=dict)   # port key -> ifIndex
    names: dict[str, dict[str, object]] | None = None   # NAMES columns as last walked
    oper: dict[str, object] = field(default_factory=dict)  # ifOperStatus as last walked
    polls_since_names: int = 0
    skip: frozenset[str] = frozenset()   # columns the device lacks or that 64-bit ones cover


class SwitchProbe:
    """One switch: reachability, restarts, and the link and errors of configured ports."""

    def __init__(self, spec: Switch, links, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic):
        self.spec = spec
        self.links = links
        self.clock, self.monotonic = clock, monotonic
        self.name = f"switch/{spec.name}"
        self.interval = spec.interval
        # A whole poll is several requests, each of which may time out and retry.
        self.timeout = max(spec.interval, spec.timeout * (spec.retries + 1) * 6)
        self.memory = Memory()
        self._session = self._new_session()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ports: dict[str, InterfaceSpec] = {i.key: i for i in spec.interfaces}
        links.set_local_interface(spec.name, spec.local_interface)

    # --- checks ids -----------------------------------------------------------------

    def check_id(self, what: str) -> str:
        """A switch-wide check id: switch/NAME/reachable, switch/NAME/restart."""
        return f"switch/{self.spec.name}/{what}"

    def port_check_id(self, key: str, what: str) -> str:
        """A port check id: switch/NAME/if/KEY/link or .../errors."""
        return f"switch/{self.spec.name}/if/{key}/{what}"

    # --- polling --------------------------------------------------------------------

    async def aread(self) -> Reading:
        """One poll; a switch that cannot be used gives a failed reading, not an error."""
        at, now = self.clock(), self.monotonic()
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            # pysnmp binds its socket to the loop that opened it: a new loop
            # (asyncio.run per poll, in tools and tests) needs a new session.
            if self._loop is not None:
                self.close()
                self._session = self._new_session()
            self._loop = loop
        try:
            system = ifs.read_system(await self._session.get(list(SYSTEM.values())))
            rows = ifs.parse_table(await self._walk_interfaces(system.uptime_ticks))
            if not rows:
                raise SnmpError("it answers, but has no IF-MIB (the ifDescr walk is empty)")
        except SnmpError as e:
            return self._silent(str(e), at)
        return self._reading(system, rows, at, now)

    async def _walk_interfaces(self, uptime_ticks: int) -> dict[str, dict[str, object]]:
        """The IF-MIB columns, reading port names only when they may have changed."""
        mem = self.memory
        fresh = (mem.names is None or mem.polls_since_names >= NAMES_REFRESH
                 or (mem.uptime_ticks is not None and uptime_ticks < mem.uptime_ticks))
        if fresh:
            walked = await self._session.walk(list(COLUMNS.values()))
            self._learn(walked)
            mem.oper = walked.get(IF_OPER_STATUS, {})
            return walked
        walked = await self._session.walk(
            [c for c in COLUMNS.values() if c not in NAMES and c not in mem.skip])
        mem.polls_since_names += 1
        oper = walked.get(IF_OPER_STATUS, {})
        if oper != mem.oper:
            # Rows came or went (ifIndex may be reassigned), or a link changed
            # (its speed may have): read names and speeds again now.
            names = await self._session.walk([c for c in NAMES if c not in mem.skip])
            mem.names = {c: names.get(c, {}) for c in NAMES}
            mem.polls_since_names = 0
        mem.oper = oper
        return {**walked, **mem.names}

    def _learn(self, walked: dict[str, dict[str, object]]) -> None:
        """Remember the names, and which columns later polls can leave out."""
        mem = self.memory
        mem.names = {c: walked.get(c, {}) for c in NAMES}
        mem.polls_since_names = 0
        skip = {c for c in COLUMNS.values() if not walked.get(c)}
        for hc, low in (("ifHCInOctets", "ifInOctets"), ("ifHCOutOctets", "ifOutOctets")):
            if set(walked.get(COLUMNS[low], {})) <= set(walked.get(COLUMNS[hc], {})):
                skip.add(COLUMNS[low])   # every row has the 64-bit counter
        mem.skip = frozenset(skip)

    def _silent(self, reason: str, at: float) -> Reading:
        """The switch cannot be seen: one critical check; port checks go unknown."""
        why = f"cannot see the switch: {reason}"
        # branch plan §5.1 (domain.md §4.1): device or line first; a silent
        # switch is a device fault unless this machine's own link is down.
        diagnosis, explained = diagnose_silent_switch(self.links.local_link_up(self.spec.name))
        self.links.set_answering(self.spec.name, False)
        for key in self._ports:
            self.links.set_port(self.spec.name, key, PortState(None, None, at))
        return Reading(
            self.name, False,
            samples=[Sample.of("branchwatch_switch_up", 0, device=self.spec.name)],
            checks=[CheckResult(self.check_id("reachable"), State.CRITICAL, why, diagnosis)],
            detail={"host": self._session.where, "error": why, "diagnosis": explained},
            error=why)

    def _reading(self, system: ifs.System, rows: dict[int, ifs.IfRow], at: float,
                 now: float) -> Reading:
        mem, device = self.memory, self.spec.name
        elapsed = now - mem.polled_at if mem.polled_at is not None else None
        change = ifs.uptime_change(mem.uptime_ticks, system.uptime_ticks, elapsed)
        if change == "wrap":
            mem.wraps += 1
        elif change == "restart":
            mem.restarted_from = self._uptime_seconds(mem.uptime_ticks)
            mem.wraps = 0
        mem.uptime_ticks, mem.polled_at = system.uptime_ticks, now
        uptime = self._uptime_seconds(system.uptime_ticks)
        was = mem.restarted_from
        if uptime >= ifs.RECENT_RESTART:
            mem.restarted_from = None

        checks = [
            CheckResult(self.check_id("reachable"), State.OK,
                        f"answering (sysName {system.name!r})"),
            ifs.restart_verdict(self.check_id("restart"), change, uptime, was)]
        samples = [
            Sample.of("branchwatch_switch_up", 1, device=device),
            Sample.of("branchwatch_switch_uptime_seconds", uptime, device=device),
            Sample.of("branchwatch_switch_info", 1, device=device, sysname=system.name,
                      sysdescr=ifs.first_line(system.descr))]
        detail_ports = []
        self.links.set_answering(device, True)
        for key, spec in self._ports.items():
            row = ifs.find_interface(spec, rows)
            if row is None:
                mem.ifindex_of.pop(key, None)
                self.links.set_port(device, key, PortState(None, None, at))
                reason = ifs.missing_reason(spec, rows)
                checks.append(CheckResult(self.port_check_id(key, "link"), State.UNKNOWN, reason))
                detail_ports.append({"id": key, "ifindex": None, "role": spec.role,
                                     "error": reason})
                continue
            mem.ifindex_of[key] = row.index
            self.links.set_port(device, key,
                                PortState(ifs.oper_up(row.oper), ifs.admin_up(row.admin), at))
            checks.append(ifs.link_verdict(self.port_check_id(key, "link"), spec.role,
                                           row.oper, row.admin, row.speed_bps))
            samples += self._port_samples(key, spec, row, change == "restart", now, checks)
            detail_ports.append(port_detail(key, spec, row))
        return Reading(self.name, True, samples=samples, checks=checks, detail={
            "host": self._session.where, "sysname": system.name, "sysdescr": system.descr,
            "uptime_seconds": uptime, "interfaces_on_device": len(rows),
            "interfaces": detail_ports})

    def _port_samples(self, key: str, spec: InterfaceSpec, row: ifs.IfRow, reset: bool,
                      now: float, checks: list[CheckResult]) -> list[Sample]:
        """Gauges and counter totals of one port; adds its errors check when it has rates."""
        labels = {"device": self.spec.name, "ifname": row.label, "role": spec.role}
        out = []
        if (up := ifs.oper_up(row.oper)) is not None:
            out.append(Sample.of("branchwatch_interface_oper_up", int(up), **labels))
        if (admin := ifs.admin_up(row.admin)) is not None:
            out.append(Sample.of("branchwatch_interface_admin_up", int(admin), **labels))
        if row.speed_bps is not None:
            out.append(Sample.of("branchwatch_interface_speed_bytes", row.speed_bps / 8,
                                 **labels))
        rates: dict[str, float] = {}
        # A counter the device skips in one poll keeps its state: when it comes
        # back, the total goes on from where it was instead of starting again.
        seen = self.memory.counters
        for metric, (raw, bits) in row.counters.items():
            state, rate = ifs.advance_counter(seen.get((key, metric)), raw, bits, row.index,
                                              reset, now)
            seen[(key, metric)] = state
            out.append(Sample.of(metric, state.total, **labels))
            if rate is not None and metric in ERROR_COUNTERS + DISCARD_COUNTERS:
                rates[metric] = rate
        # domain.md §1: a switch is also watched by its ports' error and discard rates.
        verdict = ifs.errors_verdict(self.port_check_id(key, "errors"), rates,
                                     *self._thresholds(spec))
        if verdict is not None:
            checks.append(verdict)
        return out

    def _thresholds(self, spec: InterfaceSpec) -> tuple[float, float]:
        """Error and discard rate thresholds: the port's own win over the switch's."""
        t = self.spec.thresholds
        errors, discards = spec.error_rate_warning, spec.discard_rate_warning
        return (t.error_rate_warning if errors is None else errors,
                t.discard_rate_warning if discards is None else discards)

    def _uptime_seconds(self, ticks: int) -> float:
        return (self.memory.wraps * ifs.TICKS_WRAP + ticks) / 100

    # --- for the trap listener --------------------------------------------------------

    def port_for_ifindex(self, ifindex: int) -> str | None:
        """The key of the configured port that had this ifIndex on the last poll."""
        return next((k for k, i in self.memory.ifindex_of.items() if i == ifindex), None)

    def link_verdict(self, key: str, oper_up: bool, admin_up: bool | None, why: str) -> CheckResult:
        """A port's link check from a trap, by the same rules as a poll."""
        spec = self._ports.get(key)
        role = spec.role if spec is not None else "access"
        admin = None if admin_up is None else (1 if admin_up else 2)
        return ifs.link_verdict(self.port_check_id(key, "link"), role, 1 if oper_up else 2,
                                admin, source=why)

    def restart_verdict(self, why: str) -> CheckResult:
        """The restart check from a coldStart/warmStart trap (always a warning)."""
        return CheckResult(self.check_id("restart"), State.WARNING, f"restarted ({why})")

    def _new_session(self) -> SnmpSession:
        s = self.spec
        return SnmpSession(s.host, s.port, s.snmp, s.timeout, s.retries)

    def close(self) -> None:
        """Release the SNMP session (the next poll opens it again)."""
        self._session.close()


def port_detail(key: str, spec: InterfaceSpec, row: ifs.IfRow) -> dict:
    """One configured port as `--once` shows it."""
    return {"id": key, "ifindex": row.index, "ifname": row.label, "descr": row.descr,
            "alias": row.alias, "oper": ifs.status_name(row.oper, OPER_STATUS),
            "admin": ifs.status_name(row.admin, ADMIN_STATUS), "speed_bps": row.speed_bps,
            "role": spec.role}
