"""Config validation, through the real `branchwatch` command.

Every bad config is written to a file and handed to
`python -m agent.cli check-config FILE` (and `agent --config FILE`) in a
subprocess, exactly as an operator would run it. A bad config must give
exit status 2 and ONE line on stderr naming the file, the key path and
what was expected; never a traceback.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.config import Config, ConfigError, load, parse

from .support.paths import REPO

EXAMPLES = sorted((REPO / "config").glob("agent*.yaml"))

AGENT = "agent: {id: br-0001-srv01, branch: BR-0001}\n"
NUT_UPS = "ups:\n  - name: rack\n    nut: {ups: rackups}\n"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH: this checkout's code, whatever cwd is (not an installed copy).
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO)})


# --------------------------------------------------------------------------
# The shipped examples


def test_examples_are_shipped():
    names = {p.name for p in EXAMPLES}
    assert {"agent.example.yaml", "agent.minimal.yaml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_example_loads(path: Path):
    config = load(path)
    assert isinstance(config, Config)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_shipped_example_passes_check_config(path: Path):
    # --no-files: the files it names (/etc/branchwatch/...) are another machine's.
    done = run_cli("check-config", "--no-files", str(path), cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: ok (agent: ")
    assert done.stderr == ""


def test_full_example_uses_every_section():
    """The documented example shows every part of the schema at least once."""
    c = load(REPO / "config" / "agent.example.yaml")
    assert c.agent.region
    assert [u.nut is not None for u in c.ups] == [True, False, False]
    assert (c.ups[0].nut.host, c.ups[0].nut.port) == ("127.0.0.1", 3493)
    assert (c.ups[1].serial.port, c.ups[1].serial.baud) == ("/dev/ttyUSB0", 2400)
    h = c.host
    assert {p.process is not None for p in h.processes} == {True, False}
    assert h.listening and h.tcp and h.disks and h.memory and h.load and h.backups
    assert {t.host for t in h.tcp} == {"core.bank.example", "gateway.branch.example"}
    assert c.ups[2].snmp.host == "10.17.0.20"
    funds = c.switches[0]
    assert (funds.snmp.version, funds.snmp.priv_protocol) == ("3", "aes")
    assert [i.key for i in funds.interfaces] == ["primary", "backup", "atm", "stack"]
    assert {i.role for i in funds.interfaces} == {"uplink-primary", "uplink-backup", "access", "trunk"}
    assert funds.actions.ports == ["backup", "primary"] and funds.actions.write.user
    assert c.traps.port == 162
    assert c.collector.token_file and c.collector.spool.max_events == 100000
    assert [(line.name, line.uplink.interface) for line in c.lines] == [
        ("primary", "primary"), ("backup", "backup")]


def test_minimal_example_is_minimal():
    """Only the required keys: everything else is a default."""
    c = load(REPO / "config" / "agent.minimal.yaml")
    assert c == Config(agent=c.agent)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_key_in_examples_is_commented(path: Path):
    """Documented line by line: each line that sets a key carries a comment."""
    key = re.compile(r"^\s*(- )?[A-Za-z_]+:")
    bare = [f"{n}: {line}" for n, line in enumerate(path.read_text().splitlines(), 1)
            if key.match(line) and "#" not in line]
    assert bare == []


# --------------------------------------------------------------------------
# Bad configs


@dataclass(frozen=True)
class Bad:
    """One bad config and what its error line must say.

    key: the key path the message must name as `FILE: key: ...`
    (None for problems with the file as a whole).
    says: words that tell the operator what was expected.
    """

    id: str
    text: str | bytes | None  # None when `kind` makes the path (missing, directory)
    key: str | None
    says: tuple[str, ...]
    kind: str = "file"  # "file", "missing" or "directory"


BAD = [
    # Unknown keys: the message lists the keys allowed there.
    Bad("unknown-top-level-key", AGENT + "bogus: 1\n", "bogus",
        ("unknown key", "expected one of: agent, metrics, state, nut_client, ups, host")),
    Bad("unknown-nested-key", AGENT + "ups:\n  - name: rack\n    nut: {ups: rackups, prot: 1}\n",
        "ups[0].nut.prot",
        ("unknown key", "expected one of: ups, host, port, user, password, timeout")),
    Bad("unknown-key-in-list-item",
        AGENT + "host:\n  tcp:\n    - {name: gw, host: gateway.branch.example, port: 443, "
                "latency: 1}\n",
        "host.tcp[0].latency",
        ("unknown key", "name, host, port, timeout, latency_warning, interval")),
    Bad("unknown-key-in-defaulted-section",
        AGENT + NUT_UPS + "    thresholds: {charge_warn: 0.5}\n",
        "ups[0].thresholds.charge_warn", ("unknown key", "charge_warning, charge_critical")),
    # Wrong types.
    Bad("str-for-int", AGENT + "metrics: {port: nine}\n", "metrics.port",
        ("expected int, got str",)),
    Bad("bool-for-int", AGENT + "state: {debounce: yes}\n", "state.debounce",
        ("expected int, got bool",)),
    Bad("list-for-mapping", AGENT + "metrics: [127.0.0.1, 9811]\n", "metrics",
        ("expected a mapping, got a list",)),
    Bad("mapping-for-list", AGENT + "ups: {name: rack, nut: {ups: rackups}}\n", "ups",
        ("expected a list, got a mapping",)),
    Bad("empty-section", AGENT + "host:\n  processes:\n", "host.processes",
        ("expected a list, got nothing",)),
    # Missing required fields.
    Bad("missing-agent-branch", "agent: {id: br-0001-srv01}\n", "agent.branch",
        ("missing", "required")),
    Bad("missing-agent-section", "metrics: {port: 9811}\n", "agent", ("missing", "required")),
    Bad("missing-nut-ups-name", AGENT + "ups:\n  - name: rack\n    nut: {host: 127.0.0.1}\n",
        "ups[0].nut.ups", ("missing", "required")),
    Bad("name-with-space", "agent: {id: br 0001, branch: BR-0001}\n", "agent.id",
        ("expected str matching regex",)),
    # The file itself.
    Bad("missing-file", None, None, ("cannot read the file", "No such file or directory"),
        kind="missing"),
    Bad("directory", None, None, ("cannot read the file", "Is a directory"), kind="directory"),
    Bad("invalid-utf8", b"agent: {id: br-0001-srv01, branch: BR-\xff}\n", None,
        ("cannot read the file", "can't decode byte 0xff")),
    Bad("empty-file", "", None, ("expected a mapping of settings at the top level",
                                 "got an empty file")),
    Bad("comments-only", "# nothing here yet\n", None,
        ("expected a mapping of settings at the top level", "got an empty file")),
    Bad("top-level-list", "- agent: {id: a, branch: b}\n", None,
        ("expected a mapping of settings at the top level", "got a list")),
    Bad("top-level-scalar", "branchwatch\n", None,
        ("expected a mapping of settings at the top level", "got a str")),
    Bad("yaml-syntax-error", AGENT + "metrics:\n  port: 9811\n address: 0.0.0.0\n", None,
        ("line 4 column 2", "not valid YAML")),
    Bad("yaml-unclosed-flow", AGENT + "ups: [\n  - name: rack\n", None,
        ("line 3 column 3", "not valid YAML")),
    Bad("yaml-tab-indent", AGENT + "metrics:\n\tport: 9811\n", None,
        ("line 3 column 1", "not valid YAML", "'\\t'")),
    Bad("yaml-python-tag", AGENT + "x: !!python/object/apply:os.system ['true']\n", None,
        ("line 2 column 4", "not valid YAML", "could not determine a constructor")),
    # Duplicate keys: YAML would silently keep the last one.
    Bad("duplicate-key", AGENT + "metrics:\n  port: 9811\n  port: 9812\n", "metrics.port",
        ("line 4 column 3", "key 'port' is given twice")),
    Bad("duplicate-top-level-key", AGENT + "state: {debounce: 2}\nstate: {debounce: 3}\n", "state",
        ("line 3 column 1", "key 'state' is given twice")),
    # Enums.
    Bad("invalid-nut-client", AGENT + "nut_client: libupsclient\n", "nut_client",
        ("invalid value 'libupsclient'", "expected one of: auto, nut2, pynut")),
    # Ranges.
    Bad("port-70000", AGENT + "ups:\n  - name: rack\n    nut: {ups: rackups, port: 70000}\n",
        "ups[0].nut.port", ("expected int <= 65535",)),
    Bad("port-zero-for-target", AGENT + "host:\n  tcp: [{name: gw, host: h, port: 0}]\n",
        "host.tcp[0].port", ("expected int >= 1",)),
    Bad("empty-serial-port", AGENT + "ups:\n  - name: atm\n    serial: {port: ''}\n",
        "ups[0].serial.port", ("expected str of length >= 1",)),
    Bad("ratio-1.5", AGENT + NUT_UPS + "    thresholds: {load_critical: 1.5}\n",
        "ups[0].thresholds.load_critical", ("expected float <= 1.0",)),
    Bad("ratio-nan", AGENT + "host: {memory: {warning: .nan}}\n", "host.memory.warning",
        ("expected float",)),
    Bad("negative-interval", AGENT + "host: {interval: -10}\n", "host.interval",
        ("expected float > 0.0",)),
    Bad("zero-ups-interval", AGENT + NUT_UPS + "    interval: 0\n", "ups[0].interval",
        ("expected float > 0.0",)),
    Bad("debounce-zero", AGENT + "state: {debounce: 0}\n", "state.debounce",
        ("expected int >= 1",)),
    Bad("flap-threshold-one", AGENT + "state: {flap_threshold: 1}\n", "state.flap_threshold",
        ("expected int >= 2",)),
    # One-of choices, uniqueness and orderings.
    Bad("ups-with-nut-and-serial",
        AGENT + NUT_UPS + "    serial: {port: /dev/ttyUSB0}\n", "ups[0]",
        ("expected exactly one of 'nut', 'serial' or 'snmp'",)),
    Bad("ups-with-neither", AGENT + "ups:\n  - name: rack\n    interval: 2\n", "ups[0]",
        ("expected exactly one of 'nut', 'serial' or 'snmp'",)),
    # Network sections (switches, lines, SNMP UPS cards).
    Bad("switch-v2c-without-community",
        AGENT + "switches:\n  - {name: sw, host: h, snmp: {version: '2c'}}\n",
        "switches[0].snmp.community", ("required for version 2c",)),
    Bad("switch-v3-short-key",
        AGENT + "switches:\n  - {name: sw, host: h, snmp: {version: '3', user: u, "
                "auth_protocol: sha, auth_key: short}}\n",
        "switches[0].snmp.auth_key", ("at least 8 characters",)),
    Bad("switch-v3-priv-without-auth",
        AGENT + "switches:\n  - {name: sw, host: h, snmp: {version: '3', user: u, "
                "priv_protocol: aes, priv_key: longenough}}\n",
        "switches[0].snmp.priv_protocol", ("needs an auth_protocol",)),
    Bad("switch-version-unquoted-number",
        AGENT + "switches:\n  - {name: sw, host: h, snmp: {version: 3, user: u}}\n",
        "switches[0].snmp.version", ("expected str",)),
    Bad("interface-two-selectors",
        AGENT + "switches:\n  - name: sw\n    host: h\n    snmp: {community: c}\n"
                "    interfaces: [{name: Gi0/1, index: 1}]\n",
        "switches[0].interfaces[0]", ("exactly one of 'name', 'descr', 'alias' or 'index'",)),
    Bad("interface-bad-role",
        AGENT + "switches:\n  - name: sw\n    host: h\n    snmp: {community: c}\n"
                "    interfaces: [{name: Gi0/1, role: uplink}]\n",
        "switches[0].interfaces[0].role", ("uplink-primary", "uplink-backup", "access", "trunk")),
    Bad("action-port-not-an-interface",
        AGENT + "switches:\n  - name: sw\n    host: h\n    snmp: {community: c}\n"
                "    interfaces: [{name: Gi0/1, id: primary}]\n    actions: {ports: [backup]}\n",
        "switches[0].actions.ports[0]", ("expected the id of an interface",)),
    Bad("line-uplink-unknown-switch",
        AGENT + "lines:\n  - {name: l, uplink: {switch: nope, interface: p}, "
                "targets: [{name: gw, host: 127.0.0.1}]}\n",
        "lines[0].uplink.switch", ("expected the name of a configured switch",)),
    Bad("line-without-targets", AGENT + "lines:\n  - {name: l, targets: []}\n",
        "lines[0].targets", ("expected a list of length >= 1",)),
    Bad("line-loss-order",
        AGENT + "lines:\n  - {name: l, loss_warning: 0.9, loss_critical: 0.5, "
                "targets: [{name: gw, host: 127.0.0.1}]}\n",
        "lines[0].loss_warning", ("at most loss_critical",)),
    Bad("trap-port-zero", AGENT + "traps: {port: 0}\n", "traps.port", ("expected int >= 1",)),
    Bad("ups-snmp-without-host", AGENT + "ups:\n  - name: u\n    snmp: {snmp: {community: c}}\n",
        "ups[0].snmp.host", ("missing, and it is required",)),
    Bad("collector-token-and-token-file",
        AGENT + "collector: {url: 'https://c.example', token: t, token_file: /etc/t}\n",
        "collector", ("exactly one of 'token' or 'token_file'",)),
    Bad("collector-url-not-http",
        AGENT + "collector: {url: 'ftp://c.example', token: t}\n",
        "collector.url", ("expected an http:// or https:// URL",)),
    Bad("duplicate-ups-names",
        AGENT + NUT_UPS + "  - name: rack\n    serial: {port: /dev/ttyUSB0}\n", "ups[1].name",
        ("duplicate UPS name 'rack'",)),
    Bad("duplicate-tcp-names",
        AGENT + "host:\n  tcp:\n    - {name: gw, host: a.example, port: 1}\n"
                "    - {name: gw, host: b.example, port: 2}\n",
        "host.tcp[1].name", ("duplicate name 'gw'",)),
    Bad("charge-critical-above-warning",
        AGENT + NUT_UPS + "    thresholds: {charge_warning: 0.3, charge_critical: 0.4}\n",
        "ups[0].thresholds.charge_critical", ("expected at most charge_warning",)),
    Bad("runtime-critical-above-warning",
        AGENT + NUT_UPS + "    thresholds: {runtime_critical: 900}\n",
        "ups[0].thresholds.runtime_critical", ("expected at most runtime_warning",)),
    Bad("disk-warning-above-critical",
        AGENT + "host:\n  disks: [{mount: /, warning: 0.99}]\n", "host.disks[0].warning",
        ("expected at most critical",)),
    Bad("bad-cmdline-regex",
        AGENT + "host:\n  processes:\n    - {name: corebank, cmdline: 'java (corebank'}\n",
        "host.processes[0].cmdline", ("expected a regular expression", "missing )")),
    Bad("process-spec-without-process-or-cmdline",
        AGENT + "host:\n  processes:\n    - {name: sshd, min_count: 1}\n", "host.processes[0]",
        ("expected exactly one of 'process' or 'cmdline'",)),
    Bad("process-spec-with-both",
        AGENT + "host:\n  processes:\n    - {name: sshd, process: sshd, cmdline: sshd}\n",
        "host.processes[0]", ("expected exactly one of 'process' or 'cmdline'",)),
]


def bad_file(case: Bad, tmp_path: Path) -> Path:
    """Put the case on disk; the name is the case id so messages are easy to read."""
    if case.kind == "missing":
        return tmp_path / "no-such-dir" / f"{case.id}.yaml"
    if case.kind == "directory":
        path = tmp_path / f"{case.id}.yaml"
        path.mkdir()
        return path
    path = tmp_path / f"{case.id}.yaml"
    if isinstance(case.text, bytes):
        path.write_bytes(case.text)
    else:
        path.write_text(case.text, encoding="utf-8")
    return path


def assert_one_line_error(done: subprocess.CompletedProcess, path: Path, case: Bad) -> str:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    line = lines[0]
    assert line.startswith(f"branchwatch: {path}: "), line
    if case.key is not None:
        # The key path is named whole, right after the file: "FILE: key.path: ..."
        assert line.startswith(f"branchwatch: {path}: {case.key}: "), line
    for words in case.says:
        assert words in line, line
    return line


def test_enough_bad_cases():
    assert len(BAD) >= 14
    assert len({c.id for c in BAD}) == len(BAD)


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_check_config_rejects_in_one_line(case: Bad, tmp_path: Path):
    path = bad_file(case, tmp_path)
    done = run_cli("check-config", str(path), cwd=tmp_path)
    assert_one_line_error(done, path, case)


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_agent_rejects_bad_config_with_the_same_line(case: Bad, tmp_path: Path):
    path = bad_file(case, tmp_path)
    checked = run_cli("check-config", str(path), cwd=tmp_path)
    done = run_cli("agent", "--config", str(path), "--once", cwd=tmp_path)
    line = assert_one_line_error(done, path, case)
    assert line == checked.stderr.strip()


def test_agent_without_once_rejects_bad_config(tmp_path: Path):
    """The long-running mode fails before binding anything or starting probes."""
    case = next(c for c in BAD if c.id == "port-70000")
    path = bad_file(case, tmp_path)
    done = run_cli("agent", "--config", str(path), cwd=tmp_path)
    assert_one_line_error(done, path, case)


def test_relative_path_is_named_as_given(tmp_path: Path):
    (tmp_path / "branch.yaml").write_text(AGENT + "nut_client: nut3\n")
    done = run_cli("check-config", "branch.yaml", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith("branchwatch: branch.yaml: nut_client: ")


def test_parse_names_its_source():
    with pytest.raises(ConfigError, match=r"^<embedded>: agent\.branch: missing"):
        parse("agent: {id: x}\n", "<embedded>")


# --------------------------------------------------------------------------
# Bugs found while writing these tests (fixed; the duplicate-key path is still open)


@pytest.mark.parametrize("text", [
    AGENT + "? [a, b]\n: 1\n",
    AGENT + "metrics:\n  ? {port: 1}\n  : 2\n",
], ids=["list-as-key", "mapping-as-key"])
def test_unhashable_yaml_key_is_a_config_error(text: str, tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(text)
    done = run_cli("check-config", str(path), cwd=tmp_path)
    assert_one_line_error(done, path, Bad("unhashable", text, None, ("not valid YAML",)))


def test_control_character_error_is_one_line(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT + "metrics: {address: \"127.0.0.1\x01\"}\n")
    done = run_cli("check-config", str(path), cwd=tmp_path)
    assert_one_line_error(done, path, Bad("control-char", "", None, ("not valid YAML",)))


@pytest.mark.parametrize("key,text", [
    ("host.tcp[0].timeout",
     "host:\n  tcp: [{name: gw, host: h.example, port: 1, timeout: .inf}]\n"),
    ("host.interval", "host: {interval: .inf}\n"),
], ids=["tcp-timeout-inf", "interval-inf"])
def test_infinite_seconds_are_rejected(key: str, text: str, tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT + text)
    done = run_cli("check-config", str(path), cwd=tmp_path)
    assert_one_line_error(done, path, Bad("inf", text, key, ()))


def test_non_string_key_names_its_place(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT + "metrics: {1: x}\n")
    done = run_cli("check-config", str(path), cwd=tmp_path)
    line = assert_one_line_error(done, path, Bad("int-key", "", None, ("expected str",)))
    assert line.startswith(f"branchwatch: {path}: metrics"), line
    assert "$" not in line and "(top level)" not in line


def test_duplicate_key_names_the_key_path(tmp_path: Path):
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT + "metrics:\n  port: 9811\n  port: 9812\n")
    done = run_cli("check-config", str(path), cwd=tmp_path)
    assert "metrics.port" in done.stderr
