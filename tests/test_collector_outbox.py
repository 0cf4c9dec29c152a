"""The stored outbox over a real store (SQLite and PostgreSQL): an agent's command offered until
its result is in, the same id after a restart; a webhook claimed, the collector
dying before it records the outcome, and the retry carrying the same
Idempotency-Key to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.wire import Event, new_event_id
from collector.config import RunbookSettings
from collector.engine.actions import AGENT, EXECUTE, command_id, outbox_key
from collector.incident_desk import IncidentDesk
from collector.incident_runbooks import Runbooks
from collector.runbook_executor import execute
from collector.store import SqlStore
from tests.support.store_backend import backend, pg_server  # noqa: F401

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)

RUNBOOK = """\
id: act
title: Act on a service fault
source: test
applies_to: {{categories: [service], priority: 50}}
steps:
  - id: do
    kind: action
    title: Do it
    action: {action}
    preauthorised: {{granted_by: head of IT, granted_at: "2026-11-02", up_to_grade: I}}
    next: check
  - id: check
    kind: manual
    title: Check
    text: Check it.
    next: end
"""


class Clock:
    def __init__(self):
        self.t = T0.timestamp() + 60

    def __call__(self) -> float:
        return self.t


def desk_over(backend, action: str, clock) -> tuple[SqlStore, IncidentDesk]:
    books = backend.folder / "runbooks"
    books.mkdir(exist_ok=True)
    (books / "act.yaml").write_text(RUNBOOK.format(action=action))
    store = backend.open()
    return store, IncidentDesk(store, clock, runbooks=Runbooks.from_folder(books))


def fault(check="tcp/teller", state="critical", agent="a1", t=0.0, kind="state",
          reason="no answer") -> Event:
    return Event(id=new_event_id(), kind=kind, agent=agent, branch="B1", check=check,
                 old_state=None, new_state=state, reason=reason,
                 observed_at=T0 + timedelta(seconds=t))


def step(store, job):
    """A writer job the way the API runs it: in the store's transaction."""
    with store.group():
        return job()


SNMP = "{type: snmp_port, switch: core, port: backup, state: up}"


def test_an_agent_command_is_offered_until_its_result_is_in_and_survives_a_restart(backend):
    clock = Clock()
    store, desk = desk_over(backend, SNMP, clock)
    step(store, lambda: desk.ingest("a1", "B1", [fault()], clock()))
    [x] = desk.commands_for("B1")
    assert desk.commands_for("B1") == [x]          # sent, not popped: offered again
    assert desk.commands_for("B2") == []
    cid = command_id(x)
    store.close()
    # A restarted collector offers the same command, with the same id.
    store, desk = desk_over(backend, SNMP, clock)
    [again] = desk.commands_for("B1")
    assert command_id(again) == cid
    # The agent's result event: no longer offered, and the step is done.
    result = fault(check=f"action/runbook/{cid}", state="ok", kind="action", t=5,
                   reason="port backup set up, read back up")
    step(store, lambda: desk.ingest("a1", "B1", [result], clock()))
    assert desk.commands_for("B1") == []
    assert store.outbox_entry(outbox_key(AGENT, x)).status == "done"
    [run] = desk.book.get(x.incident).runbooks
    assert run.record("do").status == "done" and run.current == "check"
    # The agent answering the same id again (it re-sends its stored result event,
    # same event id) is a duplicate: nothing changes.
    assert store.add_events("a1", "B1", [result], clock()) == ([], [result.id])
    store.close()


def test_a_command_whose_step_no_longer_waits_is_withdrawn_not_offered(backend):
    clock = Clock()
    store, desk = desk_over(backend, SNMP, clock)
    step(store, lambda: desk.ingest("a1", "B1", [fault()], clock()))
    [x] = desk.commands_for("B1")
    # A person did it by hand: the agent must not swap the port later.
    step(store, lambda: desk.runbook_act(x.incident, "skip", "do", "alice", "done by hand"))
    assert step(store, lambda: desk.commands_for("B1")) == []
    entry = store.outbox_entry(outbox_key(AGENT, x))
    assert entry.status == "done"
    store.close()


class Receiver:
    """A real HTTP endpoint: records each POST's Idempotency-Key and body."""

    def __init__(self):
        self.posts = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.posts.append((self.headers.get("Idempotency-Key"), body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_a_webhook_claimed_before_a_crash_is_retried_with_the_same_key(backend, receiver):
    clock = Clock()
    store, desk = desk_over(backend, f'{{type: webhook, url: "{receiver.url}/hook"}}', clock)
    step(store, lambda: desk.ingest("a1", "B1", [fault()], clock()))
    assert desk.waiting[EXECUTE] == 1
    [x] = step(store, lambda: desk.claim(EXECUTE))
    assert step(store, lambda: desk.claim(EXECUTE)) == []        # claimed: not twice
    settings = RunbookSettings()
    ok, _ = asyncio.run(execute(x, settings, outbox_key(EXECUTE, x)))
    assert ok
    store.close()               # dies before the outcome is recorded
    store, desk = desk_over(backend, f'{{type: webhook, url: "{receiver.url}/hook"}}', clock)
    [retry] = step(store, lambda: desk.claim(EXECUTE))         # released at start
    assert retry == x
    ok, message = asyncio.run(execute(retry, settings, outbox_key(EXECUTE, retry)))
    step(store, lambda: desk.runbook_result(retry, ok, message))
    key = f"execute:{x.incident}/{x.run}/do"
    assert [k for k, _ in receiver.posts] == [key, key]          # one key: the receiver dedupes
    assert receiver.posts[0][1]["idempotency_key"] == key
    entry = store.outbox_entry(key)
    assert (entry.status, entry.attempts) == ("done", 2)
    assert step(store, lambda: desk.claim(EXECUTE)) == [] and desk.waiting[EXECUTE] == 0
    assert desk.book.get(x.incident).runbooks[0].current == "check"
    store.close()
