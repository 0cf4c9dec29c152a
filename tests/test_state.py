"""The per-check state machine (agent/state.py): debounce and flap detection.

Driven with explicit times, never the clock. Timelines are written as

    at 20: critical "on battery" -> [state ok->critical]

one reading per line: the time, the raw state (and optionally its reason),
then the transitions that reading must cause, rendered `kind old->new`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.model import CheckResult, State
from agent.state import CheckTracker, Policy, Transition

CHECK = "ups/rack/on_battery"

_LINE = re.compile(
    r'^at (?P<t>[\d.]+): (?P<state>\w+)(?: "(?P<reason>[^"]*)")? -> \[(?P<events>.*)\]$')


def show(t: Transition) -> str:
    old = "None" if t.old is None else t.old.label
    return f"{t.kind} {old}->{t.new.label}"


def reading(state: State | str, reason: str | None = None) -> CheckResult:
    state = State[state.upper()] if isinstance(state, str) else state
    return CheckResult(CHECK, state, reason or f"raw {state.label}")


def play(script: str, policy: Policy, tracker: CheckTracker | None = None
         ) -> tuple[CheckTracker, list[Transition]]:
    """Feed a timeline to a tracker, checking each line's transitions."""
    tracker = tracker or CheckTracker(CHECK, policy)
    emitted: list[Transition] = []
    for line in filter(None, (s.strip() for s in script.splitlines())):
        m = _LINE.match(line)
        assert m, f"bad timeline line: {line!r}"
        now = float(m["t"])
        got = tracker.observe(reading(m["state"], m["reason"]), now)
        expected = [e.strip() for e in m["events"].split(",") if e.strip()]
        assert [show(t) for t in got] == expected, f"{line}: got {[show(t) for t in got]}"
        for t in got:
            assert (t.check, t.at) == (CHECK, now)
        emitted += got
    return tracker, emitted


def steady(state: str, start: float, stop: float, every: float = 10.0, reason: str = "") -> str:
    """Timeline lines for a state read every `every` s in [start, stop], no events."""
    said = f' "{reason}"' if reason else ""
    lines, t = [], start
    while t <= stop:
        lines.append(f"at {t:g}: {state}{said} -> []")
        t += every
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Debounce


def test_debounce_two_timeline():
    _, events = play("""
        at 0: ok "on line power" -> [state None->ok]
        at 10: critical "on battery" -> []
        at 20: critical "on battery: mains power lost" -> [state ok->critical]
        at 30: ok "on line power" -> []
        at 40: ok "on line power again" -> [state critical->ok]
    """, Policy(debounce=2))
    assert [e.reason for e in events] == [
        "on line power", "on battery: mains power lost", "on line power again"]


def test_first_reading_is_reported_at_once_whatever_the_debounce():
    tracker, events = play("""
        at 100: critical "no process named 'sshd' is running" -> [state None->critical]
    """, Policy(debounce=5))
    assert tracker.state is State.CRITICAL
    assert events[0].old is None and events[0].reason == "no process named 'sshd' is running"


def test_reason_updates_while_state_holds_emit_nothing():
    tracker, _ = play("""
        at 0: warning "battery charge 45%" -> [state None->warning]
        at 10: warning "battery charge 44%" -> []
        at 20: warning "battery charge 43%" -> []
    """, Policy(debounce=2))
    assert tracker.reason == "battery charge 43%"


def test_pending_change_keeps_the_old_reason_until_it_happens():
    tracker, _ = play("""
        at 0: ok "load 40%" -> [state None->ok]
        at 10: critical "load 97%" -> []
    """, Policy(debounce=2))
    assert (tracker.state, tracker.reason) == (State.OK, "load 40%")


def test_one_good_reading_resets_the_debounce():
    play("""
        at 0: ok -> [state None->ok]
        at 10: critical -> []
        at 20: ok -> []
        at 30: critical -> []
        at 40: ok -> []
        at 50: critical -> []
        at 60: critical -> [state ok->critical]
    """, Policy(debounce=2, flap_threshold=100))


def test_a_different_bad_state_restarts_the_count():
    play("""
        at 0: ok -> [state None->ok]
        at 10: warning -> []
        at 20: critical -> []
        at 30: warning -> []
        at 40: critical -> []
        at 50: critical -> [state ok->critical]
        at 60: warning -> []
        at 70: warning -> [state critical->warning]
    """, Policy(debounce=2, flap_threshold=100))


