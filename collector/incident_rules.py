"""What an incident engine knows about checks: which states are faults, what
a check is about (category), and how an incident is titled. Data, not code:
the incident book (collector/incidents.py) reads these tables.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass

FAULT_STATES = frozenset({"warning", "critical"})
UNKNOWN_IS_FAULT = ("*/comm", "*/reachable", "agent/*/silent")
SUPPRESSIBLE = frozenset({"port", "service"})

# check pattern -> category; first match wins.
CATEGORIES: list[tuple[str, str]] = [
    ("agent/*/silent", "silent"),
    ("network/whole", "whole_network"),       # domain.md §2.3 (collector/hospital/outage.py)
    ("hospital/restore-test", "restore_test"),   # hospital §5.5 (collector/hospital/restore_tests.py)
    ("ups/*/on_battery", "on_battery"),
    ("ups/*", "ups"),
    ("line/*", "network"),
    ("switch/*/if/*", "port"),
    ("switch/*", "switch"),
    ("tcp/*", "service"), ("process/*", "service"), ("listen/*", "service"),
    ("backup/*", "backup"),
    ("disk/*", "host"), ("memory", "host"), ("load", "host"),
]


@dataclass(frozen=True)
class TitleRule:
    """Title an incident whose (unsuppressed) fault categories include all_of,
    and, when `only` is set, hold nothing outside it."""

    title: str                        # may use {diagnosis} and {silence}
    all_of: frozenset[str]
    only: frozenset[str] | None = None

    def matches(self, cats: set[str]) -> bool:
        """True when this rule describes these categories."""
        return self.all_of <= cats and (self.only is None or cats <= self.only)


def _rule(title: str, all_of: Iterable[str], only: Iterable[str] | None = None) -> TitleRule:
    return TitleRule(title, frozenset(all_of), None if only is None else frozenset(only))


# First match wins; re-evaluated as faults join.
TITLE_RULES: list[TitleRule] = [
    # domain.md §2.3: the hospital's whole network is out, whatever else failed with it.
    _rule("hospital: whole-network outage", ["whole_network"]),
    _rule("hospital: monthly restore test overdue", ["restore_test"], ["restore_test"]),
    _rule("branch unreachable{silence}", ["silent"]),
    _rule("power outage", ["on_battery", "network"]),
    _rule("network outage{diagnosis}", ["network"], ["network", "switch", "port", "service"]),
    _rule("UPS on battery", ["on_battery"], ["on_battery", "ups"]),
    _rule("UPS fault", ["ups"], ["ups"]),
    _rule("switch fault", ["switch"], ["switch", "port"]),
    _rule("port fault", ["port"], ["port"]),
    _rule("service fault", ["service"], ["service"]),
    _rule("backup fault", ["backup"], ["backup"]),
    _rule("host resources", ["host"], ["host"]),
]
FALLBACK_TITLE = "faults at the branch"


def is_fault(check: str, state: str) -> bool:
    """Warning/critical; unknown only for the 'cannot see it' checks."""
    return state in FAULT_STATES or (
        state == "unknown" and any(fnmatch.fnmatchcase(check, p) for p in UNKNOWN_IS_FAULT))


def category(check: str, diagnosis: str | None = None, uplinks: Iterable[str] = ()) -> str:
    """What a check is about: silent, on_battery, ups, network, port, switch, service, ..."""
    if fnmatch.fnmatchcase(check, "switch/*/if/*/link") and (diagnosis or check in uplinks):
        return "network"
    return next((c for p, c in CATEGORIES if fnmatch.fnmatchcase(check, p)), "other")


def silence_check(agent: str) -> str:
    """The check id the dead-man's silence is kept under."""
    return f"agent/{agent}/silent"


# domain.md §5 (第十五條 to 第二十四條): a drill's faults come from agent ids
# `drill:RUN:BRANCH` (collector/drills/); the config refuses them for real agents.
DRILL_AGENT = "drill:"
DRILL_TITLE = "DRILL: "


def drill_of(agent: str) -> str | None:
    """The drill run an agent id speaks for (`drill:RUN:BRANCH`); None for a real agent."""
    if not agent.startswith(DRILL_AGENT):
        return None
    return agent[len(DRILL_AGENT):].split(":", 1)[0]
