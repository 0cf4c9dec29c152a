"""Does the incident engine's cost per event stay flat as the book grows?

Pure-book measurements (collector/incidents.py with its index; no store, no
HTTP), CPU time of this process (time.process_time), A/B interleaved:
every round measures each setup once in turn, and each setup's figure is
reported as a ratio to the baseline measured in the same round, with the
median and the range over rounds.

  - scale: the same outage script (a line fault opens, a UPS fault joins, a
    service fault is suppressed, all clear and resolve; each cycle an hour
    after the last, so none joins another) at a probe branch, with 10,
    1,000 or 10,000 open incidents at other branches, or with 3,000
    resolved-not-closed incidents at the probe branch itself. Target: every
    ratio within 1.00 +- 0.10.
  - replay: one branch replays a 100,000-event spool after a partition (a
    primary line bouncing, with 50 services failing and clearing under it),
    applied in batches of 100 and each batch's touched incidents encoded as
    the store saves them; CPU per event of the last 10 % against the first
    10 %. Target: ratio <= 1.10 (the drain stays flat).

Run: python3 bench/collector_scale_bench.py [--rounds 7] [--cycles 200]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.wire import Event  # noqa: E402
from collector.incident_codec import encode, to_dict  # noqa: E402
from collector.incidents import IncidentBook  # noqa: E402

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=timezone.utc)
_ids = iter(range(10**12))


def event(t: float, check: str, state: str, branch: str, diagnosis: str | None = None) -> Event:
    return Event(id=f"e{next(_ids)}", kind="state", agent=f"agent-{branch}", branch=branch,
                 check=check, old_state=None, new_state=state, reason=state,
                 observed_at=T0 + timedelta(seconds=t), diagnosis=diagnosis)


OUTAGE = [(0, "line/primary/gw", "critical", "line"), (5, "ups/rack/on_battery", "critical", None),
          (6, "tcp/core", "critical", None), (60, "line/primary/gw", "ok", None),
          (61, "ups/rack/on_battery", "ok", None), (62, "tcp/core", "ok", None)]


class Setup:
    """A book with some incidents, and a clock for its probe branch's next cycle."""

    def __init__(self, name: str, open_elsewhere: int = 0, resolved_here: int = 0):
        self.name, self.book, self.t = name, IncidentBook(window=120), 0.0
        for n in range(resolved_here):
            self.cycle()
        for n in range(open_elsewhere):
            b = f"other-{n}"
            self.book.apply_event(event(self.t, "ups/rack/on_battery", "critical", b),
                                  T0 + timedelta(seconds=self.t))
        assert self.book.count("open") == open_elsewhere
        assert self.book.count("resolved") == resolved_here

    def cycle(self) -> int:
        """One outage at the probe branch, an hour after the last; events applied."""
        for dt, check, state, diag in OUTAGE:
            t = self.t + dt
            self.book.apply_event(event(t, check, state, "probe", diag),
                                  T0 + timedelta(seconds=t))
        self.t += 3600.0
        return len(OUTAGE)

    def measure(self, cycles: int) -> float:
        """CPU µs per event over `cycles` outages."""
        gc.collect()
        c0, n = time.process_time(), 0
        for _ in range(cycles):
            n += self.cycle()
        return 1e6 * (time.process_time() - c0) / n


def ratios(rounds: list[dict[str, float]], base: str) -> dict:
    out = {}
    for name in rounds[0]:
        r = [x[name] / x[base] for x in rounds]
        us = [x[name] for x in rounds]
        out[name] = {"ratio_median": round(statistics.median(r), 3),
                     "ratio_range": [round(min(r), 3), round(max(r), 3)],
                     "us_per_event_median": round(statistics.median(us), 1)}
    return out


def scale(rounds: int, cycles: int) -> dict:
    setups = [Setup("open=10", open_elsewhere=10), Setup("open=1000", open_elsewhere=1_000),
              Setup("open=10000", open_elsewhere=10_000),
              Setup("resolved_here=3000", resolved_here=3_000)]
    for s in setups:
        s.measure(20)                           # warm up
    got = []
    for r in range(rounds):
        order = setups if r % 2 == 0 else setups[::-1]     # interleaved, both ways
        got.append({s.name: s.measure(cycles) for s in order})
    return {"baseline": "open=10", "rounds": rounds, "events_per_measure": cycles * len(OUTAGE),
            "setups": ratios(got, "open=10")}


def replay(events: int = 100_000, batch: int = 100, services: int = 50) -> dict:
    """One branch's spool after a partition, applied and encoded batch by batch."""
    book = IncidentBook(window=120)
    script, t = [], 0.0
    while len(script) < events:
        script.append(event(t, "line/primary/gw", "critical", "b1", "line"))
        for k in range(services):
            script.append(event(t + 1 + k * 0.01, f"tcp/svc{k}", "critical", "b1"))
        for k in range(services):
            script.append(event(t + 5 + k * 0.01, f"tcp/svc{k}", "ok", "b1"))
        script.append(event(t + 8, "line/primary/gw", "ok", "b1"))
        t += 30.0                                # the line bounces every 30 s, within the window
    script = script[:events]
    chunk = events // 10
    apply_cpu, save_cpu, sizes = [0.0] * 10, [0.0] * 10, [0]
    for i in range(0, events, batch):
        tenth = i // chunk
        c0 = time.process_time()
        touched = {}
        for e in script[i:i + batch]:
            for c in book.apply_event(e, e.observed_at):
                touched[c.incident_id] = book.get(c.incident_id)
        c1 = time.process_time()
        # What the store writes for the batch today: each touched incident, whole.
        sizes += [len(encode(to_dict(inc, stored=True))) for inc in touched.values()]
        apply_cpu[tenth] += c1 - c0
        save_cpu[tenth] += time.process_time() - c1
    per = [1e6 * (a + s) / chunk for a, s in zip(apply_cpu, save_cpu)]
    book_only = [1e6 * a / chunk for a in apply_cpu]
    return {"events": events, "incidents": len(book.incidents()),
            "us_per_event_first_10pct": round(per[0], 1),
            "us_per_event_last_10pct": round(per[-1], 1),
            "last_over_first": round(per[-1] / per[0], 3),
            "last_over_second": round(per[-1] / per[1], 3),
            "us_per_event_by_tenth": [round(x, 1) for x in per],
            "book_only_us_per_event_by_tenth": [round(x, 1) for x in book_only],
            "book_only_last_over_first": round(book_only[-1] / book_only[0], 3),
            "largest_saved_incident_bytes": max(sizes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--cycles", type=int, default=200, help="outages per measurement")
    ap.add_argument("--replay-events", type=int, default=100_000)
    args = ap.parse_args()
    print(json.dumps({"scale": scale(args.rounds, args.cycles),
                      "replay": replay(args.replay_events)}, indent=2))


if __name__ == "__main__":
    main()
