"""The notifier as the incident desk uses it, on the writer thread: incident
changes in, the pipeline run, Outgoing items and audit records out.

Pure apart from reading the ack secret once when built: every method is a
function of the incidents, the rules and `now`. The desk saves the incidents
it touched with the audit records in the same transaction, and hands the
Outgoing items to the dispatcher on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..incidents import Change, Incident
from .escalation import due, refresh_due
from .pipeline import STATE_REASONS, Alert, Ctx, Outgoing, forward, outgoing, run
from .routing import Rules
from .signing import read_secret

# Changes that are alerts (Change.alert) and what they are called in routes.
ALERT_KINDS = frozenset({"opened", "joined", "reopened", "graded", "agent_action",
                         "plan_failed", "not_covered", "deadline_missed"})


@dataclass
class Batch:
    """What one round produced: items to send, audit records, incidents changed."""

    outbox: list[Outgoing] = field(default_factory=list)
    records: list[tuple[str, dict]] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)


class Notifier:
    """Notification planning for the collector's incidents."""

    def __init__(self, rules: Rules, secret: bytes | None = None):
        self.rules, self.secret = rules, secret
        self.footer: Callable[[], str] | None = None   # the audit head line

    @classmethod
    def from_config(cls, config, tables: dict | None = None) -> Notifier | None:
        """From the collector config (None when nobody is to be notified). OSError or
        ValueError when the ack secret file cannot be read."""
        n = config.notify
        if not n.configured():
            return None
        if tables is None:
            from ..grading import load_tables
            tables = load_tables(config.grading.tables)
        regions = {a.branch: a.region for a in config.agents if a.region}
        tz = (config.grading.calendar or {}).get("timezone", "Asia/Shanghai")
        try:
            secret = read_secret(n.ack_secret, n.ack_secret_file)
        except (OSError, ValueError) as e:
            raise OSError(f"notify.ack_secret_file: {e}") from None
        return cls(Rules.build(n, tables, regions, tz), secret)

    def _ctx(self, incident: Callable[[str], Incident], now: datetime) -> Ctx:
        return Ctx(now, self.rules, incident, self.secret,
                   footer=self.footer() if self.footer else "")

    def on_changes(self, changes: list[Change], incident: Callable[[str], Incident],
                   now: datetime) -> Batch:
        """The alerts among an incident's changes, through the pipeline."""
        alerts = []
        for c in changes:
            if c.alert and c.kind in ALERT_KINDS or c.kind == "resolved" and \
                    self.rules.settings.send_resolved:
                alerts.append(Alert(c.incident_id, c.kind, c.detail, c.at,
                                    self._key(incident(c.incident_id), c)))
        return _batch(run(alerts, self._ctx(incident, now)))

    def send(self, alerts: list[Alert], incident: Callable[[str], Incident],
             now: datetime) -> Batch:
        """Alerts made elsewhere (the hospital's notices) through the pipeline."""
        return _batch(run(list(alerts), self._ctx(incident, now)))

    def _key(self, inc: Incident, c: Change) -> str:
        if c.kind in ("opened", "joined", "graded"):
            # Worth a message when what a person would read changes: the title or a grade.
            grades = ",".join(f"{t}={r.grade}" for t, r in sorted(inc.grades.items()))
            return f"state:{inc.title}:{grades}"
        if c.kind in ("reopened", "resolved"):
            return c.kind
        return f"{c.kind}:{c.check or ''}:{c.detail}"

    def tick(self, incidents: Iterable[Incident], now: datetime) -> Batch:
        """Escalations, reminders, held alerts and Alertmanager refreshes now due."""
        incidents = list(incidents)
        by_id = {i.id: i for i in incidents}
        ctx = self._ctx(by_id.__getitem__, now)
        alerts = []
        for inc in incidents:
            st = inc.notify
            if st is not None and st.held is not None and inc.status != "open":
                st.held = None              # resolved while held: nobody needs it now
                ctx.touched.add(inc.id)
            alerts += due(inc, self.rules, now)
            if refresh_due(inc, self.rules, now):
                ctx.outbox += forward(inc, self.rules, now)
                ctx.touched.add(inc.id)
        return _batch(run(alerts, ctx))

    def pending(self, incidents: Iterable[Incident]) -> list[Outgoing]:
        """Deliveries still queued on the incidents (sent again after a restart)."""
        out = []
        for inc in incidents:
            st = inc.notify
            for d in st.deliveries if st is not None else []:
                msg = st.message(d.message)
                if d.status == "queued" and msg is not None:
                    item = outgoing(inc, msg, d, self.rules, self.secret)
                    if item is not None:
                        out.append(item)
        return out

    def delivered(self, inc: Incident, item: Outgoing, ok: bool, error: str | None,
                  attempts: int, final: bool, now: datetime) -> list[tuple[str, dict]]:
        """A dispatcher outcome: the delivery's status on the incident, and the audit
        records (sent; the first failure; giving up). Alertmanager refreshes that
        went through are not recorded (one a minute per incident)."""
        data = {"incident": inc.id, "to": item.to, "channel": item.channel,
                "attempts": attempts}
        d = inc.notify.delivery(item.delivery) if inc.notify and item.delivery else None
        if d is not None:
            d.attempts, d.error = attempts, error
            data["message"] = d.message
            if ok or final:
                d.status, d.done_at = ("sent" if ok else "failed"), now
        if ok:
            return [("notify.sent", data)] if d is not None or attempts > 1 else []
        if attempts == 1 or final:
            return [("notify.failed", {**data, "error": error, "retrying": not final})]
        return []


def _batch(ctx: Ctx) -> Batch:
    return Batch(ctx.outbox, ctx.records, ctx.touched)


__all__ = ["Batch", "Notifier", "STATE_REASONS"]
