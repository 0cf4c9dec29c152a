"""Issue 7 end to end: a real collector process, a real SMTP server (aiosmtpd), a real
HTTP receiver and a real prometheus-alertmanager, all on 127.0.0.1. Time moves by
the drill clock (BRANCHWATCH_CLOCK_OFFSET_FILE), never by sleeping for minutes.

- the timeline: the incident opens -> the execution group is told -> no ack ->
  the leadership group at minute 15 -> an ack through the signed link ->
  escalation stops (support, due at minute 30, never hears); grade III at 30 min
  is told; a reminder 15 min before the 60-min notice; the missed notice
  escalates to leadership;
- a webhook receiver that is down delays nothing else, and what waits for it goes
  out when it is back, even across a collector restart;
- an Alertmanager webhook opens (and on resolve clears) an incident, and the
  collector forwards its incidents to Alertmanager.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime, timedelta, timezone

from agent.wire import Batch, Event, encode, new_event_id
from collector.api import token_hash

from .support.collector import CollectorProcess
from .support.notify import Alertmanager, HttpSink, SmtpSink
from .test_collector_api import metric, request
from .test_delivery_e2e import wait_for
from .test_grading_e2e import MONDAY_0900, Drill

AGENT_TOKEN = "token-of-a1-notify-xxxxxxxxxxxx"
OPERATOR = "operator-notify-token-xxxxxxxxxxxx"
AM_TOKEN = "alertmanager-token-xxxxxxxxxxxxxx"
LINA, ZHANG, WANG = "lina@example.com", "zhangwei@example.com", "wang@example.com"


def notify_section(c: CollectorProcess, smtp: SmtpSink, webhook: str, forward: str = "") -> str:
    return f"""operators:
  - {{name: alice, roles: [leadership], token_sha256: {token_hash(OPERATOR)}}}
incidents: {{window: 120, deadman_grace: 86400}}
grading:
  tables: [cbrc]
  calendar: {{timezone: Asia/Shanghai, weekdays: [0, 1, 2, 3, 4], hours: ['08:30-17:00']}}
runbooks: {{auto_start: false}}
notify:
  email: "{smtp.url()}"
  ack_secret: "e2e-secret-0123456789"
  public_url: "{c.url}"
  people:
    - {{name: 李娜, roles: [execution], email: {LINA}, webhook: "{webhook}"}}
    - {{name: 张伟, roles: [leadership], email: {ZHANG}}}
    - {{name: wang, roles: [support], email: {WANG}}}
  routes:
    - {{name: serious, match: {{at_least: {{cbrc: III}}}}, notify: [execution, leadership]}}
    - name: any
      notify: [execution]
      escalate: [{{after: 15, roles: [leadership]}}, {{after: 30, roles: [support]}}]
  retry: {{first: 0.2, max: 1, timeout: 3}}
  alertmanager:
    forward: [{forward}]
    resend: 5
    receive: {{token_sha256: {token_hash(AM_TOKEN)}}}