def test_debounce_one_reports_every_change():
    play("""
        at 0: ok -> [state None->ok]
        at 1: warning -> [state ok->warning]
        at 2: unknown -> [state warning->unknown]
        at 3: unknown -> []
        at 4: ok -> [state unknown->ok]
    """, Policy(debounce=1))


def test_debounce_three():
    play("""
        at 0: ok -> [state None->ok]
        at 2: unknown -> []
        at 4: unknown -> []
        at 6: unknown -> [state ok->unknown]
    """, Policy(debounce=3))


# --------------------------------------------------------------------------
# Flapping


def test_flapping_timeline():
    """Mains flickering: six changes in the window, then silence until it settles."""
    policy = Policy(debounce=1, flap_window=600, flap_threshold=6)
    tracker, events = play("""
        at 0: ok -> [state None->ok]
        at 10: critical -> [state ok->critical]
        at 20: ok -> [state critical->ok]
        at 30: critical -> [state ok->critical]
        at 40: ok -> [state critical->ok]
        at 50: critical -> [state ok->critical]
        at 60: ok -> [flapping critical->ok]
        at 70: critical -> []
        at 80: ok -> []
        at 90: critical -> []
        at 100: ok "on line power" -> []
    """, policy)
    assert tracker.flapping
    # Ten changes at 10..100; flapping ends when at most 3 (threshold // 2)
    # are left in the window: the change at 70 leaves it at 670.
    play(steady("ok", 110, 660, reason="on line power"), policy, tracker)
    assert tracker.flapping
    _, end = play("""
        at 670: ok "on line power" -> [flapping_end critical->ok]
        at 680: ok -> []
    """, policy, tracker)
    flapping = next(e for e in events if e.kind == "flapping")
    assert flapping.reason == "flapping: 6 changes in 600 s (last: raw ok)"
    # "old" of flapping_end is the state before the flapping began.
    assert end[0].reason == "stopped flapping, settled ok: on line power"
    assert not tracker.flapping and tracker.state is State.OK
    assert [e.kind for e in events + end].count("flapping") == 1


def test_flapping_end_carries_a_state_that_changed_while_flapping():
    policy = Policy(debounce=1, flap_window=100, flap_threshold=4)
    tracker, _ = play("""
        at 0: ok -> [state None->ok]
        at 1: critical -> [state ok->critical]
        at 2: ok -> [state critical->ok]
        at 3: critical -> [state ok->critical]
        at 4: ok -> [flapping critical->ok]
        at 5: warning -> []
        at 50: warning -> []
        at 102: warning -> []
        at 104: warning -> [flapping_end critical->warning]
        at 110: ok -> [state warning->ok]
    """, policy)
    assert tracker.state is State.OK


def test_flapping_needs_the_changes_inside_the_window():
    """Changes further apart than the window never add up to flapping."""
    play("""
        at 0: ok -> [state None->ok]
        at 61: critical -> [state ok->critical]
        at 122: ok -> [state critical->ok]
        at 183: critical -> [state ok->critical]
        at 244: ok -> [state critical->ok]
        at 305: critical -> [state ok->critical]
    """, Policy(debounce=1, flap_window=60, flap_threshold=2))


def test_flapping_with_debounce_hides_state_changes():
    policy = Policy(debounce=2, flap_window=300, flap_threshold=4)
    tracker, _ = play("""
        at 0: ok -> [state None->ok]
        at 10: critical -> []
        at 20: ok -> []
        at 30: critical -> []
        at 40: ok -> [flapping ok->ok]
        at 50: critical -> []
        at 60: critical -> []
        at 70: critical -> []
    """, policy)
    assert tracker.flapping and tracker.state is State.CRITICAL


# --------------------------------------------------------------------------
# Properties over random readings


@dataclass
class Run:
    """A tracker fed random readings, with an independent record of what happened."""

    policy: Policy
    tracker: CheckTracker = None
    raw: list[State] = field(default_factory=list)
    change_times: list[float] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    def __post_init__(self):
        self.tracker = CheckTracker(CHECK, self.policy)

    def changes_in_window(self, now: float) -> int:
        return sum(1 for t in self.change_times if t > now - self.policy.flap_window)


