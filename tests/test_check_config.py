"""Bad configs through the real commands: `branchwatch
check-config` (agent and collector configs, every error of a file, --json) and
the services' own start (`agent`, `collector`): exit 2 and one line per error
naming the file, the key and what was expected; never a traceback."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from .support.paths import REPO

AGENT = "agent: {id: br-0001-srv01, branch: BR-0001}\n"


def run(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})


def errors(done: subprocess.CompletedProcess, path: Path) -> list[str]:
    """The error lines, checked to be well formed: exit 2, no traceback, each line
    'branchwatch: FILE: ...'."""
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines and all(l.startswith(f"branchwatch: {path}: ") for l in lines), lines
    return [l.removeprefix(f"branchwatch: {path}: ") for l in lines]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_every_error_of_a_file_is_reported(tmp_path):
    path = write(tmp_path, "agent.yaml", AGENT + """metrics: {port: 70000, bogus: 1}
ups:
  - {name: rack, nut: {ups: x, prot: 1}}
  - {name: "r 2", serial: {port: /dev/ttyS0}}
host: {interval: -1}
switches:
  - {name: sw, host: h, snmp: {version: 3, user: u}}
""")
    found = errors(run("check-config", str(path), cwd=tmp_path), path)
    keys = [l.split(": ", 1)[0] for l in found]
    assert keys == ["metrics.port", "metrics.bogus", "ups[0].nut.prot", "ups[1].name",
                    "host.interval", "switches[0].snmp.version"], found
    out = run("check-config", "--json", str(path), cwd=tmp_path)
    assert out.returncode == 2
    doc = json.loads(out.stdout)
    assert doc["kind"] == "agent" and doc["ok"] is False and doc["errors"] == found


def test_errors_after_a_removed_list_item_keep_the_files_numbering(tmp_path):
    path = write(tmp_path, "agent.yaml", AGENT + """host:
  tcp:
    - {name: a, port: 1}
    - {name: b, host: h, port: 2}
    - {name: c, host: h, port: 99999}
""")
    found = errors(run("check-config", str(path), cwd=tmp_path), path)
    assert [l.split(": ", 1)[0] for l in found] == ["host.tcp[0].host", "host.tcp[2].port"]


def test_a_good_collector_config_is_told_by_its_content(tmp_path):
    path = write(tmp_path, "c.yaml", f"listen: {{port: 0}}\nstorage: {{data_dir: {tmp_path / 'd'}}}\n")
    done = run("check-config", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{path}: ok (collector: ")
    doc = json.loads(run("check-config", "--json", str(path), cwd=tmp_path).stdout)
    assert doc == {"file": str(path), "kind": "collector", "ok": True, "errors": [],
                   "summary": doc["summary"]}


def test_collector_flag_reads_a_file_as_a_collector_config(tmp_path):
    path = write(tmp_path, "c.yaml", AGENT)
    found = errors(run("check-config", "--collector", str(path), cwd=tmp_path), path)
    from collector.config import Config as CollectorConfig
    assert found == ["agent: unknown key (expected one of: "
                     + ", ".join(CollectorConfig.__struct_fields__) + ")"]


@pytest.mark.parametrize("text, says", [
    ("", "expected a mapping of settings at the top level, got an empty file"),
    ("# only a comment\n", "got an empty file"),
    ("foo: 1\nbar: 2\n", "expected an agent config (with agent:) or a collector config"),
], ids=["empty", "comment-only", "unknown"])
def test_empty_or_unknown_file_is_an_error(tmp_path, text, says):
    path = write(tmp_path, "x.yaml", text)
    assert says in errors(run("check-config", str(path), cwd=tmp_path), path)[0]
    # The collector refuses an empty config too (it used to start on every default).
    if text != "foo: 1\nbar: 2\n":
        found = errors(run("collector", "--config", str(path), cwd=tmp_path), path)
        assert found == ["expected a mapping of settings at the top level, got an empty file"]


@pytest.mark.parametrize("style", ["flow", "block"])
def test_yaml_nested_5000_deep_is_one_line(tmp_path, style):
    if style == "flow":
        text = AGENT + "host: " + "[" * 5000 + "]" * 5000 + "\n"
    else:
        text = AGENT + "host:\n" + "".join(" " * (i + 1) + f"k{i}:\n" for i in range(5000))
    path = write(tmp_path, "deep.yaml", text)
    for args in (("check-config", str(path)), ("agent", "--config", str(path), "--once"),
                 ("collector", "--config", str(path))):
        found = errors(run(*args, cwd=tmp_path), path)
        assert len(found) == 1 and "nested more than 64 levels deep" in found[0], found


def test_missing_token_and_password_files_are_named(tmp_path):
    path = write(tmp_path, "agent.yaml", AGENT + f"""collector:
  url: http://127.0.0.1:9
  token_file: {tmp_path / 'no-token'}
  spool: {{path: {tmp_path / 'spool.db'}}}
