"""Console logins under attack: throttling that slows the
guesser and never locks the person out, password checks off the event loop
with a bound, names normalised, one audit record per throttled burst, and
sessions that survive a collector restart. The throttle and the hasher are
tested as units on an injected clock; the rest against a real collector
process over real HTTP, with clients on different loopback addresses
(127.0.0.2 ... are this machine too) standing for different sources."""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import re
import sqlite3
import urllib.parse

import pytest

from collector.web.passwords import Busy, Hasher, check_password, hash_password, scrypt_hash
from collector.web.sessions import TOUCH_SAVE, Sessions
from collector.web.throttle import (FREE_FAILURES, MAX_NAME_DELAY, MAX_SOURCE_DELAY,
                                    MAX_SPRAY_DELAY, SPRAY_FAILURES, Throttle, normalise)

from .support.collector import CollectorProcess, audit_records
from .support.console import USERS, console_yaml
from .support.store_backend import backend, pg_server  # noqa: F401

TOKEN = "console-login-agent-token-1"
AGENTS = {"a1": ("BR-1", "east", TOKEN)}


# --- units ------------------------------------------------------------------------
def test_names_are_normalised_before_lookup():
    assert {normalise(n) for n in ("boss", "boss ", "boss\t", " Boss", "ＢＯＳＳ", "BOSS")} \
        == {"boss"}
    assert normalise("x" * 1000) == "x" * 64


def test_two_users_one_person_at_login_are_a_config_error():
    from collector.config import ConfigError, parse
    users = console_yaml({"Boss": (["leadership"], "boss-password"),
                          "boss": (["viewer"], "other-password")})
    with pytest.raises(ConfigError) as e:
        parse(users, "collector.yaml")
    assert "console.users[1].name" in str(e.value) and "the same as 'Boss' at login" in str(e.value)


def test_a_source_waits_longer_after_each_failure_and_only_its_own():
    now = [1000.0]
    t = Throttle(clock=lambda: now[0])
    for _ in range(FREE_FAILURES - 1):
        t.failed("10.0.0.9", "boss")
        assert t.source_wait("10.0.0.9") == 0
    waits = []
    for _ in range(4):
        t.failed("10.0.0.9", "boss")
        waits.append(t.source_wait("10.0.0.9"))
    assert waits == [1.0, 2.0, 4.0, 8.0]               # doubling: a delay, not a lock
    assert t.source_wait("10.0.0.7") == 0              # another source is not slowed
    now[0] += 8.0
    assert t.source_wait("10.0.0.9") == 0              # waited it out: may try again
    for _ in range(100):
        t.failed("10.0.0.9", "boss")
    assert t.source_wait("10.0.0.9") == MAX_SOURCE_DELAY


def test_a_guessed_name_is_slowed_for_everyone_but_refused_to_no_one():
    now = [0.0]
    t = Throttle(clock=lambda: now[0])
    for i in range(50):                                 # a spray from 50 addresses
        t.failed(f"10.0.1.{i}", "boss")
    assert 0 < t.name_delay("boss") <= MAX_NAME_DELAY   # bounded: answered slowly, not locked
    assert t.source_wait("192.168.5.5") == 0            # a new source may try at once
    assert t.name_delay("alice") == 0
    now[0] += 901
    assert t.name_delay("boss") == 0                    # forgotten when quiet


def test_one_audit_record_per_throttled_burst():
    now = [0.0]
    t = Throttle(clock=lambda: now[0])
    quiet_failures = 0
    for _ in range(SPRAY_FAILURES - 1):     # (past SPRAY_FAILURES it is a spray too)
        if not t.throttled("10.0.0.9", "boss"):
            quiet_failures += 1                         # what the login audits one by one
        t.failed("10.0.0.9", "boss")
        now[0] += 1
    records = t.take_audit()
    assert quiet_failures == FREE_FAILURES
    assert [(k, a, d["by"]) for k, a, d in records] == [
        ("console.login_throttled", "10.0.0.9", "source"),
        ("console.login_throttled", "boss", "name")]
    now[0] += 1000
    ended = t.take_audit()
    assert sorted((k, d["by"], d["failures"]) for k, _, d in ended) == [
        ("console.login_throttle_ended", "name", SPRAY_FAILURES - 1),
        ("console.login_throttle_ended", "source", SPRAY_FAILURES - 1)]
    assert len(t) == 0 and t.take_audit() == []


