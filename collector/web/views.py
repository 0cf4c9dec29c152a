"""What the console's pages show, computed from the collector's own data: pure
functions (no I/O, `now` given), so the pages and their tests agree.

Incidents arrive as `incident_codec.to_dict` data; branches as the store's
agent records (last heartbeat and its checks) with the config's enrolment.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime, timezone
from types import SimpleNamespace

from agent.wire import CheckStatus

from ..runbooks.run import Run
from ..texts import Reader
from .i18n import translate

STATE_RANK = {"ok": 0, "unknown": 1, "warning": 2, "critical": 3}

# Which checks a branch tile shows under which heading (agent check ids).
GROUPS = (
    ("ups", ("ups/*",)),
    ("uplinks", ("line/*", "switch/*", "failover/*")),
    ("services", ("tcp/*", "listen/*", "process/*", "http/*")),
    ("host", ("*",)),
)

# The steps a person works from the console (domain.md §4: not pre-authorised).
PERSON_STEPS = ("manual", "decision", "action")


def worst(states) -> str:
    return max(states, key=lambda s: STATE_RANK.get(s, 1), default="ok")


def grade_labels(inc: dict, tables: dict) -> list[dict]:
    """Each table's grade as shown: 'III 较大', with its rank for sorting."""
    out = []
    for name, rec in inc["grades"].items():
        table = tables.get(name)
        title = table.grade_titles.get(rec.grade, "") if table and rec.grade else ""
        rank = table.rank(rec.grade) if table else 0
        out.append({"table": name, "grade": rec.grade, "title": title,
                    "provisional": rec.provisional, "rank": rank, "rule": rec.rule})
    return out


def next_deadline(inc: dict) -> object | None:
    """The soonest deadline still due (a DeadlineState), or None."""
    due = [d for d in inc["deadlines"] if d.status == "due"]
    return min(due, key=lambda d: d.due_at, default=None)


def incident_row(inc: dict, tables: dict, now: datetime) -> dict:
    """One line of the incidents page."""
    row = _static_row(inc, tables)
    nd = row["deadline"]
    return {**row, "age": (now - inc["started_at"]).total_seconds(),
            "deadline_left": (nd.due_at - now).total_seconds() if nd else None}


# What a row holds that time does not change, per incident data object: the
# readers hand out the same object while the stored incident is unchanged
# (incident_reads.as_data), so a page reloaded every few seconds works out
# only the ages and countdowns again. Bounded like that cache.
_rows: dict[str, tuple[dict, dict, dict]] = {}
ROWS_KEEP = 20_000


