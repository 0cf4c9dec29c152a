"""Fuzzing the collector's ingest API: real collector processes, real HTTP.

Every generated request below that is not a valid write (garbage or cut-off
JSON, a field of the wrong type or value, a missing or unknown field, a body
over the limit, a bad token, another agent's id or branch, an event of
another branch inside a batch) is proven to get:

- the 4xx the API promises (400 naming the field, 401, 403, 413): never a
  2xx, never a 5xx;
- a JSON body whose "error" is a string of one line;
- a collector that still answers /healthz;
- no change in what is stored: the events, audit, agents and incidents
  tables hold exactly as many rows as before (and, when the module is done,
  that collector has stored nothing at all).

The generators follow the wire schema itself (`agent/wire.py`, read through
msgspec.inspect), so a field added there is fuzzed without editing this file.

A positive control shows the checks are not vacuous: a valid random batch is
accepted, exactly its events are stored, and a resend stores nothing. It runs
on a second collector process: accepted events open incidents, and the
incident engine writes audit records on its own clock (grades, deadlines),
which would make "the audit table did not change" untrue for reasons that
have nothing to do with the refused request.

Bugs this file found (a line break in a field name; times at the ends of the
datetime range) are fixed and kept as tests at the end.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import sqlite3
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import msgspec
import msgspec.inspect as mi
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent import wire
from agent.wire import Batch, Heartbeat, Time

from .support.collector import CollectorProcess
from .support.paths import REPO

AGENTS = {"a1": ("B1", "token-of-a1-xxxxxxxxxxxxxxxx"), "a2": ("B2", "token-of-a2-yyyyyyyyyyy")}
MAX_BODY = 65536
ENDPOINTS = {"/api/v1/events": Batch, "/api/v1/heartbeat": Heartbeat}
TABLES = ("events", "audit", "agents", "incidents")

FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# --- talking to the collector ---------------------------------------------------------

@dataclass
class Answer:
    status: int
    body: bytes

    def error(self) -> str:
        """The refusal's reason; fails unless the body is {"error": "one line"}."""
        data = json.loads(self.body)
        assert isinstance(data, dict) and isinstance(data.get("error"), str), self.body
        assert not {"\n", "\r"} & set(data["error"]), f"not one line: {data['error']!r}"
        return data["error"]


def bearer(agent: str) -> str:
    return f"Bearer {AGENTS[agent][1]}"


def post(c: CollectorProcess, path: str, body: bytes, auth: str | None = None,
         chunked: bool = False) -> Answer:
    """One POST on a fresh connection; `chunked` sends no Content-Length."""
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    if auth is not None:
        headers["Authorization"] = auth
    try:
        conn.request("POST", path, body=iter([body]) if chunked else body, headers=headers,
                     encode_chunked=chunked)
        r = conn.getresponse()
        return Answer(r.status, r.read())
    finally:
        conn.close()


def healthy(c: CollectorProcess) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", c.port, timeout=10)
    try:
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        return r.status == 200 and json.loads(r.read()) == {"status": "ok"}
    finally:
        conn.close()


@contextlib.contextmanager
def database(c: CollectorProcess):
    """The collector's SQLite file, read-only (it keeps writing to it)."""
    db = sqlite3.connect(f"file:{c.folder / 'data' / 'collector.db'}?mode=ro", uri=True)
    try:
        yield db
    finally:
        db.close()