def test_a_spray_of_new_names_from_new_sources_is_one_record_not_one_per_guess():
    t = Throttle(clock=lambda: 0.0)
    audited = 0
    delays = []
    for i in range(500):
        source, name = f"10.1.{i // 256}.{i % 256}", f"guess-{i}"
        audited += not t.throttled(source, name)
        t.failed(source, name)
        assert t.source_wait(source) == 0 and t.name_delay(name) == 0   # refuses no one
        delays.append(t.failure_delay(name))
    assert audited == SPRAY_FAILURES
    # Wrong passwords are answered more and more slowly once it is a spray.
    assert delays[:SPRAY_FAILURES - 1] == [0.0] * (SPRAY_FAILURES - 1)
    assert delays[SPRAY_FAILURES - 1] == 1.0 and delays[-1] == MAX_SPRAY_DELAY
    assert [(k, d["by"]) for k, _, d in t.take_audit()] == [("console.login_throttled", "spray")]


def test_the_table_is_bounded():
    t = Throttle(clock=lambda: 0.0, capacity=100)
    for i in range(5000):
        t.failed(f"10.{i // 65536}.{i // 256 % 256}.{i % 256}", f"name-{i}")
    assert len(t) == 100
    t.failed("10.9.9.9", "boss")
    assert t.source_wait("10.9.9.9") == 0 and len(t) == 100


def test_new_hashes_are_argon2id_and_scrypt_ones_still_check():
    new, old = hash_password("a long password"), scrypt_hash("a long password")
    assert new.startswith("$argon2id$") and old.startswith("scrypt$")
    assert check_password("a long password", new) and check_password("a long password", old)
    assert not check_password("wrong", new) and not check_password("wrong", old)
    assert not check_password("x", "$argon2id$garbage") and not check_password("x", "scrypt$1")


def test_password_checks_over_the_bound_are_refused_not_queued():
    async def main():
        hasher = Hasher(workers=1, bound=2)
        stored = hash_password("pw-for-the-bound")
        first = [asyncio.create_task(hasher.check("pw-for-the-bound", stored))
                 for _ in range(2)]
        await asyncio.sleep(0)                 # both are now waiting on the pool
        with pytest.raises(Busy):
            await hasher.check("pw-for-the-bound", stored)
        assert await asyncio.gather(*first) == [True, True]
        assert await hasher.check("wrong", stored) is False      # room again
        assert hasher.refused == 1
        hasher.close()
    asyncio.run(main())


def test_session_activity_is_saved_now_and_then_not_at_every_page():
    now = [0.0]
    s = Sessions(idle=600, max_age=3600, clock=lambda: now[0])
    a = s.start("alice", ["operator"])
    assert [m for m, _ in s.take_writes()] == ["put_session"]
    now[0] = TOUCH_SAVE / 2
    assert s.get(a.id) is a and s.take_writes() == []
    now[0] = TOUCH_SAVE + 1
    assert s.get(a.id) is a and s.take_writes() == [("touch_session", (a.key, now[0]))]
    s.end(a.id)
    assert s.take_writes() == [("drop_sessions", ([a.key],))]


def test_a_session_in_a_shared_store_is_the_stored_one():
    now = [1000.0]
    one = Sessions(idle=600, max_age=3600, clock=lambda: now[0])
    two = Sessions(idle=600, max_age=3600, clock=lambda: now[0])
    a = one.start("alice", ["operator"])
    row = (a.key, a.user, a.roles, a.csrf, a.started, a.last_seen)   # as the store has it
    assert two.get(a.id) is None                       # not read: only its own memory
    now[0] += 30
    got = two.get(a.id, stored=row)                    # logged in on the other collector
    assert (got.user, got.roles, got.csrf) == ("alice", ("operator",), a.csrf)
    assert two.get(a.id, stored=None) is None          # logged out there: gone here too
    assert two.get(a.id, stored=row[:5] + (now[0] - 700,)) is None   # idle by the store


