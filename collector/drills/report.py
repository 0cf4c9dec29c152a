"""What a drill report says (domain.md §5, 第二十四條: every drill's records and
results archived, with a summary report and follow-up fixes), drawn from the
run and its incidents alone. Pure; nothing here knows a language.

- what happened: the drill's own timeline (started, each injected event,
  ended) merged with its incidents' (reports/timeline.py: grades, runbook
  steps, acknowledgements, deadlines, resolution) and the messages sent;
- how long each runbook step took against the plan's expectation, and when
  each milestone was reached against the plan's;
- what failed: failed steps (第三十條: plan failed), missed deadlines (domain.md
  §3), steps and milestones over the plan or never reached, unfinished steps,
  deliveries given up, events never injected;
- follow-ups and the assessment: a person's text (model.EDITABLE).
"""

from __future__ import annotations

from datetime import datetime

from ..incidents import Incident
from ..reports.timeline import timeline as incident_timeline
from ..reports.language import timeline_entry
from ..texts import incident_title, role_name, said
from ..timewords import zone_label, zone_of
from .model import EDITABLE, DrillRun
from .plan import MILESTONES


def _e(at, kind, incident=None, subject="", state=None, who=None, text=None) -> dict:
    return {"at": at, "kind": kind, "incident": incident, "subject": subject, "state": state,
            "who": who, "text": text}


def _since(start: datetime, t: datetime | None) -> float | None:
    return None if t is None else round((t - start).total_seconds(), 1)


DELIVERY_WORDS = {"zh": {"sent": "已发送", "queued": "排队中", "failed": "失败"}}


def timeline(run: DrillRun, incs: list[Incident], now: datetime, language: str = "en"
             ) -> list[dict]:
    """Everything that happened in the drill, oldest first, in the report's language."""
    said_status = DELIVERY_WORDS.get(language, {})
    out = [_e(run.started_at, "drill_started", None, run.scenario.id, None, run.started_by,
              ", ".join(run.branches))]
    out += [_e(x.injected_at, "injected", None, f"{x.branch} {x.check}", x.state, None,
               (x.reason_zh or x.reason) if language == "zh" else x.reason)
            for x in run.injections if x.injected_at is not None]
    for inc in incs:
        # Faults starting and clearing are the injections above; the rest is the
        # incident's own story (report kinds: opened, graded, step, ack, ...).
        for e in incident_timeline(inc, now):
            if e["kind"] not in ("fault", "cleared"):
                timeline_entry(e, inc, language)
                out.append({**e, "incident": inc.id})
        for m in inc.notify.messages if inc.notify else []:
            sent = [d for d in inc.notify.deliveries if d.message == m.id]
            out.append(_e(m.at, "message", inc.id, m.reason, None, None,
                          f"{m.subject} -> " + (", ".join(f"{d.to} ({d.channel}: {said_status.get(d.status, d.status)})"
                                                           for d in sent) or "-")))
    if run.ended_at is not None:
        out.append(_e(run.ended_at, "drill_ended", None, run.scenario.id, None, run.ended_by,
                      run.end_why))
    return sorted(out, key=lambda e: (e["at"], e["kind"] != "drill_started",
                                      e["kind"] == "drill_ended"))