def _static_row(inc: dict, tables: dict) -> dict:
    known = _rows.get(inc["id"])
    if known is not None and known[0] is inc and known[1] is tables:
        return known[2]
    grades = grade_labels(inc, tables)
    row = {
        "id": inc["id"], "title": inc["title"], "status": inc["status"], "drill": inc["drill"],
        "branches": sorted({f["branch"] for f in inc["faults"]}) or [inc["branch"]],
        "grades": [g for g in grades if g["grade"]],
        "rank": max((g["rank"] for g in grades), default=0),
        "started_at": inc["started_at"],
        "ack": inc["acks"][-1] if inc["acks"] else None,
        "deadline": next_deadline(inc),
        "missed": sum(d.status == "missed" for d in inc["deadlines"]),
        "active_faults": sum(f["active"] for f in inc["faults"]),
    }
    if len(_rows) >= ROWS_KEEP:
        for iid in list(_rows)[:ROWS_KEEP // 2]:
            _rows.pop(iid, None)
    _rows.pop(inc["id"], None)
    _rows[inc["id"]] = (inc, tables, row)
    return row


def incident_rows(incidents: list[dict], tables: dict, now: datetime) -> list[dict]:
    """Most severe first, then the oldest."""
    rows = [incident_row(i, tables, now) for i in incidents]
    return sorted(rows, key=lambda r: (-r["rank"], r["started_at"]))


def timeline(inc: dict, limit: int = 300, words: Reader | None = None) -> list[dict]:
    """Everything that happened to an incident, oldest first: faults, people,
    grades, runbook steps, deadlines (the newest `limit` entries), in the words
    of `words`' reader (English by default). `text` is branchwatch's words,
    `raw` what a device or a person said, as they said it."""
    words = words or Reader("en", timezone.utc)
    t = translate(words.lang)
    sep = "：" if words.lang == "zh" else ": "
    e = [{"at": inc["started_at"], "kind": "opened", "text": words.title(inc["title"]), "who": None,
          "raw": None}]
    for f in inc["faults"]:
        for at, kind, state, reason in (h[:4] for h in f["history"]):
            how = "" if kind == "state" else f" ({t('event_' + kind)})"
            e.append({"at": at, "kind": "fault_entry", "who": None, "state": state,
                      "text": f"{f['branch']} {f['check']}{sep}{t(state)}{how}",
                      "raw": words.reason(reason)})
    for a in inc["acks"]:
        e.append({"at": a["at"], "kind": "acked", "who": a["who"], "text": "", "raw": a["why"]})
    for a in inc["notes"]:
        e.append({"at": a["at"], "kind": "note", "who": a["who"], "text": "", "raw": a["why"]})
    for name, rec in inc["grades"].items():
        for c in rec.history:
            if c.grade is None and c.who is None:
                continue            # "not graded yet" is no event
            text = f"{name}{sep}{c.grade or '—'}"
            text += f" {words.grade(name, c.grade)}" if c.grade else ""
            text += f" ({t('provisional')})" if c.provisional else ""
            text += f" · {words.rule(name, c.rule)}" if c.rule else ""
            e.append({"at": c.at, "kind": "graded", "who": c.who, "text": text,
                      "raw": c.why})
    for run in inc["runbooks"]:
        for r in run.records:
            if r.status in ("done", "skipped", "failed", "not_needed"):
                try:
                    step = run.runbook.step(r.step)
                except KeyError:
                    step = None
                text = f"{words.said(run.runbook)} / {words.said(step) if step else r.step}"
                text += f" · {t(r.status)}"
                text += f" · {words.option(step, r.choice)}" if r.choice else ""
                e.append({"at": r.ended_at or r.started_at, "kind": "step_entry",
                          "who": r.who, "text": text,
                          # "incident resolved" is the collector's, said by the status
                          "raw": None if r.status == "not_needed" else r.note})
    for d in inc["deadlines"]:
        if d.status == "met":
            e.append({"at": d.met_at, "kind": "deadline_met", "who": d.met_by,
                      "text": words.deadline(d), "raw": d.what})
        elif d.status == "missed":
            e.append({"at": d.missed_at or d.due_at, "kind": "deadline_missed", "who": None,
                      "text": words.deadline(d), "raw": None})
    if inc["resolved_at"]:
        by = inc["resolved_by"]
        e.append({"at": inc["resolved_at"], "kind": "resolved", "who": by and by["who"],
                  "text": "", "raw": by["why"] if by else ""})
    if inc["closed"]:
        e.append({"at": inc["closed"]["at"], "kind": "closed", "who": inc["closed"]["who"],
                  "text": "", "raw": inc["closed"]["why"]})
    e.sort(key=lambda x: x["at"])
    return e[-limit:]


def fault_view(f: dict) -> dict:
    """A fault as the faults table shows it: while active, its state and reason;
    once cleared, when and why it cleared, and what the fault had been."""
    if f["active"]:
        return {**f, "shown_state": f["state"], "cleared_at": None, "cleared_why": None}
    ended = f["spans"][-1][1] if f["spans"] and f["spans"][-1][1] else f["last_at"]
    after = [h for h in f["history"] if h[0] >= ended]
    why = after[0][3] if after else (f["history"][-1][3] if f["history"] else "")
    return {**f, "shown_state": "ok", "cleared_at": ended, "cleared_why": why}


def checklist(run: Run) -> dict:
    """A runbook run as a checklist: every step in file order with its latest record;
    `actionable` on the current step when a person must confirm, skip or fail it."""
    steps = []
    for step in run.runbook.steps:
        rec = run.record(step.id)
        current = step.id == run.current and run.status == "running"
        # A finished run's steps never reached were a branch not taken, not "pending".
        status = rec.status if rec else ("pending" if run.status == "running" else "not_taken")
        person = current and status in ("waiting", "running") and (
            step.kind in ("manual", "decision")
            or (step.kind == "action" and not (rec and rec.confirmed)
                and (not step.preauthorised or bool(rec and rec.held))))
        steps.append({"step": step, "record": rec, "status": status, "current": current,
                      "actionable": person})
    return {"run": run, "steps": steps}


def group_of(check: str) -> str:
    for name, patterns in GROUPS:
        if any(fnmatch.fnmatchcase(check, p) for p in patterns):
            return name
    return "host"


def _newer_faults(incidents: list[dict]) -> dict[str, dict[str, dict]]:
    """agent -> check -> the latest fault of the open incidents."""
    out: dict[str, dict[str, dict]] = {}
    for inc in incidents:
        for f in inc["faults"]:
            known = out.setdefault(f["agent"], {}).get(f["check"])
            if known is None or f["last_at"] > known["last_at"]:
                out[f["agent"]][f["check"]] = f
    return out


def branch_tiles(agents: list, enrolled: list, silent: set[str], open_incidents: list[dict],
                 now: datetime) -> list[dict]:
    """Regions, each with its branches: the state of UPS, uplinks, services and host
    from the last heartbeat, silent agents, and the branch's open incidents."""
    by_branch: dict[str, dict] = {}

    def branch(name: str, region: str) -> dict:
        b = by_branch.setdefault(name, {"branch": name, "region": region, "agents": [],
                                        "groups": {g: [] for g, _ in GROUPS},
                                        "incidents": []})
        b["region"] = b["region"] or region
        return b

    newer = _newer_faults(open_incidents)
    region_of = {e.id: e.region for e in enrolled}      # the config is the authority
    seen = set()
    for a in agents:
        if a.agent.startswith("drill:"):
            continue
        seen.add(a.agent)
        b = branch(a.branch, region_of.get(a.agent) or a.region)
        b["agents"].append({"agent": a.agent, "silent": a.agent in silent, "never": False,
                            "heard": a.heartbeat_at,
                            "heard_ago": (now - a.heartbeat_at).total_seconds()
                            if a.heartbeat_at else None})
        checks = {c.check: c for c in a.checks}
        for check, f in newer.get(a.agent, {}).items():
            # A state change since the last heartbeat (they come every 15 s or so).
            if a.heartbeat_at is None or f["last_at"] > a.heartbeat_at:
                checks[check] = CheckStatus(check=check, reason=f["reason"],
                                            state=f["state"] if f["active"] else "ok")
        for c in checks.values():
            b["groups"][group_of(c.check)].append(c)
    for e in enrolled:
        if e.id not in seen:
            branch(e.branch, e.region)["agents"].append(
                {"agent": e.id, "silent": False, "heard": None, "heard_ago": None,
                 "never": True})
    for inc in open_incidents:
        for name in {f["branch"] for f in inc["faults"]} or {inc["branch"]}:
            if name in by_branch:
                by_branch[name]["incidents"].append(inc["id"])
    for b in by_branch.values():
        b["group_state"] = {g: worst(c.state for c in cs) for g, cs in b["groups"].items()}
        b["problems"] = {g: [c for c in cs if c.state != "ok"] for g, cs in b["groups"].items()}
        if any(a["silent"] for a in b["agents"]):
            b["state"] = "silent"
        elif all(a.get("never") for a in b["agents"]):
            b["state"] = "unknown"
        else:
            b["state"] = worst(b["group_state"].values())
    regions: dict[str, list] = {}
    for b in sorted(by_branch.values(), key=lambda b: b["branch"]):
        regions.setdefault(b["region"], []).append(b)
    return [{"region": r, "branches": bs,
             "state": worst("critical" if b["state"] == "silent" else b["state"] for b in bs)}
            for r, bs in sorted(regions.items())]


_TILE_RANK = {**STATE_RANK, "silent": 4}


def shown_branches(regions: list[dict], problems: bool, region: str | None) -> list[dict]:
    """The regions and branches a branches page shows: one region or all; with
    `problems`, only branches not ok (and regions left with none go)."""
    out = []
    for r in regions:
        if region is not None and r["region"] != region:
            continue
        bs = [b for b in r["branches"] if not problems or b["state"] != "ok"]
        # Within a region the branches in trouble come first, the worst first.
        bs.sort(key=lambda b: (-_TILE_RANK.get(b["state"], 1), b["branch"]))
        if bs:
            out.append({**r, "branches": bs})
    return out


def notifications(inc: dict, limit: int = 30) -> dict | None:
    """Who was told what (issue 7): the escalation chain and how far it went, whether
    an ack stopped it, and the newest deliveries with the message each carried."""
    n = inc["notify"]
    if n is None:
        return None
    subjects = {m.id: m.subject for m in n.messages}
    chain = [{"after": lvl.after, "roles": lvl.roles, "reached": i <= n.level}
             for i, lvl in enumerate(n.chain)]
    deliveries = [{"at": d.done_at, "to": d.to, "channel": d.channel, "status": d.status,
                   "attempts": d.attempts, "error": d.error,
                   "subject": subjects.get(d.message, "")} for d in n.deliveries[-limit:]]
    return {"route": n.route, "chain": chain, "acked": n.acked(_acks(inc)),
            "held": n.held, "deliveries": list(reversed(deliveries))}


def _acks(inc: dict) -> list:
    """The incident's acks as objects with .at (NotifyState.acked reads them so)."""
    return [SimpleNamespace(**a) for a in inc["acks"]]