def test_the_store_gives_back_only_sessions_not_yet_expired(backend):
    store = backend.open()
    store.put_session("idle", "vera", ["viewer"], "c1", started=600.0, last_seen=700.0)
    store.put_session("old", "boss", ["leadership"], "c2", started=0.0, last_seen=990.0)
    store.put_session("live", "alice", ["operator"], "c3", started=500.0, last_seen=900.0)
    store.touch_session("idle", 950.0)               # came back before it went idle
    live = store.live_sessions(now=1000.0, idle=200.0, max_age=600.0)
    assert sorted(k for k, *_ in live) == ["idle", "live"]     # "old": past max_age
    s = Sessions(idle=200.0, max_age=600.0, clock=lambda: 1000.0)
    s.load(live)
    assert len(s) == 2
    assert store.stored_session("live") == ("live", "alice", ("operator",), "c3", 500.0,
                                             900.0)
    store.put_session("live", "alice", ["operator", "viewer"], "c4", 500.0, 910.0)
    assert store.stored_session("live")[2:4] == (("operator", "viewer"), "c4")
    store.drop_sessions(["idle", "live"])
    assert store.live_sessions(now=1000.0, idle=200.0, max_age=600.0) == []
    assert store.stored_session("live") is None


# --- a real collector -----------------------------------------------------------------
def post(url: str, path: str, form: dict | None = None, *, source: str = "127.0.0.1",
         headers: dict | None = None, body: bytes | None = None, cookie: str | None = None):
    """One POST from `source` (a loopback address): (status, headers, text)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30, source_address=(source, 0))
    hdrs = {"Content-Type": "application/x-www-form-urlencoded", **(headers or {})}
    if cookie:
        hdrs["Cookie"] = f"bw_session={cookie}"
    try:
        conn.request("POST", path, body if body is not None else
                     urllib.parse.urlencode(form or {}).encode(), hdrs)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def get(url: str, path: str, cookie: str) -> tuple[int, str]:
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Cookie": f"bw_session={cookie}"})
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        conn.close()


def login(url: str, user: str, password: str, source: str = "127.0.0.1", **kw):
    status, headers, text = post(url, "/console/login", {"user": user, "password": password,
                                                         "next": "/console/incidents"},
                                 source=source, **kw)
    cookie = re.search(r"bw_session=([^;]+)", headers.get("Set-Cookie", ""))
    return status, headers, (cookie[1] if cookie else None)


OLD_PASSWORD = "made-by-an-older-collector"
# A user whose hash an older collector made (scrypt): still logs in.
OLD_USER = (f"    - {{name: olduser, roles: [viewer], "
            f"password: '{scrypt_hash(OLD_PASSWORD)}'}}\n")


@pytest.fixture()
def collector(tmp_path):
    with CollectorProcess(tmp_path / "c", AGENTS, extra=console_yaml(USERS) + OLD_USER) as c:
        yield c


def test_an_scrypt_hash_from_an_older_collector_still_logs_in(collector):
    status, _, cookie = login(collector.url, "olduser", OLD_PASSWORD)
    assert status == 303 and get(collector.url, "/console/incidents", cookie)[0] == 200
    assert login(collector.url, "olduser", "not-it", source="127.0.0.5")[0] == 401


def test_a_guesser_is_slowed_and_boss_still_logs_in_from_elsewhere(collector):
    statuses = []
    for _ in range(12):          # by 2**(12-3) s of wait, a 429 has come, however slow we are
        status, headers, _ = login(collector.url, "boss", "wrong", source="127.0.0.3")
        statuses.append(status)
        if status == 429:
            assert int(headers["Retry-After"]) >= 1
            break
    assert statuses[-1] == 429 and set(statuses[:-1]) == {401}
    # The right password from a new source: never refused for the guesser's tries.
    status, _, cookie = login(collector.url, "boss ", USERS["boss"][1], source="127.0.0.4")
    assert status == 303 and cookie
    assert get(collector.url, "/console/incidents", cookie)[0] == 200
    # Not one audit record per guess: the quiet ones, then one per throttled key.
    failed = audit_records(collector, "console.login_failed")
    throttled = audit_records(collector, "console.login_throttled")
    assert len(failed) == FREE_FAILURES
    assert sorted(d["by"] for _, d in throttled) == ["name", "source"]
    assert [a for a, _ in audit_records(collector, "console.login")] == ["boss"]


def test_names_are_one_person_however_they_are_typed(collector):
    for typed in ("Alice", "alice\t", "ａｌｉｃｅ"):
        status, _, cookie = login(collector.url, typed, USERS["alice"][1])
        assert status == 303 and cookie, typed
    assert {a for a, _ in audit_records(collector, "console.login")} == {"alice"}


def test_origin_null_and_foreign_origins_are_refused(collector):
    form = {"user": "alice", "password": USERS["alice"][1]}
    for origin in ("null", "http://evil.example"):
        status, _, text = post(collector.url, "/console/login", form, headers={"Origin": origin})
        assert status == 403 and "cross-origin" in text
    status, _, cookie = login(collector.url, "alice", USERS["alice"][1],
                              headers={"Origin": collector.url})
    assert status == 303
    page = get(collector.url, "/console/incidents", cookie)[1]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
    status, _, text = post(collector.url, "/console/logout", {"csrf": csrf}, cookie=cookie,
                           headers={"Origin": "null"})
    assert status == 403 and "cross-origin" in text
    assert get(collector.url, "/console/incidents", cookie)[0] == 200   # still logged in


def test_a_cut_multipart_body_is_a_400(collector):
    boundary = "b0undary"
    whole = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nalice\r\n"
             f"--{boundary}\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\n"
             f"alice-password\r\n--{boundary}--\r\n").encode()
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    status, _, _ = post(collector.url, "/console/login", body=whole, headers=kind)
    assert status == 303                                   # the whole body logs in
    for cut in (len(whole) - 10, len(whole) // 2, 20):
        status, _, text = post(collector.url, "/console/login", body=whole[:cut], headers=kind)
        assert status == 400 and "form could not be read" in text, (cut, status, text)
        assert len(text.strip().splitlines()) == 1
    status, _, text = post(collector.url, "/console/login", body=b"--x\r\n\r\n",
                           headers={"Content-Type": "multipart/form-data"})   # no boundary
    assert status == 400, text


def test_sessions_survive_a_restart_and_still_expire(tmp_path):
    c = CollectorProcess(tmp_path / "c", AGENTS,
                         extra=console_yaml(USERS, session_idle=3600, session_max=7200))
    with c:
        status, _, cookie = login(c.url, "vera", USERS["vera"][1])
        assert status == 303 and get(c.url, "/console/incidents", cookie)[0] == 200
        _, _, ended = login(c.url, "alice", USERS["alice"][1])
        page = get(c.url, "/console/incidents", ended)[1]
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        assert post(c.url, "/console/logout", {"csrf": csrf}, cookie=ended)[0] == 303
    # The store holds the sha256 of the id, never a cookie someone could replay.
    assert stored_session_keys(c) == {hashlib.sha256(cookie.encode()).hexdigest()}
    with c:                                     # the same data directory, a new process
        status, page = get(c.url, "/console/incidents", cookie)
        assert status == 200 and "vera" in page
        # The CSRF token came back with it: a form posted after the restart works.
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
        assert post(c.url, "/console/logout", {"csrf": csrf}, cookie=cookie)[0] == 303
        assert get(c.url, "/console/incidents", cookie)[0] == 303       # logged out
        assert get(c.url, "/console/incidents", ended)[0] == 303         # stayed out


def stored_session_keys(c: CollectorProcess) -> set[str]:
    db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        return {k for (k,) in db.execute("SELECT id_sha256 FROM console_sessions")}
    finally:
        db.close()
