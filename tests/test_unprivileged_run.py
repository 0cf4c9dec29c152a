"""The agent and the collector as the systemd units run them, without systemd
as PID 1: each as its own unprivileged system user (setpriv),
with exactly the owners and modes the README's install steps give, and the
credentials directory systemd would pass ($CREDENTIALS_DIRECTORY holding
`branchwatch_<file>` copies, owned by the service user, 0400).

The installed tree lives under a fresh root directory R (R/etc/branchwatch,
R/var/lib/...). The secrets' sources are root-only (0600 in a 0700
directory): the services can read them only through the credentials copy,
which the test proves both ways. Both services start, the agent delivers
heartbeats to the collector over HTTPS (the collector's TLS key a
credential), the collector keys its audit chain (the audit key a
credential), and `audit verify` passes run as the collector's user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest

from collector.api import token_hash

from .support.nut import NutServer
from .support.paths import REPO, free_port
from .test_nut_agent import ONLINE
from .test_delivery_e2e import wait_for

AGENT_USER, COLLECTOR_USER = "branchwatch", "branchwatch-collector"
TOKEN = "unprivileged-run-token-0123456789abcdef"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("setpriv", "unshare", "useradd",
                                                           "openssl")),
    reason="needs root (to create users and drop to them), setpriv, unshare, openssl")


def system_user(name: str) -> tuple[int, int]:
    """(uid, gid) of a system user, created as the README says when missing."""
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "--user-group", name], check=True)
        pw = pwd.getpwnam(name)
    return pw.pw_uid, pw.pw_gid


def install(path: Path, text: str | bytes, mode: int, uid: int = 0, gid: int = 0) -> Path:
    """`install -m MODE -o UID -g GID`: the file with exactly this owner and mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def directory(path: Path, mode: int, uid: int = 0, gid: int = 0) -> Path:
    """`install -d -m MODE -o UID -g GID`."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def world_reachable(path: Path) -> bool:
    """Whether any user can reach `path` (every directory on the way searchable)."""
    p = path.resolve()
    return all(os.stat(d).st_mode & stat.S_IXOTH for d in [p, *p.parents] if d.is_dir())


class AsUser:
    """Commands run as a system user in a mount namespace of their own, where this
    Python and this checkout are bind-mounted under R when that user could not
    reach them (a Python under /root, say)."""

    def __init__(self, root: Path):
        self.root = root
        self.binds: list[tuple[str, Path]] = []
        prefix = Path(sys.prefix)
        if world_reachable(Path(sys.executable)):
            self.python, self.libs = sys.executable, ""
        else:
            target = directory(root / "py", 0o755)
            self.binds.append((str(prefix), target))
            self.python = str(target / Path(sys.executable).relative_to(prefix))
            self.libs = str(target / "lib")      # its libpython, not the system's
        if world_reachable(REPO):
            self.src = str(REPO)
        else:
            target = directory(root / "src", 0o755)
            self.binds.append((str(REPO), target))
            self.src = str(target)

    def argv(self, user: str, args: list[str], credentials: Path | None) -> list[str]:
        """The command line: unshare, bind mounts, setpriv to the user, a clean env."""
        mounts = " && ".join(f"mount --bind '{a}' '{b}'" for a, b in self.binds) or "true"
        env = ["PATH=/usr/bin:/bin", "HOME=/nonexistent", f"PYTHONPATH={self.src}",
               "PYTHONDONTWRITEBYTECODE=1"]
        if self.libs:
            env.append(f"LD_LIBRARY_PATH={self.libs}")
        if credentials is not None:
            env.append(f"CREDENTIALS_DIRECTORY={credentials}")
        pw = pwd.getpwnam(user)
        inner = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
                 "--inh-caps=-all", "env", "-i", *env, self.python, "-m", "agent.cli", *args]
        # umask 077: the units' UMask=0077.
        return ["unshare", "-m", "sh", "-c", f"{mounts} && umask 077 && exec \"$@\"", "sh",
                *inner]

    def run(self, user: str, args: list[str], credentials: Path | None = None
            ) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(user, args, credentials), capture_output=True,
                              text=True, timeout=120)

    def start(self, user: str, args: list[str], credentials: Path, log: Path
              ) -> subprocess.Popen:
        with log.open("wb") as out:
            return subprocess.Popen(self.argv(user, args, credentials), stdout=out,
                                    stderr=subprocess.STDOUT)


def credentials_dir(root: Path, unit: str, source: Path, user: str) -> Path:
    """What LoadCredential=branchwatch:SOURCE gives the unit: every file of SOURCE
    copied as branchwatch_<file>, 0400, in a 0500 directory of the service user."""
    uid, gid = pwd.getpwnam(user).pw_uid, pwd.getpwnam(user).pw_gid
    folder = directory(root / "run" / "credentials" / unit, 0o500, uid, gid)
    for f in source.iterdir():
        install(folder / f"branchwatch_{f.name}", f.read_bytes(), 0o400, uid, gid)
    return folder


@pytest.fixture
def tree():
    """R: a fresh root for the installed files, reachable by every user (a pytest
    tmp_path is root-only)."""
    root = Path(tempfile.mkdtemp(prefix="bw-install-"))
    os.chmod(root, 0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def stop(proc: subprocess.Popen) -> int:
    proc.terminate()
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait(timeout=10)


def test_agent_and_collector_run_unprivileged_with_credentials(tree, tmp_path):
    with NutServer(tmp_path / "nut", {"rack": ONLINE}) as nut:
        run_both(tree, nut)


def run_both(tree: Path, nut: NutServer) -> None:
    a_uid, a_gid = system_user(AGENT_USER)
    c_uid, c_gid = system_user(COLLECTOR_USER)
    etc = directory(tree / "etc" / "branchwatch", 0o755)
    port, metrics_port = free_port(), free_port()

    # --- the collector, as README "Install" sets it up
    ccreds = directory(etc / "collector-credentials", 0o700)
    subprocess.run([sys.executable, "-m", "collector.cli", "audit", "new-key",
                    str(ccreds / "audit.key")], cwd=REPO, check=True, capture_output=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(ccreds / "tls.key"), "-out", str(etc / "collector.pem")],
                   check=True, capture_output=True)
    os.chmod(ccreds / "tls.key", 0o600)
    os.chmod(etc / "collector.pem", 0o644)
    cstate = directory(tree / "var" / "lib" / "branchwatch-collector", 0o750, c_uid, c_gid)
    cconfig = install(etc / "collector.yaml", f"""\