policies = st.builds(
    Policy,
    debounce=st.integers(1, 4),
    flap_window=st.integers(1, 200).map(float),
    flap_threshold=st.integers(2, 8),
)
# Runs of one state (so steady periods happen) with gaps between readings;
# gaps of 0 put several readings at the same instant.
segments = st.lists(
    st.tuples(st.sampled_from(list(State)), st.integers(1, 6),
              st.integers(0, 3) | st.integers(0, 60)),
    min_size=1, max_size=60,
)


def expand(segs) -> list[tuple[State, float]]:
    out, now = [], 0.0
    for state, repeat, gap in segs:
        for _ in range(repeat):
            now += gap
            out.append((state, now))
    return out


@settings(max_examples=400, deadline=None)
@given(policy=policies, segs=segments)
def test_properties(policy: Policy, segs):
    run = Run(policy)
    tr = run.tracker
    changed_while_flapping = False
    for i, (state, now) in enumerate(expand(segs)):
        if run.raw and state != run.raw[-1]:
            run.change_times.append(now)
        run.raw.append(state)
        was_flapping, before = tr.flapping, tr.state
        got = tr.observe(reading(state, f"reading {i}"), now)
        kinds = [t.kind for t in got]
        assert len(got) <= 1, kinds

        for t in got:
            # (a) a debounced change to S needs the last `debounce` raw readings all S
            # (the first reading is reported at once, old None).
            if t.kind == "state" and t.old is not None:
                last = run.raw[-policy.debounce:]
                assert len(last) == policy.debounce and set(last) == {t.new}, (t, run.raw)
            if t.kind == "state" and t.old is None:
                assert i == 0
            # (c) no state transition while flapping (nor as it starts or ends).
            if t.kind == "state":
                assert not was_flapping and not tr.flapping
            # Each state/flapping transition starts from what was last reported.
            if t.kind in ("state", "flapping"):
                reported = [x.new for x in run.transitions]
                assert t.old == (reported[-1] if reported else None)
        run.transitions += got

        # (b) flapping and flapping_end strictly alternate, starting with flapping.
        flaps = [t.kind for t in run.transitions if t.kind.startswith("flapping")]
        pairs, odd = divmod(len(flaps), 2)
        assert flaps == ["flapping", "flapping_end"] * pairs + ["flapping"] * odd
        assert tr.flapping == (len(flaps) % 2 == 1)

        # Flapping follows the raw changes within the window, with hysteresis.
        n = run.changes_in_window(now)
        if "flapping" in kinds:
            assert n >= policy.flap_threshold
        if "flapping_end" in kinds:
            assert n <= policy.flap_threshold // 2
        if i > 0:
            if tr.flapping:
                assert n > policy.flap_threshold // 2
            else:
                assert n < policy.flap_threshold

        # (d) the state is the last one reported, unless it changed while flapping.
        if was_flapping and tr.flapping and tr.state != before:
            changed_while_flapping = True
        if not tr.flapping:
            changed_while_flapping = False
        last = [t.new for t in run.transitions if t.kind in ("state", "flapping_end")]
        if not tr.flapping:
            assert tr.state == last[-1]
        else:
            reported = run.transitions[-1].new  # what the latest event said
            assert tr.state == reported or changed_while_flapping

        # Debounce is not just safe but live: `debounce` readings of S make it S.
        tail = run.raw[-policy.debounce:]
        if len(set(tail)) == 1:
            assert tr.state == tail[0]


@settings(max_examples=200, deadline=None)
@given(policy=policies, segs=segments)
def test_reason_follows_the_latest_reading_of_the_current_state(policy: Policy, segs):
    tr = CheckTracker(CHECK, policy)
    for i, (state, now) in enumerate(expand(segs)):
        reason = f"reading {i}"
        events = tr.observe(reading(state, reason), now)
        if state == tr.state:
            assert tr.reason == reason
        for t in events:
            if t.kind == "state":
                assert t.reason == reason


@settings(max_examples=100, deadline=None)
@given(policy=policies, segs=segments)
def test_same_readings_same_transitions(policy: Policy, segs):
    """Pure: two trackers fed the same readings say the same things."""
    a, b = CheckTracker(CHECK, policy), CheckTracker(CHECK, policy)
    for state, now in expand(segs):
        assert a.observe(reading(state), now) == b.observe(reading(state), now)