def row_counts(c: CollectorProcess) -> dict[str, int]:
    with database(c) as db:
        return {t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def assert_refused(c: CollectorProcess, path: str, body: bytes, auth: str | None,
                   status: int, prefix: str = "", chunked: bool = False) -> str:
    """POST; the refusal is `status` with one line starting `prefix`; nothing stored."""
    before = row_counts(c)
    answer = post(c, path, body, auth, chunked)
    assert answer.status == status, (answer.status, answer.body[:300], body[:300])
    error = answer.error()
    assert error.startswith(prefix), (error, prefix)
    assert healthy(c), "the collector stopped answering /healthz"
    assert row_counts(c) == before, "a refused request changed what is stored"
    return error


def audit_verify(c: CollectorProcess) -> None:
    done = subprocess.run([sys.executable, "-m", "collector.cli", "audit", "verify",
                           "--config", str(c.config)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def refusing(tmp_path_factory):
    """The collector every invalid request goes to; it must end up holding nothing."""
    c = CollectorProcess(tmp_path_factory.mktemp("refusing"), AGENTS, max_body=MAX_BODY).start()
    yield c
    assert c.stop() == 0
    assert row_counts(c) == dict.fromkeys(TABLES, 0)


@pytest.fixture(scope="module")
def accepting(tmp_path_factory):
    """The collector of the positive controls; its audit chain stays intact."""
    c = CollectorProcess(tmp_path_factory.mktemp("accepting"), AGENTS, max_body=MAX_BODY).start()
    yield c
    assert c.stop() == 0
    audit_verify(c)


# --- valid bodies, generated from the wire schema --------------------------------------

texts = st.text(max_size=20)       # any code point but surrogates (not valid UTF-8)


def aware(naive: st.SearchStrategy) -> st.SearchStrategy:
    """Those times in any whole-minute offset."""
    return st.builds(lambda t, minutes: t.replace(tzinfo=timezone(timedelta(minutes=minutes))),
                     naive, st.integers(-14 * 60, 14 * 60))


# Aware times inside the wire's years (agent/wire.py: 2000..2100 in UTC), and outside.
times = aware(st.datetimes(datetime(wire.YEAR_MIN, 1, 1, 14), datetime(wire.YEAR_MAX, 12, 31, 9)))
bad_times = aware(st.one_of(st.datetimes(max_value=datetime(wire.YEAR_MIN - 1, 12, 31, 9)),
                            st.datetimes(min_value=datetime(wire.YEAR_MAX + 1, 1, 1, 14))))
int64 = st.integers(-2 ** 63, 2 ** 63 - 1)
# Check names the incident rules know, and anything else.
checks = st.one_of(st.text(min_size=1, max_size=20),
                   st.sampled_from(["ups/rack/on_battery", "ups/rack/battery_low",
                                    "ups/rack/comm", "line/primary/gateway",
                                    "switch/core/reachable", "tcp/core", "disk/"]))


def valid_json(t: mi.Type, list_size: int = 3) -> st.SearchStrategy:
    """JSON values the wire type `t` accepts (what msgspec decodes without complaint)."""
    match t:
        case mi.UnionType(types=members):
            return st.one_of([valid_json(m, list_size) for m in members])
        case mi.NoneType():
            return st.none()
        case mi.LiteralType(values=values):
            return st.sampled_from(values)
        case mi.StrType(pattern=pattern) if pattern:
            return st.from_regex(pattern, fullmatch=True)
        case mi.StrType(min_length=n, max_length=m):
            return st.text(min_size=n or 0, max_size=min(20, m if m is not None else 20))
        case mi.DateTimeType():
            return times.map(datetime.isoformat)
        case mi.FloatType(gt=gt, le=le):
            return st.floats(min_value=gt, exclude_min=gt is not None, max_value=le,
                             allow_nan=False, allow_infinity=False)
        case mi.IntType(ge=ge, le=le):
            return st.integers(-2 ** 63 if ge is None else ge, 2 ** 63 - 1 if le is None else le)
        case mi.ListType(item_type=item, max_length=m):
            return st.lists(valid_json(item, list_size),
                            max_size=min(list_size, m if m is not None else list_size))
        case mi.StructType(fields=fields):
            return st.fixed_dictionaries(
                {f.encode_name: valid_json(f.type, list_size) for f in fields if f.required},
                optional={f.encode_name: valid_json(f.type, list_size)
                          for f in fields if not f.required})
    raise TypeError(f"no generator for {t}")


EVENT = next(f.type.item_type for f in mi.type_info(Batch).fields if f.name == "events")


def as_agent(body: dict, agent: str, branch: str | None = None) -> dict:
    """The body written as `agent` (of its branch, unless told), its events too."""
    branch = AGENTS[agent][0] if branch is None else branch
    for obj in (body, *body.get("events", ())):
        obj["agent"], obj["branch"] = agent, branch
    return body


@st.composite
def valid_bodies(draw, cls=None, agent: str = "a1") -> tuple[str, dict]:
    """(path, body): a valid Batch or Heartbeat of `agent`, as decoded JSON."""
    path = draw(st.sampled_from([p for p, c in ENDPOINTS.items() if cls in (None, c)]))
    return path, as_agent(draw(valid_json(mi.type_info(ENDPOINTS[path]))), agent)


def dumps(body) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


# --- one field at a time wrong ------------------------------------------------------------

JSON_KINDS = {
    "null": st.none(), "bool": st.booleans(), "int": int64,
    "float": st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: f != int(f)),
    "str": texts,
    "array": st.lists(st.one_of(st.none(), st.booleans(), int64, texts), max_size=3),
    "object": st.dictionaries(texts, st.one_of(st.none(), int64, texts), max_size=3),
}


def json_kinds(t: mi.Type) -> set[str]:
    """The JSON kinds a wire type accepts (msgspec is strict: no coercion)."""
    if isinstance(t, mi.UnionType):
        return set().union(*map(json_kinds, t.types))
    return {mi.NoneType: {"null"}, mi.BoolType: {"bool"}, mi.IntType: {"int"},
            mi.FloatType: {"int", "float"}, mi.StrType: {"str"}, mi.LiteralType: {"str"},
            mi.DateTimeType: {"str"}, mi.ListType: {"array"}, mi.StructType: {"object"}}[type(t)]


def _not_a_time(s: str) -> bool:
    try:
        msgspec.json.decode(json.dumps(s), type=Time)
    except msgspec.ValidationError:
        return True
    return False


def bad_value(t: mi.Type) -> st.SearchStrategy | None:
    """Values of an accepted JSON kind that the type's constraints refuse; None if none."""
    match t:
        case mi.UnionType(types=members):
            options = [s for s in map(bad_value, members) if s is not None]
            return st.one_of(options) if options else None
        case mi.LiteralType(values=values):
            return texts.filter(lambda s: s not in values)
        case mi.StrType(pattern=pattern) if pattern:
            return texts.filter(lambda t: re.fullmatch(pattern, t) is None)
        case mi.StrType(min_length=n, max_length=m) if n or m is not None:
            options = [st.text(max_size=n - 1)] if n else []
            if m is not None:      # one over the bound, or far over it
                options.append(st.integers(m + 1, 4 * m).map(lambda k: "x" * k))
            return st.one_of(options)
        case mi.DateTimeType(tz=True):
            return st.one_of(st.datetimes().map(datetime.isoformat), texts.filter(_not_a_time),
                             bad_times.map(datetime.isoformat))
        case mi.FloatType(gt=gt, le=le) if gt is not None or le is not None:
            options = []
            if gt is not None:
                options += [st.floats(max_value=gt, allow_nan=False, allow_infinity=False),
                            st.integers(max_value=int(gt))]
            if le is not None:
                options += [st.floats(min_value=le, exclude_min=True, allow_nan=False,
                                      allow_infinity=False)]
            return st.one_of(options)
        case mi.IntType(ge=ge, le=le) if ge is not None or le is not None:
            options = []
            if ge is not None:
                options.append(st.integers(max_value=ge - 1))
            if le is not None:       # 2**70 once crashed the store with OverflowError
                options.append(st.integers(min_value=le + 1))
            return st.one_of(options)
    return None


@dataclass(frozen=True)
class Slot:
    """Where a value sits in a body (keys and indexes), its wire type, and whether
    it is a required struct field."""

    path: tuple
    type: mi.Type
    required: bool = False

    def name(self) -> str:
        """As the collector names it: events[0].id, or (body) for the whole body."""
        text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in self.path)
        return text.lstrip(".") or "(body)"


def slots(value, t: mi.Type, path: tuple = ()) -> list[Slot]:
    """Every value in a valid body, nested structs and lists included."""
    out = []
    if isinstance(t, mi.StructType):
        for f in t.fields:
            if f.encode_name in value:
                here = (*path, f.encode_name)
                out.append(Slot(here, f.type, f.required))
                out += slots(value[f.encode_name], f.type, here)
    elif isinstance(t, mi.ListType):
        for i, item in enumerate(value):
            out.append(Slot((*path, i), t.item_type))
            out += slots(item, t.item_type, (*path, i))
    return out


def get(body, path: tuple):
    for p in path:
        body = body[p]
    return body


@st.composite
def broken_bodies(draw) -> tuple[str, bytes, str]:
    """(path, body, field): a valid body with exactly one thing wrong at `field`."""
    path, body = draw(valid_bodies())
    root = Slot((), mi.type_info(ENDPOINTS[path]), required=True)
    every = [root, *slots(body, root.type)]
    how = draw(st.sampled_from(["wrong kind", "bad value", "missing", "unknown field"]))
    if how == "wrong kind":
        slot = draw(st.sampled_from(every))
        kind = draw(st.sampled_from(sorted(JSON_KINDS.keys() - json_kinds(slot.type))))
        value = draw(JSON_KINDS[kind])
    elif how == "bad value":
        slot = draw(st.sampled_from([s for s in every if bad_value(s.type) is not None]))
        value = draw(bad_value(slot.type))
    elif how == "missing":
        slot = draw(st.sampled_from([s for s in every if s.required and s.path]))
        del get(body, slot.path[:-1])[slot.path[-1]]
        return path, dumps(body), f"{slot.name()}: missing"
    else:   # an unknown field in the body or in any object inside it
        slot = draw(st.sampled_from([s for s in every if isinstance(s.type, mi.StructType)]))
        known = {f.encode_name for f in slot.type.fields}
        # Line breaks in a field name are escaped in the error (tested at the end of this file).
        key = draw(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                           min_size=1, max_size=10).filter(lambda k: k not in known))
        get(body, slot.path)[key] = draw(JSON_KINDS["int"])
        return path, dumps(body), f"{Slot((*slot.path, key), slot.type).name()}: unknown field"
    if slot.path:
        get(body, slot.path[:-1])[slot.path[-1]] = value
    else:
        body = value
    return path, dumps(body), f"{slot.name()}:"


