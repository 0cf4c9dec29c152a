"""How full each configured filesystem is, without letting a hung mount stall the rest."""

from __future__ import annotations

import os
import threading
import time

import psutil

from ..config import DiskSpec
from ..model import CheckResult, Sample, State
from .human import at_least, limit_note, pct, pct_limit, secs, size

# statvfs on a local disk answers in microseconds; one that takes longer
# than this is a hung network share (NFS/CIFS), which may never answer.
DISK_ANSWER_TIMEOUT = 2.0


class DiskUnreadable(Exception):
    """A mount could not be measured; str() is the reason for the check."""


class DiskUsageReader:
    """psutil.disk_usage in a helper thread, bounded per mount.

    A thread stuck in statvfs cannot be killed, so a mount whose previous
    call is still stuck gets no new thread: it is reported as hung until
    that call returns, and the number of stuck threads stays one per mount.
    """

    def __init__(self, answer_timeout: float = DISK_ANSWER_TIMEOUT):
        self.answer_timeout = answer_timeout
        self._stuck: dict[str, tuple[threading.Thread, float]] = {}

    def usage(self, mount: str):
        """(psutil's sdiskusage, is a mount point) for `mount`, or DiskUnreadable."""
        stuck = self._stuck.get(mount)
        if stuck is not None:
            thread, since = stuck
            if thread.is_alive():
                raise DiskUnreadable(f"mount {mount} has not answered for "
                                     f"{time.monotonic() - since:.0f} s (hung network share?)")
            del self._stuck[mount]
        box: dict = {}
        thread = threading.Thread(target=_measure, args=(mount, box), daemon=True,
                                  name=f"branchwatch-statvfs {mount}")
        thread.start()
        thread.join(self.answer_timeout)
        if thread.is_alive():
            self._stuck[mount] = (thread, time.monotonic() - self.answer_timeout)
            raise DiskUnreadable(f"mount {mount} did not answer within "
                                 f"{secs(self.answer_timeout)} (hung network share?)")
        if "error" in box:
            raise DiskUnreadable(_explain(mount, box["error"]))
        return box["usage"], box["is_mount"]


def _measure(mount: str, box: dict) -> None:
    """Thread body: store disk_usage's result or its error in `box`."""
    try:
        box["usage"] = psutil.disk_usage(mount)
        # A share that failed to mount leaves a plain directory that measures
        # the filesystem below it; say so in the detail (ismount may also hang,
        # hence here in the bounded thread).
        box["is_mount"] = os.path.ismount(mount)
    except Exception as e:  # noqa: BLE001 - handed to the reading thread, never lost
        box["error"] = e


def _explain(mount: str, e: Exception) -> str:
    """Why a mount could not be measured, in words."""
    if isinstance(e, FileNotFoundError):
        return f"mount {mount} is missing (no such directory)"
    if isinstance(e, PermissionError):
        return f"cannot read mount {mount}: permission denied"
    return f"cannot read mount {mount}: {getattr(e, 'strerror', None) or e}"


def disk_check(spec: DiskSpec, reader: DiskUsageReader) -> tuple[CheckResult, list[Sample], dict]:
    """The check, samples and detail for one configured mount."""
    check_id, m = f"disk/{spec.mount}", spec.mount
    try:
        u, is_mount = reader.usage(m)
    except DiskUnreadable as e:
        return CheckResult(check_id, State.UNKNOWN, str(e)), [], {"error": str(e)}
    # Like df: root-reserved blocks count as neither used nor available, so
    # a disk shows 100% when ordinary users can no longer write to it.
    usable = u.used + u.free
    if usable <= 0:
        reason = f"filesystem at {m} reports no size"
        return CheckResult(check_id, State.UNKNOWN, reason), [], {"error": reason}
    ratio = u.used / usable
    state = at_least(ratio, spec.warning, spec.critical)
    note = limit_note(state, pct_limit(spec.warning), pct_limit(spec.critical))
    reason = f"disk {m} {pct(ratio)} used{note}, {size(u.free)} free"
    samples = [Sample.of("branchwatch_filesystem_used_ratio", ratio, mount=m),
               Sample.of("branchwatch_filesystem_free_bytes", u.free, mount=m)]
    detail = {"used_ratio": round(ratio, 4), "used_bytes": u.used, "free_bytes": u.free,
              "total_bytes": u.total, "mount_point": is_mount}
    return CheckResult(check_id, state, reason), samples, detail
