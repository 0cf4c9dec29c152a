"""A collector killed with SIGKILL while batches pour in: after a restart every
logged event is applied exactly once (its audit record, written in the engine's
transaction with the cursor, appears once), every acknowledged event is logged,
and the audit chain verifies. The kill lands wherever it lands (before an
append commits, between an acknowledgement and the engine's step, inside a
step): the assertions hold for every one of those moments. On both stores:
the SQLite file, and a real PostgreSQL."""

from __future__ import annotations

import contextlib
import itertools
import json
import signal
import sqlite3
import threading
import time
from datetime import datetime, timedelta, timezone

from agent.wire import Batch, Event, encode, new_event_id
from collector.storage.dialect import PgConnection

from .support.collector import CollectorProcess as SupportCollector
from .support.store_backend import backend, pg_server  # noqa: F401
from .test_collector_api import BRANCH, MAX_BODY, TOKENS, request


def batch(n: int) -> tuple[list[str], bytes]:
    now = datetime.now(timezone.utc)
    events = [Event(id=new_event_id(), kind="state", agent="a1", branch="B1",
                    check=f"tcp/svc{n}-{k}", old_state="ok", new_state="critical",
                    reason="refused", observed_at=now - timedelta(seconds=1))
              for k in range(20)]
    return [e.id for e in events], encode(Batch(agent="a1", branch="B1", sent_at=now,
                                                events=events))


def db(c):
    """A read-only look at the collector's store (either backend)."""
    if c.dsn is not None:
        return PgConnection.connect(c.dsn)
    return contextlib.closing(sqlite3.connect(
        f"file:{c.config.parent / 'data' / 'collector.db'}?mode=ro", uri=True))


def applied_to_head(c) -> bool:
    with db(c) as conn:
        head = conn.execute("SELECT max(seq) FROM event_log").fetchone()[0] or 0
        cursor = conn.execute("SELECT seq FROM log_cursors WHERE name = 'engine'").fetchone()
        return head > 0 and cursor is not None and cursor[0] == head


def test_a_collector_killed_mid_stream_applies_each_logged_event_once(backend):
    c = SupportCollector(backend.folder, {a: (BRANCH[a], t) for a, t in TOKENS.items()},
                         max_body=MAX_BODY, dsn=backend.dsn).start()
    acked: list[str] = []
    stop = threading.Event()

    numbers = itertools.count()         # every batch its own checks, over all posters

    def pour():
        while not stop.is_set():
            ids, body = batch(next(numbers))
            try:
                status, _ = request(c.url + "/api/v1/events", body, TOKENS["a1"])
            except OSError:
                return                      # the collector is gone
            if status == 200:
                acked.extend(ids)

    posters = [threading.Thread(target=pour) for _ in range(4)]
    for t in posters:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 400 and time.monotonic() < deadline:
        time.sleep(0.01)
    c.proc.send_signal(signal.SIGKILL)       # power lost, in the middle of it
    c.proc.wait()
    stop.set()
    for t in posters:
        t.join()
    assert len(acked) >= 400, "the collector acknowledged too little before the kill"

    c.start()                                # the same data directory
    try:
        deadline = time.monotonic() + 30
        while not applied_to_head(c):
            assert time.monotonic() < deadline, "the engine never caught up after the restart"
            time.sleep(0.05)
        with db(c) as conn:
            logged = [i for (i,) in conn.execute("SELECT id FROM event_log")]
            audited = [e["id"] for (data,) in conn.execute(
                "SELECT data FROM audit WHERE kind = 'events.received'")
                for e in json.loads(data)["events"]]
            faults = {k for (k,) in conn.execute("SELECT check_name FROM incident_faults")}
        assert len(logged) == len(set(logged))            # each id logged once
        assert set(acked) <= set(logged)                  # nothing acknowledged is lost
        assert sorted(audited) == sorted(logged)          # each applied exactly once
        assert len(faults) == len(logged)                 # one fault per event, each kept
        assert request(c.url + "/healthz")[0] == 200
    finally:
        assert c.stop() == 0
    assert backend.open().verify_audit() == []