"""


def collector(tmp_path, smtp, webhook, drill: Drill | None = None, forward: str = ""):
    env = {"BRANCHWATCH_CLOCK_OFFSET_FILE": str(drill.path)} if drill else {}
    c = CollectorProcess(tmp_path / "collector", {"a1": ("BR-0417", "north", AGENT_TOKEN)},
                         env=env)
    with c.config.open("a") as f:
        f.write(notify_section(c, smtp, webhook, forward))
    return c


def send(c, check: str, state: str, at: datetime) -> None:
    e = Event(id=new_event_id(), kind="state", agent="a1", branch="BR-0417", check=check,
              old_state=None, new_state=state, reason=f"{check} {state}: 核心系统不可达",
              observed_at=at)
    status, data = request(c.url + "/api/v1/events",
                           encode(Batch(agent="a1", branch="BR-0417", sent_at=at, events=[e])),
                           AGENT_TOKEN)
    assert status == 200, data


def incidents(c) -> list[dict]:
    status, data = request(c.url + "/api/v1/incidents", None, OPERATOR)
    assert status == 200, data
    return json.loads(data)["incidents"]


def audit(c, kind: str) -> list[tuple]:
    conn = sqlite3.connect(c.folder / "data" / "collector.db")
    try:
        return [(a, json.loads(d)) for a, d in conn.execute(
            "SELECT actor, data FROM audit WHERE kind = ? ORDER BY seq", (kind,))]
    finally:
        conn.close()


def rounds_on_the_new_clock(c, n: int = 2) -> None:
    """Wait for n more once-a-second rounds (escalations, reminders) to be done: the
    first may have started before the clock moved; the next saw it. Then their mail
    has been handed on (the SMTP sink is local: nothing of it is in flight)."""
    start = metric(c, "branchwatch_collector_deadman_rounds_total")
    wait_for(lambda: metric(c, "branchwatch_collector_deadman_rounds_total") >= start + n,
             what=f"{n} rounds of the once-a-second work")
    wait_for(lambda: metric(c, "branchwatch_collector_notifications_queued",
                            channel="email") in (None, 0.0), what="the mail queue to empty")


def text(m) -> str:
    return m.get_body(("plain", "html")).get_content().replace("\r\n", "\n")


def mails_with(smtp: SmtpSink, address: str, words: str, n: int = 1, timeout: float = 15):
    return wait_for(lambda: (lambda found: found if len(found) >= n else None)(
        [m for m in smtp.to(address) if words in text(m)]), timeout=timeout,
        what=f"{n} mail(s) to {address} saying {words!r}")


def test_timeline_escalation_ack_link_grade_reminder_and_missed_deadline(tmp_path):
    drill = Drill(tmp_path / "clock-offset")
    drill.set(MONDAY_0900)
    with SmtpSink() as smtp, HttpSink() as hook:
        c = collector(tmp_path, smtp, hook.url, drill)
        with c:
            t0 = drill.now()
            send(c, "tcp/core-banking", "critical", t0)
            [opened] = mails_with(smtp, LINA, "新事件")               # execution group
            [inc] = incidents(c)
            assert opened["subject"].startswith(f"{inc['id']} 未定级 ")
            wait_for(lambda: hook.bodies, what="the JSON webhook")
            assert hook.bodies[0][2]["incident"] == inc["id"]
            assert hook.bodies[0][2]["to"] == "李娜" and hook.bodies[0][2]["ack_url"]
            assert smtp.to(ZHANG) == [] and smtp.to(WANG) == []

            drill.set(MONDAY_0900 + timedelta(minutes=14, seconds=50))
            rounds_on_the_new_clock(c)
            assert smtp.to(ZHANG) == []                                # not before minute 15
            drill.set(MONDAY_0900 + timedelta(minutes=15, seconds=1))
            [escalated] = mails_with(smtp, ZHANG, "无人确认，已升级")    # leadership
            link = re.search(r"http://\S+/api/v1/ack/\S+", text(escalated))[0]
            assert "by=%E5%BC%A0%E4%BC%9F" in link                     # 张伟's own link

            # GET only shows the page (mail scanners fetch links); POST acknowledges.
            status, page = request(link)
            assert status == 200 and b"<form method=\"post\">" in page
            # No console session, no language cookie: Chinese first, then English.
            said = page.decode()
            assert "以 张伟 的身份确认收到" in said and "状态：处置中" in said
            assert said.index("确认收到") < said.index("Acknowledge as 张伟")
            assert incidents(c)[0]["acks"] == []
            bad = link.replace("by=%E5%BC%A0%E4%BC%9F", "by=wang")
            assert request(bad, b"", method="POST")[0] == 403
            status, page = request(link, b"", method="POST")
            assert status == 200 and "张伟 已确认收到" in page.decode()
            [ack] = incidents(c)[0]["acks"]
            assert ack["who"] == "张伟"
            [(actor, data)] = audit(c, "incident.acknowledged")
            assert actor == "张伟" and "link" in data["detail"]

            # Minute 31: grade III is told; support (due at 30) never is: acknowledged.
            drill.set(MONDAY_0900 + timedelta(minutes=31))
            graded = mails_with(smtp, ZHANG, "III 较大")
            assert graded[0]["subject"].startswith(f"{inc['id']} III 较大")
            mails_with(smtp, LINA, "III 较大")

            drill.set(MONDAY_0900 + timedelta(minutes=45, seconds=1))
            [reminder] = mails_with(smtp, LINA, "报告时限提醒")
            assert "regulator-notice" in text(reminder)

            drill.set(MONDAY_0900 + timedelta(minutes=61))
            mails_with(smtp, ZHANG, "报告时限已过")                     # escalated to leadership
            rounds_on_the_new_clock(c)
            assert smtp.to(WANG) == []
            assert len(mails_with(smtp, ZHANG, "报告时限提醒")) == 1      # reminded once
            sent = audit(c, "notify.sent")
            assert {d["to"] for _, d in sent} == {"李娜", "张伟"}
            assert "escalation" in [d["reason"] for _, d in audit(c, "notify.queued")]


def test_a_down_webhook_delays_nothing_and_its_message_goes_out_when_back(tmp_path):
    hook = HttpSink()                        # down
    with SmtpSink() as smtp:
        c = collector(tmp_path, smtp, hook.url)
        try:
            c.start()
            t0 = time.monotonic()
            send(c, "tcp/core-banking", "critical", datetime.now(timezone.utc))
            [m] = mails_with(smtp, LINA, "新事件")
            assert m.at - t0 < 3.0, "the mail waited for the webhook"
            wait_for(lambda: metric(c, "branchwatch_collector_notify_channels_failing",
                                    channel="webhook") == 1, what="the webhook reported down")
            [failed, *_] = wait_for(lambda: [d for _, d in audit(c, "notify.failed")],
                                    what="notify.failed in the audit trail")
            assert failed["channel"] == "webhook" and failed["retrying"]
            c.stop()                         # queued on the incident: survives a restart
            c.start()
            hook.up()
            wait_for(lambda: hook.bodies, what="the queued webhook after the restart")
            assert len(hook.bodies) == 1 and hook.bodies[0][2]["reason"] == "opened"
            wait_for(lambda: [d for _, d in audit(c, "notify.sent")
                              if d["channel"] == "webhook"], what="notify.sent for the webhook")
            [inc] = incidents(c)
            statuses = {(d["to"], d["channel"]): d["status"]
                        for d in inc["notify"]["deliveries"]}
            assert statuses == {("李娜", "email"): "sent", ("李娜", "webhook"): "sent"}
            assert len(smtp.to(LINA)) == 1   # the mail was not sent twice
        finally:
            hook.down()
            if c.proc is not None and c.proc.poll() is None:
                c.stop()


def am_hook(status: str, starts: datetime, ends: datetime | None = None) -> dict:
    return {"version": "4", "status": status, "receiver": "branchwatch", "alerts": [
        {"status": status, "labels": {"alertname": "CoreDown", "branch": "BR-0417",
                                      "severity": "critical"},
         "annotations": {"summary": "core banking unreachable"},
         "startsAt": starts.isoformat(), "endsAt": (ends or starts).isoformat(),
         "fingerprint": "abc"}]}


def test_an_alertmanager_webhook_opens_and_clears_an_incident(tmp_path):
    with SmtpSink() as smtp, HttpSink() as hook:
        with collector(tmp_path, smtp, hook.url) as c:
            url = c.url + "/api/v1/alertmanager"
            body = json.dumps(am_hook("firing", datetime.now(timezone.utc))).encode()
            assert request(url, body, "wrong-token")[0] == 401
            assert request(url, b"{}", AM_TOKEN)[0] == 400
            status, data = request(url, body, AM_TOKEN)
            assert status == 200 and json.loads(data)["accepted"] == 1
            assert json.loads(request(url, body, AM_TOKEN)[1])["duplicates"] == 1
            [inc] = incidents(c)
            assert inc["status"] == "open" and inc["faults"][0]["check"] == "alertmanager/CoreDown"
            mails_with(smtp, LINA, "core banking unreachable")
            resolved = am_hook("resolved", datetime.now(timezone.utc) - timedelta(seconds=5),
                               datetime.now(timezone.utc))
            assert request(url, json.dumps(resolved).encode(), AM_TOKEN)[0] == 200
            assert incidents(c)[0]["status"] == "resolved"


def test_through_a_real_alertmanager_both_ways(tmp_path):
    with SmtpSink() as smtp, HttpSink() as hook:
        c = collector(tmp_path, smtp, hook.url)
        am = Alertmanager(tmp_path / "am", webhook=c.url + "/api/v1/alertmanager",
                          token=AM_TOKEN)
        c.config.write_text(c.config.read_text().replace("forward: []",
                                                         f"forward: ['{am.url}']"))
        with am, c:
            # Prometheus -> Alertmanager -> the collector's webhook: an incident opens.
            am.post([{"labels": {"alertname": "UplinkDown", "branch": "BR-0417",
                                 "severity": "critical", "instance": "sw1"},
                      "annotations": {"summary": "uplink down"}}])
            [inc] = wait_for(lambda: incidents(c), what="the incident from Alertmanager's webhook")
            assert inc["faults"][0]["check"] == "alertmanager/UplinkDown/sw1"
            # ... and the collector forwards its incident to Alertmanager.
            [fwd] = wait_for(lambda: am.alerts(alertname="BranchwatchIncident"),
                             what="the forwarded incident in Alertmanager")
            assert fwd["labels"]["incident"] == inc["id"]
            assert fwd["annotations"]["summary"].startswith(inc["id"])
            # Resolved at Prometheus: the incident clears, and so does the forward.
            now = datetime.now(timezone.utc)
            am.post([{"labels": {"alertname": "UplinkDown", "branch": "BR-0417",
                                 "severity": "critical", "instance": "sw1"},
                      "annotations": {"summary": "uplink down"},
                      "startsAt": (now - timedelta(seconds=30)).isoformat(),
                      "endsAt": now.isoformat()}])
            wait_for(lambda: incidents(c)[0]["status"] == "resolved", timeout=20,
                     what="the incident resolved by Alertmanager's resolved webhook")
            wait_for(lambda: am.alerts(alertname="BranchwatchIncident") == [], timeout=20,
                     what="the forwarded incident resolved in Alertmanager")

