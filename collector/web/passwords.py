"""Console passwords: stored as hashes, never as text; checked off the event loop.

New hashes are argon2id (argon2-cffi, OWASP's parameters: 19 MiB, 2 passes,
1 lane), in the PHC format ``$argon2id$v=19$m=…,t=…,p=…$SALT$HASH``.
Hashes made before are scrypt, ``scrypt$N$r$p$SALT$HASH`` (stdlib hashlib),
and are still read. `branchwatch collector password` prints an argon2id one
for the config's `console.users[].password`.

Hashing costs tens of milliseconds of CPU and megabytes of memory on
purpose: `Hasher` runs it in a small thread pool with a bound on how many
checks may run or wait at once, so a login spray neither stalls the
collector's event loop (heartbeats) nor queues without end: a check over
the bound is refused at once (`Busy`, answered 503 with Retry-After).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import Argon2Error, InvalidHashError

N, R, P = 2 ** 14, 8, 1
_ARGON2 = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
PATTERN = (r"^(scrypt\$[0-9]+\$[0-9]+\$[0-9]+\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+"
           r"|\$argon2id\$v=[0-9]+\$m=[0-9]+,t=[0-9]+,p=[0-9]+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+)$")

# A hash no password matches in practice: checked when the name is unknown,
# so the time taken does not tell which names exist.
UNKNOWN_USER = _ARGON2.hash(base64.b64encode(os.urandom(24)).decode())


def hash_password(password: str) -> str:
    """The config line for `password`: argon2id with a fresh salt each time."""
    return _ARGON2.hash(password)


def scrypt_hash(password: str, salt: bytes | None = None) -> str:
    """An scrypt hash as older collectors wrote them (kept readable; for tests)."""
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=N, r=R, p=P, dklen=32)
    return "$".join(["scrypt", str(N), str(R), str(P),
                     base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def check_password(password: str, stored: str) -> bool:
    """True when `password` matches the stored hash (argon2id or scrypt)."""
    if stored.startswith("$argon2"):
        try:
            return _ARGON2.verify(stored, password)
        except (Argon2Error, InvalidHashError, ValueError):
            return False
    try:
        _, n, r, p, salt, digest = stored.split("$")
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt),
                             n=int(n), r=int(r), p=int(p), dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _lower_priority() -> None:
    # Linux gives each thread its own nice value: the hashing threads yield the
    # CPU to the event loop's (heartbeats first, logins after).
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


HASH_NICE = 10


class Busy(Exception):
    """Too many password checks running or waiting: try again shortly."""


class Hasher:
    """Password checks in `workers` threads, at most `bound` running or waiting."""

    def __init__(self, workers: int = 1, bound: int = 8):
        self.bound = bound
        self.in_flight = 0
        self.refused = 0            # checks refused over the bound (for tests)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="password-check",
                                        initializer=_lower_priority)

    def full(self) -> bool:
        """True when a check now would be refused (Busy)."""
        return self.in_flight >= self.bound

    async def check(self, password: str, stored: str) -> bool:
        """`check_password` on the pool; `Busy` at once when the bound is reached."""
        if self.full():
            self.refused += 1
            raise Busy(f"{self.in_flight} password checks already under way")
        self.in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._pool, check_password, password, stored)
        finally:
            self.in_flight -= 1

    def close(self) -> None:
        """Stop the threads (after the checks under way)."""
        self._pool.shutdown(wait=True)