def steps(run: DrillRun, incs: list[Incident], now: datetime) -> list[dict]:
    """Every runbook step the drill went through, its duration against the plan;
    planned steps never reached last."""
    planned = run.plan.steps if run.plan else {}
    out, seen = [], set()
    for inc in incs:
        for r in inc.runbooks:
            rb = r.runbook
            for rec in r.records:
                step = rb.step(rec.step)
                end = rec.ended_at or (run.ended_at or now)
                actual = round((end - rec.started_at).total_seconds(), 1)
                plan = planned.get(rb.id, {}).get(rec.step)
                seen.add((rb.id, rec.step))
                # A step ended as not needed when the incident resolved was never
                # done by the team: for a drill it is unfinished.
                verdict = ("unfinished" if rec.ended_at is None or rec.status == "not_needed" else
                           "failed" if rec.status == "failed" else
                           "unplanned" if plan is None else
                           "over" if actual > plan else "ok")
                out.append({"incident": inc.id, "run": r.id, "runbook": rb.id,
                            "step": rec.step, "title": step.title, "role": step.role,
                            "kind": step.kind, "status": rec.status,
                            "started_at": rec.started_at, "ended_at": rec.ended_at,
                            "actual": actual, "planned": plan, "verdict": verdict,
                            # not_needed says why (the collector's "incident resolved")
                            "who": rec.who,
                            "note": None if rec.status == "not_needed" else rec.note})
    for rb_id, plan_steps in planned.items():
        for step_id, plan in plan_steps.items():
            if (rb_id, step_id) not in seen:
                out.append({"incident": None, "run": None, "runbook": rb_id, "step": step_id,
                            "title": None, "role": None, "kind": None, "status": None,
                            "started_at": None, "ended_at": None, "actual": None,
                            "planned": plan, "verdict": "not_reached", "who": None,
                            "note": None})
    return out


def _first(times) -> datetime | None:
    times = [t for t in times if t is not None]
    return min(times) if times else None


def reached(run: DrillRun, incs: list[Incident]) -> dict[str, datetime | None]:
    """When each milestone was reached (None: not yet), deadlines as deadline:KEY."""
    runs = [r for i in incs for r in i.runbooks]
    deliveries = [d for i in incs if i.notify for d in i.notify.deliveries]
    out = {
        "opened": _first(i.started_at for i in incs),
        "notified": _first(d.done_at for d in deliveries if d.status == "sent"),
        "acknowledged": _first(a.at for i in incs for a in i.acks),
        "runbook_started": _first(r.started_at for r in runs),
        "runbook_done": _first(r.ended_at for r in runs if r.status == "done"),
        "resolved": (max(i.resolved_at for i in incs)
                     if incs and all(i.resolved_at for i in incs) else None),
        "ended": run.ended_at,
    }
    for d in (d for i in incs for d in i.deadlines):
        key = f"deadline:{d.key}"
        out[key] = _first([out.get(key), d.met_at])
    return out


def milestones(run: DrillRun, incs: list[Incident], now: datetime) -> list[dict]:
    """Each milestone's time from the drill's start, against the plan's."""
    planned = run.plan.milestones if run.plan else {}
    when = reached(run, incs)
    names = list(MILESTONES) + sorted(k for k in set(when) | set(planned) if k not in MILESTONES)
    out = []
    for name in names:
        actual, plan = _since(run.started_at, when.get(name)), planned.get(name)
        if actual is None and plan is None:
            continue
        verdict = ("unplanned" if plan is None else "not_reached" if actual is None
                   else "over" if actual > plan else "ok")
        out.append({"name": name, "at": when.get(name), "actual": actual, "planned": plan,
                    "verdict": verdict})
    return out


def failures(run: DrillRun, incs: list[Incident], rows: list[dict], marks: list[dict]
             ) -> list[dict]:
    """What went wrong, oldest first (undated ones last)."""
    out = []
    for s in rows:
        if s["verdict"] in ("failed", "over", "unfinished", "not_reached"):
            out.append({"kind": "step_" + s["verdict"], "at": s["ended_at"] or s["started_at"],
                        "incident": s["incident"], "subject": f"{s['runbook']} {s['step']}",
                        "text": s["note"], "actual": s["actual"], "planned": s["planned"]})
    for m in marks:
        if m["verdict"] in ("over", "not_reached"):
            out.append({"kind": "milestone_" + m["verdict"], "at": m["at"], "incident": None,
                        "subject": m["name"], "text": None, "actual": m["actual"],
                        "planned": m["planned"]})
    for inc in incs:
        for d in inc.deadlines:
            if d.status == "missed" or d.missed_at is not None:
                out.append({"kind": "deadline_missed", "at": d.missed_at or d.due_at,
                            "incident": inc.id, "subject": d.key, "text": d.title,
                            "actual": None, "planned": None})
        for r in inc.runbooks:
            if r.status == "failed":
                out.append({"kind": "runbook_failed", "at": r.ended_at, "incident": inc.id,
                            "subject": f"{r.id} {r.runbook.id}", "text": None,
                            "actual": None, "planned": None})
        for d in inc.notify.deliveries if inc.notify else []:
            if d.status == "failed":
                out.append({"kind": "delivery_failed", "at": d.done_at, "incident": inc.id,
                            "subject": f"{d.to} ({d.channel})", "text": d.error,
                            "actual": None, "planned": None})
    left = run.pending() if run.status != "running" else []
    if left:
        out.append({"kind": "not_injected", "at": run.ended_at, "incident": None,
                    "subject": ", ".join(f"{x.branch} {x.check}" for x in left[:5])
                    + (f" (+{len(left) - 5})" if len(left) > 5 else ""),
                    "text": None, "actual": None, "planned": None})
    return sorted(out, key=lambda f: (f["at"] is None, f["at"] or run.started_at))


