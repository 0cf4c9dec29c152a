"""Delivery to the collector: a real aiohttp receiver on 127.0.0.1, no HTTP mocks.

The receiver implements the two collector endpoints of agent/wire.py the
way the collector must: it stores event ids once and acknowledges resends
as duplicates. It can be told to fail with 503, to hang, to store and then
lose its answer, to refuse, or to be stopped and started again.
"""

from __future__ import annotations

import asyncio
import datetime
import itertools
import logging
import ssl

import msgspec
import pytest
from aiohttp import web

from agent import wire
from agent.model import CheckResult, State
from agent.schema_collector_link import CollectorLink, link_problems
from agent.sender import Sender, SpoolSink, backoff, check_statuses, tls_context
from agent.spool import Spool
from agent.state import CheckTracker, Policy
from tests.support.paths import free_port

TOKEN = "s3cret-token"


class Receiver:
    """A minimal collector: /api/v1/events and /api/v1/heartbeat."""

    def __init__(self, port: int, ssl_context: ssl.SSLContext | None = None):
        self.port, self.ssl = port, ssl_context
        self.stored: list[str] = []            # every id stored, in order (a repeat is a bug)
        self.duplicates: list[str] = []
        self.heartbeats: list[wire.Heartbeat] = []
        self.mode = "ok"                       # ok | fail | hang | lose_ack | drop | refuse
        self.runner: web.AppRunner | None = None

    async def start(self):
        app = web.Application()
        app.router.add_post("/api/v1/events", self.events)
        app.router.add_post("/api/v1/heartbeat", self.heartbeat)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)   # do not wait for hung handlers
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port, ssl_context=self.ssl).start()
        return self

    async def stop(self):
        await self.runner.cleanup()

    async def events(self, request: web.Request):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401, text="unknown agent token")
        if self.mode == "fail":
            return web.Response(status=503, text="storage busy")
        if self.mode == "refuse":
            return web.Response(status=403, text="agent a1 may not write branch b1")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        batch = msgspec.json.decode(await request.read(), type=wire.Batch)
        ack = wire.Ack(accepted=[], duplicates=[])
        for e in batch.events:
            if e.id in self.stored:
                ack.duplicates.append(e.id)
                self.duplicates.append(e.id)
            else:
                ack.accepted.append(e.id)
                self.stored.append(e.id)
        if self.mode == "lose_ack":              # stored, but the answer never arrives
            self.mode = "ok"
            await asyncio.sleep(3600)
        if self.mode == "drop":                  # stored, then the connection is cut
            self.mode = "ok"
            request.transport.close()
            await asyncio.sleep(3600)
        return web.Response(body=wire.encode(ack), content_type="application/json")

    async def heartbeat(self, request: web.Request):
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401, text="unknown agent token")
        self.heartbeats.append(msgspec.json.decode(await request.read(), type=wire.Heartbeat))
        return web.Response(status=204)


def event(n: int) -> wire.Event:
    return wire.Event(id=wire.new_event_id(), kind="state", agent="a1", branch="b1",
                      check=f"tcp/core{n}", old_state="ok", new_state="critical",
                      reason=f"event {n}", observed_at=wire.utc(1_700_000_000 + n))


def sender_for(spool, port, scheme="http", **kw) -> Sender:
    kw = {"base_delay": 0.02, "max_delay": 0.1, "timeout": 0.5, "heartbeat_interval": None} | kw
    return Sender(spool, url=f"{scheme}://127.0.0.1:{port}", token=kw.pop("token", TOKEN),
                  agent="a1", branch="b1", region="north", **kw)


async def until(cond, timeout=10.0):
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out waiting")


def test_events_spooled_while_the_collector_is_down_arrive_once(tmp_path):
    async def main():
        port = free_port()
        spool = Spool(tmp_path / "spool.db")
        sender = sender_for(spool, port, batch_size=7)
        sink = SpoolSink(spool, sender.wake)
        task = asyncio.create_task(sender.run())
        sent = []
        for i in range(20):                       # the collector is not there yet
            sent.append(event(i)); sink.emit(sent[-1])
        await until(lambda: sender.failures["events"] >= 3)
        assert spool.depth() == 20
        receiver = await Receiver(port).start()
        await until(lambda: spool.depth() == 0)
        await receiver.stop()                     # down again, then back
        for i in range(20, 30):
            sent.append(event(i)); sink.emit(sent[-1])
        await asyncio.sleep(0.2)
        assert spool.depth() == 10
        receiver2 = await Receiver(port).start()
        await until(lambda: spool.depth() == 0)
        task.cancel()
        stored = receiver.stored + receiver2.stored
        assert sorted(stored) == sorted(e.id for e in sent)   # nothing lost, nothing twice
        assert stored[:20] == [e.id for e in sent[:20]]       # oldest first
        assert sender.consecutive == 0
        await receiver2.stop()
    asyncio.run(main())


