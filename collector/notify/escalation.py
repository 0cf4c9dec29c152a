"""What is due as time passes, for one incident (pure; the desk asks every second):

- escalation: the next level of the frozen chain once its minutes have passed
  since the first message, while nobody has acknowledged (Grafana OnCall: a
  step says what happens next; the notifier carries it out);
- deadline reminders: `deadlines.remind_before` minutes before each due
  deadline (domain.md §3: notice within 60 min, report within 12 h, grade-I
  progress every 2 h; hospital milestones), once per due time;
- held alerts (muted, or below the threshold) once nothing holds them back;
- the hospital departments' milestone notices (domain.md §2.3), once each;
- an Alertmanager refresh of a firing incident every `alertmanager.resend`.

A missed deadline needs nothing here: grading raises `deadline_missed` once
(collector/incident_grades.py) and the pipeline sends it to its roles.
"""

from __future__ import annotations

from datetime import timedelta

from ..hospital.notices import milestones_due
from ..incidents import Incident
from .messages import local, zone
from .pipeline import Alert
from .routing import Rules
from .state import NotifyState


def due(inc: Incident, rules: Rules, now) -> list[Alert]:
    """The alerts this incident has due now (already-sent ones left out)."""
    st: NotifyState | None = inc.notify
    out: list[Alert] = []
    if st is not None and inc.status == "open":
        out += _escalations(inc, st, now)
        if st.held is not None:
            h = st.held
            out.append(Alert(inc.id, h.reason, h.detail, h.at, h.key))
    if inc.status != "closed":
        out += _reminders(inc, st, rules, now)
        out += milestones_due(inc, st.keys if st is not None else (), now,
                              rules.settings.language)
    return out


def _escalations(inc: Incident, st: NotifyState, now) -> list[Alert]:
    if not st.chain or st.started_at is None or st.acked(inc.acks):
        return []
    out = []
    for level in range(st.level + 1, len(st.chain)):
        step = st.chain[level]
        if now < st.started_at + timedelta(minutes=step.after):
            break
        out.append(Alert(inc.id, "escalation", f"{step.after:g} min -> {', '.join(step.roles)}",
                         now, f"escalation:{st.started_at.isoformat()}:{level}",
                         roles=tuple(step.roles), level=level))
    return out


def _reminders(inc: Incident, st: NotifyState | None, rules: Rules, now) -> list[Alert]:
    before = timedelta(minutes=rules.settings.deadlines.remind_before)
    if not before:
        return []
    tz = zone(rules)
    out = []
    for d in inc.deadlines:
        key = f"reminder:{d.table}:{d.key}:{d.due_at.isoformat()}"
        if d.status == "due" and d.due_at - before <= now < d.due_at and (
                st is None or key not in st.keys):
            left = max(0, round((d.due_at - now).total_seconds() / 60))
            out.append(Alert(inc.id, "reminder",
                             f"{d.title} ({d.key}) due {local(d.due_at, tz)}, in {left} min",
                             now, key))
    return out


def refresh_due(inc: Incident, rules: Rules, now) -> bool:
    """Whether a firing incident's Alertmanager alert must be posted again now."""
    st: NotifyState | None = inc.notify
    am = rules.settings.alertmanager
    return bool(am.forward) and st is not None and st.forwarded_at is not None \
        and inc.status == "open" and now - st.forwarded_at >= timedelta(seconds=am.resend)
