"""The audit chain's head, kept outside the database (docs/audit.md).

A checkpoint is one line appended to a file: the time, the head record's
seq, its hash and its MAC ("-" when no key is configured). The file is only
ever appended to (O_APPEND, fsync'd); `audit verify --checkpoint FILE`
holds the database against every line of it: records cut off the end, or
a chain rewritten under a checkpoint, show there.

    2026-12-02T03:00:00.000000Z 1234 9a1b...07 5f0c...e1
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .audit import timestamp

log = logging.getLogger("branchwatch.collector")


@dataclass(frozen=True)
class Checkpoint:
    """One published head: at (text), seq, its hash and its MAC (None without a key)."""

    at: str
    seq: int
    hash: str
    mac: str | None
    line: int = 0      # where in the file (for messages)


class CheckpointError(Exception):
    """The checkpoint file cannot be read or holds a line that is not a checkpoint."""


def append_checkpoint(path: str | Path, at: float, seq: int, hash_hex: str, mac: str) -> None:
    """Append one checkpoint line and fsync it (the file is created 0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{timestamp(at)} {seq} {hash_hex} {mac}\n".encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)


def read_checkpoints(path: str | Path) -> list[Checkpoint]:
    """Every checkpoint in the file, in order; CheckpointError names a bad line."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise CheckpointError(f"{path}: cannot read the checkpoint file: {reason}") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if (len(parts) != 4 or not parts[1].isdigit() or len(parts[2]) != 64
                or len(parts[3]) not in (1, 64)):
            raise CheckpointError(f"{path}: line {n}: expected 'TIME SEQ HASH MAC|-', "
                                  f"got {line[:80]!r}")
        mac = None if parts[3] == "-" else parts[3]
        out.append(Checkpoint(parts[0], int(parts[1]), parts[2], mac, n))
    return out


async def keep_checkpoints(head: Callable[[], tuple[int, str, str]], path: str | Path,
                           every: float, clock: Callable[[], float]) -> None:
    """Append the committed head every `every` seconds when it moved (until cancelled);
    a failed write is logged and tried again next time, never ends the loop."""
    written = None
    while True:
        now = head()
        if now != written:
            try:
                append_checkpoint(path, clock(), *now)
                written = now
            except OSError as e:
                log.error("audit checkpoint not written to %s: %s", path, e.strerror or e)
            except Exception:          # never end silently: say it, try next time
                log.exception("audit checkpoint not written to %s", path)
        await asyncio.sleep(every)


class AuditHeadMetrics:
    """/metrics: the committed head of the audit chain (seq, and its MAC as a label),
    read from memory at scrape time (no query)."""

    def __init__(self, head: Callable[[], tuple[int, str, str]]):
        self.head = head

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily
        seq, hash_hex, mac = self.head()
        g = GaugeMetricFamily("branchwatch_collector_audit_head_seq",
                              "The last committed audit record; its hash and MAC ('-' "
                              "without a key) are labels: keep them to hold `audit verify` "
                              "against", labels=["hash", "mac"])
        g.add_metric([hash_hex, mac], seq)
        yield g
