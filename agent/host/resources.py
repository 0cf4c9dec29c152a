"""Host health in one probe: disk space, memory and load."""

from __future__ import annotations

import os

import psutil

from ..config import DiskSpec, LoadSpec, MemorySpec
from ..model import CheckResult, Reading, Sample, State
from .disks import DISK_ANSWER_TIMEOUT, DiskUsageReader, disk_check
from .human import at_least, limit_note, pct, pct_limit, size

_PERIODS = ("1m", "5m", "15m")


def memory_check(spec: MemorySpec) -> tuple[CheckResult, list[Sample], dict]:
    """Used share of memory; 'available' counts reclaimable cache as free, as the kernel does."""
    vm = psutil.virtual_memory()
    ratio = 1.0 - vm.available / vm.total
    state = at_least(ratio, spec.warning, spec.critical)
    note = limit_note(state, pct_limit(spec.warning), pct_limit(spec.critical))
    reason = f"memory {pct(ratio)} used{note}, {size(vm.available)} of {size(vm.total)} available"
    detail = {"used_ratio": round(ratio, 4), "available_bytes": vm.available,
              "total_bytes": vm.total}
    return (CheckResult("memory", state, reason),
            [Sample.of("branchwatch_memory_used_ratio", ratio)], detail)


def load_check(spec: LoadSpec) -> tuple[CheckResult, list[Sample], dict]:
    """Load average per CPU; the verdict uses the 5-minute value (1m is too jumpy)."""
    # All CPUs of the host, not this process's affinity: the load average
    # counts runnable tasks of the whole machine.
    cpus = psutil.cpu_count() or os.cpu_count() or 1
    # os.getloadavg is missing on Windows; psutil emulates it there.
    loadavg = getattr(os, "getloadavg", psutil.getloadavg)
    per_cpu = [v / cpus for v in loadavg()]
    five = per_cpu[1]
    state = at_least(five, spec.warning, spec.critical)
    note = limit_note(state, f"{spec.warning:g}", f"{spec.critical:g}")
    cpu_word = "CPU" if cpus == 1 else "CPUs"
    reason = f"load {five:.2f} per CPU over 5 min{note}, {cpus} {cpu_word}"
    samples = [Sample.of("branchwatch_load_per_cpu", v, period=p) for p, v in zip(_PERIODS, per_cpu)]
    detail = {"cpus": cpus, **{f"per_cpu_{p}": round(v, 3) for p, v in zip(_PERIODS, per_cpu)}}
    return CheckResult("load", state, reason), samples, detail


class ResourcesProbe:
    """Disks, memory and load, each optional, in one reading."""

    def __init__(self, disks: list[DiskSpec], memory: MemorySpec | None,
                 load: LoadSpec | None, interval: float):
        self.disks = list(disks)
        self.memory = memory
        self.load = load
        self.name = "resources"
        self.interval = interval
        # Each mount is bounded on its own, so a hung share costs at most
        # DISK_ANSWER_TIMEOUT and the rest of the reading still arrives.
        self.timeout = DISK_ANSWER_TIMEOUT * len(self.disks) + 5.0
        self._reader = DiskUsageReader()

    def read(self) -> Reading:
        """Measure every configured part; a part that fails is an unknown check."""
        samples: list[Sample] = []
        checks: list[CheckResult] = []
        detail: dict = {}
        failures: list[str] = []
        disks_detail = {}
        for spec in self.disks:
            check, got, d = disk_check(spec, self._reader)
            checks.append(check)
            samples.extend(got)
            disks_detail[spec.mount] = d
            if check.state is State.UNKNOWN:
                failures.append(check.reason)
        if self.disks:
            detail["disks"] = disks_detail
        for key, spec, measure in (("memory", self.memory, memory_check),
                                   ("load", self.load, load_check)):
            if spec is None:
                continue
            try:
                check, got, d = measure(spec)
            except (psutil.Error, OSError, ZeroDivisionError) as e:
                reason = f"cannot read {key}: {e}"
                check, got, d = CheckResult(key, State.UNKNOWN, reason), [], {"error": reason}
                failures.append(reason)
            checks.append(check)
            samples.extend(got)
            detail[key] = d
        # The probe "could not look at all" only when every part failed.
        blind = bool(checks) and len(failures) == len(checks)
        return Reading(self.name, not blind, samples, checks, detail,
                       error="; ".join(failures) if blind else None)

    def close(self) -> None:
        """Nothing to release (a thread stuck on a hung mount is a daemon)."""
