"""systemd's watchdog: a real agent process pings WATCHDOG=1 over a real unix
datagram socket (as systemd's $NOTIFY_SOCKET), and the rules for when it
must stay quiet (a stalled loop) are held to the truth."""

from __future__ import annotations

import os
import socket

from agent.watchdog import Progress, Watchdog, sd_notify, watchdog_period

from .support.agent import AgentProcess


def listener(path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(20)
    return s


def test_watchdog_period_is_half_of_watchdogsec_and_only_for_its_pid():
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "120000000"}
    assert watchdog_period(env) == 60.0
    assert watchdog_period({**env, "WATCHDOG_PID": str(os.getpid())}) == 60.0
    assert watchdog_period({**env, "WATCHDOG_PID": "1"}) is None     # meant for another
    assert watchdog_period({"WATCHDOG_USEC": "120000000"}) is None   # no socket
    assert watchdog_period({**env, "WATCHDOG_USEC": "x"}) is None


def test_no_ping_while_a_loop_is_stalled(tmp_path):
    sock = listener(tmp_path / "notify")
    age = {"probe ups/main": 5.0, "sender": None}
    progress = Progress()
    progress.watch("probe ups/main", lambda: age["probe ups/main"], 40)
    progress.watch("sender", lambda: age["sender"], 100)
    dog = Watchdog(progress, {"NOTIFY_SOCKET": str(tmp_path / "notify"),
                              "WATCHDOG_USEC": "2000000"})
    assert dog.period == 1.0
    assert dog.tick() and sock.recv(64) == b"WATCHDOG=1"
    age["probe ups/main"] = 41.0
    assert progress.stalled() == ["probe ups/main (no turn for 41 s)"]
    assert not dog.tick() and dog.pings == 1
    age["probe ups/main"], age["sender"] = 1.0, 5.0
    assert dog.tick() and dog.pings == 2 and sock.recv(64) == b"WATCHDOG=1"
    sock.close()


def test_sd_notify_without_a_socket_is_a_no_op():
    assert sd_notify("WATCHDOG=1", {}) is False


def test_a_running_agent_pings_the_watchdog(tmp_path, monkeypatch):
    sock = listener(tmp_path / "notify")
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")        # WatchdogSec=1s: pings every 0.5 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    config = {"agent": {"id": "a1", "branch": "B1"},
              "host": {"memory": {}}}
    (tmp_path / "a").mkdir()
    with AgentProcess(tmp_path / "a", config):
        got = [sock.recv(64) for _ in range(3)]
    assert got == [b"WATCHDOG=1"] * 3
    sock.close()
