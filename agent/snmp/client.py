"""A small asyncio SNMP client over pysnmp 7: get, table walk, set.

pysnmp's errors are translated here, once, into `SnmpError` with a message
an operator can read; values come back as plain Python (int, bytes, str).
Each session has its own engine so two switches with the same v3 user name
but different keys never share USM state.
"""

from __future__ import annotations

import asyncio
import ipaddress

from ..model import ProbeError
from ..schema_network import SnmpAuth

# SNMP exceptions carried as values (RFC 3416 §4.2.1), not errors.
NO_SUCH = ("NoSuchObject", "NoSuchInstance", "EndOfMibView")


class SnmpError(ProbeError):
    """The agent could not get an answer it can use; str() says why."""


class SnmpSession:
    """One SNMP peer with its credentials; open with `await open()`."""

    def __init__(self, host: str, port: int, auth: SnmpAuth, timeout: float, retries: int,
                 max_varbinds: int = 60):
        self.host, self.port, self.auth = host, port, auth
        self.timeout, self.retries = timeout, retries
        self.max_varbinds = max_varbinds
        self._engine = None
        self._target = None

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    async def open(self) -> "SnmpSession":
        """Create the engine and resolve the peer (no packets yet)."""
        from pysnmp.hlapi.v3arch import asyncio as hl
        if self._engine is None:
            from pysnmp.carrier.asyncio.dispatch import AsyncioDispatcher
            self._engine = hl.SnmpEngine()
            # pysnmp wakes every 0.1 s per engine to check timeouts: ~2 ms/s of
            # CPU each while idle. A coarser tick (a quarter of the timeout,
            # 0.1..0.5 s) is as exact as an operator needs.
            dispatcher = AsyncioDispatcher()
            dispatcher.set_timer_resolution(max(0.1, min(0.5, self.timeout / 4)))
            self._engine.register_transport_dispatcher(dispatcher)
            self._auth = _auth_data(self.auth)
            self._context = hl.ContextData(contextName=self.auth.context)
        if self._target is None:
            cls = hl.Udp6TransportTarget if _is_v6(self.host) else hl.UdpTransportTarget
            try:
                self._target = await cls.create((self.host, self.port), timeout=self.timeout,
                                                retries=self.retries)
            except Exception as e:  # noqa: BLE001 - pysnmp wraps resolver errors variously
                raise SnmpError(f"cannot resolve {self.host}: {e}") from None
        return self

    def close(self) -> None:
        """Release the engine's socket."""
        if self._engine is not None:
            try:
                self._engine.close_dispatcher()
            except RuntimeError:
                pass   # its event loop is already closed: the socket went with it
            finally:
                self._engine = None
                self._target = None

    async def get(self, oids: list[str]) -> dict[str, object]:
        """GET the given OIDs; a missing one maps to None."""
        from pyasn1.type.univ import Null
        out: dict[str, object] = {}
        for start in range(0, len(oids), self.max_varbinds):
            chunk = oids[start:start + self.max_varbinds]
            ei, es, ex, vbs = await self._send("get", [(o, Null("")) for o in chunk])
            self._check(ei, es, ex, vbs)
            for oid, value in vbs:
                out[str(oid)] = to_python(value)
        return out

    async def walk(self, columns: list[str], max_repetitions: int = 25) -> dict[str, dict[str, object]]:
        """Bulk-walk table columns together; returns column -> {index suffix: value}.

        Columns that a device does not have come back empty, not as errors.
        """
        from pyasn1.type.univ import Null
        result: dict[str, dict[str, object]] = {c: {} for c in columns}
        cursor = {c: c for c in columns}          # last OID seen per column
        pending = list(columns)
        reps = max(1, min(max_repetitions, self.max_varbinds // max(1, len(pending))))
        while pending:
            reps = max(1, min(reps, self.max_varbinds // len(pending)))
            ei, es, ex, vbs = await self._send("bulk", [(cursor[c], Null("")) for c in pending],
                                               reps)
            if not ei and str(es) == "tooBig" and reps > 1:
                reps //= 2
                continue
            self._check(ei, es, ex, vbs)
            done: set[str] = set()
            for i, (oid, value) in enumerate(vbs):
                col = pending[i % len(pending)]
                if col in done:
                    continue
                oid = str(oid)
                if type(value).__name__ in NO_SUCH or not oid.startswith(col + "."):
                    done.add(col)
                    continue
                if _oid_key(oid) <= _oid_key(cursor[col]):
                    raise SnmpError(f"{self.where} returned OIDs out of order in {col} "
                                    f"({oid} after {cursor[col]})", recoverable=True)
                result[col][oid[len(col) + 1:]] = to_python(value)
                cursor[col] = oid
            if not vbs:
                break
            pending = [c for c in pending if c not in done]
        return result

    async def set(self, oid: str, value: int) -> object:
        """SET an INTEGER object; returns the value in the agent's response."""
        from pysnmp.proto.rfc1902 import Integer
        ei, es, ex, vbs = await self._send("set", [(oid, Integer(value))])
        self._check(ei, es, ex, vbs, verb="SET")
        return to_python(vbs[0][1]) if vbs else None

    async def _send(self, kind: str, varbinds: list[tuple[str, object]], reps: int = 0):
        """One request with numeric OIDs, through pysnmp's command generators.

        hlapi's get_cmd/bulk_cmd resolve every OID through a MIB view: a
        quarter of a walk's CPU, and a MIB compiler (4 MB, 0.25 s) per engine.
        Numeric OIDs need none of it.
        """
        from pysnmp.entity.rfc3413 import cmdgen
        from pysnmp.hlapi.v3arch.asyncio.cmdgen import LCD
        from pysnmp.proto.rfc1902 import ObjectName
        await self.open()
        addr_name, _ = LCD.configure(self._engine, self._auth, self._target,
                                     self._context.contextName)
        future = asyncio.get_running_loop().create_future()

        def done(_engine, _handle, ei, es, ex, vbs, _ctx):
            if not future.cancelled():
                future.set_result((ei, es, ex, vbs))
        vbs = [(ObjectName(o), v) for o, v in varbinds]
        ctx = (self._engine, addr_name, self._context.contextEngineId, self._context.contextName)
        if kind == "bulk":
            cmdgen.BulkCommandGenerator().send_varbinds(*ctx, 0, reps, vbs, done)
        elif kind == "get":
            cmdgen.GetCommandGenerator().send_varbinds(*ctx, vbs, done)
        else:
            cmdgen.SetCommandGenerator().send_varbinds(*ctx, vbs, done)
        return await future

    def _check(self, ei, es, ex, vbs, verb: str = "request") -> None:
        if ei:
            text = str(ei)
            if "timeout" in text.lower() or "No SNMP response" in text:
                tries = self.retries + 1
                raise SnmpError(f"no answer from {self.where} within {self.timeout:g} s "
                                f"({tries} {'try' if tries == 1 else 'tries'}): "
                                f"wrong community/credentials, ACL, or the device is down")
            raise SnmpError(f"{self.where}: {_USM_ERRORS.get(text, text)}")
        if es and int(es) != 0:
            at = ""
            if ex and vbs and 0 < int(ex) <= len(vbs):
                at = f" at {vbs[int(ex) - 1][0]}"
            raise SnmpError(f"{self.where} refused the {verb}: {es.prettyPrint()}{at}")


# pysnmp's wording for USM failures, said the way an operator reads them.
_USM_ERRORS = {
    "Wrong SNMP PDU digest": "SNMPv3 authentication failed (wrong auth_key or auth_protocol)",
    "Unknown USM user": "SNMPv3 user not known to the device",
    "Decryption error": "SNMPv3 decryption failed (wrong priv_key or priv_protocol)",
    "Unsupported security level": "the device does not accept this SNMPv3 security level",
    "Unknown SNMP security name encountered": "SNMPv3 user not known to the device",
}


def to_python(value) -> object:
    """An SNMP value as int, bytes, str (OIDs, IP addresses) or None (no such)."""
    kind = type(value).__name__
    if kind in NO_SUCH or value is None:
        return None
    if kind in ("Integer", "Integer32", "Counter32", "Counter64", "Gauge32", "Unsigned32",
                "TimeTicks"):
        return int(value)
    if kind == "IpAddress":
        return str(ipaddress.IPv4Address(bytes(value.asOctets())))
    if kind == "ObjectIdentifier" or kind == "ObjectName":
        return str(value)
    if hasattr(value, "asOctets"):
        return bytes(value.asOctets())
    return value.prettyPrint()


def text(value: object) -> str | None:
    """A DisplayString as text: UTF-8, else GB18030 (Chinese devices), else Latin-1."""
    if value is None:
        return None
    if not isinstance(value, bytes):
        return str(value)
    value = value.rstrip(b"\x00")
    for codec in ("utf-8", "gb18030"):
        try:
            return value.decode(codec)
        except UnicodeDecodeError:
            pass
    return value.decode("latin-1")


def _oid_key(oid: str) -> tuple[int, ...]:
    return tuple(int(x) for x in oid.split(".") if x)


def _is_v6(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).version == 6
    except ValueError:
        return False


_AUTH = {"none": "USM_AUTH_NONE", "md5": "USM_AUTH_HMAC96_MD5", "sha": "USM_AUTH_HMAC96_SHA",
         "sha224": "USM_AUTH_HMAC128_SHA224", "sha256": "USM_AUTH_HMAC192_SHA256",
         "sha384": "USM_AUTH_HMAC256_SHA384", "sha512": "USM_AUTH_HMAC384_SHA512"}
_PRIV = {"none": "USM_PRIV_NONE", "des": "USM_PRIV_CBC56_DES", "3des": "USM_PRIV_CBC168_3DES",
         "aes": "USM_PRIV_CFB128_AES", "aes192": "USM_PRIV_CFB192_AES",
         "aes256": "USM_PRIV_CFB256_AES"}


def _auth_data(a: SnmpAuth):
    from pysnmp.hlapi.v3arch import asyncio as hl
    if a.version == "2c":
        return hl.CommunityData(a.community, mpModel=1)
    return hl.UsmUserData(
        a.user, authKey=a.auth_key if a.auth_protocol != "none" else None,
        privKey=a.priv_key if a.priv_protocol != "none" else None,
        authProtocol=getattr(hl, _AUTH[a.auth_protocol]),
        privProtocol=getattr(hl, _PRIV[a.priv_protocol]))
