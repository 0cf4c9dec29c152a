"""The `notify:` config section (one-line errors naming the key), signed ack links,
and Alertmanager's webhook mapped to events (issue 7)."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from collector.config import ConfigError, load, parse
from collector.notify import intake
from collector.notify.settings import Receive
from collector.notify.signing import ack_url, read_secret, signature, valid

from .support.paths import REPO

BASE = """notify:
  email: "mailto://smtp.example:25?from=bw@example.com"
  people:
    - {name: 李娜, roles: [execution], email: lina@example.com}
    - {name: zhang, roles: [leadership], wecom: "wecombot://abcdefghijklmnopqrstuvwxyz"}
"""


def error(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(text, "c.yaml")
    assert "\n" not in str(e.value)
    return str(e.value)


def test_example_config_documents_a_working_notify_section():
    c = load(REPO / "config" / "collector.example.yaml")
    n = c.notify
    assert n.people and n.routes and n.groups and n.alertmanager.forward
    assert {r for p in n.people for r in p.roles} >= {"leadership", "execution", "support"}
    assert n.alertmanager.receive is not None and n.deadlines.remind_before == 15


def test_a_minimal_section_and_defaults():
    n = parse(BASE + "  routes: [{name: all, notify: [execution]}]\n").notify
    assert n.min_state == "critical" and n.deadlines.missed == ["leadership"]
    assert n.people[1].channels() == [("wecom", "wecombot://abcdefghijklmnopqrstuvwxyz")]
    assert parse("").notify.configured() is False


@pytest.mark.parametrize("extra, where, what", [
    ("  routes: [{name: r, notify: [support]}]\n", "notify.routes[0].notify",
     "role 'support' has nobody"),
    ("  routes: [{name: r, notify: [execution], escalate: [{after: 30, roles: [leadership]},"
     " {after: 15, roles: [leadership]}]}]\n", "notify.routes[0].escalate", "grow"),
    ("  routes: [{name: r, match: {at_least: {cbrc: IV}}, notify: [execution]}]\n",
     "notify.routes[0].match.at_least.cbrc", "cbrc has no grade 'IV'; it has: I, II, III"),
    ("  routes: [{name: r, match: {at_least: {hospital: '2'}}, notify: [execution]}]\n",
     "notify.routes[0].match.at_least.hospital", "no grading table 'hospital' in use"),
    ("  routes: [{name: r, notify: [execution]}, {name: r, notify: [execution]}]\n",
     "notify.routes[1].name", "duplicate route"),
    ("  ack_secret: 0123456789abcdef0\n", "notify.public_url", "acknowledgement links"),
    ("  ack_secret: 0123456789abcdef0\n  ack_secret_file: /x\n  public_url: http://a\n",
     "notify", "at most one of ack_secret and ack_secret_file"),
    ("  silences: [{starts: 2026-01-02T00:00:00Z, ends: 2026-01-01T00:00:00Z, why: x}]\n",
     "notify.silences[0]", "ends after starts"),
    ("  maintenance: [{name: m, when: {hours: ['25:00-26:00']}}]\n",
     "notify.maintenance[0].when.hours[0]", "HH:MM-HH:MM"),
    ("  alertmanager: {forward: [am:9093]}\n", "notify.alertmanager.forward[0]", "http(s)"),
    ("  timezone: Mars/Base\n", "notify.timezone", "IANA"),
    ("  deadlines: {missed: [board]}\n", "notify.deadlines.missed", "role 'board' has nobody"),
    ("  groups: {execution: {dingtalk: 'nonsense://x'}}\n", "notify.groups.execution.dingtalk",
     "Apprise does not know the URL 'nonsense://...'"),
])
def test_one_line_errors_name_the_key(extra, where, what):
    text = error(BASE + extra)
    assert f"c.yaml: {where}: " in text and what in text, text


def test_email_contact_needs_the_smtp_server_and_unknown_keys_are_refused():
    text = error("notify:\n  people: [{name: a, roles: [leadership, execution], "
                 "email: a@example.com}]\n")
    assert "notify.people[0].email: expected notify.email" in text
    assert "unknown" in error(BASE + "  paging: true\n")
    assert "notify.people[0]: expected at least one contact" in error(
        "notify:\n  people: [{name: a, roles: [leadership, execution]}]\n")


def test_signed_links_hold_for_one_incident_and_one_person(tmp_path):
    secret = b"0123456789abcdef-secret"
    sig = signature(secret, "INC-1", "李娜")
    assert valid(secret, "INC-1", "李娜", sig)
    assert not valid(secret, "INC-2", "李娜", sig)
    assert not valid(secret, "INC-1", "zhang", sig)
    assert not valid(b"another-secret-of-16", "INC-1", "李娜", sig)
    assert not valid(secret, "INC-1", "李娜", sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    url = ack_url("https://c.example/", secret, "INC-1", "李娜")
    assert url == f"https://c.example/api/v1/ack/INC-1/{sig}?by=%E6%9D%8E%E5%A8%9C"
    f = tmp_path / "secret"
    f.write_text("file-secret-0123456789\n")
    assert read_secret(None, str(f)) == b"file-secret-0123456789"
    f.write_text("short\n")
    with pytest.raises(ValueError):
        read_secret(None, str(f))


HOOK = {"version": "4", "status": "firing", "receiver": "branchwatch", "groupKey": "{}:{}",
        "alerts": [
            {"status": "firing", "labels": {"alertname": "CoreDown", "branch": "BR-1",
                                            "instance": "core:443", "severity": "critical"},
             "annotations": {"summary": "核心系统不可达"}, "startsAt": "2026-12-07T01:00:00Z",
             "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f1"},
            {"status": "firing", "labels": {"alertname": "Slow", "branch": "BR-2",
                                            "severity": "warning",
                                            "branchwatch_check": "tcp/core-banking"},
             "startsAt": "2026-12-07T01:00:00Z", "fingerprint": "f2"},
            {"status": "firing", "labels": {"alertname": "NoBranch"},
             "startsAt": "2026-12-07T01:00:00Z"},
            {"status": "firing", "labels": {"alertname": "Info", "branch": "BR-1",
                                            "severity": "info"},
             "startsAt": "2026-12-07T01:00:00Z"},
            {"status": "resolved", "labels": {"alertname": "Gone", "branch": "BR-1"},
             "startsAt": "2026-12-07T00:00:00Z", "endsAt": "2026-12-07T00:30:00Z",
             "fingerprint": "f3"},
        ]}


def test_alertmanager_webhook_alerts_become_events():
    receive = Receive(token_sha256="0" * 64)
    by_branch, ignored = intake.events_from(intake.decode(json.dumps(HOOK).encode()), receive)
    core, gone = by_branch["BR-1"]
    assert (core.agent, core.check, core.new_state) == (
        "alertmanager", "alertmanager/CoreDown/core:443", "critical")
    assert "核心系统不可达" in core.reason
    assert core.observed_at == datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc)
    [slow] = by_branch["BR-2"]
    assert (slow.check, slow.new_state) == ("tcp/core-banking", "warning")
    assert (gone.new_state, gone.observed_at.minute) == ("ok", 30)
    assert len(ignored) == 2 and "no 'branch' label" in ignored[0] and "info" in ignored[1]
    again, _ = intake.events_from(intake.decode(json.dumps(HOOK).encode()), receive)
    assert again["BR-1"][0].id == core.id              # Alertmanager's repeat: one event
    with_default, ignored = intake.events_from(
        intake.decode(json.dumps(HOOK).encode()), Receive(token_sha256="0" * 64,
                                                          default_branch="HQ"))
    assert [e.check for e in with_default["HQ"]] == ["alertmanager/NoBranch"]
