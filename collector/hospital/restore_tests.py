"""The monthly restore test (hospital §5.5: 「平時每月對全系統備份數據要進行模擬恢復
一次,以檢查數據的可用性」; domain.md §2.3): a register, and when the next is due.

A test is recorded by a person: who did it, when, what was restored, the result
(passed or failed) and a note. The register is the audit trail itself (records
of kind KIND): append-only and chained, archived as every step is (第二十九條),
so it needs no table of its own. The collector reads it once at start and keeps
it in memory.

Due: one calendar month after the last test that passed (the same day of the
next month, or its last day: 31 Jan -> 28 Feb), in the calendar's time zone.
A failed test is recorded but does not count: the backups were not shown usable.
With none passed, one is due a month after the register began (the first start
with a `hospital:` section, itself an audit record of kind STARTED).

Overdue is an alert, not only a number: the collector holds a fault of check
OVERDUE_CHECK (collector/hospital/desk.py) until a passed test is recorded, so an
incident opens and the notify routes tell IT, as for any fault.
"""

from __future__ import annotations

import calendar as _calendar
from dataclasses import asdict, dataclass
from datetime import datetime, timezone, tzinfo

KIND = "hospital.restore_test"
STARTED = "hospital.restore_register_started"
OVERDUE_CHECK = "hospital/restore-test"
RESULTS = ("passed", "failed")
MAX_TEXT = 500


@dataclass(frozen=True)
class RestoreTest:
    """One restore test as recorded."""

    who: str
    at: datetime            # when the test was done (aware)
    restored: str           # what was restored (systems, backup sets)
    result: str             # passed | failed
    note: str = ""
    recorded_at: datetime | None = None

    def data(self) -> dict:
        """As the audit record's data."""
        d = asdict(self)
        d["at"] = self.at.isoformat()
        d["recorded_at"] = self.recorded_at.isoformat() if self.recorded_at else None
        return d

    @classmethod
    def from_data(cls, d: dict) -> RestoreTest:
        """From an audit record's data."""
        rec = d.get("recorded_at")
        return cls(d["who"], datetime.fromisoformat(d["at"]), d["restored"], d["result"],
                   d.get("note", ""), datetime.fromisoformat(rec) if rec else None)


def problems(at: datetime | None, restored: str, result: str, note: str,
             now: datetime) -> list[tuple[str, str]]:
    """(field, what was wrong) for a test that cannot be recorded (→ 400)."""
    out = []
    if at is None or at.utcoffset() is None:
        out.append(("at", "expected an ISO 8601 time with its UTC offset"))
    elif at > now:
        out.append(("at", f"{at.isoformat()} is in the future; record a test once it was done"))
    if not restored.strip():
        out.append(("restored", "missing: say what was restored"))
    if result not in RESULTS:
        out.append(("result", f"expected one of {', '.join(RESULTS)}, got {result!r}"))
    for name, text in (("restored", restored), ("note", note)):
        if len(text) > MAX_TEXT:
            out.append((name, f"{len(text)} characters is over the limit of {MAX_TEXT}"))
    return out


def add_month(t: datetime, zone: tzinfo) -> datetime:
    """The same local day and time one month later (the month's last day if shorter)."""
    local = t.astimezone(zone)
    year, month = (local.year + 1, 1) if local.month == 12 else (local.year, local.month + 1)
    day = min(local.day, _calendar.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day).astimezone(timezone.utc)


@dataclass(frozen=True)
class Status:
    """Where the register stands at `now`."""

    due_at: datetime
    overdue: bool
    last: RestoreTest | None      # the newest recorded (passed or not)
    last_passed: RestoreTest | None

    def as_dict(self) -> dict:
        """For the API."""
        return {"due_at": self.due_at.isoformat(),
                "overdue": self.overdue,
                "last": self.last.data() if self.last else None,
                "last_passed": self.last_passed.data() if self.last_passed else None}

    def line(self) -> str:
        """One line a person reads."""
        state = "OVERDUE since" if self.overdue else "next due"
        last = (f"last passed {self.last_passed.at.isoformat()} ({self.last_passed.restored})"
                if self.last_passed else "no passed restore test on record")
        return f"{last}; {state} {self.due_at.isoformat()} (hospital §5.5)"


def status(tests: list[RestoreTest], began: datetime, now: datetime, zone: tzinfo) -> Status:
    """When the next test is due and whether it is overdue (a month passed without one
    since the last passed test, or since the register `began`)."""
    done = sorted((t for t in tests if t.at <= now), key=lambda t: t.at)
    passed = [t for t in done if t.result == "passed"]
    last_passed = passed[-1] if passed else None
    due = add_month(last_passed.at if last_passed else began, zone)
    return Status(due, now > due, done[-1] if done else None, last_passed)


class RestoreRegister:
    """The register on a store: read once, kept in memory, appended on the writer."""

    def __init__(self, store, zone: tzinfo, now: float):
        self.store, self.zone = store, zone
        self.reload()
        started = _records(store, STARTED)
        if started:
            self.began = datetime.fromisoformat(started[0]["data"]["at"])
        else:
            self.began = datetime.fromtimestamp(now, timezone.utc)
            store.record(now, STARTED, "collector", {"at": self.began.isoformat()})

    def reload(self) -> None:
        """Read the tests from the audit trail again (after a rolled-back transaction)."""
        self.tests = [RestoreTest.from_data(r["data"]) for r in _records(self.store, KIND)]

    def record(self, test: RestoreTest, at: float) -> int:
        """Append one test to the audit trail (its own transaction); the record's seq."""
        seq = self.store.record(at, KIND, test.who, test.data())
        self.tests.append(test)
        return seq

    def status(self, now: datetime) -> Status:
        """The register's status at `now`."""
        return status(self.tests, self.began, now, self.zone)


def _records(store, kind: str) -> list[dict]:
    """The store's audit records of one kind (a store without a readable trail: none)."""
    audit = getattr(store, "audit", None)
    records = getattr(audit, "records", None)
    return records(kind) if records is not None else []
