"""Silences set by people (the console, the API), kept in the collector's
database beside those of its config: no fault alerts for a scope (branches,
regions) until a time (domain.md §6: heightened watch and quiet times are
data). Each is audited; an expired one is kept. Alertmanager, where incidents
are forwarded, gets the same silence (its matchers from the scope)."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

import msgspec

from .settings import Silence

SCHEMA = [
    """CREATE TABLE silences (
        id TEXT PRIMARY KEY, body TEXT NOT NULL, created_by TEXT NOT NULL,
        created_at REAL NOT NULL, expired_by TEXT, expired_at REAL, am_ids TEXT)""",
]


class StoredSilence(msgspec.Struct, kw_only=True):
    """One silence as kept: its scope and time, who set it, and whether it ended early."""

    id: str
    silence: Silence
    created_by: str
    created_at: float
    expired_by: str | None = None
    expired_at: float | None = None
    am_ids: list[str] = []

    def active(self, now: datetime) -> bool:
        """In force at `now`."""
        return self.expired_at is None and self.silence.starts <= now < self.silence.ends


def am_matchers(s: Silence) -> list[dict]:
    """Alertmanager matchers for a scope: branch and region patterns as
    anchored regexes (RE2), `alertname` for everywhere."""
    out = []
    for label, patterns in (("branch", s.branches), ("region", s.regions)):
        if patterns:
            out.append({"name": label, "value": "|".join(_regex(p) for p in patterns),
                        "isRegex": True, "isEqual": True})
    return out or [{"name": "alertname", "value": ".+", "isRegex": True, "isEqual": True}]


def _regex(pattern: str) -> str:
    """A shell pattern (*, ?) as a regex Alertmanager anchors itself."""
    return "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)


class SilenceRows:
    """Store mixin: the silences table (the store gives `_transaction`, `_conn`, `audit`)."""

    def add_silence(self, silence: Silence, who: str, at: float) -> StoredSilence:
        """Keep a new silence (audited); its id."""
        sid = "SIL-" + secrets.token_hex(4)
        row = StoredSilence(id=sid, silence=silence, created_by=who, created_at=at)
        with self._transaction() as c:
            c.execute("INSERT INTO silences (id, body, created_by, created_at) VALUES (?, ?, ?, ?)",
                      (sid, msgspec.json.encode(silence).decode(), who, at))
            self.audit.append(at, "silence.set", who, {"id": sid, **msgspec.to_builtins(silence)})
        return row

    def expire_silence(self, sid: str, who: str, why: str, at: float) -> StoredSilence | None:
        """End a silence now (audited); None if there is no such silence in force."""
        with self._transaction() as c:
            done = c.execute("UPDATE silences SET expired_by = ?, expired_at = ? WHERE id = ? "
                             "AND expired_at IS NULL", (who, at, sid)).rowcount
            if not done:
                return None
            self.audit.append(at, "silence.expired", who, {"id": sid, "why": why})
        return self.silence(sid)

    def note_am_silences(self, sid: str, am_ids: list[str]) -> None:
        """Remember the Alertmanager silences made for this one (to expire them too)."""
        with self._transaction() as c:
            c.execute("UPDATE silences SET am_ids = ? WHERE id = ?", (",".join(am_ids), sid))

    def silence(self, sid: str) -> StoredSilence | None:
        """One silence, or None."""
        rows = self._silences("WHERE id = ?", (sid,))
        return rows[0] if rows else None

    def silences(self) -> list[StoredSilence]:
        """Every silence set by people, newest first."""
        return self._silences()

    def _silences(self, where: str = "", args: tuple = ()) -> list[StoredSilence]:
        out = []
        for sid, body, by, at, ex_by, ex_at, am in self._conn.execute(
                f"SELECT id, body, created_by, created_at, expired_by, expired_at, am_ids "
                f"FROM silences {where} ORDER BY created_at DESC, id", args):
            out.append(StoredSilence(id=sid, silence=msgspec.json.decode(body, type=Silence),
                                     created_by=by, created_at=at, expired_by=ex_by,
                                     expired_at=ex_at, am_ids=am.split(",") if am else []))
        return out


def in_force(rows: list[StoredSilence], now: float) -> tuple[Silence, ...]:
    """The silences a notifier should honour now (not expired by a person)."""
    when = datetime.fromtimestamp(now, timezone.utc)
    return tuple(r.silence for r in rows if r.expired_at is None and r.silence.ends > when)