# --- the properties -------------------------------------------------------------------------

@st.composite
def garbage(draw) -> tuple[str, bytes]:
    """(path, body): random bytes, or a valid body cut short anywhere."""
    path, body = draw(valid_bodies())
    whole = dumps(body)
    cut = whole[:draw(st.integers(0, len(whole) - 1))]
    return path, draw(st.one_of(st.just(cut), st.binary(max_size=300)))


@FUZZ
@given(case=garbage())
def test_malformed_json_is_400(refusing, case):
    """Random bytes, or a valid body cut short anywhere: 400, nothing stored."""
    path, body = case
    assert_refused(refusing, path, body, bearer("a1"), 400)


@FUZZ
@given(case=broken_bodies())
def test_one_wrong_field_is_400_naming_it(refusing, case):
    """A wrong JSON kind or a refused value anywhere, a required field missing, an
    unknown field in any object: 400 whose error starts with that field's path."""
    path, body, field = case
    assert_refused(refusing, path, body, bearer("a1"), 400, prefix=field)


def padded(body: bytes, size: int) -> bytes:
    """The same JSON, `size` bytes long (trailing whitespace is valid JSON)."""
    assert len(body) <= size
    return body + b" " * (size - len(body))


@FUZZ
@given(case=valid_bodies(), extra=st.integers(1, 2 * MAX_BODY), chunked=st.booleans())
def test_a_body_over_the_limit_is_413(refusing, case, extra, chunked):
    """A valid body padded past max_body, with a Content-Length or chunked: 413."""
    path, body = case
    error = assert_refused(refusing, path, padded(dumps(body), MAX_BODY + extra),
                           bearer("a1"), 413, chunked=chunked)
    assert "limit" in error


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=40)
REAL_TOKENS = sorted(t for _, t in AGENTS.values())
bad_auth = st.one_of(
    st.none(), st.sampled_from(["", "Bearer", "Bearer    "]),
    st.builds("{} {}".format, st.sampled_from(["Bearer", "bearer", "Basic"]),
              header_text.filter(lambda t: t.strip() not in REAL_TOKENS)),
    st.sampled_from(REAL_TOKENS),                                # a real token, not as Bearer
    st.sampled_from(REAL_TOKENS).map("Basic {}".format))