listen: {{address: 127.0.0.1, port: {port}, tls_cert: {etc / 'collector.pem'},
         tls_key: {ccreds / 'tls.key'}}}
storage: {{data_dir: {cstate}}}
audit: {{key_file: {ccreds / 'audit.key'}}}
agents:
  - {{id: a1, branch: BR-1, region: north, token_sha256: {token_hash(TOKEN)}}}
""", 0o640, 0, c_gid)

    # --- the agent
    acreds = directory(etc / "credentials", 0o700)
    install(acreds / "agent.token", TOKEN + "\n", 0o600)
    install(acreds / "upsd.password", "adminpass\n", 0o600)   # NutServer's upsd.users
    astate = directory(tree / "var" / "lib" / "branchwatch", 0o750, a_uid, a_gid)
    aconfig = install(etc / "agent.yaml", f"""\
agent: {{id: a1, branch: BR-1, region: north}}
metrics: {{address: 127.0.0.1, port: {metrics_port}}}
host: {{interval: 1, disks: [{{mount: /}}]}}
ups:
  - name: rack
    interval: 1
    nut: {{ups: rack, host: 127.0.0.1, port: {nut.port}, user: admin,
          password_file: {acreds / 'upsd.password'}}}
collector:
  url: https://127.0.0.1:{port}
  token_file: {acreds / 'agent.token'}
  ca_file: {etc / 'collector.pem'}
  heartbeat_interval: 1
  timeout: 0.5
  spool: {{path: {astate / 'spool.db'}}}
