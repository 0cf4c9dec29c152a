"""The demo's embedded configs: one collector, four agents in one province
(three branches and the data centre, its key site; domain.md §2.1).

Both are built as data and go through the same validation as a config file
(`collector.config.parse`, `agent.config.from_dict`), so the demo cannot run
on a config the product would refuse.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agent.config import Config as AgentConfig
from agent.config import from_dict as agent_from_dict

from ..api_base import token_hash
from ..config import Config as CollectorConfig
from ..config import parse as parse_collector

OPERATOR = "demo"                       # who acts through the API in the story
CONSOLE_USER = CONSOLE_PASSWORD = "demo"
# Open every hour of every day, so the demo grades the same at any hour
# (domain.md §2.1: durations count business-hours time only).
ALWAYS_OPEN = {"timezone": "Asia/Shanghai", "weekdays": ["mon", "tue", "wed", "thu", "fri",
                                                          "sat", "sun"],
               "hours": ["00:00-24:00"]}
HEARTBEAT = 0.5        # s: the collector follows a moved clock after 8 heartbeats
# Who is told (docs/notifications.md): the person on duty at once, the leadership
# group (domain.md §4, 第四條) when nobody acknowledges within ESCALATE_AFTER.
ON_DUTY, LEADER = "李娜", "张伟"
ESCALATE_AFTER = 2     # minutes; the power-cut act keeps its incident open 3 min and more


@dataclass(frozen=True)
class BranchSpec:
    """One branch of the demo: where it is and which agent watches it."""

    branch: str
    region: str
    agent: str
    ups: str                               # the UPS's name on the simulated upsd
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)


PROVINCE = "四川"            # the regulator's scope unit (domain.md §2.1): one province
DATA_CENTRE = "DC-01"        # its key site: out there, the whole province is out


def demo_branches() -> list[BranchSpec]:
    """Three branches and the data centre, all in one province (the scope unit)."""
    return [BranchSpec("BR-north-01", PROVINCE, "agent-north-01", "ups-north-01"),
            BranchSpec("BR-north-02", PROVINCE, "agent-north-02", "ups-north-02"),
            BranchSpec("BR-south-01", PROVINCE, "agent-south-01", "ups-south-01"),
            BranchSpec(DATA_CENTRE, PROVINCE, "agent-dc-01", "ups-dc-01")]


@dataclass(frozen=True)
class Timing:
    """The agents' pace: quick enough for a demo, steady enough for a loaded machine."""

    hold: float              # s the primary line is down before the failover
    return_after: float      # s the primary is healthy before swapping back

    @classmethod
    def for_speed(cls, speed: float) -> "Timing":
        """Shorter holds at higher speeds, never under what the agent can time."""
        return cls(hold=max(1.0, 4.0 / speed), return_after=max(2.0, 10.0 / speed))


def notify_config(hooks: dict[str, str], public_url: str, language: str) -> dict:
    """The `notify:` section: the on-duty person and the leader, each with a webhook
    into the demo's inbox; one route that escalates; signed acknowledgement links."""
    return {
        "language": language,
        # A branch on battery is a warning, and the person on duty hears of it.
        "min_state": "warning",
        "people": [{"name": ON_DUTY, "roles": ["execution"], "webhook": hooks[ON_DUTY]},
                   {"name": LEADER, "roles": ["leadership"], "webhook": hooks[LEADER]}],
        "routes": [{"name": "every-incident", "notify": ["execution"],
                    "escalate": [{"after": ESCALATE_AFTER, "roles": ["leadership"]}]}],
        "ack_secret": secrets.token_urlsafe(24), "public_url": public_url,
        # The inbox answers at once; a retry within the story if it did not.
        "retry": {"first": 0.5, "max": 2, "timeout": 5},
    }


