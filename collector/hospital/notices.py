"""The departments' notices on a whole-network outage (domain.md §2.3; hospital §3.2,
§4.1): pure.

- Milestones: when the outage has lasted 30 min, 6 h, 24 h (the hospital table's
  `after_observed_start` deadlines with `departments`), the departments named are
  told to switch to paper, each once per milestone (its key is kept with the
  incident's notifications, so a restart does not send it again).
- IT's announcements (「所有手工操作的統一啟動時間須由信息科通知」): the start of
  manual work, and on recovery the time to resume; each goes to the departments
  concerned and is recorded on the incident (a note and an audit record).

A department is a notify role of its name (`pharmacy`, `cashiers`...): a person
or a group robot holds it. These notices go to the departments only, never to
everyone following the incident, and following one does not make a department
hear the rest: a pharmacy told at 30 min hears again at 6 h (named there too),
the cashiers do not.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from ..grading.wording import duration, joined
from ..incidents import Action, Change, Incident, Refused
from ..notify.messages import template
from ..notify.pipeline import DEPARTMENT_REASONS, Alert
from .outage import OUTAGE_CHECK

MILESTONE, MANUAL, RESUME = "milestone", "manual", "resume"
assert DEPARTMENT_REASONS == {MILESTONE, MANUAL, RESUME}
ANNOUNCEMENTS = (MANUAL, RESUME)


def department_names(departments: Iterable[str], language: str) -> str:
    """'门诊挂号、药房' / 'outpatient registration, pharmacy and cashiers'."""
    words = template(language).get("departments", {})
    return joined([words.get(d, d) for d in departments], language)


def outage_start(inc: Incident, by: datetime | None = None) -> datetime | None:
    """When the incident's whole-network outage began (declared or observed): the
    first one, or the latest one begun by `by` (an outage again after a recovery)."""
    starts = [s for f in inc.faults.values() if f.check == OUTAGE_CHECK
              for s, _ in f.spans if by is None or s <= by]
    if not starts:
        return None
    return min(starts) if by is None else max(starts)


def milestone_key(d) -> str:
    """The dedup key of one milestone's notice."""
    return f"milestone:{d.table}:{d.key}:{d.due_at.isoformat()}"


def milestones_due(inc: Incident, sent: Iterable[str], now: datetime,
                   language: str) -> list[Alert]:
    """The milestone notices due now and not yet sent, one per milestone reached."""
    sent = set(sent)
    out = []
    for d in inc.deadlines:
        if not d.departments or d.due_at > now or milestone_key(d) in sent:
            continue
        start = outage_start(inc, d.due_at)
        lasted = duration(d.due_at - start, language) if start is not None else d.title
        words = template(language)["notices"]["milestone"]
        detail = words.format(lasted=lasted, departments=department_names(d.departments,
                                                                          language))
        out.append(Alert(inc.id, MILESTONE, detail, now, milestone_key(d),
                         roles=tuple(d.departments)))
    return out


def reached(inc: Incident, now: datetime) -> list[str]:
    """Departments of every milestone reached by now, in the table's order."""
    return list(dict.fromkeys(x for d in sorted(inc.deadlines, key=lambda d: d.due_at)
                              if d.departments and d.due_at <= now for x in d.departments))


def told(inc: Incident) -> list[str]:
    """Departments told to switch to paper on this incident (milestones and IT's notices)."""
    st = inc.notify
    if st is None:
        return []
    reasons = {m.id for m in st.messages if m.reason in (MILESTONE, MANUAL)}
    return list(dict.fromkeys(d.role for d in st.deliveries if d.message in reasons))


def announced(inc: Incident, since: datetime | None = None) -> list[str]:
    """Departments IT told to start manual work on this incident (its notes), since a
    moment (the start of the outage a milestone belongs to)."""
    out: list[str] = []
    for a in inc.notes:
        if a.why.startswith(f"notice {MANUAL} to ") and (since is None or a.at >= since):
            out += a.why.removeprefix(f"notice {MANUAL} to ").split(": ", 1)[0].split(", ")
    return list(dict.fromkeys(out))


def announce(inc: Incident, kind: str, who: str, text: str, now: datetime, language: str,
             departments: list[str] | None = None, milestones: list[list[str]] = (),
             ) -> tuple[list[Change], Alert]:
    """IT's notice: `manual` (start manual work) goes to `departments`, else those of
    the milestones reached, else the first milestone's (IT may start before it);
    `resume` goes to every department told so far. Refused when not an outage."""
    if kind not in ANNOUNCEMENTS:
        raise Refused(f"expected a notice of {' or '.join(ANNOUNCEMENTS)}, got {kind!r}")
    if outage_start(inc) is None:
        raise Refused(f"{inc.id} is no whole-network outage (declare one first: "
                      "branchwatch hospital declare)")
    if departments:
        to = list(dict.fromkeys(departments))
    elif kind == MANUAL:
        to = reached(inc, now) or (list(milestones[0]) if milestones else [])
    else:
        to = list(dict.fromkeys([*told(inc), *reached(inc, now)]))
    if not to:
        raise Refused(f"no department to tell on {inc.id}: name them (--department)")
    words = template(language)["notices"][kind]
    detail = words.format(who=who, text=text, departments=department_names(to, language))
    inc.notes.append(Action(who, f"notice {kind} to {', '.join(to)}: {text}", now))
    n = sum(1 for a in inc.notes if a.why.startswith(f"notice {kind} "))
    change = Change("announced", inc.id, now, f"{kind} by {who} to {', '.join(to)}: {text}")
    return [change], Alert(inc.id, kind, detail, now, f"notice:{kind}:{n}", roles=tuple(to))
