"""Enrolment of agents at the collector, kept in its database: a person with
the leadership role enrols an agent (its id, branch, region) and gets a
one-time code; the agent exchanges the code for its token at first start, so
no secret is pasted by hand; an enrolment can be revoked. Codes and tokens are
kept only as sha256 (as the config keeps tokens); the code dies when used or
after `CODE_TTL`."""

from __future__ import annotations

import hashlib
import hmac
import secrets

import msgspec

from ..config import AgentEntry
from ..incidents import Refused

CODE_TTL = 7 * 24 * 3600.0      # a week: long enough to ship a branch machine

SCHEMA = [
    """CREATE TABLE enrolments (
        agent TEXT PRIMARY KEY, branch TEXT NOT NULL, region TEXT NOT NULL,
        code_sha256 TEXT, code_expires_at REAL, token_sha256 TEXT UNIQUE,
        created_by TEXT NOT NULL, created_at REAL NOT NULL, enrolled_at REAL,
        revoked_by TEXT, revoked_at REAL, revoked_why TEXT)""",
]


class Enrolment(msgspec.Struct, kw_only=True):
    """One agent's enrolment (no secrets: hashes only, and never handed out)."""

    agent: str
    branch: str
    region: str
    created_by: str
    created_at: float
    code_expires_at: float | None = None
    enrolled_at: float | None = None
    revoked_by: str | None = None
    revoked_at: float | None = None
    revoked_why: str | None = None
    token_sha256: str | None = None

    @property
    def state(self) -> str:
        """waiting (code not yet used), enrolled, revoked."""
        if self.revoked_at is not None:
            return "revoked"
        return "enrolled" if self.enrolled_at is not None else "waiting"


def sha256(text: str) -> str:
    """The hex digest kept for a code or token."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class BadCode(Exception):
    """A wrong, used, expired or revoked enrolment code (→ 403)."""


_COLUMNS = ("agent, branch, region, created_by, created_at, code_expires_at, enrolled_at, "
            "revoked_by, revoked_at, revoked_why, token_sha256")


class EnrolmentRows:
    """Store mixin: the enrolments table (the store gives `_transaction`, `_conn`,
    `audit`); every change is an audit record in the same transaction."""

    def enrol(self, agent: str, branch: str, region: str, who: str, at: float,
              known: set[str]) -> str:
        """A new enrolment; returns its one-time code. Refused if the agent is
        already enrolled here or in the config (`known`)."""
        if agent in known:
            raise Refused(f"agent {agent!r} is enrolled in the collector's config; "
                          "remove it there first")
        code = secrets.token_urlsafe(18)
        with self._transaction() as c:
            row = c.execute("SELECT revoked_at FROM enrolments WHERE agent = ?", (agent,)).fetchone()
            if row is not None and row[0] is None:
                raise Refused(f"agent {agent!r} is already enrolled; revoke it first")
            c.execute("INSERT INTO enrolments (agent, branch, region, code_sha256, code_expires_at, "
                      "created_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (agent) DO "
                      "UPDATE SET branch = excluded.branch, region = excluded.region, "
                      "code_sha256 = excluded.code_sha256, code_expires_at = excluded.code_expires_at, "
                      "token_sha256 = NULL, created_by = excluded.created_by, "
                      "created_at = excluded.created_at, enrolled_at = NULL, revoked_by = NULL, "
                      "revoked_at = NULL, revoked_why = NULL",
                      (agent, branch, region, sha256(code), at + CODE_TTL, who, at))
            self.audit.append(at, "agent.enrolment", who, {"agent": agent, "branch": branch,
                                                            "region": region,
                                                            "code_expires_at": at + CODE_TTL})
        return code

    def exchange_code(self, agent: str, code: str, at: float) -> tuple[Enrolment, str]:
        """The agent's token for its one-time code (the code is spent); Refused
        (403) for a wrong, used or expired code."""
        token = secrets.token_urlsafe(32)
        with self._transaction() as c:
            row = c.execute("SELECT code_sha256, code_expires_at, revoked_at FROM enrolments "
                            "WHERE agent = ?", (agent,)).fetchone()
            good = (row is not None and row[0] is not None and row[2] is None
                    and hmac.compare_digest(row[0], sha256(code)) and at <= row[1])
            if not good:
                raise BadCode("enrolment code not valid for this agent (wrong, used, expired "
                              "or revoked): ask for a new one")
            c.execute("UPDATE enrolments SET code_sha256 = NULL, code_expires_at = NULL, "
                      "token_sha256 = ?, enrolled_at = ? WHERE agent = ?", (sha256(token), at, agent))
            self.audit.append(at, "agent.enrolled", agent, {"agent": agent})
        return self.enrolment(agent), token

    def revoke(self, agent: str, who: str, why: str, at: float) -> Enrolment:
        """Revoke an enrolment: its token stops working at once."""
        with self._transaction() as c:
            done = c.execute("UPDATE enrolments SET revoked_by = ?, revoked_at = ?, "
                             "revoked_why = ?, code_sha256 = NULL WHERE agent = ? AND "
                             "revoked_at IS NULL", (who, at, why, agent)).rowcount
            if not done:
                raise Refused(f"agent {agent!r} has no enrolment to revoke")
            self.audit.append(at, "agent.revoked", who, {"agent": agent, "why": why})
        return self.enrolment(agent)

    def enrolment(self, agent: str) -> Enrolment | None:
        """One enrolment, or None."""
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM enrolments WHERE agent = ?",
                                 (agent,)).fetchone()
        return None if row is None else Enrolment(**dict(zip(_COLUMNS.split(", "), row)))

    def enrolments(self) -> list[Enrolment]:
        """Every enrolment, by agent id."""
        return [Enrolment(**dict(zip(_COLUMNS.split(", "), r))) for r in self._conn.execute(
            f"SELECT {_COLUMNS} FROM enrolments ORDER BY agent")]


def active_entries(enrolments: list[Enrolment]) -> list[AgentEntry]:
    """The enrolled agents as config entries (for tokens, grading and routing)."""
    return [AgentEntry(id=e.agent, branch=e.branch, region=e.region, token_sha256=e.token_sha256)
            for e in enrolments if e.state == "enrolled"]
