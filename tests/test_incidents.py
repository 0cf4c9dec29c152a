"""The incident book (collector/incidents.py): grouping, suppression,
resolution, flapping, people, late events. Driven with explicit times.

Timelines read one event per line, times in seconds from T0:

    at 30: line/primary/gw critical diag=line -> joined inc-1, retitled inc-1 power outage

then the changes it must return, `kind incident [title when retitled]`,
comma-separated ("-> -" for none). Options after the state: `flapping` or
`flapping_end` (the event kind), `diag=X`, `branch=X`, `agent=X`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from agent.wire import CheckStatus, Event, new_event_id
from collector.deadman import AgentLast, silent_agents
from collector.incidents import (Change, IncidentBook, Refused, category, is_fault)

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=timezone.utc)
_LINE = re.compile(r"^at (?P<t>[\d.]+): (?P<check>\S+) (?P<state>\w+)(?P<opts>[^>]*)-> (?P<want>.*)$")


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def event(t: float, check: str, state: str, kind: str = "state", branch: str = "b1",
          agent: str = "a1", diagnosis: str | None = None) -> Event:
    return Event(id=new_event_id(), kind=kind, agent=agent, branch=branch, check=check,
                 old_state=None, new_state=state, reason=f"raw {state}",
                 observed_at=at(t), diagnosis=diagnosis)


def show(c: Change) -> str:
    if c.kind == "retitled":
        return f"retitled {c.incident_id} {c.detail.split(' -> ')[-1]}"
    return f"{c.kind} {c.incident_id}"


def play(book: IncidentBook, script: str) -> list[Change]:
    """Feed a timeline to the book, checking each line's changes."""
    seen = []
    for n, line in enumerate(filter(None, (x.strip() for x in script.splitlines()))):
        m = _LINE.match(line)
        assert m, f"bad timeline line: {line!r}"
        kw = {"kind": "state"}
        for opt in m["opts"].split():
            if opt in ("flapping", "flapping_end"):
                kw["kind"] = opt
            else:
                k, _, v = opt.partition("=")
                kw[{"diag": "diagnosis"}.get(k, k)] = v
        t = float(m["t"])
        got = book.apply_event(event(t, m["check"], m["state"], **kw), now=at(t + 1))
        want = [] if m["want"].strip() == "-" else [w.strip() for w in m["want"].split(",")]
        assert [show(c) for c in got] == want, f"line {n + 1}: {line}"
        seen += got
    return seen


def test_power_outage_groups_ups_and_uplink_into_one_incident():
    book = IncidentBook()
    play(book, """
        at 0: ups/main/on_battery critical -> opened inc-1
        at 45: line/primary/gw critical diag=line -> joined inc-1, retitled inc-1 power outage
        at 100: switch/funds/if/1/link critical diag=device -> joined inc-1
        at 700: ups/main/battery_low critical -> joined inc-1
    """)
    [inc] = book.incidents()
    assert inc.title == "power outage" and inc.status == "open"
    assert len(inc.faults) == 4


def test_faults_outside_the_window_open_a_new_incident():
    book = IncidentBook(window=120)
    play(book, """
        at 0: ups/main/on_battery critical -> opened inc-1
        at 121: line/primary/gw critical diag=line -> opened inc-2
        at 130: disk/var warning -> joined inc-2, retitled inc-2 faults at the branch
        at 130: line/primary/gw critical branch=b2 agent=a2 -> opened inc-3
    """)
    assert [i.title for i in book.incidents()] == [
        "UPS on battery", "faults at the branch", "network outage"]


def test_network_outage_keeps_diagnosis_in_title():
    book = IncidentBook()
    play(book, """
        at 0: line/primary/gw critical diag=line -> opened inc-1
        at 5: line/primary/core critical diag=line -> joined inc-1
    """)
    assert book.get("inc-1").title == "network outage (line)"


def test_ups_only_titles():
    book = IncidentBook()
    play(book, """
        at 0: ups/main/overload warning -> opened inc-1
        at 500: ups/other/comm unknown -> opened inc-2
        at 505: ups/other/on_battery critical -> joined inc-2, retitled inc-2 UPS on battery
    """)
    assert book.get("inc-1").title == "UPS fault"


def test_services_and_ports_behind_a_line_down_are_suppressed_children():
    book = IncidentBook()
    changes = play(book, """
        at 0: line/primary/core critical diag=line -> opened inc-1
        at 300: tcp/core-db critical -> suppressed inc-1
        at 310: switch/funds/if/7/link warning -> suppressed inc-1
        at 320: process/teller critical -> suppressed inc-1
        at 330: disk/var warning -> opened inc-2
    """)
    sup = [c for c in changes if c.kind == "suppressed"]
    assert sup and not any(c.alert for c in sup)
    inc = book.get("inc-1")
    assert inc.title == "network outage (line)"          # children do not retitle
    assert sorted(f.check for f in inc.faults.values() if f.suppressed) == [
        "process/teller", "switch/funds/if/7/link", "tcp/core-db"]