@FUZZ
@given(case=st.one_of(valid_bodies().map(lambda pb: (pb[0], dumps(pb[1]))), garbage()),
       auth=bad_auth)
def test_a_bad_or_missing_token_is_401(refusing, case, auth):
    """No, an unknown or a malformed Authorization header: 401 whatever the body."""
    path, body = case
    assert_refused(refusing, path, body, auth, 401)


@FUZZ
@given(token_of=st.sampled_from(sorted(AGENTS)), cls=st.sampled_from([Batch, Heartbeat]),
       data=st.data())
def test_writing_as_another_agent_or_branch_is_403(refusing, token_of, cls, data):
    """A valid body naming another agent (enrolled or not) or another branch than
    the token's: 403 naming which."""
    own_branch = AGENTS[token_of][0]
    ids = st.text(min_size=1, max_size=20)     # within the wire's Id bounds
    other = st.one_of(st.sampled_from(sorted(AGENTS)), ids)
    agent, branch = data.draw(st.one_of(
        st.tuples(other.filter(lambda a: a != token_of), st.just(own_branch)),
        st.tuples(st.just(token_of), st.one_of(st.sampled_from(["B1", "B2"]), ids)
                  .filter(lambda b: b != own_branch))))
    path, body = data.draw(valid_bodies(cls, token_of))
    body = {**body, "agent": agent, "branch": branch}
    field = "agent" if agent != token_of else "branch"
    assert_refused(refusing, path, dumps(body), bearer(token_of), 403, prefix=f"{field}:")


