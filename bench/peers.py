"""The peers the agent is measured against, started as plain processes on
127.0.0.1, and paired measurement windows over all of them.

Peers (Debian packages, installed by .ci/setup): prometheus-node-exporter
(host metrics), NUT's upsmon (watches the same upsd UPS), and
prometheus-snmp-exporter (walks the same switch ports as the agent).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil

NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
SNMP_EXPORTER = "/usr/bin/prometheus-snmp-exporter"
UPSMON = "/lib/nut/upsmon"

SYSTEM = ["1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.3.0", "1.3.6.1.2.1.1.5.0"]


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout} s")


def node_exporter(folder: Path) -> tuple[subprocess.Popen, str]:
    """node_exporter with its default collectors; (process, /metrics URL)."""
    port = _free_port()
    proc = subprocess.Popen([NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(folder / "node.log", "wb"))
    url = f"http://127.0.0.1:{port}/metrics"
    _wait_http(url, proc)
    return proc, url


def add_upsmon_user(nut_dir: Path) -> None:
    """Give upsd a user upsmon may log in as (upsd reads users at start: restart it)."""
    users = nut_dir / "upsd.users"
    if "[monuser]" not in users.read_text():
        users.write_text(users.read_text() + "[monuser]\n\tpassword = monpass\n\tupsmon primary\n")


def upsmon(folder: Path, ups: str, port: int) -> subprocess.Popen:
    """upsmon in the foreground watching one UPS of the bench's upsd (default POLLFREQ 5 s)."""
    conf = folder / "upsmon.conf"
    conf.write_text(f"MONITOR {ups}@127.0.0.1:{port} 1 monuser monpass primary\n"
                    "MINSUPPLIES 1\nSHUTDOWNCMD \"/bin/true\"\nPOLLFREQ 5\nPOLLFREQALERT 5\n")
    conf.chmod(0o600)
    env = {**os.environ, "NUT_CONFPATH": str(folder), "NUT_STATEPATH": str(folder),
           "NUT_ALTPIDPATH": str(folder)}
    return subprocess.Popen([UPSMON, "-F", "-u", "root"], env=env, stdout=subprocess.DEVNULL,
                            stderr=open(folder / "upsmon.log", "wb"))


def snmp_exporter(folder: Path, communities: list[str], columns: list[str]
                  ) -> tuple[subprocess.Popen, str]:
    """snmp_exporter with one module per community that GETs the system group and
    walks `columns` (the agent's own per-poll set); (process, base URL)."""
    lines = []
    for community in communities:
        lines += [f"{community}:", "  get:", *[f"  - {o}" for o in SYSTEM], "  walk:",
                  *[f"  - {c}" for c in columns], "  metrics:"]
        for oid in SYSTEM + columns:
            name = "c_" + oid.replace(".", "_")
            kind = "DisplayString" if oid in (SYSTEM[0], SYSTEM[2]) else "gauge"
            lines += [f"  - name: {name}", f"    oid: {oid}", f"    type: {kind}"]
            if oid not in SYSTEM:
                lines += ["    indexes:", "    - labelname: ifIndex", "      type: gauge"]
        lines += ["  version: 2", "  max_repetitions: 25", "  retries: 1", "  timeout: 5s",
                  "  auth:", f"    community: {community}"]
    (folder / "snmp.yml").write_text("\n".join(lines) + "\n")
    port = _free_port()
    proc = subprocess.Popen([SNMP_EXPORTER, f"--config.file={folder / 'snmp.yml'}",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=open(folder / "snmp.log", "wb"))
    base = f"http://127.0.0.1:{port}"
    _wait_http(base + "/metrics", proc)
    return proc, base


def stop(proc: subprocess.Popen) -> None:
    """End a peer this bench started and the children it forked (upsmon's monitor)."""
    if proc.poll() is not None:
        return
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    for child in children:
        try:
            child.terminate()
        except psutil.NoSuchProcess:
            pass
    proc.terminate()
    proc.wait(10)
    psutil.wait_procs(children, timeout=10)


def scrape(url: str) -> int:
    """GET a metrics URL; the body's size (a failed scrape raises)."""
    with urllib.request.urlopen(url, timeout=30) as r:
        return len(r.read())


class Meter:
    """CPU seconds and RSS of named processes, read at window edges."""

    def __init__(self, pids: dict[str, list[int]]):
        # Children too: upsmon runs as a privileged parent and a monitoring child.
        self.procs = {}
        for name, ps in pids.items():
            procs = [psutil.Process(p) for p in ps]
            self.procs[name] = procs + [c for p in procs for c in p.children(recursive=True)]

    def cpu(self) -> dict[str, float]:
        return {n: sum(sum(p.cpu_times()[:2]) for p in ps) for n, ps in self.procs.items()}

    def rss_mb(self) -> dict[str, float]:
        return {n: sum(p.memory_info().rss for p in ps) / 2**20 for n, ps in self.procs.items()}


def paired_windows(meter: Meter, windows: int, seconds: float, jobs: list[tuple[float, list]]
                   ) -> list[dict]:
    """`windows` consecutive windows, every process measured over the same one.

    jobs: (period, [callables]) run every period; within a tick the callables'
    order alternates (A then B, then B then A) so neither side is always first.
    """
    out = []
    nexts = [time.monotonic() for _ in jobs]
    flip = False
    for _ in range(windows):
        c0, t0 = meter.cpu(), time.monotonic()
        rss: dict[str, list[float]] = {n: [] for n in meter.procs}
        next_rss = t0
        while (now := time.monotonic()) - t0 < seconds:
            for i, (period, calls) in enumerate(jobs):
                if now >= nexts[i]:
                    for call in (reversed(calls) if flip else calls):
                        call()
                    flip = not flip
                    nexts[i] += period
            if now >= next_rss:
                for n, v in meter.rss_mb().items():
                    rss[n].append(v)
                next_rss += 1.0
            time.sleep(0.05)
        c1, elapsed = meter.cpu(), time.monotonic() - t0
        out.append({n: {"cpu_pct": 100 * (c1[n] - c0[n]) / elapsed,
                        "cpu_s": c1[n] - c0[n], "elapsed_s": elapsed,
                        "rss_mb": statistics.median(rss[n])} for n in meter.procs})
    return out


def summary(values: list[float], digits: int = 2) -> dict:
    """Median and range of per-window values."""
    return {"median": round(statistics.median(values), digits),
            "range": [round(min(values), digits), round(max(values), digits)]}


def ratio(windows: list[dict], a: str, b: str, key: str) -> dict:
    """a/b per window for one measure, as median and range."""
    return summary([w[a][key] / w[b][key] for w in windows if w[b][key] > 0], 2)
