"""Poll one UPS through its SNMP network card (UPS-MIB, RFC 1628).

The I/O half of the SNMP UPS path: one GET for the scalars, one bulk walk
for the line tables and the alarm table, then `ups_mib.data_from_ups_mib`
and the same `ups_reading` as NUT and the serial line, so the collector
cannot tell the paths apart (only `source` says "snmp").
"""

from __future__ import annotations

import asyncio

from ..config import Ups
from ..model import Reading
from ..ups.status import ups_failed_reading, ups_reading
from .client import SnmpError, SnmpSession
from .ups_mib import MIB, UpsMib, column_oids, data_from_ups_mib, has_ups_mib, scalar_oids

SOURCE = "snmp"


class SnmpUpsProbe:
    """One UPS card; keeps its SNMP session between polls."""

    def __init__(self, ups: Ups, mib: UpsMib = MIB):
        assert ups.snmp is not None
        self.ups = ups
        self.target = ups.snmp
        self.mib = mib
        self.name = f"ups/{ups.name}"
        self.interval = ups.interval
        t = ups.snmp
        # A GET and a walk (one or two bulk requests), each up to timeout x tries,
        # plus pysnmp's timer granularity (~0.5 s) and a busy event loop: this is
        # only the runner's safety net, the SNMP timeouts are what report.
        self.timeout = (t.timeout * (t.retries + 1) + 1) * 3 + 2
        self._scalars = scalar_oids(mib)
        self._columns = column_oids(mib)
        self._session: SnmpSession | None = None
        self._tables_error: str | None = None

    @property
    def where(self) -> str:
        return f"{self.target.host}:{self.target.port}"

    async def aread(self) -> Reading:
        """One poll: UPS-MIB values mapped onto checks and samples."""
        try:
            values = await self._fetch()
        except SnmpError as e:
            self.close()
            return self._failed(str(e))
        except asyncio.CancelledError:
            self.close()   # the runner gave up on this read: start clean next time
            raise
        if not has_ups_mib(values, self.mib):
            return self._failed(f"{self.where} answers SNMP but has no UPS-MIB "
                                f"({self.mib.ups_mib}): not a UPS card, or a view that hides it")
        data = data_from_ups_mib(values, self.mib)
        if self._tables_error:
            data.extra.setdefault("unreadable", {})["tables"] = self._tables_error
        reading = ups_reading(self.name, self.ups.name, SOURCE, data, self.ups.thresholds)
        reading.detail["snmp"] = self.where
        return reading

    async def _fetch(self) -> dict[str, object]:
        t = self.target
        if self._session is None:
            self._session = SnmpSession(t.host, t.port, t.snmp, t.timeout, t.retries)
        values = await self._session.get(self._scalars)
        self._tables_error = None
        if has_ups_mib(values, self.mib):   # walk the tables only on a UPS
            try:
                tables = await self._session.walk(self._columns)
            except SnmpError as e:
                # The card answered the GET: its status stands; the line
                # values it walked badly (out of order, refused) are noted.
                self._tables_error = str(e)
                return values
            for column, rows in tables.items():
                values.update({f"{column}.{index}": v for index, v in rows.items()})
        return values

    def _failed(self, reason: str) -> Reading:
        reading = ups_failed_reading(self.name, self.ups.name, SOURCE, reason)
        reading.detail["snmp"] = self.where
        return reading

    def close(self) -> None:
        """Drop the session (the next poll opens a new one)."""
        if self._session is not None:
            self._session.close()
            self._session = None
