"""Reading an incident as the API gives it (collector/incident_codec.py) for the
story: which faults it holds, where its runbook is, its grade and deadlines.
Pure functions of the incident's data.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from datetime import datetime

TABLE = "cbrc"


def _as_is(text: str, **fields) -> str:
    """English, as the templates are written (the narrator's `tr` translates)."""
    return text.format(**fields) if fields else text


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


def where(run: dict, tr: Callable = _as_is) -> str:
    """Where a run is: 'at STEP: TITLE (ROLE)' or 'done' (`tr`: the narrator's words)."""
    if run["current"] is None:
        return tr("runbook {id} {status}", id=run["runbook"]["id"], status=tr(run["status"]))
    step = next(s for s in run["runbook"]["steps"] if s["id"] == run["current"])
    who = {"manual": tr("a person ({role})", role=step.get("role") or tr("anyone")),
           "decision": tr("a decision"), "wait": tr("time"),
           "action": tr("the branch's agent")}[step["kind"]]
    return tr("now at {step}: {title} (waits for {who})", step=step["id"], title=step["title"],
              who=who)


def grade(inc: dict) -> dict | None:
    """The cbrc grade record, or None before grading."""
    return inc["grades"].get(TABLE)


def grade_is(wanted: str | None) -> Callable[[dict], dict | None]:
    """A test for `wait_for`: the incident once its grade is `wanted`."""
    return lambda inc: inc if (grade(inc) or {}).get("grade") == wanted else None


def grade_text(inc: dict, at: Callable, tr: Callable = _as_is) -> str:
    """'grade II 重大 (rule ii-2-regions-30m, reached 10:35)' or 'not graded'."""
    g = grade(inc)
    if g is None or g["grade"] is None:
        out = (g or {}).get("reasons", [])[1:]      # after "below grade III ...": who, since when
        return tr("below grade III: {why}", why="; ".join(out) if out
                  else tr("no business stopped"))
    return tr("grade {grade} {title} (rule {rule}, reached {at}{provisional})", grade=g["grade"],
              title=GRADE_TITLES.get(g["grade"], ""), rule=g["rule"], at=at(g["reached_at"]),
              provisional=tr(", provisional") if g["provisional"] else "")


def history(inc: dict) -> list:
    """The grades it went through, oldest first (None: below III)."""
    g = grade(inc)
    return [h["grade"] for h in g["history"]] if g else []


def deadline_lines(inc: dict, at: Callable, tr: Callable = _as_is) -> list[str]:
    """One line per deadline: key, title, due time, status."""
    out = []
    for d in sorted(inc["deadlines"], key=lambda d: d["due_at"]):
        met = tr(" {at} by {who}", at=at(d["met_at"]), who=d["met_by"]) \
            if d["status"] == "met" else ""
        out.append(tr("{key}: {title}, due {at} [{status}{met}]", key=d["key"], title=d["title"],
                      at=at(d["due_at"]), status=tr(d["status"]), met=met))
    return out


def started(inc: dict) -> datetime:
    return datetime.fromisoformat(inc["started_at"])


def fault_start(fault: dict) -> datetime:
    """When a fault's current span began."""
    return datetime.fromisoformat(fault["spans"][-1][0])
