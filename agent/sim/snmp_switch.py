"""A simulated switch: an SNMP v2c agent (pysnmp 7) on 127.0.0.1, for the demo and tests.

It serves what the agent's switch probe and port actions read (agent/snmp/
if_mib.py): the system group, ifNumber, the ifTable and the ifXTable of its
ports (names, aliases, speeds, admin and oper status, 32- and 64-bit
counters that grow while a link is up), over GET, GETNEXT and GETBULK.

Two communities: `public` reads, `private` also writes. A SET of
ifAdminStatus (1 up, 2 down) is accepted on ports made `writable`; the oper
status follows (up only while admin up and the cable is in). Anything else
is refused the way a real agent does it: notWritable, wrongType,
wrongValue, or noAccess for the read community. A script can also pull a
cable (`set_connected`), which changes the oper status alone.

No root, nothing installed, and no real interface is ever touched: unlike
net-snmp's snmpd (realstack.md), a SET here changes only this object.

    with SimulatedSwitch([SimPort("gi1"), SimPort("gi2", admin_up=False, writable=True)]) as sw:
        ...  # the agent polls 127.0.0.1:sw.port with community "public"
"""

from __future__ import annotations

import asyncio
import bisect
import socket
import threading
import time
from dataclasses import dataclass, field

SYSTEM = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
IF_ADMIN = 7
ETHERNET = 6                     # ifType ethernetCsmacd
MOD32, MOD64 = 2 ** 32, 2 ** 64


@dataclass
class SimPort:
    """One port of the simulated switch (ifIndex is its place in the list, from 1)."""

    name: str                        # ifName, e.g. "gi1"
    alias: str = ""                  # ifAlias: the description an admin set
    descr: str = ""                  # ifDescr (default: GigabitEthernet0/N)
    speed_mbps: int = 1000
    admin_up: bool = True
    connected: bool = True           # the cable is in and the far end is up
    writable: bool = False           # ifAdminStatus may be SET over SNMP
    traffic: float = 125_000.0       # bytes/s each way while the link is up
    octets: float = 0.0              # bytes each way so far
    last_change: int = 0             # sysUpTime ticks of the last oper change
    errors: int = 0                  # ifInErrors

    @property
    def oper_up(self) -> bool:
        """Up only while administratively up with the cable in."""
        return self.admin_up and self.connected


@dataclass(frozen=True)
class SetRecord:
    """One SET the switch accepted: when (epoch s), which port, admin up or down."""

    at: float
    port: str
    admin_up: bool


@dataclass
class _State:
    ports: list[SimPort]
    started: float                    # monotonic time sysUpTime counts from
    counted_at: float = field(default_factory=time.monotonic)


