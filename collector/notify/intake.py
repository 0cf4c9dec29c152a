"""Alertmanager's webhook (version 4) into events, so an existing Prometheus alert
opens a branchwatch incident and its resolution clears it. Pure.

Each alert becomes one state event of agent `alertmanager`:
- branch: the `receive.branch_label` label (default `branch`), else
  `receive.default_branch`, else the alert is ignored (and named in the answer);
- check: the `receive.check_label` label when present (so an alert can stand
  for a check the grading knows, e.g. tcp/core-banking: domain.md §2.1),
  else alertmanager/ALERTNAME[/INSTANCE];
- state: firing -> its `severity` label (warning or critical; anything else
  but info/none is critical); resolved -> ok; info/none alerts are ignored;
- observed at startsAt (firing) or endsAt (resolved); the event id is derived
  from the fingerprint, status and that time, so Alertmanager's repeats of an
  unchanged alert are stored once (the collector's usual resend handling).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import msgspec

from agent.wire import Event

from .settings import Receive


class AmAlert(msgspec.Struct):
    """One alert of the webhook body (fields branchwatch reads)."""

    status: str
    labels: dict[str, str]
    startsAt: datetime
    annotations: dict[str, str] = {}
    endsAt: datetime | None = None
    fingerprint: str = ""


class AmWebhook(msgspec.Struct):
    """Alertmanager's webhook body (version 4); other fields are ignored."""

    alerts: list[AmAlert]
    version: str = "4"
    status: str = ""
    receiver: str = ""


def decode(body: bytes) -> AmWebhook:
    """The webhook body; msgspec.MsgspecError when it is not one."""
    return msgspec.json.decode(body, type=AmWebhook)


def events_from(hook: AmWebhook, receive: Receive) -> tuple[dict[str, list[Event]], list[str]]:
    """Events by branch, and a one-line reason for each alert ignored."""
    by_branch: dict[str, list[Event]] = {}
    ignored = []
    for i, a in enumerate(hook.alerts):
        name = a.labels.get("alertname", "unnamed")
        branch = a.labels.get(receive.branch_label) or receive.default_branch
        severity = a.labels.get("severity", "critical").lower()
        if not branch:
            ignored.append(f"alerts[{i}] {name}: no {receive.branch_label!r} label "
                           "(and no receive.default_branch)")
            continue
        if a.status not in ("firing", "resolved"):
            ignored.append(f"alerts[{i}] {name}: status {a.status!r} is neither firing "
                           "nor resolved")
            continue
        if severity in ("info", "none"):
            ignored.append(f"alerts[{i}] {name}: severity {severity} is not a fault")
            continue
        firing = a.status == "firing"
        at = a.startsAt if firing or a.endsAt is None or a.endsAt.year < 2000 else a.endsAt
        check = a.labels.get(receive.check_label) or "/".join(
            ["alertmanager", name] + ([a.labels["instance"]] if a.labels.get("instance") else []))
        what = a.annotations.get("summary") or a.annotations.get("description") or name
        ident = a.fingerprint or repr(sorted(a.labels.items()))
        event_id = hashlib.sha256(f"{ident}|{a.status}|{at.isoformat()}".encode()).hexdigest()
        by_branch.setdefault(branch, []).append(Event(
            id="am-" + event_id[:32], kind="state", agent="alertmanager", branch=branch,
            check=check, old_state=None,
            new_state=("warning" if severity == "warning" else "critical") if firing else "ok",
            reason=f"Alertmanager {name}: {what}" if firing else f"Alertmanager {name} resolved",
            observed_at=at))
    return by_branch, ignored