@pytest.mark.parametrize("mode", ["lose_ack", "drop"])
def test_a_resend_after_a_lost_ack_is_a_duplicate_and_deleted(tmp_path, mode):
    async def main():
        receiver = await Receiver(free_port()).start()
        receiver.mode = mode
        spool = Spool(tmp_path / "spool.db")
        sent = [event(i) for i in range(5)]
        for e in sent:
            spool.put(e)
        sender = sender_for(spool, receiver.port, timeout=0.3)
        await sender.send_batch()                                  # no answer: kept
        assert sender.consecutive == 1
        assert spool.depth() == 5 and receiver.stored == [e.id for e in sent]
        assert await sender.send_batch() == 0
        assert receiver.duplicates == [e.id for e in sent] and spool.depth() == 0
        assert receiver.stored == [e.id for e in sent]               # stored once
        await receiver.stop()
    asyncio.run(main())


def test_a_hung_collector_times_out_and_keeps_the_events(tmp_path):
    async def main():
        receiver = await Receiver(free_port()).start()
        receiver.mode = "hang"
        spool = Spool(tmp_path / "spool.db")
        spool.put(event(1))
        sender = sender_for(spool, receiver.port, timeout=0.2, rand=lambda: 1.0)
        assert await sender.send_batch() == 0.02 and spool.depth() == 1
        assert await sender.send_batch() == 0.04 and sender.failures["events"] == 2
        await receiver.stop()
        assert not await sender.send_heartbeat()                       # nobody there
        assert sender.failures["heartbeat"] == 1 and receiver.stored == []
    asyncio.run(main())


def test_backoff_grows_to_the_cap_with_full_jitter(tmp_path):
    assert [backoff(n, lambda: 1.0, 1, 60) for n in (1, 2, 3, 6, 7, 8, 100)] == \
        [1, 2, 4, 32, 60, 60, 60]
    draws = itertools.chain([0.5, 0.25, 0.9, 0.1, 1.0, 0.5, 0.75, 0.0], itertools.repeat(0.5))

    async def main():
        receiver = await Receiver(free_port()).start()
        receiver.mode = "fail"
        spool = Spool(tmp_path / "spool.db")
        spool.put(event(1))
        stop = asyncio.Event()

        async def fake_sleep(seconds):            # an injected clock: no real waiting
            if len(sender.delays) == 8:
                stop.set()
            await asyncio.sleep(0)

        sender = sender_for(spool, receiver.port, base_delay=1, max_delay=60,
                            rand=lambda: next(draws), sleep=fake_sleep)
        await sender.run(stop)
        await receiver.stop()
        return sender, spool
    sender, spool = asyncio.run(main())
    # failure n waits draw * min(60, 2**(n-1))
    assert sender.delays[:8] == pytest.approx([0.5, 0.5, 3.6, 0.8, 16.0, 16.0, 45.0, 0.0])
    assert sender.failures["events"] >= 8 and spool.depth() == 1


def test_a_refusal_keeps_the_events_and_is_logged_loudly(tmp_path, caplog):
    async def main():
        receiver = await Receiver(free_port()).start()
        spool = Spool(tmp_path / "spool.db")
        spool.put(event(1))
        receiver.mode = "refuse"
        sender = sender_for(spool, receiver.port, rand=lambda: 0.0, refused_delay=300)
        with caplog.at_level(logging.ERROR, logger="branchwatch.sender"):
            assert await sender.send_batch() == 150.0          # long, with some jitter
        assert "REFUSED" in caplog.text and "may not write branch b1" in caplog.text
        wrong = sender_for(spool, receiver.port, token="stolen", rand=lambda: 1.0)
        receiver.mode = "ok"
        assert await wrong.send_batch() == 300.0
        assert "unknown agent token" in caplog.text
        assert spool.depth() == 1 and receiver.stored == []
        assert await sender.send_batch() == 0 and spool.depth() == 0   # fixed: delivered
        await receiver.stop()
    asyncio.run(main())


def test_429_is_retried_after_retry_after(tmp_path):
    async def main():
        async def busy(request):
            return web.Response(status=429, headers={"Retry-After": "7"}, text="slow down")
        app = web.Application()
        app.router.add_post("/api/v1/events", busy)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        spool = Spool(tmp_path / "spool.db")
        spool.put(event(1))
        sender = sender_for(spool, port, rand=lambda: 0.0, max_delay=60)
        assert await sender.send_batch() == 7.0 and spool.depth() == 1
        await runner.cleanup()
    asyncio.run(main())


