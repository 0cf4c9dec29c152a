"""Config schema for the network side: switches, SNMP UPS cards, traps, lines.

Split from config.py to keep each file readable; config.py owns loading
and error wording, this module only the structs and their semantic rules.
"""

from __future__ import annotations

import typing
from typing import Literal

import msgspec

Ratio = typing.Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Seconds = typing.Annotated[float, msgspec.Meta(gt=0.0, le=31_536_000.0)]
Port = typing.Annotated[int, msgspec.Meta(ge=1, le=65535)]
Name = typing.Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[A-Za-z0-9_.:/-]+$")]
Rate = typing.Annotated[float, msgspec.Meta(ge=0.0)]
Text = typing.Annotated[str, msgspec.Meta(min_length=1)]

Role = Literal["uplink-primary", "uplink-backup", "access", "trunk"]
UPLINK_ROLES = ("uplink-primary", "uplink-backup")


class _S(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    pass


class SnmpAuth(_S):
    """SNMP credentials: v2c community, or a v3 USM user."""

    version: Literal["2c", "3"] = "2c"
    community: Text | None = None
    user: Text | None = None
    auth_protocol: Literal["none", "md5", "sha", "sha224", "sha256", "sha384", "sha512"] = "none"
    auth_key: str | None = None
    priv_protocol: Literal["none", "des", "3des", "aes", "aes192", "aes256"] = "none"
    priv_key: str | None = None
    context: str = ""
    # Or the secrets in files (stripped; systemd credentials: agent/credentials.py).
    community_file: Text | None = None
    auth_key_file: Text | None = None
    priv_key_file: Text | None = None


class LinkThresholds(_S):
    """Per-second rates above which a link is degraded (warning)."""

    error_rate_warning: Rate = 1.0
    discard_rate_warning: Rate = 10.0


class InterfaceSpec(_S):
    """One watched port, chosen by exactly one of name/descr/alias/index."""

    name: Text | None = None      # ifName (survives a reboot; preferred)
    descr: Text | None = None     # ifDescr
    alias: Text | None = None     # ifAlias (the port description set by the admin)
    index: typing.Annotated[int, msgspec.Meta(ge=1)] | None = None  # ifIndex (may change on reboot)
    id: Name | None = None        # how checks, lines and actions refer to it
    role: Role = "access"
    error_rate_warning: Rate | None = None
    discard_rate_warning: Rate | None = None

    @property
    def key(self) -> str:
        """The id used in check ids: `id`, else the matched value."""
        if self.id:
            return self.id
        value = self.name or self.descr or self.alias or f"ifindex-{self.index}"
        return "".join(c if c.isalnum() or c in "_.:/-" else "_" for c in value)


class SwitchActions(_S):
    """Which ports the agent may bring up or down by SNMP SET."""

    ports: list[Name]
    write: SnmpAuth | None = None   # write credentials; default: the polling ones


class Switch(_S):
    name: Name
    host: Text
    snmp: SnmpAuth
    port: Port = 161
    timeout: Seconds = 2.0
    retries: typing.Annotated[int, msgspec.Meta(ge=0, le=10)] = 1
    interval: Seconds = 10.0
    local_interface: Text | None = None   # this machine's NIC behind the switch (diagnosis)
    trap_community: Text | None = None    # default: snmp.community
    thresholds: LinkThresholds = msgspec.field(default_factory=LinkThresholds)
    interfaces: list[InterfaceSpec] = []
    actions: SwitchActions | None = None


class SnmpUpsTarget(_S):
    """A UPS network card read through UPS-MIB (RFC 1628)."""

    host: Text
    snmp: SnmpAuth
    port: Port = 161
    timeout: Seconds = 2.0
    retries: typing.Annotated[int, msgspec.Meta(ge=0, le=10)] = 1


class TrapListen(_S):
    address: Text = "0.0.0.0"
    port: Port = 162


class Uplink(_S):
    switch: Name
    interface: Name   # an interface id of that switch


class LineTarget(_S):
    name: Name
    host: Text
    port: Port = 443   # for the TCP method: a refused connection still proves reachability


class Line(_S):
    """A line (primary or backup) and the far-side targets reached over it."""

    name: Name
    targets: typing.Annotated[list[LineTarget], msgspec.Meta(min_length=1)]
    uplink: Uplink | None = None
    source: Text | None = None   # local address to send from (selects the line's path)
    method: Literal["auto", "icmp", "tcp"] = "auto"
    interval: Seconds = 5.0
    count: typing.Annotated[int, msgspec.Meta(ge=1, le=100)] = 3
    timeout: Seconds = 1.0
    latency_warning: Seconds = 0.2
    loss_warning: Ratio = 0.2
    loss_critical: Ratio = 1.0


def auth_problems(where: str, a: SnmpAuth):
    """A v2c config needs a community; v3 needs a user and consistent keys (each
    secret inline or in its `_file`, not both)."""
    for key in ("community", "auth_key", "priv_key"):
        if getattr(a, key) is not None and getattr(a, key + "_file") is not None:
            yield where, f"expected at most one of '{key}' or '{key}_file'"
    if a.version == "2c":
        if a.community is None and a.community_file is None:
            yield f"{where}.community", "missing, and it is required for version 2c"
        return
    if a.user is None:
        yield f"{where}.user", "missing, and it is required for version 3"
    if a.auth_protocol != "none" and a.auth_key_file is None and (
            a.auth_key is None or len(a.auth_key) < 8):
        yield f"{where}.auth_key", "expected at least 8 characters when auth_protocol is set"
    if a.priv_protocol != "none":
        if a.auth_protocol == "none":
            yield f"{where}.priv_protocol", "privacy needs an auth_protocol too"
        if a.priv_key_file is None and (a.priv_key is None or len(a.priv_key) < 8):
            yield f"{where}.priv_key", "expected at least 8 characters when priv_protocol is set"


def network_problems(switches: list[Switch], lines: list[Line], ups_snmp: list[tuple[str, SnmpUpsTarget]]):
    """Rules a type cannot say for the network sections."""
    names: set[str] = set()
    ports_of: dict[str, set[str]] = {}
    for i, s in enumerate(switches):
        where = f"switches[{i}]"
        if s.name in names:
            yield f"{where}.name", f"duplicate switch name {s.name!r}"
        names.add(s.name)
        yield from auth_problems(f"{where}.snmp", s.snmp)
        keys: set[str] = set()
        for j, f in enumerate(s.interfaces):
            given = [k for k in ("name", "descr", "alias", "index") if getattr(f, k) is not None]
            if len(given) != 1:
                yield f"{where}.interfaces[{j}]", \
                    "expected exactly one of 'name', 'descr', 'alias' or 'index'"
            if f.key in keys:
                yield f"{where}.interfaces[{j}]", f"duplicate interface id {f.key!r} (set 'id')"
            keys.add(f.key)
        ports_of[s.name] = keys
        if s.actions is not None:
            for j, p in enumerate(s.actions.ports):
                if p not in keys:
                    yield f"{where}.actions.ports[{j}]", \
                        f"expected the id of an interface of this switch, got {p!r}"
            if s.actions.write is not None:
                yield from auth_problems(f"{where}.actions.write", s.actions.write)
    for name, target in ups_snmp:
        yield from auth_problems(f"{name}.snmp", target.snmp)
    seen: set[str] = set()
    for i, line in enumerate(lines):
        where = f"lines[{i}]"
        if line.name in seen:
            yield f"{where}.name", f"duplicate line name {line.name!r}"
        seen.add(line.name)
        if line.uplink is not None:
            u = line.uplink
            if u.switch not in ports_of:
                yield f"{where}.uplink.switch", f"expected the name of a configured switch, got {u.switch!r}"
            elif u.interface not in ports_of[u.switch]:
                yield f"{where}.uplink.interface", \
                    f"expected an interface id of switch {u.switch!r}, got {u.interface!r}"
        targets: set[str] = set()
        for j, t in enumerate(line.targets):
            if t.name in targets:
                yield f"{where}.targets[{j}].name", f"duplicate target name {t.name!r}"
            targets.add(t.name)
        if line.loss_warning > line.loss_critical:
            yield f"{where}.loss_warning", "expected at most loss_critical"
        if line.timeout * line.count >= line.interval * 2:
            yield f"{where}.timeout", "expected timeout x count well under twice the interval"
