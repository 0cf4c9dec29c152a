"""Faults reported by people (hospital §1: workstations report
to IT; a branch phones county IT): who, where, what they see, and the cause
when a person knows it (hospital class 1 or 4, domain.md §2.2).

A report becomes a fault like an agent's, so it goes through the same
grouping, grading, runbooks, notifications and reports. What it is about is a
small vocabulary (KINDS), each mapped to the check id the rules already read:
"core system unreachable" is a `tcp/core...` check, so it stops business
(domain.md §2.1) and gets the central-system runbook; a power cut is an
`.../on_battery` check, and so on. The fault's agent is PERSON: that is how
every report, page and notification tells it was reported by a person.
A person-reported fault clears when a person says so (`clear`), as no agent
will.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from agent.wire import Event, new_event_id

PERSON = "person"             # the agent id of every person-reported fault

# kind -> (check id, what it is, in a person's words)
KINDS = {
    "core_unreachable": ("tcp/core-reported", "the core system does not answer"),
    "network_down": ("line/reported", "no network"),
    "power_cut": ("ups/reported/on_battery", "mains power is out"),
    "ups_fault": ("ups/reported/fault", "the UPS alarms or has failed"),
    "service_down": ("tcp/reported-service", "a system will not start or cannot save"),
    "terminal_fault": ("terminal/reported", "a workstation or terminal fails"),
    "other": ("report/other", "something else"),
}
# domain.md §2.2: class 1 and class 4 causes need a person (the hospital table's criteria).
CAUSES = ("force_majeure", "operator_misuse")
MAX_TEXT = 500


@dataclass(frozen=True)
class PersonReport:
    """One fault a person reports: at which branch, what kind, where exactly,
    what they see; who reported it (the token's or session's person), a contact,
    and the cause when known."""

    branch: str
    kind: str
    where: str
    sees: str
    who: str
    contact: str = ""
    cause: str | None = None


def problems(r: PersonReport, branches: set[str]) -> list[tuple[str, str]]:
    """(field, what was wrong) for a report that cannot be taken (→ 400)."""
    out = []
    if r.branch not in branches:
        out.append(("branch", f"no enrolled branch {r.branch!r}; known: "
                              + (", ".join(sorted(branches)) or "none")))
    if r.kind not in KINDS:
        out.append(("kind", f"expected one of {', '.join(KINDS)}, got {r.kind!r}"))
    if r.cause is not None and r.cause not in CAUSES:
        out.append(("cause", f"expected one of {', '.join(CAUSES)}, got {r.cause!r}"))
    for name in ("where", "sees", "contact"):
        if len(getattr(r, name)) > MAX_TEXT:
            out.append((name, f"{len(getattr(r, name))} characters is over the limit of "
                              f"{MAX_TEXT}"))
    return out


def check_of(kind: str) -> str:
    """The check id a kind of report is kept under."""
    return KINDS[kind][0]


def reason_of(r: PersonReport) -> str:
    """The fault's reason: who saw what where, in one line."""
    text = f"reported by {r.who}" + (f" ({r.contact})" if r.contact else "")
    return f"{KINDS[r.kind][1]} at {r.where}: {r.sees} - {text}".replace("\n", " ")


def fault_event(r: PersonReport, now: datetime) -> Event:
    """The report as the event the incident book applies (observed now)."""
    return Event(id=new_event_id(), kind="state", agent=PERSON, branch=r.branch,
                 check=check_of(r.kind), old_state="ok", new_state="critical",
                 reason=reason_of(r), observed_at=now)


def cleared_event(branch: str, check: str, who: str, why: str, now: datetime) -> Event:
    """A person says the reported fault is over."""
    return Event(id=new_event_id(), kind="state", agent=PERSON, branch=branch, check=check,
                 old_state="critical", new_state="ok", reason=f"cleared by {who}: {why}",
                 observed_at=now)


def reported_by_person(fault) -> bool:
    """Whether an incident's fault was reported by a person (a Fault or its dict)."""
    agent = fault["agent"] if isinstance(fault, dict) else fault.agent
    return agent == PERSON
