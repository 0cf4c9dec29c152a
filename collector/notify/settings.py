"""The collector config's `notify:` section: schema and the rules a type cannot say.

Roles are names (第四條: leadership, execution, support; a hospital names its
handlers per class, domain.md §2.2: network-admin, it-head, duty-leader).
People hold roles and contacts; group robots can speak for a whole role.
Routes send an incident to roles and escalate along a chain until someone
acknowledges it. config/collector.example.yaml documents every key.
"""

from __future__ import annotations

import typing
from datetime import datetime
from urllib.parse import urlsplit

import msgspec

from agent.schema_network import _S

Role = typing.Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")]
Roles = typing.Annotated[list[Role], msgspec.Meta(min_length=1)]
Text = typing.Annotated[str, msgspec.Meta(min_length=1)]
PersonName = typing.Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^\x00-\x1f/]+$")]
Minutes = typing.Annotated[float, msgspec.Meta(gt=0)]
Seconds = typing.Annotated[float, msgspec.Meta(gt=0)]
Sha256Hex = typing.Annotated[str, msgspec.Meta(pattern=r"^[0-9a-f]{64}$")]
Time = typing.Annotated[datetime, msgspec.Meta(tz=True)]

# What an alert is about; routes may match on these (`match.changes`).
ROUTED = ("opened", "joined", "reopened", "graded", "agent_action", "plan_failed",
          "not_covered", "deadline_missed")
CHANNELS = ("email", "wecom", "dingtalk", "sms", "webhook", "apprise")


class Contacts(_S):
    """Where to reach someone: each field is one channel."""

    email: str | None = None           # an address; sent through notify.email (the SMTP server)
    wecom: str | None = None           # Apprise URL of a WeCom group robot: wecombot://KEY
    dingtalk: str | None = None        # Apprise URL: dingtalk://SECRET@TOKEN/
    sms: str | None = None             # Apprise URL of the SMS gateway (json://, form://, a plugin)
    webhook: str | None = None         # http(s) URL: branchwatch's own JSON body, POSTed
    apprise: list[str] = []            # any other Apprise URLs

    def channels(self) -> list[tuple[str, str]]:
        """(channel, address or URL) for every contact given."""
        out = [(c, getattr(self, c)) for c in CHANNELS[:-1] if getattr(self, c)]
        return out + [("apprise", u) for u in self.apprise]


class Person(Contacts, kw_only=True):
    """One person: a name (recorded when they acknowledge), roles and contacts."""

    name: PersonName
    roles: Roles


class Match(_S):
    """When a route applies; every given condition must hold (empty = any)."""

    # table -> grade: that grade or a more severe one (cbrc III = I, II or III;
    # hospital "2" = class 1 or 2). Any one listed table suffices.
    at_least: dict[str, str] = {}
    branches: list[str] = []           # shell patterns of branch ids
    regions: list[str] = []            # shell patterns of regions (agents[].region)
    changes: list[typing.Literal[ROUTED]] = []


class Step(_S, kw_only=True):
    """One escalation level: after this many minutes without an ack, these roles."""

    after: Minutes                     # minutes after the first notification
    roles: Roles


class Route(_S, kw_only=True):
    """The first route whose `match` holds sends an alert to `notify`, then escalates."""

    name: Text
    match: Match = msgspec.field(default_factory=Match)
    notify: Roles
    escalate: list[Step] = []


class Scope(_S):
    """Branches and regions (shell patterns); both empty = everywhere."""

    branches: list[str] = []
    regions: list[str] = []


class Silence(Scope, kw_only=True):
    """No fault alerts for this scope between starts and ends."""

    starts: Time
    ends: Time
    why: Text


class Maintenance(Scope, kw_only=True):
    """A recurring window without fault alerts; `when` is a calendar (timezone,
    weekdays, hours, holidays, workdays: the grading calendar's keys)."""

    name: Text
    when: dict