ups:
  - name: rack
    nut: {{ups: u, user: monitor, password_file: {tmp_path / 'no-password'}}}
""")
    want = [f"ups[0].nut.password_file: expected a readable file, {tmp_path / 'no-password'}: "
            f"No such file or directory",
            f"collector.token_file: expected a readable file, {tmp_path / 'no-token'}: "
            f"No such file or directory"]
    assert errors(run("check-config", str(path), cwd=tmp_path), path) == want
    # The agent itself says the same before it starts anything.
    assert errors(run("agent", "--config", str(path), cwd=tmp_path), path) == want
    # --no-files: the config alone is fine.
    assert run("check-config", "--no-files", str(path), cwd=tmp_path).returncode == 0


@pytest.mark.parametrize("where", ["a-file-as-folder", "spool-is-a-directory"])
def test_unusable_spool_path_is_named(tmp_path, where):
    (tmp_path / "token").write_text("t" * 32)
    (tmp_path / "plain").write_text("not a folder")
    (tmp_path / "dir.db").mkdir()
    spool = tmp_path / "plain" / "spool.db" if where == "a-file-as-folder" else tmp_path / "dir.db"
    path = write(tmp_path, "agent.yaml", AGENT + f"""collector:
  url: http://127.0.0.1:9
  token_file: {tmp_path / 'token'}
  spool: {{path: {spool}}}