class SimulatedSwitch:
    """A v2c SNMP agent serving one switch's system group and IF-MIB, in a thread."""

    def __init__(self, ports: list[SimPort], *, name: str = "branch-sw",
                 descr: str = "branchwatch simulated switch, 1.0 (demo)",
                 location: str = "branch equipment room", host: str = "127.0.0.1",
                 port: int = 0, read_community: str = "public",
                 write_community: str = "private", uptime: float = 41 * 86400.0):
        if not ports:
            raise ValueError("a switch needs at least one port")
        self.name, self.descr, self.location = name, descr, location
        self.read_community, self.write_community = read_community, write_community
        for i, p in enumerate(ports, 1):
            p.descr = p.descr or f"GigabitEthernet0/{i}"
        # Up for a while already (`uptime` s): a switch up for minutes only
        # would read as "just restarted" (a warning) to the agent.
        self._state = _State(ports, started=time.monotonic() - uptime)
        self._lock = threading.Lock()
        self.sets: list[SetRecord] = []          # every accepted SET, oldest first
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self.host, self.port = self._sock.getsockname()[:2]
        self._oids, self._getters = self._layout()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine = None

    # --- what a script changes and reads -------------------------------------------

    def ifindex(self, port: str) -> int:
        """The ifIndex of a port by name."""
        for i, p in enumerate(self._state.ports, 1):
            if p.name == port:
                return i
        raise KeyError(port)

    def set_connected(self, port: str, connected: bool) -> None:
        """Pull or plug the cable: the oper status changes, the admin status does not."""
        with self._lock:
            self._count()
            p = self._port(port)
            was = p.oper_up
            p.connected = connected
            self._changed(p, was)

    def set_admin(self, port: str, up: bool) -> None:
        """Set a port's admin status locally (the switch's console), not over SNMP."""
        with self._lock:
            self._count()
            p = self._port(port)
            was = p.oper_up
            p.admin_up = up
            self._changed(p, was)

    def restart(self) -> None:
        """Reboot: sysUpTime starts again from 0 (ports keep their settings)."""
        with self._lock:
            self._count()
            self._state.started = time.monotonic()

    def admin_up(self, port: str) -> bool:
        """Whether the port is administratively up (ifAdminStatus 1)."""
        with self._lock:
            return self._port(port).admin_up

    def oper_up(self, port: str) -> bool:
        """Whether the port's link is up (ifOperStatus 1)."""
        with self._lock:
            return self._port(port).oper_up

    # --- life ----------------------------------------------------------------------

    def start(self) -> "SimulatedSwitch":
        """Serve from a thread of its own (its own event loop); returns once it listens."""
        ready, failed = threading.Event(), []
        self._thread = threading.Thread(target=self._run, args=(ready, failed), daemon=True,
                                        name=f"sim-switch-{self.name}")
        self._thread.start()
        if not ready.wait(10) or failed:
            raise RuntimeError(f"simulated switch {self.name} did not start: "
                               f"{failed[0] if failed else 'timed out'}")
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None
        self._sock.close()

    def __enter__(self) -> "SimulatedSwitch":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _run(self, ready: threading.Event, failed: list) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._engine = self._serve(loop)
        except Exception as e:  # noqa: BLE001 - said to the caller of start()
            failed.append(e)
            ready.set()
            loop.close()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                self._engine.close_dispatcher()
            except Exception:  # noqa: BLE001 - closing anyway
                pass
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _serve(self, loop: asyncio.AbstractEventLoop):
        from pysnmp.carrier.asyncio.dgram import udp
        from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
        from pysnmp.entity import config, engine
        from pysnmp.entity.rfc3413 import cmdrsp, context

        eng = engine.SnmpEngine()
        eng.register_transport_dispatcher(AsyncioDispatcher(loop=loop))
        config.add_transport(eng, udp.DOMAIN_NAME,
                             udp.UdpTransport(loop=loop).open_server_mode(sock=self._sock))
        ctx = context.SnmpContext(eng)
        # One community per context: the context's instrumentation knows whether
        # it may write (a real agent's read-only community gets noAccess).
        for index, community, writes in (("read", self.read_community, False),
                                         ("write", self.write_community, True)):
            config.add_v1_system(eng, index, community, contextName=index.encode())
            ctx.register_context_name(index.encode(), _Instrumentation(self, writes))
        for responder in (cmdrsp.GetCommandResponder, cmdrsp.NextCommandResponder,
                          _bulk_responder(cmdrsp), cmdrsp.SetCommandResponder):
            responder(eng, ctx)
        eng.transport_dispatcher.job_started(1)
        return eng

    # --- the MIB -------------------------------------------------------------------

    def _layout(self):
        """Every OID served, in order, and how to read each one."""
        from pysnmp.proto import rfc1902 as t
        getters = {
            SYSTEM + (1, 0): lambda: t.OctetString(self.descr),
            SYSTEM + (2, 0): lambda: t.ObjectIdentifier((1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)),
            SYSTEM + (3, 0): lambda: t.TimeTicks(self._ticks() % MOD32),
            SYSTEM + (4, 0): lambda: t.OctetString("branch IT <it@example.com>"),
            SYSTEM + (5, 0): lambda: t.OctetString(self.name),
            SYSTEM + (6, 0): lambda: t.OctetString(self.location),
            SYSTEM + (7, 0): lambda: t.Integer(2),
            IF_NUMBER: lambda: t.Integer(len(self._state.ports)),
        }
        columns = {
            IF_ENTRY + (1,): lambda i, p: t.Integer(i),
            IF_ENTRY + (2,): lambda i, p: t.OctetString(p.descr),
            IF_ENTRY + (3,): lambda i, p: t.Integer(ETHERNET),
            IF_ENTRY + (4,): lambda i, p: t.Integer(1500),
            IF_ENTRY + (5,): lambda i, p: t.Gauge32(min(p.speed_mbps * 1_000_000, MOD32 - 1)),
            IF_ENTRY + (6,): lambda i, p: t.OctetString(bytes([0x02, 0, 0, 0, 0, i])),
            IF_ENTRY + (7,): lambda i, p: t.Integer(1 if p.admin_up else 2),
            IF_ENTRY + (8,): lambda i, p: t.Integer(1 if p.oper_up else 2),
            IF_ENTRY + (9,): lambda i, p: t.TimeTicks(p.last_change % MOD32),
            IF_ENTRY + (10,): lambda i, p: t.Counter32(int(p.octets) % MOD32),
            IF_ENTRY + (11,): lambda i, p: t.Counter32(int(p.octets / 800) % MOD32),
            IF_ENTRY + (13,): lambda i, p: t.Counter32(0),
            IF_ENTRY + (14,): lambda i, p: t.Counter32(p.errors % MOD32),
            IF_ENTRY + (16,): lambda i, p: t.Counter32(int(p.octets * 1.5) % MOD32),
            IF_ENTRY + (17,): lambda i, p: t.Counter32(int(p.octets * 1.5 / 800) % MOD32),
            IF_ENTRY + (19,): lambda i, p: t.Counter32(0),
            IF_ENTRY + (20,): lambda i, p: t.Counter32(0),
            IFX_ENTRY + (1,): lambda i, p: t.OctetString(p.name),
            IFX_ENTRY + (6,): lambda i, p: t.Counter64(int(p.octets) % MOD64),
            IFX_ENTRY + (10,): lambda i, p: t.Counter64(int(p.octets * 1.5) % MOD64),
            IFX_ENTRY + (15,): lambda i, p: t.Gauge32(p.speed_mbps),
            IFX_ENTRY + (18,): lambda i, p: t.OctetString(p.alias),
        }
        for column, read in columns.items():
            for i, p in enumerate(self._state.ports, 1):
                getters[column + (i,)] = (lambda read=read, i=i, p=p: read(i, p))
        return sorted(getters), getters

    def read(self, oid: tuple[int, ...]):
        """The value at an OID, or None (no such object or instance)."""
        read = self._getters.get(oid)
        if read is None:
            return None
        with self._lock:
            self._count()
            return read()

    def next_after(self, oid: tuple[int, ...]):
        """The first (OID, value) after `oid` in lexicographic order, or None at the end."""
        i = bisect.bisect_right(self._oids, oid)
        if i == len(self._oids):
            return None
        nxt = self._oids[i]
        return nxt, self.read(nxt)

    def write_admin(self, changes: list[tuple[int, bool]]) -> None:
        """SET ifAdminStatus of ports (by ifIndex), all at once (checked beforehand)."""
        with self._lock:
            self._count()
            for index, up in changes:
                p = self._state.ports[index - 1]
                was = p.oper_up
                p.admin_up = up
                self._changed(p, was)
                self.sets.append(SetRecord(time.time(), p.name, up))

    def writable_index(self, oid: tuple[int, ...]) -> int | None:
        """The ifIndex when `oid` is ifAdminStatus of a writable port, else None."""
        if oid[:-1] != IF_ENTRY + (IF_ADMIN,):
            return None
        index = oid[-1]
        ports = self._state.ports
        return index if 1 <= index <= len(ports) and ports[index - 1].writable else None

    # --- inside the lock -----------------------------------------------------------

    def _port(self, name: str) -> SimPort:
        return self._state.ports[self.ifindex(name) - 1]

    def _ticks(self) -> int:
        return int((time.monotonic() - self._state.started) * 100)

    def _count(self) -> None:
        """Advance the traffic counters of the ports whose link is up."""
        now = time.monotonic()
        elapsed = now - self._state.counted_at
        self._state.counted_at = now
        for p in self._state.ports:
            if p.oper_up:
                p.octets += p.traffic * elapsed

    def _changed(self, p: SimPort, was_up: bool) -> None:
        if p.oper_up != was_up:
            p.last_change = self._ticks()


