"""What an incident keeps about its notifications, so a restart loses none of it:
the escalation chain frozen onto it, how far it went, who was told what by
which channel, and which deliveries are still waiting.

Contact addresses and ack links are never kept here (operators read incidents
through the API): a delivery names the person and channel, and the address
is looked up in the config when it is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

# Messages kept per incident; the oldest fully delivered ones go first.
MESSAGES_KEPT = 200


@dataclass
class Level:
    """One frozen escalation level: minutes after the chain started, and its roles."""

    after: float
    roles: list[str]


@dataclass
class Message:
    """One message as people read it (the ack link is added per person when sent)."""

    id: str
    at: datetime
    reason: str
    level: int | None
    subject: str
    text: str


@dataclass
class Delivery:
    """One message to one recipient on one channel, and how it went."""

    message: str                       # Message.id
    to: str                            # a person's name, or "group:ROLE"
    role: str | None
    channel: str                       # email | wecom | dingtalk | sms | webhook | apprise
    status: str = "queued"             # queued | sent | failed (given up)
    attempts: int = 0
    done_at: datetime | None = None
    error: str | None = None

    @property
    def id(self) -> str:
        """Unique within the incident."""
        return f"{self.message}/{self.to}/{self.channel}"


@dataclass
class Held:
    """An alert kept back (muted, or below the alert threshold): offered again each
    second while the incident is open, and sent once nothing holds it back."""

    reason: str
    detail: str
    key: str
    at: datetime
    why: str


@dataclass
class NotifyState:
    """Notification state of one incident (Incident.notify)."""

    route: str | None = None           # the route whose chain is frozen here
    route_rank: int | None = None      # its place in notify.routes (lower = earlier)
    chain: list[Level] = field(default_factory=list)
    started_at: datetime | None = None  # the chain's clock: its first message
    level: int = -1                    # the highest level notified
    acks_from: datetime | None = None  # acks from then on stop the chain (a reopen resets it)
    roles: list[str] = field(default_factory=list)   # every role notified so far
    keys: dict[str, datetime] = field(default_factory=dict)   # alerts sent (dedup)
    held: Held | None = None
    messages: list[Message] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    forwarded_at: datetime | None = None   # last firing post to Alertmanager
    forwarded_labels: dict | None = None   # the labels Alertmanager knows it by
    next_id: int = 1

    def new_message(self, at: datetime, reason: str, level: int | None, subject: str,
                    text: str) -> Message:
        """Add a message (dropping the oldest delivered ones past MESSAGES_KEPT)."""
        msg = Message(f"M{self.next_id}", at, reason, level, subject, text)
        self.next_id += 1
        self.messages.append(msg)
        while len(self.messages) > MESSAGES_KEPT:
            waiting = {d.message for d in self.deliveries if d.status == "queued"}
            old = next((m for m in self.messages if m.id not in waiting), None)
            if old is None:
                break
            self.messages.remove(old)
            self.deliveries = [d for d in self.deliveries if d.message != old.id]
        return msg

    def message(self, message_id: str) -> Message | None:
        """A kept message by id."""
        return next((m for m in self.messages if m.id == message_id), None)

    def delivery(self, delivery_id: str) -> Delivery | None:
        """A kept delivery by id."""
        return next((d for d in self.deliveries if d.id == delivery_id), None)

    def acked(self, acks: list) -> bool:
        """Whether someone acknowledged since the chain (re)started."""
        return any(self.acks_from is None or a.at >= self.acks_from for a in acks)

    def due_level(self, now: datetime) -> int | None:
        """The next escalation level whose time has come, if any."""
        nxt = self.level + 1
        if self.started_at is None or nxt >= len(self.chain):
            return None
        return nxt if now >= self.started_at + timedelta(minutes=self.chain[nxt].after) else None