@FUZZ
@given(case=valid_bodies(Batch), field=st.sampled_from(["agent", "branch"]), data=st.data())
def test_an_event_of_another_agent_or_branch_in_a_batch_is_400(refusing, case, field, data):
    """One event of a valid batch naming another agent or branch than the batch:
    400 naming that event; none of the batch's events is stored."""
    path, body = case
    body["events"].append(as_agent(data.draw(valid_json(EVENT)), "a1"))
    i = data.draw(st.integers(0, len(body["events"]) - 1))
    body["events"][i][field] = data.draw(texts.filter(lambda v: v != body[field]))
    assert_refused(refusing, path, dumps(body), bearer("a1"), 400,
                   prefix=f"events[{i}].{field}:")


# --- the positive control ------------------------------------------------------------------

COLUMNS = "id, kind, agent, branch, check_name, old_state, new_state, reason, diagnosis"
# Observation times near now: an incident that opened decades ago would have the
# incident engine plan (and miss) every periodic report since, which is not this
# module's subject and slows the collector down.
recent = st.builds(lambda s, minutes: (datetime.now(timezone.utc) + timedelta(seconds=s))
                   .astimezone(timezone(timedelta(minutes=minutes))),
                   st.floats(-86400, 86400), st.integers(-14 * 60, 14 * 60))


def applied(db) -> bool:
    """The engine has applied the event log to its head (it audits each batch and
    notes its agent as it applies it, after the acknowledgement)."""
    head = db.execute("SELECT max(seq) FROM event_log").fetchone()[0] or 0
    cursor = db.execute("SELECT seq FROM log_cursors WHERE name = 'engine'").fetchone()
    return head == (cursor[0] if cursor else 0)


def written_by_requests(c: CollectorProcess) -> dict[str, int]:
    """Rows only a request writes (once the engine has applied it): events, their
    audit records, agents."""
    deadline = time.monotonic() + 20
    while True:
        with database(c) as db:
            if applied(db):
                break
        assert time.monotonic() < deadline, "the engine did not apply the log"
        time.sleep(0.02)
    with database(c) as db:
        return {"events": db.execute("SELECT count(*) FROM events").fetchone()[0],
                "agents": db.execute("SELECT count(*) FROM agents").fetchone()[0],
                "events.received": db.execute("SELECT count(*) FROM audit "
                                              "WHERE kind = 'events.received'").fetchone()[0]}


def stored_events(c: CollectorProcess, ids: list[str]) -> list[tuple]:
    with database(c) as db:
        return sorted(db.execute(f"SELECT {COLUMNS}, observed_at FROM events WHERE id IN "
                                 f"({','.join('?' * len(ids))})", ids).fetchall())


def last_audited_batch(c: CollectorProcess) -> list[str]:
    """The event ids of the newest "events.received" audit record."""
    with database(c) as db:
        (data,) = db.execute("SELECT data FROM audit WHERE kind = 'events.received' "
                             "ORDER BY seq DESC LIMIT 1").fetchone()
    return [e["id"] for e in json.loads(data)["events"]]


def as_row(e: dict) -> tuple:
    """An event as the events table holds it (times in integer microseconds)."""
    observed = datetime.fromisoformat(e["observed_at"])
    return (*(e.get(k) for k in ("id", "kind", "agent", "branch", "check", "old_state",
                                 "new_state", "reason", "diagnosis")),
            round(observed.timestamp() * 1_000_000))


def one_event(observed_at: datetime) -> dict:
    return {"id": uuid.uuid4().hex, "kind": "state", "agent": "a1", "branch": "B1",
            "check": "tcp/core", "old_state": None, "new_state": "ok", "reason": "",
            "observed_at": observed_at.isoformat()}


