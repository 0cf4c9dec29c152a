"""Failed console logins slow the guesser down, never lock the person out.

Two kinds of key are counted, each in one bounded table:

- the source address: after FREE_FAILURES failures from one address, that
  address must wait a delay that doubles with each further failure (up to
  MAX_SOURCE_DELAY) before it may try again; a try before then is refused
  (429 with Retry-After). Only its own failures slow a source down.
- the name (normalised): after FREE_FAILURES failures for one name, from
  any source, every WRONG password for that name is answered only after a
  delay that doubles too, but stays short (MAX_NAME_DELAY): never a
  refusal, and a correct password is answered at once: it still logs in
  from a new source, however many wrong ones someone else sent (no
  lock-out of `boss` by a stranger). A guesser waiting for each answer is
  slowed to one try per delay.

A key is forgotten FORGET seconds after its last failure; the table keeps
at most `capacity` keys (the least recently failed go first), so a spray of
made-up names cannot grow it without bound.

A third key counts every failure from anywhere: past SPRAY_FAILURES it
marks a spray (ever-new names from ever-new addresses); every wrong
password is then answered after a delay growing to MAX_SPRAY_DELAY (a
correct one still at once), and the audit trail gets one record for the
spray, not one per guess.

The audit trail gets each failed login while no key is throttled, then one
record when a key's burst starts ("console.login_throttled") and one when
it ends ("console.login_throttle_ended", with how many tries it held):
not one record per guess. `take_audit` hands them to the caller, who writes
them to the store.
"""

from __future__ import annotations

import time
import unicodedata
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 3
BASE_DELAY = 1.0
MAX_SOURCE_DELAY = 300.0
MAX_NAME_DELAY = 4.0
MAX_SPRAY_DELAY = 2.0
SPRAY_FAILURES = 20
FORGET = 900.0
CAPACITY = 10_000
NAME_CHARS = 64          # longer "names" are cut before they are counted or recorded


SPRAY = ("spray", "*")      # the key counting every failure


def normalise(name: str) -> str:
    """The name as looked up: NFKC (full-width letters, odd spaces), stripped,
    case-folded; "Boss ", "boss\\t" and "ＢＯＳＳ" are all "boss"."""
    return unicodedata.normalize("NFKC", name).strip().casefold()[:NAME_CHARS]


@dataclass
class _Key:
    failures: int = 0
    last: float = 0.0
    burst_started: float | None = None     # when this key's throttling began
    tries: int = 0                         # failures since it began


class Throttle:
    """Counts failed logins by source and by name; says how long to wait."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, capacity: int = CAPACITY):
        self.clock, self.capacity = clock, capacity
        self._keys: OrderedDict[tuple[str, str], _Key] = OrderedDict()
        self._audit: list[tuple[str, str, dict]] = []

    def __len__(self) -> int:
        return len(self._keys)

    def source_wait(self, source: str) -> float:
        """Seconds before `source` may try again (0: now)."""
        k = self._get(("source", source))
        if k is None or k.failures < FREE_FAILURES:
            return 0.0
        return max(0.0, k.last + _delay(k.failures, MAX_SOURCE_DELAY) - self.clock())

    def name_delay(self, name: str) -> float:
        """Seconds to hold the answer to a wrong password for `name` (never a refusal)."""
        k = self._get(("name", name))
        if k is None or k.failures < FREE_FAILURES:
            return 0.0
        return _delay(k.failures, MAX_NAME_DELAY)

    def spray_delay(self) -> float:
        """Seconds to hold any refusal while failures pour in from everywhere."""
        k = self._get(SPRAY)
        if k is None or k.failures < SPRAY_FAILURES:
            return 0.0
        return _delay(k.failures - SPRAY_FAILURES + FREE_FAILURES, MAX_SPRAY_DELAY)

    def failure_delay(self, name: str) -> float:
        """Seconds to hold the answer to a wrong password: the name's delay, or
        the spray's."""
        return max(self.name_delay(name), self.spray_delay())

    def throttled(self, source: str, name: str) -> bool:
        """True while either key is in a throttled burst (its failures are not
        audited one by one)."""
        return any(k is not None and k.burst_started is not None
                   for k in (self._get(("source", source)), self._get(("name", name)),
                             self._get(SPRAY)))

    def failed(self, source: str, name: str) -> None:
        """Count one failed login for both keys."""
        now = self.clock()
        for key in (("source", source), ("name", name), SPRAY):
            k = self._get(key) or _Key()
            k.failures, k.last = k.failures + 1, now
            if k.burst_started is not None:
                k.tries += 1
            elif k.failures >= (SPRAY_FAILURES if key == SPRAY else FREE_FAILURES):
                k.burst_started, k.tries = now, 1
                self._audit.append(("console.login_throttled", key[1], {
                    "by": key[0], "failures": k.failures}))
            self._keys[key] = k
            self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            key, k = self._keys.popitem(last=False)
            self._ended(key, k)

    def succeeded(self, source: str) -> None:
        """A correct password: its source starts afresh (the name's count stays:
        the guesser elsewhere is still guessing)."""
        k = self._keys.pop(("source", source), None)
        if k is not None:
            self._ended(("source", source), k)

    @staticmethod
    def keys_for(source: str, name: str) -> list[tuple[str, str]]:
        """The keys one login from `source` for `name` counts under."""
        return [("source", source), ("name", name), SPRAY]

    def absorb(self, keys: list[tuple[str, str]], rows: dict) -> None:
        """Take these keys' counts as stored (collector/storage/throttle_rows.py): what
        other collectors on the database counted; a key not there is not held."""
        for key in keys:
            row = rows.get(key)
            if row is None:
                self._keys.pop(key, None)
            else:
                self._keys[key] = _Key(*row)
                self._keys.move_to_end(key)

    def export(self, keys: list[tuple[str, str]]) -> dict:
        """These keys' counts to store (None: not held)."""
        return {key: (k.failures, k.last, k.burst_started, k.tries)
                if (k := self._keys.get(key)) is not None else None for key in keys}

    def take_audit(self) -> list[tuple[str, str, dict]]:
        """The (kind, actor, data) records to write since the last call."""
        self.sweep()
        out, self._audit = self._audit, []
        return out

    def sweep(self) -> None:
        """Forget keys quiet for FORGET seconds (oldest first: stops at a fresh one)."""
        now = self.clock()
        while self._keys:
            key, k = next(iter(self._keys.items()))
            if now - k.last < FORGET:
                break
            del self._keys[key]
            self._ended(key, k)

    def _get(self, key: tuple[str, str]) -> _Key | None:
        k = self._keys.get(key)
        if k is not None and self.clock() - k.last >= FORGET:
            del self._keys[key]
            self._ended(key, k)
            return None
        return k

    def _ended(self, key: tuple[str, str], k: _Key) -> None:
        if k.burst_started is not None:
            self._audit.append(("console.login_throttle_ended", key[1], {
                "by": key[0], "tries": k.tries, "failures": k.failures,
                "seconds": round(k.last - k.burst_started, 1)}))


def _delay(failures: int, cap: float) -> float:
    # Doubling from BASE_DELAY at the first throttled failure; the exponent is
    # capped too, so a huge count cannot overflow the float.
    return min(cap, BASE_DELAY * 2.0 ** min(failures - FREE_FAILURES, 32))