class Watch(Scope, kw_only=True):
    """A heightened-watch period (domain.md §6, 第十一條/第十二條): alerts from a
    lower fault state instead of muting (warning instead of critical)."""

    name: Text
    starts: Time
    ends: Time
    min_state: typing.Literal["warning", "critical"] = "warning"


class Deadlines(_S):
    """Regulatory deadlines (domain.md §3): reminders before, escalation when missed."""

    remind_before: typing.Annotated[float, msgspec.Meta(ge=0)] = 15.0   # minutes; 0 = none
    remind: list[Role] = msgspec.field(default_factory=lambda: ["execution"])
    missed: list[Role] = msgspec.field(default_factory=lambda: ["leadership"])


class Receive(_S):
    """Alertmanager's webhook into the collector: POST /api/v1/alertmanager."""

    token_sha256: Sha256Hex
    branch_label: Text = "branch"
    check_label: Text = "branchwatch_check"
    default_branch: str | None = None


class Alertmanager(_S):
    """Forward incidents to Alertmanager (POST /api/v2/alerts); accept its webhook."""

    forward: list[str] = []            # Alertmanager base URLs (http://am:9093)
    resend: Seconds = 60.0             # re-post firing alerts this often (else they expire)
    receive: Receive | None = None


class Retry(_S):
    """Each channel's own retry loop: exponential backoff with jitter."""

    first: Seconds = 2.0
    max: Seconds = 300.0
    timeout: Seconds = 15.0            # one attempt


class Notify(_S):
    """The `notify:` section (issue 7)."""

    people: list[Person] = []
    groups: dict[Role, Contacts] = {}  # role -> a group robot speaking for everyone in it
    routes: list[Route] = []
    email: str | None = None           # Apprise mailto:// URL of the SMTP server, with from=
    language: typing.Literal["zh", "en"] = "zh"
    timezone: str | None = None        # times in messages; default grading.calendar's zone
    min_state: typing.Literal["warning", "critical"] = "critical"
    plan_failed: list[Role] = msgspec.field(default_factory=lambda: ["leadership"])
    deadlines: Deadlines = msgspec.field(default_factory=Deadlines)
    send_resolved: bool = True
    repeat: Minutes = 30.0             # reopened/resolved messages of an incident: at most so often
    silences: list[Silence] = []
    maintenance: list[Maintenance] = []
    watch: list[Watch] = []
    ack_secret: typing.Annotated[str, msgspec.Meta(min_length=16)] | None = None
    ack_secret_file: str | None = None
    public_url: str | None = None      # the collector as people reach it (ack links)
    alertmanager: Alertmanager = msgspec.field(default_factory=Alertmanager)
    retry: Retry = msgspec.field(default_factory=Retry)

    def configured(self) -> bool:
        """Whether anyone is to be notified at all."""
        return bool(self.people or self.groups or self.alertmanager.forward)


