"""The notification pipeline: stages sharing one signature (alerts in, alerts
out, as Alertmanager's), run in order: route -> suppress -> dedup -> send -> record.

Pure: each stage reads the incidents and the rules, and writes only to the
incidents' NotifyState and to the context's outbox and audit records. `send`
does not send: it turns alerts into deliveries (kept on the incident) and
Outgoing items that the dispatcher (dispatch.py) carries out on the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from ..incidents import Incident
from .messages import am_alert, render, webhook_body, with_link, zone
from .routing import MUTABLE, Rules
from .signing import ack_url
from .state import Delivery, Held, Level, Message, NotifyState

# Alerts about the incident's state: they may freeze a route's chain, and they
# are what Alertmanager receives.
STATE_REASONS = frozenset({"opened", "joined", "reopened", "graded"})
# Fault alerts held back below the alert threshold (routing.py).
THRESHOLD = frozenset({"opened", "joined", "reopened"})
# Sent again after notify.repeat minutes (a flapping incident's reopen/resolve).
REPEATABLE = frozenset({"reopened", "resolved"})
# domain.md §2.3: the hospital departments' notices (collector/hospital/notices.py) go
# to the departments they name and nobody else, and telling a department does not
# make it follow the incident.
DEPARTMENT_REASONS = frozenset({"milestone", "manual", "resume"})


@dataclass(frozen=True)
class Alert:
    """Something people may need to hear about one incident, on its way through."""

    incident: str
    reason: str            # opened|joined|reopened|graded|agent_action|plan_failed|
    #                        deadline_missed|reminder|escalation|resolved|
    #                        milestone|manual|resume (DEPARTMENT_REASONS)
    detail: str
    at: datetime
    key: str               # the same key is sent once (dedup)
    roles: tuple[str, ...] = ()
    route: int | None = None       # the route taken (state alerts)
    level: int | None = None       # the escalation level this alert is
    message: str | None = None     # the message `send` made of it


@dataclass(frozen=True)
class Outgoing:
    """One message for the dispatcher: to one recipient on one channel."""

    incident: str
    delivery: str | None   # Delivery.id on the incident; None for an Alertmanager post
    to: str
    channel: str           # email|wecom|dingtalk|sms|webhook|apprise|alertmanager
    address: str           # an email address or a URL (from config; never stored)
    subject: str
    text: str
    payload: dict | None = None


@dataclass
class Ctx:
    """What the stages share: the time, the rules, the incidents, and the results."""

    now: datetime
    rules: Rules
    incident: Callable[[str], Incident]
    secret: bytes | None = None
    outbox: list[Outgoing] = field(default_factory=list)
    records: list[tuple[str, dict]] = field(default_factory=list)   # (audit kind, data)
    touched: set[str] = field(default_factory=set)
    footer: str = ""        # the audit head every message ends with

    def state(self, incident_id: str) -> tuple[Incident, NotifyState]:
        """An incident and its notification state (created on first use)."""
        inc = self.incident(incident_id)
        if inc.notify is None:
            inc.notify = NotifyState()
        return inc, inc.notify


Stage = Callable[[list[Alert], Ctx], list[Alert]]


def route(alerts: list[Alert], ctx: Ctx) -> list[Alert]:
    """Who hears it: the first matching route's roles, plus everyone told so far;
    a failed plan (第三十條) and a missed deadline (domain.md §3) also reach their roles."""
    s, out = ctx.rules.settings, []
    for a in alerts:
        inc, st = ctx.state(a.incident)
        roles, rank = list(a.roles), None
        if a.reason in DEPARTMENT_REASONS:
            out.append(replace(a, roles=tuple(dict.fromkeys(roles)), route=None))
            continue
        if a.reason in STATE_REASONS or a.reason in ("agent_action", "plan_failed",
                                                     "not_covered", "deadline_missed"):
            found = ctx.rules.route(inc, a.reason)
            if found is not None:
                roles += found[1].notify
                rank = found[0] if a.reason in STATE_REASONS else None
        # 第二十七條(二): what no plan covers goes to the leadership group at once,
        # as a failed plan does (第三十條): the same roles.
        roles += {"plan_failed": s.plan_failed, "not_covered": s.plan_failed,
                  "deadline_missed": s.deadlines.missed,
                  "reminder": s.deadlines.remind}.get(a.reason, [])
        if a.reason != "escalation":
            roles += st.roles              # who already follows this incident
        out.append(replace(a, roles=tuple(dict.fromkeys(roles)), route=rank))
    return out


def suppress(alerts: list[Alert], ctx: Ctx) -> list[Alert]:
    """Hold back muted fault alerts and those below the threshold (routing.py);
    a held alert is offered again each second (escalation.py)."""
    out = []
    for a in alerts:
        inc, st = ctx.state(a.incident)
        why = ctx.rules.muted(inc, ctx.now) if a.reason in MUTABLE | {"agent_action"} else None
        if why is None and a.reason in THRESHOLD:
            why = ctx.rules.below_threshold(inc, ctx.now)
        if why is None:
            out.append(a)
        elif a.reason in THRESHOLD:
            if st.held is None or st.held.key != a.key or st.held.why != why:
                ctx.records.append(("notify.held", {"incident": inc.id, "reason": a.reason,
                                                    "why": why, "detail": a.detail}))
                ctx.touched.add(inc.id)
            st.held = Held(a.reason, a.detail, a.key, a.at, why)
    return out


def dedup(alerts: list[Alert], ctx: Ctx) -> list[Alert]:
    """Drop what was already sent (a reopen or resolution: unless notify.repeat passed),
    and a resolution nobody was told the incident for."""
    out, seen = [], set()
    repeat = timedelta(minutes=ctx.rules.settings.repeat)
    for a in alerts:
        _, st = ctx.state(a.incident)
        sent = st.keys.get(a.key)
        fresh = sent is None or a.reason in REPEATABLE and ctx.now - sent >= repeat
        told = bool(st.roles) or st.forwarded_at is not None
        if fresh and (a.incident, a.key) not in seen and (a.reason != "resolved" or told):
            seen.add((a.incident, a.key))
            out.append(a)
    return out


def send(alerts: list[Alert], ctx: Ctx) -> list[Alert]:
    """Turn each alert into a message, a delivery per recipient and channel (kept on
    the incident) and an Outgoing item; state alerts also go to Alertmanager."""
    rules, out = ctx.rules, []
    tz = zone(rules)
    for a in alerts:
        inc, st = ctx.state(a.incident)
        holders = rules.holders(list(a.roles))
        if holders:
            subject, text = render(inc, a.reason, a.detail, rules, tz)
            if ctx.footer:
                text = f"{text}\n{ctx.footer}"
            msg = st.new_message(ctx.now, a.reason, a.level, subject, text)
            a = replace(a, message=msg.id)
            for to, role, contacts in holders:
                for channel in dict.fromkeys(c for c, _ in contacts.channels()):
                    d = Delivery(msg.id, to, role, channel)
                    st.deliveries.append(d)
                    if (o := outgoing(inc, msg, d, rules, ctx.secret)) is not None:
                        ctx.outbox.append(o)
        if rules.settings.alertmanager.forward and (
                a.reason in STATE_REASONS or a.reason == "resolved"):
            ctx.outbox += forward(inc, rules, ctx.now)
        ctx.touched.add(inc.id)
        out.append(a)
    return out


def record(alerts: list[Alert], ctx: Ctx) -> list[Alert]:
    """Remember what was sent (dedup keys, roles told, the chain and its level) and
    write one audit record per alert."""
    routes = ctx.rules.settings.routes
    for a in alerts:
        inc, st = ctx.state(a.incident)
        st.keys[a.key] = ctx.now
        if a.reason not in DEPARTMENT_REASONS:
            st.roles = list(dict.fromkeys([*st.roles, *a.roles]))
        if a.reason in STATE_REASONS:
            st.held = None
        if a.route is not None and (st.route_rank is None or a.route < st.route_rank
                                    or a.reason == "reopened"):
            # Grafana OnCall: the chain is frozen onto the incident, so a config edit
            # cannot change an escalation already running; a more severe route (the
            # grade rose) or a reopening starts its chain afresh.
            r = routes[a.route]
            st.route, st.route_rank, st.started_at, st.level = r.name, a.route, ctx.now, 0
            st.chain = [Level(0.0, list(r.notify))] + [Level(s.after, list(s.roles))
                                                       for s in r.escalate]
            if a.reason == "reopened":
                st.acks_from = ctx.now     # acks before the reopening no longer count
        if a.level is not None:
            st.level = max(st.level, a.level)
        level = a.level if a.level is not None else (0 if a.route is not None else None)
        told = sorted({d.to for d in st.deliveries if d.message == a.message})
        ctx.records.append(("notify.queued" if a.roles else "notify.unrouted", {
            "incident": inc.id, "reason": a.reason, "detail": a.detail,
            "roles": list(a.roles), "to": told, "level": level, "route": st.route}))
    return alerts


PIPELINE: tuple[Stage, ...] = (route, suppress, dedup, send, record)


def run(alerts: list[Alert], ctx: Ctx, stages: tuple[Stage, ...] = PIPELINE) -> Ctx:
    """Every stage in order; the context holds what came out."""
    for stage in stages:
        if not alerts:
            break
        alerts = stage(alerts, ctx)
    return ctx


def outgoing(inc: Incident, msg: Message, d: Delivery, rules: Rules,
             secret: bytes | None) -> Outgoing | None:
    """The Outgoing for a kept delivery, addressed from the current config (None when
    the recipient or that contact is gone from it)."""
    contacts = rules.contacts(d.to)
    addresses = [a for c, a in (contacts.channels() if contacts else []) if c == d.channel]
    if not addresses:
        return None
    link = None
    if secret and rules.settings.public_url and not d.to.startswith("group:"):
        link = ack_url(rules.settings.public_url, secret, inc.id, d.to)
    text = with_link(msg.text, link, rules)
    payload = webhook_body(inc, rules, msg.reason, msg.subject, text, d.to, d.role, msg.level,
                           link, msg.at) if d.channel == "webhook" else None
    # Several Apprise URLs of one person are one delivery (one Apprise call).
    return Outgoing(inc.id, d.id, d.to, d.channel, "\n".join(addresses), msg.subject, text,
                    payload)


def forward(inc: Incident, rules: Rules, now: datetime) -> list[Outgoing]:
    """The incident as an Alertmanager alert, to every forward URL. When its labels
    changed (the grade rose), the alert Alertmanager knew ends in the same post."""
    st: NotifyState = inc.notify
    alert = am_alert(inc, rules, now)
    alerts = [alert]
    if st.forwarded_labels and st.forwarded_labels != alert["labels"]:
        alerts.insert(0, {**alert, "labels": st.forwarded_labels, "endsAt": now.isoformat()})
    st.forwarded_labels = alert["labels"]
    if inc.status == "open":
        st.forwarded_at = now
    return [Outgoing(inc.id, None, "alertmanager", "alertmanager", url,
                     alert["annotations"]["summary"], "", alerts)
            for url in rules.settings.alertmanager.forward]