def test_heartbeats_carry_the_current_check_states(tmp_path):
    trackers = {c: CheckTracker(c, Policy(debounce=1)) for c in ("ups/main/on_battery", "memory")}
    trackers["ups/main/on_battery"].observe(CheckResult("ups/main/on_battery", State.OK, "on mains"), 1.0)
    trackers["never-read"] = CheckTracker("never-read", Policy())   # no state yet: left out

    async def main():
        receiver = await Receiver(free_port()).start()
        spool = Spool(tmp_path / "spool.db")
        spool.put(event(1))
        receiver.mode = "fail"                   # the spool stays at 1: reported as depth
        sender = sender_for(spool, receiver.port, heartbeat_interval=0.05,
                            checks=lambda: trackers, clock=lambda: 1_700_000_000.0)
        task = asyncio.create_task(sender.run())
        await until(lambda: len(receiver.heartbeats) >= 1)
        trackers["ups/main/on_battery"].observe(
            CheckResult("ups/main/on_battery", State.CRITICAL, "on battery"), 2.0)
        trackers["memory"].observe(CheckResult("memory", State.WARNING, "91% used"), 2.0)
        n = len(receiver.heartbeats)
        await until(lambda: len(receiver.heartbeats) > n)
        task.cancel()
        await receiver.stop()
        return receiver.heartbeats
    first, last = (hb := asyncio.run(main()))[0], hb[-1]
    assert [(c.check, c.state) for c in first.checks] == [("ups/main/on_battery", "ok")]
    assert [(c.check, c.state, c.reason) for c in last.checks] == [
        ("memory", "warning", "91% used"), ("ups/main/on_battery", "critical", "on battery")]
    assert (last.agent, last.branch, last.region, last.interval) == ("a1", "b1", "north", 0.05)
    assert last.spool_depth == 1 and last.sent_at == wire.utc(1_700_000_000.0)
    assert check_statuses(trackers) == last.checks


def _self_signed(tmp_path):
    """A CA and a server certificate for 127.0.0.1, as PEM files."""
    x509 = pytest.importorskip("cryptography.x509", reason="needs the cryptography package")
    import ipaddress
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("test CA")).issuer_name(name("test CA"))
          .public_key(ca_key.public_key()).serial_number(1)
          .not_valid_before(now - datetime.timedelta(hours=1))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder().subject_name(name("collector")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(pem))
    (tmp_path / "server.key").write_bytes(key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return tmp_path / "ca.pem"


def test_tls_with_a_private_ca(tmp_path):
    ca_file = _self_signed(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")

    async def main():
        receiver = await Receiver(free_port(), server).start()
        spool = Spool(tmp_path / "spool.db")
        spool.put(event(1))
        untrusting = sender_for(spool, receiver.port, "https")          # system CAs only
        assert await untrusting.send_batch() > 0 and spool.depth() == 1
        sender = sender_for(spool, receiver.port, "https", ssl_context=tls_context(str(ca_file)))
        assert await sender.send_batch() == 0 and spool.depth() == 0
        assert await sender.send_heartbeat()
        await receiver.stop()
    asyncio.run(main())


def test_samples_and_link_config(tmp_path):
    spool = Spool(tmp_path / "spool.db", max_events=1)
    spool.put(event(1)); spool.put(event(2))
    s = sender_for(spool, 1)
    s.failures["events"] = 3
    got = {(x.name, x.labels): x.value for x in s.samples()}
    assert got == {("branchwatch_spool_depth", ()): 1, ("branchwatch_spool_dropped", ()): 1,
                   ("branchwatch_delivery_failures", (("endpoint", "events"),)): 3,
                   ("branchwatch_delivery_failures", (("endpoint", "heartbeat"),)): 0,
                   ("branchwatch_spool_dead_letter_events", ()): 0,
                   ("branchwatch_spool_pending_events", ()): 0,
                   ("branchwatch_agent_loop_errors", (("loop", "heartbeat"),)): 0,
                   ("branchwatch_agent_loop_errors", (("loop", "sender"),)): 0,
                   ("branchwatch_collector_url_active", (("url", "http://127.0.0.1:1"),)): 1,
                   ("branchwatch_collector_url_swaps", ()): 0}

    def problems(**kw):
        return list(link_problems(msgspec.convert(kw, CollectorLink)))
    assert problems(url="https://c.example:8443", token="t") == []
    link = msgspec.convert({"url": "https://c", "token": "t"}, CollectorLink)
    assert (link.batch_size, link.heartbeat_interval, link.spool.path, link.spool.max_events) == \
        (100, 30.0, "/var/lib/branchwatch/spool.db", 100_000)
    assert problems(url="ftp://c", token="t") == [
        ("collector.url", "expected an http:// or https:// URL with a host, got 'ftp://c'")]
    assert problems(url="https://c") == [("collector", "expected exactly one of 'token' or 'token_file'")]
    assert problems(url="https://c", token="t", token_file="/f")[0][0] == "collector"
    assert problems(url="http://c", token="t", ca_file="/ca.pem")[0][0] == "collector.ca_file"
    assert problems(url="http://c", token="t", timeout=30)[0][0] == "collector.timeout"
    (tmp_path / "token").write_text("abc\n")
    sender = Sender.from_link(msgspec.convert({"url": "http://c/", "token_file": str(tmp_path / "token")},
                                              CollectorLink), spool, agent="a1", branch="b1")
    assert sender._headers["Authorization"] == "Bearer abc" and sender.url == "http://c"
