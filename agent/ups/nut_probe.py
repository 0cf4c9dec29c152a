"""Poll one UPS through upsd."""

from __future__ import annotations

from ..config import Ups
from ..model import Reading
from .nut_client import NutError, NutSession, connect
from .ranges import RANGES, parse_number
from .status import NUMERIC, UpsData, ups_failed_reading, ups_reading


def data_from_nut(variables: dict[str, str]) -> UpsData:
    """Map upsd's variables onto UpsData; odd values are noted, not fatal.

    A value that is no number, or outside its range in ranges.yaml, leaves
    that field empty with the reason in `problems`; the rest stands.
    """
    d = UpsData(status=variables.get("ups.status"))
    for attr, (_metric, var, scale) in NUMERIC.items():
        raw = variables.get(var)
        if raw is None:
            continue
        value, why = parse_number(var, raw, RANGES.get(var))
        if why is None:
            setattr(d, attr, value * scale)
        else:
            d.problems[attr] = why
    d.mfr = variables.get("ups.mfr") or variables.get("device.mfr", "")
    d.model = variables.get("ups.model") or variables.get("device.model", "")
    d.alarm = variables.get("ups.alarm", "")
    return d


class NutUpsProbe:
    """One UPS on one upsd; keeps its connection between polls."""

    def __init__(self, ups: Ups, backend: str = "auto"):
        assert ups.nut is not None
        self.ups = ups
        self.target = ups.nut
        self.backend = backend
        self.name = f"ups/{ups.name}"
        self.interval = ups.interval
        self.timeout = ups.nut.timeout * 2 + 1
        self._session: NutSession | None = None

    def read(self) -> Reading:
        """One poll: LIST VAR, mapped onto checks and samples."""
        t = self.target
        try:
            if self._session is None:
                self._session = connect(self.backend, t.host, t.port, t.user, t.password, t.timeout)
            variables = self._session.list_vars(t.ups)
        except NutError as e:
            self.close()
            return ups_failed_reading(self.name, self.ups.name, "nut", str(e))
        reading = ups_reading(self.name, self.ups.name, "nut", data_from_nut(variables),
                              self.ups.thresholds)
        reading.detail["upsd"] = f"{t.host}:{t.port}"
        return reading

    def close(self) -> None:
        """Drop the connection (the next poll reconnects)."""
        if self._session is not None:
            self._session.close()
            self._session = None