def collector_config(data_dir: Path, branches: list[BranchSpec], operator_token: str,
                     console_hash: str, notify: dict | None = None,
                     lang: str = "zh") -> CollectorConfig:
    """The collector: the branches enrolled, the demo operator, a console user, and
    who is told (`notify_config`)."""
    data = {
        # The socket is bound by the demo itself (any free port with --port 0).
        "listen": {"address": "127.0.0.1", "port": 0},
        "storage": {"data_dir": str(data_dir)},
        "agents": [{"id": b.agent, "branch": b.branch, "region": b.region,
                    "token_sha256": token_hash(b.token)} for b in branches],
        "operators": [{"name": OPERATOR, "token_sha256": token_hash(operator_token),
                       "roles": ["leadership"]}],
        # The story moves the collector's clock forward by hours (a drill
        # does the same): no agent may look silent for that.
        "incidents": {"window": 120, "deadman_grace": 86400},
        # One province: out while half its branches (2 of 3) or its data centre are.
        "grading": {"tables": ["cbrc"], "calendar": ALWAYS_OPEN,
                    "scope": {"unit": PROVINCE, "share": 0.5, "key_sites": [DATA_CENTRE]}},
        "reports": {"language": "zh", "unit": "示范县农村信用合作联社 (demo)",
                    "contact": "demo", "phone": "0839-0000000"},
        "console": {"language": lang, "users": [{"name": CONSOLE_USER, "roles": ["operator", "leadership"],
                               "password": console_hash}]},
    }
    if notify is not None:
        data["notify"] = notify
    return parse_collector(yaml.safe_dump(data, allow_unicode=True), "<demo collector>")


@dataclass(frozen=True)
class BranchPorts:
    """Where one branch's simulated equipment listens on 127.0.0.1."""

    upsd: int
    switch: int
    primary: int             # the primary line's far side
    backup: int              # the backup line's far side
    core: int                # the core system as the branch reaches it


def agent_config(spec: BranchSpec, ports: BranchPorts, collector_url: str, spool: Path,
                 timing: Timing) -> AgentConfig:
    """One branch's agent: its UPS, switch, two lines with failover, the core system."""
    def line(name: str, port: int) -> dict:
        # TCP connects on loopback: a refusal would still prove the line works,
        # so a cut line's far side goes silent instead (network.py).
        return {"name": name, "uplink": {"switch": "funds", "interface": name},
                "source": "127.0.0.1", "method": "tcp", "interval": 1, "count": 1,
                "timeout": 1, "latency_warning": 0.9,
                "targets": [{"name": "gw", "host": "127.0.0.1", "port": port}]}
    data = {
        "agent": {"id": spec.agent, "branch": spec.branch, "region": spec.region},
        "metrics": {"address": "127.0.0.1", "port": 0},
        "state": {"debounce": 2, "recheck_interval": 0.3},
        "ups": [{"name": "main", "interval": 1,
                 "nut": {"ups": spec.ups, "port": ports.upsd, "timeout": 2}}],
        "switches": [{
            "name": "funds", "host": "127.0.0.1", "port": ports.switch,
            "snmp": {"version": "2c", "community": "public"},
            "interval": 2, "timeout": 1, "retries": 1,
            "interfaces": [{"name": "gi1", "id": "primary", "role": "uplink-primary"},
                           {"name": "gi2", "id": "backup", "role": "uplink-backup"}],
            "actions": {"ports": ["backup"], "write": {"version": "2c", "community": "private"}}}],
        "lines": [line("primary", ports.primary), line("backup", ports.backup)],
        "failover": {"primary": "primary", "backup": "backup", "hold": timing.hold,
                     "return_after": timing.return_after, "max_swaps_per_hour": 4,
                     "verify_timeout": 10},
        # Named so the collector's default business stop `tcp/core*` matches it.
        "host": {"interval": 1, "tcp": [{"name": "core", "host": "127.0.0.1",
                                         "port": ports.core, "timeout": 1,
                                         "latency_warning": 0.9}]},
        "collector": {"url": collector_url, "token": spec.token,
                      "heartbeat_interval": HEARTBEAT, "timeout": HEARTBEAT * 0.9,
                      "spool": {"path": str(spool)}},
    }
    return agent_from_dict(data, f"<demo agent {spec.agent}>")
