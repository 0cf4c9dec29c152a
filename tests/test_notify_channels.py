"""Channels against real receivers on 127.0.0.1 (issue 7, "Proof"): Apprise mail to a
real SMTP server (aiosmtpd) with Chinese intact, the JSON webhook to a real HTTP
receiver, forwarding to a real prometheus-alertmanager; and the dispatcher: a
channel that is down holds only its own messages, which go out when it is back.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

import pytest
from prometheus_client import CollectorRegistry

from collector.incident_grades import GradeRecord
from collector.incidents import Incident
from collector.notify.channels import Channels, NotifyError
from collector.notify.dispatch import DispatchMetrics, Dispatcher
from collector.notify.pipeline import Outgoing, forward
from collector.notify.routing import Rules
from collector.notify.settings import Alertmanager as AmSettings
from collector.notify.settings import Notify
from collector.notify.state import NotifyState

from .support.notify import Alertmanager, HttpSink, SmtpSink

SUBJECT = "INC-20261207-abc123 III 较大 核心系统不可达"
TEXT = "INC-20261207-abc123 III 较大 核心系统不可达\n新事件：网点 BR-0417 核心系统不可达"


def mail(address: str, n: int = 1) -> Outgoing:
    return Outgoing("INC-1", f"M{n}/李娜/email", "李娜", "email", address, SUBJECT, TEXT)


def hook(url: str, n: int) -> Outgoing:
    return Outgoing("INC-1", f"M{n}/李娜/webhook", "李娜", "webhook", url, SUBJECT, TEXT,
                    {"incident": "INC-1", "n": n, "text": TEXT})


def test_apprise_mail_reaches_a_real_smtp_server_with_chinese_intact():
    with SmtpSink() as smtp:
        asyncio.run(Channels(smtp.url(), 10).send(mail("lina@example.com")))
        [m] = smtp.mails
    assert m.rcpt == ["lina@example.com"]
    assert m["subject"] == SUBJECT
    assert m.get_body(("plain", "html")).get_content().replace("\r\n", "\n").strip() == TEXT
    assert m["from"].addresses[0].addr_spec == "branchwatch@example.com"


def test_json_webhook_reaches_a_real_http_receiver():
    with HttpSink() as sink:
        asyncio.run(_send_and_close(Channels(None, 5), hook(sink.url, 7)))
        [(_, path, body)] = sink.bodies
    key = "notify:INC-1:M7/%E6%9D%8E%E5%A8%9C/webhook"        # ASCII: it is a header
    assert path == "/hook" and body == {"incident": "INC-1", "n": 7, "text": TEXT,
                                        "idempotency_key": key}
    assert sink.keys == [key]


async def _send_and_close(channels: Channels, item: Outgoing) -> None:
    try:
        await channels.send(item)
    finally:
        await channels.close()


@pytest.mark.parametrize("status, retry", [(400, False), (404, False), (429, True),
                                           (503, True)])
def test_a_notifier_says_whether_its_error_is_worth_retrying(status, retry):
    with HttpSink(status=status) as sink:
        with pytest.raises(NotifyError) as e:
            asyncio.run(_send_and_close(Channels(None, 5), hook(sink.url, 1)))
    assert e.value.retry is retry and f"HTTP {status}" in str(e.value)


def test_unreachable_receivers_and_smtp_servers_are_retried():
    down = HttpSink()          # never started
    with pytest.raises(NotifyError) as e:
        asyncio.run(_send_and_close(Channels(None, 5), hook(down.url, 1)))
    assert e.value.retry
    smtp = SmtpSink()          # not started
    with pytest.raises(NotifyError) as e:
        asyncio.run(Channels(smtp.url(), 5).send(mail("a@example.com")))
    assert e.value.retry and "127.0.0.1" in str(e.value)


def test_forwarded_incidents_reach_a_real_alertmanager(tmp_path):
    started = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=5)
    inc = Incident("INC-20261207-fwd001", "BR-0417", "power outage", started)
    inc.notify = NotifyState()
    with Alertmanager(tmp_path / "am") as am:
        rules = Rules.build(Notify(alertmanager=AmSettings(forward=[am.url], resend=60)), {},
                            {"BR-0417": "north"})
        now = datetime.now(timezone.utc)
        [item] = forward(inc, rules, now)
        asyncio.run(_send_and_close(Channels(None, 5), item))
        [alert] = am.alerts(incident=inc.id)
        assert alert["labels"] == {"alertname": "BranchwatchIncident", "incident": inc.id,
                                   "branch": "BR-0417", "region": "north",
                                   "severity": "warning"}
        assert alert["annotations"]["summary"].startswith(f"{inc.id} 未定级 停电")
        assert alert["status"]["state"] == "active"
        # The grade rose: new labels; the alert Alertmanager knew ends in the same post.
        inc.grades["cbrc"] = GradeRecord("cbrc", grade="III")
        [item] = forward(inc, rules, now)
        asyncio.run(_send_and_close(Channels(None, 5), item))
        [alert] = am.alerts(incident=inc.id)
        assert alert["labels"]["grade_cbrc"] == "III" and alert["labels"]["severity"] == "critical"
        # Resolved: posted with endsAt = the resolution; Alertmanager stops it firing.
        inc.status, inc.resolved_at = "resolved", now
        [item] = forward(inc, rules, now)
        asyncio.run(_send_and_close(Channels(None, 5), item))
        assert am.alerts(incident=inc.id) == []


def test_a_down_channel_does_not_delay_the_others_and_its_messages_go_out_when_back():
    results = []

    async def scenario(smtp: SmtpSink, sink: HttpSink) -> float:
        channels = Channels(smtp.url(), 5)
        metrics = DispatchMetrics(CollectorRegistry())

        async def on_result(item, ok, error, attempts, final):
            results.append((item.delivery, ok, attempts, final))
        d = Dispatcher(channels.send, on_result, first=0.2, most=0.5, metrics=metrics)
        t0 = time.monotonic()
        d.submit(hook(sink.url, 1))
        d.submit(mail("lina@example.com", 2))
        d.submit(hook(sink.url, 3))
        while not smtp.mails and time.monotonic() - t0 < 5:
            await asyncio.sleep(0.02)
        mailed = smtp.mails[0].at - t0
        # The webhook is retried meanwhile (its second and third failed attempts).
        while not any(r[0] == "M1/李娜/webhook" and r[2] >= 3 for r in results) and \
                time.monotonic() - t0 < 10:
            await asyncio.sleep(0.02)
        assert any(r[0] == "M1/李娜/webhook" and r[2] >= 3 and not r[1] for r in results), results
        assert sink.bodies == [] and d.waiting() == 2
        assert metrics.failing.labels("webhook")._value.get() == 1
        sink.up()                                # the receiver is back
        while len(sink.bodies) < 2 and time.monotonic() - t0 < 10:
            await asyncio.sleep(0.05)
        assert metrics.failing.labels("webhook")._value.get() == 0
        assert d.waiting() == 0
        # Each delivery with its own key, the same in the header and the body, however
        # many attempts it took: a receiver that honours it shows each message once.
        keys = [f"notify:INC-1:M{n}/%E6%9D%8E%E5%A8%9C/webhook" for n in (1, 3)]
        assert sink.keys == keys and [b[2]["idempotency_key"] for b in sink.bodies] == keys
        await d.close()
        await channels.close()
        return mailed

    sink = HttpSink()                            # down at first
    try:
        with SmtpSink() as smtp:
            mailed = asyncio.run(scenario(smtp, sink))
    finally:
        sink.down()
    assert mailed < 1.0, f"the mail waited {mailed:.2f} s behind the webhook"
    assert [b["n"] for _, _, b in sink.bodies] == [1, 3]           # in order, each once
    assert ("M1/李娜/webhook", False, 1, False) in results           # reported as failing
    assert [r for r in results if r[0] == "M1/李娜/webhook"][-1][1] is True   # then sent
    assert ("M2/李娜/email", True, 1, True) in results


def test_an_error_not_worth_retrying_is_given_up_and_the_queue_moves_on():
    sent, results = [], []

    async def send(item):
        if item.delivery.startswith("M1"):
            raise NotifyError("HTTP 400: bad", retry=False)
        sent.append(item.delivery)

    async def on_result(item, ok, error, attempts, final):
        results.append((item.delivery, ok, error, attempts, final))

    async def scenario():
        d = Dispatcher(send, on_result, first=0.05, most=0.1)
        d.submit(hook("http://x/a", 1))
        d.submit(hook("http://x/a", 2))
        d.submit(hook("http://x/a", 2))          # the same delivery twice: once
        while d.waiting():
            await asyncio.sleep(0.01)
    asyncio.run(scenario())
    assert sent == ["M2/李娜/webhook"]
    assert results[0] == ("M1/李娜/webhook", False, "HTTP 400: bad", 1, True)