""")
    found = errors(run("check-config", str(path), cwd=tmp_path), path)
    assert len(found) == 1 and found[0].startswith("collector.spool.path: expected a ")
    assert errors(run("agent", "--config", str(path), cwd=tmp_path), path) == found


def collector_yaml(tmp_path: Path, extra: str = "", port: int = 0) -> Path:
    return write(tmp_path, "collector.yaml",
                 f"listen: {{address: 127.0.0.1, port: {port}}}\n"
                 f"storage: {{data_dir: {tmp_path / 'data'}}}\n" + extra)


def test_collector_missing_tls_files_are_one_line_each(tmp_path):
    path = collector_yaml(tmp_path)
    path.write_text(path.read_text().replace(
        "port: 0}", f"port: 0, tls_cert: {tmp_path}/c.pem, tls_key: {tmp_path}/k.pem}}"))
    want = [f"listen.tls_cert: expected a readable file, {tmp_path}/c.pem: No such file or directory",
            f"listen.tls_key: expected a readable file, {tmp_path}/k.pem: No such file or directory"]
    assert errors(run("collector", "--config", str(path), cwd=tmp_path), path) == want
    assert errors(run("check-config", str(path), cwd=tmp_path), path) == want
    # Files that are there but are no certificate: one line too.
    (tmp_path / "c.pem").write_text("not a certificate")
    (tmp_path / "k.pem").write_text("not a key")
    found = errors(run("collector", "--config", str(path), cwd=tmp_path), path)
    assert len(found) == 1 and found[0].startswith("listen.tls_cert: expected a PEM certificate")


def test_collector_port_in_use_names_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = collector_yaml(tmp_path, port=port)
        found = errors(run("collector", "--config", str(path), cwd=tmp_path), path)
    assert found == [f"listen: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_collector_data_dir_pointing_at_a_file_is_named(tmp_path):
    (tmp_path / "data").write_text("a file, not a folder")
    path = collector_yaml(tmp_path)
    want = [f"storage.data_dir: expected a directory, {tmp_path / 'data'} is a file"]
    assert errors(run("collector", "--config", str(path), cwd=tmp_path), path) == want
    assert errors(run("check-config", str(path), cwd=tmp_path), path) == want


def test_collector_audit_key_problems_are_named(tmp_path):
    path = collector_yaml(tmp_path, f"audit: {{key_file: {tmp_path / 'audit.key'}}}\n")
    found = errors(run("collector", "--config", str(path), cwd=tmp_path), path)
    assert found == [f"audit.key_file: expected a readable key file, {tmp_path / 'audit.key'}: "
                     f"No such file or directory"]
    (tmp_path / "audit.key").write_text("short")
    found = errors(run("check-config", str(path), cwd=tmp_path), path)
    assert found[0].startswith("audit.key_file: expected at least 32 bytes of key")


def pg_yaml(tmp_path: Path, dsn_file: Path) -> Path:
    return write(tmp_path, "collector.yaml",
                 "listen: {address: 127.0.0.1, port: 0}\n"
                 f"storage: {{data_dir: {tmp_path / 'data'}, "
                 f"postgresql: {{dsn_file: {dsn_file}}}}}\n")


def test_collector_postgresql_dsn_file_problems_are_named(tmp_path):
    dsn = tmp_path / "dsn"
    path = pg_yaml(tmp_path, dsn)
    want = [f"storage.postgresql.dsn_file: expected a readable file holding a PostgreSQL "
            f"connection string, {dsn}: No such file or directory"]
    assert errors(run("check-config", str(path), cwd=tmp_path), path) == want
    assert errors(run("collector", "--config", str(path), cwd=tmp_path), path) == want
    dsn.write_text("\n")
    [line] = errors(run("check-config", str(path), cwd=tmp_path), path)
    assert line == (f"storage.postgresql.dsn_file: expected a PostgreSQL connection string "
                    f"(host=... dbname=... or postgresql://...), {dsn} is empty")
    dsn.write_text("host=127.0.0.1 password secret-word\n")      # no "=": libpq cannot read it
    done = run("check-config", str(path), cwd=tmp_path)
    [line] = errors(done, path)
    assert line.startswith("storage.postgresql.dsn_file: expected a PostgreSQL connection "
                           "string") and line.endswith("libpq cannot read it")
    assert "secret-word" not in done.stderr
    write(tmp_path, "bad.yaml", "storage: {postgresql: {dsn: x}}\n")
    assert errors(run("check-config", "--collector", str(tmp_path / "bad.yaml"),
                      cwd=tmp_path), tmp_path / "bad.yaml") == [
        "storage.postgresql.dsn: unknown key (expected one of: dsn_file, readers)",
        "storage.postgresql.dsn_file: missing, and it is required"]


def test_collector_on_a_postgresql_it_cannot_reach_is_one_line(tmp_path):
    with socket.socket() as closed:          # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    dsn = write(tmp_path, "dsn", f"host=127.0.0.1 port={port} dbname=bw user=bw "
                                 "password=do-not-print\n")
    path = pg_yaml(tmp_path, dsn)
    assert run("check-config", str(path), cwd=tmp_path).returncode == 0   # the file is fine
    done = run("collector", "--config", str(path), cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(f"branchwatch: collector: storage.postgresql: "
                           f"postgresql://127.0.0.1:{port}/bw: ")
    assert "refused" in line.lower() and "do-not-print" not in done.stderr


def test_agent_port_in_use_names_the_file_and_the_address(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = write(tmp_path, "agent.yaml",
                     AGENT + f"metrics: {{address: 127.0.0.1, port: {port}}}\n")
        found = errors(run("agent", "--config", str(path), cwd=tmp_path), path)
    assert found == [f"metrics: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_shipped_collector_example_passes(tmp_path):
    example = REPO / "config" / "collector.example.yaml"
    done = run("check-config", "--no-files", str(example), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{example}: ok (collector: ")


def test_secret_files_come_from_the_credentials_directory(tmp_path):
    """SNMP secrets in files, and systemd's copy of them read when it is passed."""
    from agent.config import load
    from agent.credentials import with_secrets
    installed = tmp_path / "etc" / "snmp.community"     # never created: root-only in real life
    path = write(tmp_path, "agent.yaml", AGENT + f"""switches:
  - name: sw
    host: 127.0.0.1
    snmp: {{version: 2c, community_file: {installed}}}
    interfaces: [{{name: Gi0/1}}]
""")
    found = errors(run("check-config", str(path), cwd=tmp_path), path)
    assert found == [f"switches[0].snmp.community_file: expected a readable file, {installed}: "
                     f"No such file or directory"]
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "branchwatch_snmp.community").write_text("s3cret-community\n")
    done = run("check-config", str(path), cwd=tmp_path, env={"CREDENTIALS_DIRECTORY": str(creds)})
    assert done.returncode == 0, done.stderr
    os.environ["CREDENTIALS_DIRECTORY"] = str(creds)
    try:
        snmp = with_secrets(load(path)).switches[0].snmp
    finally:
        del os.environ["CREDENTIALS_DIRECTORY"]
    assert (snmp.community, snmp.community_file) == ("s3cret-community", None)


def test_a_secret_inline_and_in_a_file_is_an_error(tmp_path):
    path = write(tmp_path, "agent.yaml", AGENT + """switches:
  - name: sw
    host: 127.0.0.1
    snmp: {version: 2c, community: public, community_file: /x}
    interfaces: [{name: Gi0/1}]
""")
    found = errors(run("check-config", "--no-files", str(path), cwd=tmp_path), path)
    assert found == ["switches[0].snmp: expected at most one of 'community' or 'community_file'"]
