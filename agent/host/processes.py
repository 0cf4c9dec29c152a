"""Are the configured services' processes running, and how many of them."""

from __future__ import annotations

import os
import re

import psutil

from ..config import ProcessSpec
from ..model import CheckResult, Reading, Sample, State

# Pids listed per service in Reading.detail; enough to find them, not a dump.
_DETAIL_PIDS = 10


def describe(spec: ProcessSpec) -> str:
    """How a spec picks its processes, in words ("named 'x'", "matching /re/")."""
    if spec.process is not None:
        return f"named {spec.process!r}"
    return f"with command line matching /{spec.cmdline}/"


class _Matcher:
    """One spec, with its command-line regex compiled once."""

    def __init__(self, spec: ProcessSpec):
        self.spec = spec
        self.regex = re.compile(spec.cmdline) if spec.cmdline is not None else None

    def matches(self, name: str | None, cmdline: list[str] | None) -> bool:
        """True if a process with this name and argv belongs to the service."""
        if self.spec.process is not None and name == self.spec.process:
            return True
        if self.regex is not None and cmdline:
            return self.regex.search(" ".join(cmdline)) is not None
        return False


class ProcessProbe:
    """Counts processes per configured service in one pass over the process table."""

    def __init__(self, specs: list[ProcessSpec], interval: float):
        self.specs = list(specs)
        self.name = "processes"
        self.interval = interval
        # A full /proc walk takes well under a second even with thousands
        # of processes; this only bounds a wedged /proc.
        self.timeout = 10.0
        self._matchers = [_Matcher(s) for s in self.specs]

    def read(self) -> Reading:
        """One pass over all processes, then a verdict per spec."""
        try:
            pids = self._scan()
        except (psutil.Error, OSError) as e:
            return self._failed(f"cannot list processes: {e}")
        samples, checks, detail = [], [], {}
        for spec, found in zip(self.specs, pids):
            n = len(found)
            samples.append(Sample.of("branchwatch_process_count", n, name=spec.name))
            checks.append(CheckResult(f"process/{spec.name}", *self._verdict(spec, n)))
            detail[spec.name] = {"count": n, "min_count": spec.min_count,
                                 "pids": found[:_DETAIL_PIDS]}
        return Reading(self.name, True, samples, checks, {"processes": detail})

    def _scan(self) -> list[list[int]]:
        """Matching pids per spec, from a single process_iter pass."""
        found: list[list[int]] = [[] for _ in self._matchers]
        me = os.getpid()
        # "status" rides along so zombies (exited, not yet reaped by their
        # parent) are not counted as a running service.
        for proc in psutil.process_iter(["name", "cmdline", "status"]):
            try:
                info = proc.info
                # The agent itself must not count towards a broad regex
                # such as "python".
                if proc.pid == me or info.get("status") == psutil.STATUS_ZOMBIE:
                    continue
                for i, m in enumerate(self._matchers):
                    if m.matches(info.get("name"), info.get("cmdline")):
                        found[i].append(proc.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                # Gone or hidden between listing and reading: not ours to count.
                continue
        return found

    @staticmethod
    def _verdict(spec: ProcessSpec, n: int) -> tuple[State, str]:
        """Critical below min_count, ok otherwise, with a reason."""
        what = describe(spec)
        if n == 0:
            return State.CRITICAL, f"no process {what} is running (expected {spec.min_count})"
        if n < spec.min_count:
            return State.CRITICAL, (f"{n} of {spec.min_count} expected processes {what} "
                                    f"running")
        plural = "process" if n == 1 else "processes"
        return State.OK, f"{n} {plural} {what} running"

    def _failed(self, reason: str) -> Reading:
        """The process table itself could not be read."""
        checks = [CheckResult(f"process/{s.name}", State.UNKNOWN, reason) for s in self.specs]
        return Reading(self.name, False, [], checks, {}, error=reason)

    def close(self) -> None:
        """Nothing to release."""