""", 0o640, 0, a_gid)

    users = AsUser(tree)
    a_creds = credentials_dir(tree, "branchwatch-agent.service", acreds, AGENT_USER)
    c_creds = credentials_dir(tree, "branchwatch-collector.service", ccreds, COLLECTOR_USER)

    # The secrets' sources are not the services' to read: without the credentials
    # directory, check-config says which key cannot be read, and why.
    denied = users.run(AGENT_USER, ["check-config", str(aconfig)])
    assert denied.returncode == 2, denied.stdout + denied.stderr
    assert denied.stderr.splitlines() == [
        f"branchwatch: {aconfig}: ups[0].nut.password_file: expected a readable file, "
        f"{acreds / 'upsd.password'}: Permission denied",
        f"branchwatch: {aconfig}: collector.token_file: expected a readable file, "
        f"{acreds / 'agent.token'}: Permission denied"]
    denied = users.run(COLLECTOR_USER, ["check-config", str(cconfig)])
    assert denied.returncode == 2 and "audit.key_file" in denied.stderr, denied.stderr
    # ...and neither user may read the other's config.
    assert users.run(AGENT_USER, ["check-config", str(cconfig)]).returncode == 2

    # ExecStartPre, then ExecStart, each as its unit runs them.
    for user, args, creds in ((COLLECTOR_USER, ["check-config", "--collector", str(cconfig)],
                               c_creds), (AGENT_USER, ["check-config", str(aconfig)], a_creds)):
        ok = users.run(user, args, creds)
        assert ok.returncode == 0, ok.stdout + ok.stderr
    collector = users.start(COLLECTOR_USER, ["collector", "--config", str(cconfig)], c_creds,
                            tree / "collector.log")
    agent = None
    try:
        agent = users.start(AGENT_USER, ["agent", "--config", str(aconfig)], a_creds,
                            tree / "agent.log")
        db = cstate / "collector.db"
        seen: list = [None]

        def heartbeats() -> int:
            if agent.poll() is not None or collector.poll() is not None:
                raise AssertionError((tree / "agent.log").read_text()
                                     + (tree / "collector.log").read_text())
            if not db.exists():
                return 0
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
                with contextlib.suppress(sqlite3.Error):
                    row = c.execute("SELECT checks FROM agents WHERE agent = 'a1' AND "
                                    "heartbeat_at IS NOT NULL").fetchone()
                    # The UPS read through upsd (as user admin, the password from the credential).
                    seen[:] = [row[0] if row else None]
                    return row is not None and '"check":"ups/rack/comm","state":"ok"' in row[0]
            return 0
        try:
            wait_for(heartbeats, timeout=60, what="the agent's heartbeat (UPS ok) at the collector")
        except AssertionError as e:
            raise AssertionError(f"{e}; last checks: {seen[0]}") from None
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
            assert b"branchwatch_" in r.read()
    finally:
        rcs = [stop(p) for p in (agent, collector) if p is not None]
    assert rcs == [0, 0], (tree / "agent.log").read_text() + (tree / "collector.log").read_text()

    # What the services wrote is theirs, and private (UMask 0077 in the units).
    for path, uid in ((db, c_uid), (cstate / "audit.checkpoints", c_uid),
                      (astate / "spool.db", a_uid)):
        st = os.stat(path)
        assert st.st_uid == uid and st.st_mode & 0o077 == 0, (path, oct(st.st_mode))
    # The chain was keyed with the credential's key: verify, as the collector's user.
    verified = users.run(COLLECTOR_USER, ["audit", "verify", "--config", str(cconfig)], c_creds)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert " mac " in verified.stdout and "carry no MAC" not in verified.stderr