def problems(n: Notify, tables: dict):
    """(key, problem) for what a type cannot say; `tables` are the grading tables in use."""
    held = {r for p in n.people for r in p.roles} | set(n.groups)
    if n.configured():
        for key, roles in _role_uses(n):
            for r in roles:
                if r not in held:
                    yield key, f"role {r!r} has nobody (no person or group holds it)"
    names: set[str] = set()
    for i, p in enumerate(n.people):
        if p.name in names:
            yield f"notify.people[{i}].name", f"duplicate person {p.name!r}"
        names.add(p.name)
        if not p.channels():
            yield f"notify.people[{i}]", "expected at least one contact (email, wecom, ...)"
        if p.email and not n.email:
            yield f"notify.people[{i}].email", "expected notify.email (the SMTP server) too"
    for where, c in [(f"notify.people[{i}]", p) for i, p in enumerate(n.people)] + [
            (f"notify.groups.{r}", g) for r, g in n.groups.items()]:
        for channel, url in c.channels():
            if channel == "webhook" and not _http(url):
                yield f"{where}.webhook", f"expected an http(s) URL, got {url!r}"
            elif channel not in ("email", "webhook") and not _apprise_ok(url):
                yield f"{where}.{channel}", f"Apprise does not know the URL {_redact(url)!r}"
    if n.email and not (n.email.startswith(("mailto://", "mailtos://")) and _apprise_ok(
            n.email + ("&" if "?" in n.email else "?") + "to=check@example.com")):
        yield "notify.email", "expected an Apprise mailto:// or mailtos:// URL of the SMTP server"
    yield from _route_problems(n, tables)
    for i, s in enumerate(n.silences):
        if s.ends <= s.starts:
            yield f"notify.silences[{i}]", "expected ends after starts"
    for i, w in enumerate(n.watch):
        if w.ends <= w.starts:
            yield f"notify.watch[{i}]", "expected ends after starts"
    for i, m in enumerate(n.maintenance):
        from collector.grading import Calendar
        try:
            Calendar.from_dict(m.when, "", f"notify.maintenance[{i}].when")
        except ValueError as e:
            key, _, what = str(e).lstrip(": ").partition(": ")
            yield key, what
    if n.ack_secret is not None and n.ack_secret_file is not None:
        yield "notify", "expected at most one of ack_secret and ack_secret_file"
    if (n.ack_secret or n.ack_secret_file) and not n.public_url:
        yield "notify.public_url", "expected the collector's address as people reach it " \
                                   "(the acknowledgement links point there)"
    if n.public_url and not _http(n.public_url):
        yield "notify.public_url", f"expected an http(s) URL, got {n.public_url!r}"
    for i, url in enumerate(n.alertmanager.forward):
        if not _http(url):
            yield f"notify.alertmanager.forward[{i}]", f"expected an http(s) URL, got {url!r}"
    if n.timezone is not None and not _zone_ok(n.timezone):
        yield "notify.timezone", f"expected an IANA time zone name like 'Asia/Shanghai', " \
                                 f"got {n.timezone!r}"
    if n.retry.max < n.retry.first:
        yield "notify.retry.max", "expected at least retry.first"


def _role_uses(n: Notify):
    for i, r in enumerate(n.routes):
        yield f"notify.routes[{i}].notify", r.notify
        for j, s in enumerate(r.escalate):
            yield f"notify.routes[{i}].escalate[{j}].roles", s.roles
    yield "notify.plan_failed", n.plan_failed
    yield "notify.deadlines.remind", n.deadlines.remind
    yield "notify.deadlines.missed", n.deadlines.missed


def _route_problems(n: Notify, tables: dict):
    names: set[str] = set()
    for i, r in enumerate(n.routes):
        if r.name in names:
            yield f"notify.routes[{i}].name", f"duplicate route {r.name!r}"
        names.add(r.name)
        for table, grade in r.match.at_least.items():
            if table not in tables:
                yield (f"notify.routes[{i}].match.at_least.{table}",
                       f"no grading table {table!r} in use (grading.tables: "
                       f"{', '.join(tables) or 'none'})")
            elif grade not in tables[table].grades:
                yield (f"notify.routes[{i}].match.at_least.{table}",
                       f"{table} has no grade {grade!r}; it has: "
                       f"{', '.join(tables[table].grades)}")
        afters = [s.after for s in r.escalate]
        if afters != sorted(set(afters)) or len(afters) != len(set(afters)):
            yield f"notify.routes[{i}].escalate", "expected `after` to grow from step to step"


def _zone_ok(name: str) -> bool:
    from zoneinfo import ZoneInfo
    try:
        ZoneInfo(name)
    except (ValueError, LookupError):
        return False
    return True


def _http(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _apprise_ok(url: str) -> bool:
    import apprise                      # only when a URL is configured (~0.2 s)
    return apprise.Apprise.instantiate(url, suppress_exceptions=True) is not None


def _redact(url: str) -> str:
    """A URL without what may be a token (a robot's key is often its host part)."""
    return f"{urlsplit(url).scheme}://..."
