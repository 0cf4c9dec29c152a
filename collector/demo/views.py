"""Reading an incident as the API gives it (collector/incident_codec.py) for the
story: which faults it holds, where its runbook is, its grade and deadlines.
Pure functions of the incident's data.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from datetime import datetime

TABLE = "cbrc"
GRADE_TITLES = {"I": "特别重大", "II": "重大", "III": "较大"}


def faults(inc: dict, check: str = "*", branch: str | None = None,
           active: bool | None = None) -> list[dict]:
    """Its faults whose check matches the glob, at a branch, active or not."""
    return [f for f in inc["faults"] if fnmatch.fnmatchcase(f["check"], check)
            and branch in (None, f["branch"]) and active in (None, f["active"])]


def branches(inc: dict) -> list[str]:
    """Every branch with a fault in it, sorted."""
    return sorted({f["branch"] for f in inc["faults"]})


def run_of(inc: dict, runbook: str) -> dict | None:
    """Its latest run of a runbook, or None."""
    runs = [r for r in inc["runbooks"] if r["runbook"]["id"] == runbook]
    return runs[-1] if runs else None


def at_step(inc: dict, runbook: str, *steps: str) -> dict | None:
    """The incident when its run of `runbook` is at one of `steps` (None: not there)."""
    run = run_of(inc, runbook)
    return inc if run is not None and run["current"] in steps else None


def step_record(run: dict, step: str) -> dict | None:
    """The latest record of a step in a run."""
    return next((r for r in reversed(run["records"]) if r["step"] == step), None)


def where(run: dict) -> str:
    """Where a run is: 'at STEP: TITLE (ROLE)' or 'done'."""
    if run["current"] is None:
        return f"runbook {run['runbook']['id']} {run['status']}"
    step = next(s for s in run["runbook"]["steps"] if s["id"] == run["current"])
    who = {"manual": f"a person ({step.get('role') or 'anyone'})", "decision": "a decision",
           "wait": "time", "action": "the branch's agent"}[step["kind"]]
    return f"now at {step['id']}: {step['title']} (waits for {who})"


def grade(inc: dict) -> dict | None:
    """The cbrc grade record, or None before grading."""
    return inc["grades"].get(TABLE)


def grade_is(wanted: str | None) -> Callable[[dict], dict | None]:
    """A test for `wait_for`: the incident once its grade is `wanted`."""
    return lambda inc: inc if (grade(inc) or {}).get("grade") == wanted else None


def grade_text(inc: dict, at: Callable) -> str:
    """'grade II 重大 (rule ii-2-regions-30m, reached 10:35)' or 'not graded'."""
    g = grade(inc)
    if g is None or g["grade"] is None:
        out = (g or {}).get("reasons", [])[1:]      # after "below grade III ...": who, since when
        return "below grade III: " + ("; ".join(out) if out else "no business stopped")
    provisional = ", provisional" if g["provisional"] else ""
    return (f"grade {g['grade']} {GRADE_TITLES.get(g['grade'], '')} (rule {g['rule']}, "
            f"reached {at(g['reached_at'])}{provisional})")


def history(inc: dict) -> list:
    """The grades it went through, oldest first (None: below III)."""
    g = grade(inc)
    return [h["grade"] for h in g["history"]] if g else []


def deadline_lines(inc: dict, at: Callable) -> list[str]:
    """One line per deadline: key, title, due time, status."""
    out = []
    for d in sorted(inc["deadlines"], key=lambda d: d["due_at"]):
        met = f" {at(d['met_at'])} by {d['met_by']}" if d["status"] == "met" else ""
        out.append(f"{d['key']}: {d['title']}, due {at(d['due_at'])} [{d['status']}{met}]")
    return out


def started(inc: dict) -> datetime:
    return datetime.fromisoformat(inc["started_at"])


def fault_start(fault: dict) -> datetime:
    """When a fault's current span began."""
    return datetime.fromisoformat(fault["spans"][-1][0])
