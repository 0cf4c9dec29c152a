"""NUT instant commands as runbook action steps (issue 6), proven on real NUT.

The UPS is agent/sim's Megatec responder on a pseudo-terminal, read by NUT's
own nutdrv_qx driver behind a real upsd (dummy-ups has no instant commands).
`branchwatch ups-command` runs in a subprocess, as an operator or a runbook
would; the responder records every line the driver sends it, so each test
sees whether the command reached the UPS (Megatec `T\\r` = quick battery test,
`Q\\r` = beeper toggle) or nothing did.

A few edge cases that real upsd cannot be made to show (an upsd without
TRACKING, a driver that never answers, a silent or hanging-up server) run
against a scripted fake on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from agent.config import ConfigError, NutActions, NutTarget, parse
from agent.ups.instcmd import _quote, run_instcmd, ups_command

from .support.megatec_pty import MegatecUpsd
from .support.paths import REPO, free_port

ALLOWED = ["test.battery.start.quick", "beeper.toggle", "bypass.start"]


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    with MegatecUpsd(tmp_path_factory.mktemp("qx")) as r:
        yield r


def write_config(folder: Path, port: int, *, ups: str = "qx", user: str | None = "admin",
                 password: str | None = "adminpass", password_file: Path | None = None,
                 commands: list[str] = ALLOWED) -> Path:
    """An agent config with one NUT UPS `main` pointing at upsd on `port`."""
    nut = {"ups": ups, "host": "127.0.0.1", "port": port, "timeout": 3,
           "actions": {"commands": commands}}
    if user is not None:
        nut["user"] = user
    if password_file is not None:
        nut["password_file"] = str(password_file)
    elif password is not None:
        nut["password"] = password
    data = {"agent": {"id": "br-0001-srv01", "branch": "BR-0001"},
            "ups": [{"name": "main", "nut": nut}]}
    path = folder / f"agent-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def cli(config: Path, command: str, *, as_json: bool = True) -> subprocess.CompletedProcess:
    """`branchwatch ups-command --config FILE main COMMAND [--json]`, as a user runs it."""
    args = [sys.executable, "-m", "agent.cli", "ups-command", "--config", str(config),
            "main", command] + (["--json"] if as_json else [])
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=60)


def outcome(done: subprocess.CompletedProcess) -> dict:
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def assert_nothing_reached_the_ups(rig: MegatecUpsd, before: list[str]) -> None:
    """Nothing was sent, and nothing is on its way: a command run now arrives alone."""
    assert rig.commands() == before
    target = NutTarget(ups="qx", port=rig.port, user="admin", password="adminpass")
    barrier = asyncio.run(run_instcmd(target, "main", "beeper.toggle", {"beeper.toggle"}))
    assert barrier.outcome == "done", barrier.message
    assert rig.commands() == before + ["Q"]


# --------------------------------------------------------------------------
# Real upsd + nutdrv_qx + Megatec responder


@pytest.mark.parametrize("command, megatec", [("test.battery.start.quick", "T"),
                                              ("beeper.toggle", "Q")])
def test_command_reaches_the_ups(rig, tmp_path, command, megatec):
    secret = tmp_path / "upsd-password"
    secret.write_text("adminpass\n")   # as `echo adminpass > file` leaves it
    before = rig.commands()
    done = cli(write_config(tmp_path, rig.port, password_file=secret), command)
    result = outcome(done)
    assert done.returncode == 0, result
    assert (result["ok"], result["outcome"], result["reply"]) == (True, "done", "SUCCESS")
    assert (result["target"], result["command"]) == ("main", command)
    assert result["upsd"] == f"127.0.0.1:{rig.port}" and result["at"] > 0
    # tracking SUCCESS means the driver has already written it to the port.
    assert rig.commands() == before + [megatec]


def test_text_output_says_done_on_stdout(rig, tmp_path):
    before = rig.commands()
    done = cli(write_config(tmp_path, rig.port), "beeper.toggle", as_json=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("done: INSTCMD qx beeper.toggle: the driver carried it out")
    assert done.stderr == ""
    assert rig.commands() == before + ["Q"]


def test_unsupported_command_is_refused_with_upsd_list(rig, tmp_path):
    """bypass.start is allowed by the config but this UPS has no bypass."""
    before = rig.commands()
    done = cli(write_config(tmp_path, rig.port), "bypass.start")
    result = outcome(done)
    assert done.returncode == 1
    assert result["outcome"] == "refused"
    assert "does not support bypass.start on qx (CMD-NOT-SUPPORTED; LIST CMD qx: " \
           "beeper.toggle, " in result["message"]
    assert "test.battery.start.quick" in result["message"]
    assert_nothing_reached_the_ups(rig, before)


@pytest.mark.parametrize("user, password", [("viewer", "viewpass"), ("admin", "wrong")],
                         ids=["user-without-instcmds", "wrong-password"])
def test_upsd_access_denied_is_refused(rig, tmp_path, user, password):
    before = rig.commands()
    done = cli(write_config(tmp_path, rig.port, user=user, password=password), "beeper.toggle")
    result = outcome(done)
    assert done.returncode == 1
    assert (result["outcome"], result["reply"]) == ("refused", "ERR ACCESS-DENIED")
    assert result["message"].startswith(
        "upsd answered 'ERR ACCESS-DENIED' to INSTCMD qx beeper.toggle (does upsd.users give")
    assert_nothing_reached_the_ups(rig, before)


def test_unknown_ups_is_refused_with_upsd_words(rig, tmp_path):
    done = cli(write_config(tmp_path, rig.port, ups="nosuch"), "beeper.toggle")
    result = outcome(done)
    assert done.returncode == 1
    assert (result["outcome"], result["reply"]) == ("refused", "ERR UNKNOWN-UPS")
    assert "to LIST CMD nosuch" in result["message"]


def test_command_not_in_allow_list_is_never_sent(rig, tmp_path):
    """load.off is supported by the UPS, but nobody pre-authorised it."""
    before = rig.commands()
    done = cli(write_config(tmp_path, rig.port), "load.off", as_json=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "not_allowed: 'load.off' is not allowed on UPS main "
        "(list it under ups[].nut.actions.commands)"]
    assert_nothing_reached_the_ups(rig, before)


def test_ups_rejecting_the_command_is_failed(rig, tmp_path):
    """The UPS echoes a command it does not take: nutdrv_qx reports FAILED,
    and upsd's tracking carries that back (the action's read-back)."""
    rig.responder.echo_unknown = True
    try:
        done = cli(write_config(tmp_path, rig.port), "test.battery.start.quick")
    finally:
        rig.responder.echo_unknown = False
    result = outcome(done)
    assert done.returncode == 1
    assert (result["outcome"], result["reply"]) == ("failed", "ERR FAILED")
    assert "the driver could not get the UPS to accept it" in result["message"]


def test_upsd_down_is_failed_in_one_line(tmp_path):
    port = free_port()   # nothing listens there
    done = cli(write_config(tmp_path, port), "beeper.toggle", as_json=False)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        f"failed: upsd at 127.0.0.1:{port} refused the connection (is upsd running?)"]


# --------------------------------------------------------------------------
# Without upsd: pre-authorisation, config lookup, local errors


def target(port: int, **kw) -> NutTarget:
    kw.setdefault("user", "admin")
    kw.setdefault("password", "adminpass")
    return NutTarget(ups="qx", port=port, timeout=0.5, **kw)


def test_not_allowed_never_even_connects():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.2)
        result = asyncio.run(run_instcmd(target(server.getsockname()[1]), "main", "load.off",
                                         {"beeper.toggle"}))
        assert (result.ok, result.outcome, result.upsd) == (False, "not_allowed", None)
        with pytest.raises(socket.timeout):
            server.accept()


@pytest.mark.parametrize("ups_yaml, why", [
    ("  - name: other\n    nut: {ups: qx, user: a, actions: {commands: [beeper.toggle]}}\n",
     "no UPS named 'main' in the config"),
    ("  - name: main\n    serial: {port: /dev/ttyUSB0}\n",
     "UPS 'main' is not read through NUT"),
    ("  - name: main\n    nut: {ups: qx}\n",
     "'beeper.toggle' is not allowed on UPS main"),
], ids=["no-such-ups", "serial-ups", "no-actions"])
def test_config_lookup_is_not_allowed(ups_yaml, why):
    config = parse("agent: {id: a, branch: B}\nups:\n" + ups_yaml)
    result = asyncio.run(ups_command(config, "main", "beeper.toggle", clock=lambda: 42.0))
    assert (result.outcome, result.at) == ("not_allowed", 42.0)
    assert why in result.message


def test_unreadable_password_file_is_failed(tmp_path):
    missing = tmp_path / "nope"
    result = asyncio.run(run_instcmd(target(1, password=None, password_file=str(missing)),
                                     "main", "beeper.toggle", {"beeper.toggle"}))
    assert result.outcome == "failed"
    assert result.message == f"cannot read nut.password_file {missing}: No such file or directory"


def test_arguments_with_spaces_are_quoted():
    assert _quote("adminpass") == "adminpass"
    assert _quote('pa ss"\\') == '"pa ss\\"\\\\"'


class ScriptedUpsd:
    """A fake upsd answering each request line from a script ({} = silence)."""

    def __init__(self, script: dict[str, list[str]], hang_up_on: str | None = None):
        self.script, self.hang_up_on, self.heard = script, hang_up_on, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        conn, _ = self.server.accept()
        # A client that gives up (as some tests make it) may reset the connection.
        with conn, conn.makefile("rwb") as f, contextlib.suppress(ConnectionResetError):
            for raw in f:
                line = raw.decode().strip()
                self.heard.append(line)
                if line == self.hang_up_on:
                    return
                key = next((k for k in self.script if line.startswith(k)), None)
                if key is None:
                    continue   # silence: the client must time out
                f.write("".join(r + "\n" for r in self.script[key]).encode())
                f.flush()

    def close(self):
        self.server.close()


BASE = {"USERNAME": ["OK"], "PASSWORD": ["OK"], "LOGOUT": ["OK Goodbye"],
        "LIST CMD qx": ["BEGIN LIST CMD qx", "CMD qx beeper.toggle", "END LIST CMD qx"]}


@pytest.mark.parametrize("script, hang_up_on, want", [
    # NUT before 2.8: no tracking, upsd's OK is the only word there is.
    ({"SET TRACKING": ["ERR UNKNOWN-COMMAND"], "INSTCMD": ["OK"]}, None,
     ("done", "OK", "cannot report the driver's result")),
    ({"SET TRACKING": ["OK"], "INSTCMD": ["OK TRACKING abc"], "GET TRACKING abc": ["PENDING"]},
     None, ("unconfirmed", "PENDING", "gave no result within 0.3 s")),
    ({"SET TRACKING": ["OK"], "INSTCMD": ["ERR DRIVER-NOT-CONNECTED"]}, None,
     ("failed", "ERR DRIVER-NOT-CONNECTED", "driver is not running")),
    ({"SET TRACKING": ["OK"]}, None, ("failed", None, "did not answer in time")),
    ({"SET TRACKING": ["OK"]}, "INSTCMD qx beeper.toggle",
     ("failed", None, "closed the connection")),
    ({"LIST CMD qx": ["what?"]}, None, ("failed", None, "sent something unexpected: 'what?'")),
], ids=["no-tracking", "pending", "driver-gone", "silent", "hang-up", "garbage"])
def test_edge_replies_become_outcomes(script, hang_up_on, want):
    fake = ScriptedUpsd({**BASE, **script}, hang_up_on)
    try:
        result = asyncio.run(run_instcmd(target(fake.port), "main", "beeper.toggle",
                                         {"beeper.toggle"}, wait=0.3))
    finally:
        fake.close()
    assert (result.outcome, result.reply) == want[:2], result.message
    assert want[2] in result.message
    assert "\n" not in result.message
    assert fake.heard[:2] == ["USERNAME admin", "PASSWORD adminpass"]


def test_password_file_with_two_lines_is_failed_without_showing_it(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("first\nsecond-secret\n")
    fake = ScriptedUpsd(BASE)
    try:
        t = target(fake.port, password=None, password_file=str(secret))
        result = asyncio.run(run_instcmd(t, "main", "beeper.toggle", {"beeper.toggle"}))
    finally:
        fake.close()
    assert result.outcome == "failed"
    assert result.message == "refusing to send PASSWORD to upsd: its argument has a line break"
    assert "secret" not in result.message and "first" not in result.message


# --------------------------------------------------------------------------
# Config keys


AGENT = "agent: {id: a, branch: B}\nups:\n  - name: main\n    nut: "


@pytest.mark.parametrize("nut, key, says", [
    ("{ups: qx, user: u, password: p, password_file: /f}", "ups[0].nut",
     "at most one of 'password' or 'password_file'"),
    ("{ups: qx, actions: {commands: [beeper.toggle]}}", "ups[0].nut.actions", "expected nut.user"),
    ("{ups: qx, user: u, actions: {commands: ['beeper.toggle; load.off']}}",
     "ups[0].nut.actions.commands[0]", "expected str matching"),
    ("{ups: qx, user: u, actions: {}}", "ups[0].nut.actions", "commands"),
    ("{ups: qx, user: \"u\\nINSTCMD qx load.off\"}", "ups[0].nut.user", "no line breaks"),
], ids=["password-twice", "actions-without-user", "bad-command-name", "no-commands",
        "user-with-newline"])
def test_bad_nut_action_config_names_the_key(nut, key, says):
    with pytest.raises(ConfigError) as e:
        parse(AGENT + nut + "\n", "agent.yaml")
    assert str(e.value).startswith(f"agent.yaml: {key}"), str(e.value)
    assert says in str(e.value)


def test_example_config_allows_commands():
    from agent.config import load
    nut = load(REPO / "config" / "agent.example.yaml").ups[0].nut
    assert nut.actions == NutActions(commands=["test.battery.start.quick", "beeper.toggle"])
    assert nut.user and nut.password