def incidents(incs: list[Incident]) -> list[dict]:
    """The drill's incidents, one line each."""
    return [{"id": i.id, "title": i.title, "status": i.status, "branch": i.branch,
             "started_at": i.started_at, "resolved_at": i.resolved_at,
             "closed_by": i.closed.who if i.closed else None,
             "closed_why": i.closed.why if i.closed else None,
             "grades": {n: g.grade for n, g in sorted(i.grades.items())},
             "runbooks": [f"{r.id} {r.runbook.id} ({r.status})" for r in i.runbooks]}
            for i in incs]


def _in_language(rows: list[dict], found: list[dict], incs: list[Incident],
                 language: str) -> None:
    """The step titles, roles, incident titles and runbook words of the report in its
    language (collector/texts.py; what people typed stays as written)."""
    if language == "en":
        return
    books = {r.runbook.id: r.runbook for i in incs for r in i.runbooks}
    for row in rows:
        rb = books.get(row["runbook"])
        try:
            step = rb.step(row["step"]) if rb is not None else None
        except KeyError:
            step = None
        if step is not None:
            row["title"] = said(step, "title", language)
        row["role"] = role_name(row["role"], language) or row["role"]
    for i, inc in zip(found, incs):
        i["title"] = incident_title(inc.title, language)
        i["runbooks"] = [f"{r.id} {said(r.runbook, 'title', language)}（{RUN_WORDS.get(r.status, r.status)}）"
                         for r in inc.runbooks]


# a run's status in a zh report's one-line list of runbooks
RUN_WORDS = {"running": "执行中", "done": "已完成", "failed": "失败"}


def build(run: DrillRun, incs: list[Incident], now: datetime, timezone: str,
          language: str) -> dict:
    """Everything the drill report's template reads (`r`)."""
    rows, marks = steps(run, incs, now), milestones(run, incs, now)
    found = incidents(incs)
    _in_language(rows, found, incs, language)
    s, p = run.scenario, run.plan
    return {
        "language": language, "timezone": timezone, "as_of": now,
        "zone": zone_label(zone_of(timezone), language, now),       # 北京时间 / CST, UTC+8
        "drill": {"id": run.id, "status": run.status, "speed": run.speed,
                  "branches": run.branches, "region": run.region,
                  "started_at": run.started_at, "started_by": run.started_by,
                  "ended_at": run.ended_at, "ended_by": run.ended_by, "end_why": run.end_why,
                  "minutes": _since(run.started_at, run.ended_at or now) / 60,
                  "archived_at": run.archived_at, "archived_by": run.archived_by},
        "scenario": {"id": s.id, "title": said(s, "title", language),
                     "source": said(s, "source", language), "runbook": s.runbook,
                     "scope": s.scope, "events": len(run.injections)},
        "plan": None if p is None else {
            "title": p.title, "time": p.time, "content": p.content, "basis": p.basis,
            "purpose": p.purpose, "owner": p.owner, "partners": p.partners},
        "incidents": found,
        "timeline": timeline(run, incs, now, language),
        "steps": rows, "milestones": marks,
        "failures": failures(run, incs, rows, marks),
        **{k: run.fields.get(k, "") for k in EDITABLE},
    }