def test_degraded_line_or_backup_uplink_does_not_suppress():
    book = IncidentBook()
    play(book, """
        at 0: line/primary/core warning diag=line -> opened inc-1
        at 300: tcp/core-db critical -> opened inc-2
    """)


def test_resolves_only_when_every_fault_cleared_then_close():
    book = IncidentBook()
    play(book, """
        at 0: ups/main/on_battery critical -> opened inc-1
        at 30: line/primary/gw critical diag=line -> joined inc-1, retitled inc-1 power outage
        at 60: tcp/core-db critical -> suppressed inc-1
        at 600: ups/main/on_battery ok -> cleared inc-1
        at 610: line/primary/gw ok -> cleared inc-1
        at 615: tcp/core-db unknown -> -
        at 620: tcp/core-db ok -> cleared inc-1, resolved inc-1
    """)
    inc = book.get("inc-1")
    assert inc.status == "resolved" and inc.resolved_at == at(620)
    [c] = book.close("inc-1", "wang", "mains restored, checked", at(900))
    assert c.kind == "closed" and inc.closed.who == "wang" and inc.status == "closed"


def test_close_refused_while_open_and_resolve_needs_force():
    book = IncidentBook()
    play(book, "at 0: ups/main/on_battery critical -> opened inc-1")
    with pytest.raises(Refused, match="ups/main/on_battery"):
        book.close("inc-1", "wang", "done", at(10))
    with pytest.raises(Refused, match="still active"):
        book.resolve("inc-1", "wang", "done", at(10))
    with pytest.raises(Refused, match="who and why"):
        book.ack("inc-1", "wang", " ", at(10))
    with pytest.raises(KeyError):
        book.ack("inc-9", "wang", "x", at(10))
    assert book.get("inc-1").status == "open"
    kinds = [c.kind for c in book.resolve("inc-1", "li", "UPS replaced, agent gone", at(20),
                                          force=True)]
    assert kinds == ["cleared", "resolved"]
    assert book.get("inc-1").resolved_by.who == "li"
    book.close("inc-1", "li", "done", at(30))
    with pytest.raises(Refused, match="closed"):
        book.close("inc-1", "li", "again", at(40))
    with pytest.raises(Refused, match="closed"):
        book.ack("inc-1", "li", "late", at(40))


def test_ack_and_notes_record_who_and_why():
    book = IncidentBook()
    play(book, "at 0: process/teller critical -> opened inc-1")
    [a] = book.ack("inc-1", "zhang", "on my way", at(60))
    [n] = book.note("inc-1", "zhang", "restarted teller service", at(120))
    assert (a.kind, a.at, n.kind) == ("acknowledged", at(60), "noted")
    inc = book.get("inc-1")
    assert [(x.who, x.why, x.at) for x in inc.acks] == [("zhang", "on my way", at(60))]
    assert [(x.who, x.why) for x in inc.notes] == [("zhang", "restarted teller service")]


def test_refire_within_window_reopens_after_it_opens_new():
    book = IncidentBook(window=120)
    play(book, """
        at 0: tcp/core-db critical -> opened inc-1
        at 50: tcp/core-db ok -> cleared inc-1, resolved inc-1
        at 160: tcp/core-db critical -> reopened inc-1
        at 200: tcp/core-db ok -> cleared inc-1, resolved inc-1
        at 321: tcp/core-db critical -> opened inc-2
    """)
    assert book.get("inc-1").status == "resolved"


def test_closed_incident_is_never_reopened():
    book = IncidentBook()
    play(book, """
        at 0: tcp/core-db critical -> opened inc-1
        at 10: tcp/core-db ok -> cleared inc-1, resolved inc-1
    """)
    book.close("inc-1", "wang", "fine", at(20))
    play(book, "at 30: tcp/core-db critical -> opened inc-2")


def test_flapping_storm_makes_no_open_close_storm():
    book = IncidentBook(window=120)
    script = ["at 0: line/backup/gw critical diag=line -> opened inc-1",
              "at 5: line/backup/gw ok -> cleared inc-1, resolved inc-1",
              "at 10: line/backup/gw critical diag=line -> reopened inc-1",
              "at 15: line/backup/gw warning flapping diag=line -> flapping inc-1"]
    # The agent is quiet while flapping; a collector-side storm of states
    # (heartbeat reconcile, a replay) must not resolve it either.
    for i in range(40):
        script.append(f"at {20 + i * 30}: line/backup/gw {'ok' if i % 2 else 'critical'} -> -")
    script.append("at 1300: line/backup/gw ok flapping_end -> flapping inc-1, cleared inc-1, "
                  "resolved inc-1")
    changes = play(book, "\n".join(script))
    assert [c.kind for c in changes].count("resolved") == 2
    assert len(book.incidents()) == 1


def test_flapping_end_that_settles_bad_keeps_it_open():
    book = IncidentBook()
    play(book, """
        at 0: process/teller warning flapping -> opened inc-1
        at 400: process/teller critical flapping_end -> flapping inc-1
        at 500: process/teller ok -> cleared inc-1, resolved inc-1
    """)