def _bulk_responder(cmdrsp):
    """pysnmp's GETBULK responder, answering past the end of the MIB only once."""
    from pysnmp.proto import rfc1905
    end = rfc1905.EndOfMibView.tagSet

    class BulkResponder(cmdrsp.BulkCommandResponder):
        def send_varbinds(self, engine, reference, status, index, var_binds):
            # RFC 3416 §4.2.3: past the end every repetition says the same;
            # keep the first, as real agents do (snmpbulkwalk then stops cleanly).
            k = len(var_binds)
            while k > 0 and var_binds[k - 1][1].tagSet == end:
                k -= 1
            super().send_varbinds(engine, reference, status, index,
                                  var_binds[:k + 1] if k < len(var_binds) else var_binds)
    return BulkResponder


class _Instrumentation:
    """pysnmp's MIB instrumentation interface over a SimulatedSwitch (one per community)."""

    def __init__(self, switch: SimulatedSwitch, writes: bool):
        self.switch, self.writes = switch, writes

    def read_variables(self, *var_binds, **context):
        from pysnmp.smi import exval
        out = []
        for name, _ in var_binds:
            value = self.switch.read(tuple(name))
            out.append((name, exval.noSuchInstance if value is None else value))
        return out

    def read_next_variables(self, *var_binds, **context):
        from pysnmp.proto.rfc1902 import ObjectName
        from pysnmp.smi import exval
        out = []
        for name, _ in var_binds:
            found = self.switch.next_after(tuple(name))
            out.append((name, exval.endOfMibView) if found is None
                       else (ObjectName(found[0]), found[1]))
        return out

    def write_variables(self, *var_binds, **context):
        from pysnmp.proto.rfc1902 import Integer
        from pysnmp.smi import error
        if not self.writes:
            raise error.NoAccessError(name=var_binds[0][0], idx=0)
        changes = []
        # Check every varbind before changing anything: a SET is all or nothing.
        for i, (name, value) in enumerate(var_binds):
            index = self.switch.writable_index(tuple(name))
            if index is None:
                raise error.NotWritableError(name=name, idx=i)
            if not isinstance(value, Integer):
                raise error.WrongTypeError(name=name, idx=i)
            if int(value) not in (1, 2):
                raise error.WrongValueError(name=name, idx=i)
            changes.append((index, int(value) == 1))
        self.switch.write_admin(changes)
        return [(name, Integer(int(value))) for name, value in var_binds]
