"""The Debian package of the agent role: built from this checkout with
debhelper and dh-virtualenv, installed with `dpkg -i`, and run as the
package's own user, as a branch machine would get it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .support.paths import REPO

VENV = Path("/opt/venvs/branchwatch-agent")
pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(t) for t in ("dpkg-buildpackage", "dh_virtualenv", "runuser")),
    reason="building and installing a .deb needs root, dpkg-dev, dh-virtualenv (packaging/build-deb --install-deps)")


def _run(*cmd: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(list(cmd), capture_output=True, text=True, timeout=900, **kw)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def _as_service(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return _run(shutil.which("runuser"), "-u", "branchwatch", "--", "/usr/bin/branchwatch", *args, check=False,
                env=env, cwd="/")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    out = tmp_path_factory.mktemp("debs")
    _run("dpkg", "--purge", "branchwatch-agent", check=False)
    _run("bash", str(REPO / "packaging" / "build-deb"), "agent", str(out))
    deb = next(out.glob("branchwatch-agent_*.deb"))
    _run("dpkg", "-i", str(deb))
    yield deb
    _run("dpkg", "--purge", "branchwatch-agent", check=False)


def test_package_lays_out_user_config_unit_and_docs(installed):
    import grp
    import pwd
    user = pwd.getpwnam("branchwatch")
    assert "dialout" in [g.gr_name for g in grp.getgrall() if "branchwatch" in g.gr_mem]
    conf = Path("/etc/branchwatch/agent.yaml")
    st = conf.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (0, user.pw_gid, 0o640)
    assert "/etc/branchwatch/agent.yaml" in _run("dpkg-query", "--showformat=${Conffiles}",
                                                 "--show", "branchwatch-agent").stdout
    unit = Path("/lib/systemd/system/branchwatch-agent.service").read_text()
    assert f"ExecStart={VENV}/bin/branchwatch agent" in unit and "/usr/local/bin" not in unit
    doc = unit.split("Documentation=file://", 1)[1].split()[0]
    assert Path(doc).is_file(), doc
    assert os.path.realpath("/usr/bin/branchwatch") == str(VENV / "bin" / "branchwatch")


def test_agent_package_carries_no_collector_and_no_build_tools(installed):
    site = next(VENV.glob("lib/python3*/site-packages"))
    for absent in ("collector", "pip", "setuptools", "apprise", "jinja2"):
        assert not (site / absent).exists(), absent
    done = _run(str(VENV / "bin" / "python"), "-c", "import collector", check=False, cwd="/")
    assert done.returncode != 0


def test_installed_check_config_and_once_run_as_the_package_user(installed):
    done = _as_service("check-config", "/etc/branchwatch/agent.yaml")
    assert done.returncode == 0, done.stderr
    done = _as_service("agent", "--once", "--config", "/etc/branchwatch/agent.yaml")
    assert done.returncode == 0, done.stderr
    # A collector command on a branch machine says what is missing, in one line.
    done = _as_service("collector", "--config", "/etc/branchwatch/collector.yaml")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr


def test_the_ansible_playbook_installs_and_configures_a_branch(installed, tmp_path):
    playbook = shutil.which("ansible-playbook")
    if playbook is None:
        pytest.skip("ansible-playbook is not installed (pip install ansible-core)")
    (tmp_path / "vars.yml").write_text(
        "agent_id: br-0417-srv01\nbranch: BR-0417\nregion: north\n"
        "collector_url: https://collector.bank.example:9812\nagent_token: tok-0417-not-a-real-one\n"
        f"branchwatch_deb: {installed}\nstart_service: false\n")
    done = _run(playbook, "-i", "localhost,", "-c", "local", str(REPO / "packaging" / "ansible" / "branch.yml"),
                "-e", f"@{tmp_path / 'vars.yml'}",
                # Debian's own Python on the target (its apt bindings), not whatever python3 is first
                "-e", "ansible_python_interpreter=/usr/bin/python3", check=False,
                env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    config = Path("/etc/branchwatch/agent.yaml").read_text()
    assert "branch: BR-0417" in config and "agent.token" in config
    token = Path("/etc/branchwatch/agent.token")
    assert token.stat().st_mode & 0o777 == 0o640
    done = _as_service("check-config", "/etc/branchwatch/agent.yaml")
    assert done.returncode == 0, done.stderr


def test_the_offline_bundle_installs_without_a_package_index(installed, tmp_path):
    env = {**os.environ, "BRANCHWATCH_DEB": str(installed)}
    done = _run("bash", str(REPO / "packaging" / "offline-bundle"), "agent", str(tmp_path), env=env)
    bundle = Path(done.stdout.strip().splitlines()[-1])
    _run("tar", "-xzf", str(bundle), "-C", str(tmp_path))
    root = next(p for p in tmp_path.iterdir() if p.is_dir() and p.name.endswith("-offline"))
    assert next(root.glob("branchwatch-agent_*.deb")).is_file()
    assert not any(w.name.startswith(("apprise", "Jinja2", "jinja2")) for w in (root / "wheels").iterdir())
    venv = tmp_path / "venv"
    _run(sys.executable, "-m", "venv", str(venv))
    # No index at all: only the bundle's wheels (PIP_CONFIG_FILE: no machine-wide extras).
    _run(str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(root / "wheels"),
         "-c", str(root / "constraints.txt"), "branchwatch[agent]",
         env={**os.environ, "PIP_CONFIG_FILE": os.devnull})
    config = tmp_path / "agent.yaml"
    config.write_text("agent: {id: br-0001-srv01, branch: BR-0001}\n")
    done = _run(str(venv / "bin" / "branchwatch"), "check-config", str(config), check=False)
    assert done.returncode == 0, done.stderr