def test_flapping_of_a_check_that_was_ok_opens_a_fault():
    assert is_fault("process/x", "ok") is False
    book = IncidentBook()
    play(book, "at 0: process/teller ok flapping -> opened inc-1")
    assert book.get("inc-1").active_faults()[0].flapping


def test_late_event_superseded_for_its_check():
    book = IncidentBook()
    play(book, """
        at 0: tcp/core-db critical -> opened inc-1
        at 100: tcp/core-db ok -> cleared inc-1, resolved inc-1
        at 50: tcp/core-db warning -> -
    """)
    fault = book.get("inc-1").faults[("a1", "tcp/core-db")]
    assert [h[1] for h in fault.history] == ["state", "superseded state", "state"]
    assert book.get("inc-1").status == "resolved"


def test_late_fault_observed_before_resolution_reopens_it():
    # A spool replay after a cut line: the line fault was observed at 40,
    # arrives after the UPS fault had cleared (resolved at 100).
    book = IncidentBook()
    play(book, """
        at 0: ups/main/on_battery critical -> opened inc-1
        at 100: ups/main/on_battery ok -> cleared inc-1, resolved inc-1
        at 40: line/primary/gw critical diag=line -> reopened inc-1, retitled inc-1 power outage
    """)
    assert book.get("inc-1").status == "open"


def test_late_fault_observed_earlier_moves_the_start_back():
    book = IncidentBook()
    play(book, """
        at 100: line/primary/gw critical diag=line -> opened inc-1
        at 30: ups/main/on_battery critical -> joined inc-1, retitled inc-1 power outage
    """)
    assert book.get("inc-1").started_at == at(30)


def test_late_service_fault_during_silence_is_suppressed():
    # The branch went silent at 0 (last heard); the agent's spool replays a
    # service fault observed at 200 after the silence cleared at 600.
    book = IncidentBook()
    [s] = silent_agents([AgentLast("a1", "b1", "r1", at(0), 15.0, {})], at(200))
    opened = book.apply_silence(s, at(200))
    assert [show(c) for c in opened] == ["opened inc-1"]
    assert book.get("inc-1").title == "branch unreachable: line or agent down"
    ch = book.clear_silence("a1", "b1", at(600), at(600))
    assert [show(c) for c in ch] == ["cleared inc-1", "resolved inc-1"]
    play(book, "at 200: tcp/core-db critical -> reopened inc-1")
    [f] = [f for f in book.get("inc-1").faults.values() if f.check == "tcp/core-db"]
    assert f.suppressed


def test_silence_suppresses_children_and_power_state_in_title():
    book = IncidentBook()
    play(book, "at 0: ups/main/on_battery critical -> opened inc-1")
    last = AgentLast("a1", "b1", "r1", at(10), 15.0,
                     {"ups/main/on_battery": "critical", "ups/main/battery_low": "critical"})
    [s] = silent_agents([last], at(200))
    ch = book.apply_silence(s, at(200))
    assert [show(c) for c in ch] == [
        "joined inc-1",
        "retitled inc-1 branch unreachable: likely power exhausted at the branch "
        "(ups/main/on_battery, ups/main/battery_low)"]


def test_heartbeat_rebuilds_truth_after_a_gap():
    book = IncidentBook()
    play(book, "at 0: tcp/core-db critical -> opened inc-1")
    hb = [CheckStatus(check="tcp/core-db", state="ok", reason="connect 2 ms"),
          CheckStatus(check="disk/var", state="warning", reason="91 % used"),
          CheckStatus(check="memory", state="ok", reason="fine")]
    got = [show(c) for c in book.apply_heartbeat("a1", "b1", hb, at(60), at(60))]
    assert got == ["joined inc-1", "retitled inc-1 faults at the branch", "cleared inc-1"]
    assert book.apply_heartbeat("a1", "b1", hb, at(75), at(75)) == []


@pytest.mark.parametrize("check,diag,want", [
    ("switch/funds/if/1/link", "device", "network"),
    ("switch/funds/if/7/link", None, "port"),
    ("switch/funds/if/7/errors", None, "port"),
    ("switch/funds/reachable", None, "switch"),
    ("line/primary/gw", "line", "network"),
    ("ups/main/on_battery", None, "on_battery"),
    ("ups/main/comm", None, "ups"),
    ("listen/teller", None, "service"),
    ("backup/nightly", None, "backup"),
    ("memory", None, "host"),
    ("agent/a1/silent", None, "silent"),
    ("something/else", None, "other"),
])
def test_category(check, diag, want):
    assert category(check, diag) == want


def test_configured_uplink_without_diagnosis():
    assert category("switch/core/if/24/link", None, uplinks={"switch/core/if/24/link"}) == "network"


@pytest.mark.parametrize("check,state,want", [
    ("ups/main/comm", "unknown", True), ("switch/s/reachable", "unknown", True),
    ("tcp/db", "unknown", False), ("tcp/db", "warning", True), ("tcp/db", "ok", False),
])
def test_is_fault(check, state, want):
    assert is_fault(check, state) is want