def batch_of(events: list[dict], sent_at: datetime | None = None) -> dict:
    sent_at = sent_at or datetime.now(timezone.utc)
    return as_agent({"sent_at": sent_at.isoformat(), "events": events}, "a1")


def heartbeat_of(sent_at: datetime | None = None) -> dict:
    sent_at = sent_at or datetime.now(timezone.utc)
    return as_agent({"sent_at": sent_at.isoformat(), "interval": 30.0, "checks": []}, "a1")


@FUZZ
@given(evs=st.lists(st.builds(lambda e, check, at: {**e, "check": check,
                                                    "observed_at": at.isoformat()},
                              valid_json(EVENT), checks, recent), min_size=1, max_size=50))
def test_a_valid_batch_is_stored_once_and_a_resend_stores_nothing(accepting, evs):
    """1..50 random valid events (any text, unicode included): 200 accepting all,
    each stored once exactly as sent, one audit record holding them; the resend
    is 200 with all of them duplicates and stores nothing."""
    # Ids are random text made unique here: hypothesis may replay an example.
    for e in evs:
        e["id"] = f"{e['id']}-{uuid.uuid4().hex}"
    body, ids = dumps(batch_of(evs)), [e["id"] for e in evs]
    before = written_by_requests(accepting)

    answer = post(accepting, "/api/v1/events", body, bearer("a1"))
    assert answer.status == 200, answer
    assert json.loads(answer.body) == {"accepted": ids, "duplicates": []}
    assert stored_events(accepting, ids) == sorted(map(as_row, evs))
    after = written_by_requests(accepting)
    assert after == {**before, "events": before["events"] + len(evs), "agents": 1,
                     "events.received": before["events.received"] + 1}
    assert last_audited_batch(accepting) == ids

    answer = post(accepting, "/api/v1/events", body, bearer("a1"))
    assert answer.status == 200, answer
    assert json.loads(answer.body) == {"accepted": [], "duplicates": ids}
    assert written_by_requests(accepting) == after


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_the_limit_is_taken(accepting, chunked):
    """A body of exactly max_body bytes is taken: the 413 above is the limit, not less."""
    event = one_event(datetime.now(timezone.utc))
    answer = post(accepting, "/api/v1/events", padded(dumps(batch_of([event])), MAX_BODY),
                  bearer("a1"), chunked)
    assert answer.status == 200, answer
    assert json.loads(answer.body)["accepted"] == [event["id"]]


# --- bugs this file found, fixed: they stay as tests ----------------------------------------

NOW = datetime.now(timezone.utc)
ORDINARY = {"/api/v1/events": lambda: batch_of([one_event(NOW)]), "/api/v1/heartbeat": heartbeat_of}


@pytest.mark.parametrize("key", ["a\nb", "a\rb"])
@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_an_unknown_field_named_with_a_line_break_is_a_one_line_400(refusing, path, key):
    """An unknown field named with a line break: 400 with a one-line error."""
    assert_refused(refusing, path, dumps({**ORDINARY[path](), key: 1}), bearer("a1"), 400)


FAR_FUTURE = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc)
YEAR_ONE = datetime(1, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("path, first", [
    ("/api/v1/events", lambda: batch_of([one_event(NOW)], FAR_FUTURE)),
    ("/api/v1/heartbeat", lambda: heartbeat_of(FAR_FUTURE)),
    # An agent clock an hour ahead (legitimate) and an event stamped in year 1.
    ("/api/v1/events", lambda: batch_of([one_event(YEAR_ONE)], NOW + timedelta(hours=1))),
], ids=["batch sent in 9999", "heartbeat sent in 9999", "event observed in year 1"])
def test_valid_but_extreme_times_are_no_5xx_and_break_nothing_after(tmp_path, path, first):
    """Schema-valid times at the ends of the datetime range: no 5xx, and the
    agent's ordinary batch and heartbeat that follow are taken."""
    with CollectorProcess(tmp_path, AGENTS) as c:
        answer = post(c, path, dumps(first()), bearer("a1"))
        assert answer.status < 500, answer
        for after, status in (("/api/v1/events", 200), ("/api/v1/heartbeat", 204)):
            answer = post(c, after, dumps(ORDINARY[after]()), bearer("a1"))
            assert answer.status == status, answer
