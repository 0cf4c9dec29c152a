"""Acting on a switch: bring a named port up or down by SNMP SET, then read back.

The runbooks (domain.md §4.1: swap to the backup line, swap back when the
primary is healthy) call `set_port_admin`. Nothing is sent unless the
config lists the port under that switch's `actions.ports`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from ..config import Config
from .client import SnmpError, SnmpSession

IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
ADMIN = {1: "up", 2: "down", 3: "testing"}


@dataclass
class ActionResult:
    """What happened: `ok` only if the read-back shows the wanted state."""

    ok: bool
    outcome: str          # done | refused | failed | not_allowed | unconfirmed
    switch: str
    port: str
    wanted: str
    message: str
    ifindex: int | None = None
    before: str | None = None
    after: str | None = None
    oper_after: str | None = None
    at: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


async def set_port_admin(config: Config, switch: str, port: str, up: bool,
                         clock=time.time) -> ActionResult:
    """Set ifAdminStatus of a configured port and confirm it by reading it back."""
    from .interfaces import resolve_ifindex
    wanted = "up" if up else "down"

    def result(ok, outcome, message, **kw) -> ActionResult:
        return ActionResult(ok, outcome, switch, port, wanted, message, at=clock(), **kw)

    spec = next((s for s in config.switches if s.name == switch), None)
    if spec is None:
        return result(False, "not_allowed", f"no switch named {switch!r} in the config")
    iface = next((i for i in spec.interfaces if i.key == port), None)
    if iface is None:
        return result(False, "not_allowed", f"switch {switch!r} has no interface with id {port!r}")
    if spec.actions is None or port not in spec.actions.ports:
        return result(False, "not_allowed",
                      f"actions are not enabled for {switch}/{port} "
                      f"(list it under switches[].actions.ports)")
    reader = SnmpSession(spec.host, spec.port, spec.snmp, spec.timeout, spec.retries)
    writer = SnmpSession(spec.host, spec.port, spec.actions.write or spec.snmp,
                         spec.timeout, spec.retries)
    try:
        try:
            index = await resolve_ifindex(reader, iface)
        except SnmpError as e:
            return result(False, "failed", f"cannot find the port: {e}")
        if index is None:
            return result(False, "failed", f"the switch has no port matching {port!r}")
        oid_admin, oid_oper = f"{IF_ADMIN_STATUS}.{index}", f"{IF_OPER_STATUS}.{index}"
        try:
            before = (await reader.get([oid_admin])).get(oid_admin)
        except SnmpError as e:
            return result(False, "failed", f"cannot read the port before the SET: {e}",
                          ifindex=index)
        try:
            echoed = await writer.set(oid_admin, 1 if up else 2)
        except SnmpError as e:
            refused = "refused" in str(e)
            return result(False, "refused" if refused else "failed", f"SET failed: {e}",
                          ifindex=index, before=ADMIN.get(before))
        if echoed is None:
            # realstack.md: snmpsim answers a non-writable OID with errorStatus 0
            # and a noSuchInstance value; real agents say notWritable.
            return result(False, "refused", "the switch refused the SET (object not writable)",
                          ifindex=index, before=ADMIN.get(before))
        try:
            after = await reader.get([oid_admin, oid_oper])
        except SnmpError as e:
            return result(False, "unconfirmed", f"SET sent but the read-back failed: {e}",
                          ifindex=index, before=ADMIN.get(before))
        now_admin, now_oper = after.get(oid_admin), after.get(oid_oper)
        kw = dict(ifindex=index, before=ADMIN.get(before), after=ADMIN.get(now_admin),
                  oper_after={1: "up", 2: "down"}.get(now_oper, str(now_oper)))
        if now_admin != (1 if up else 2):
            return result(False, "unconfirmed",
                          f"SET accepted but the port reads {ADMIN.get(now_admin, now_admin)}", **kw)
        return result(True, "done", f"{switch}/{port} (ifIndex {index}) is administratively {wanted}",
                      **kw)
    finally:
        reader.close()
        writer.close()
