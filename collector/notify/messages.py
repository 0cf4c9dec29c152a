"""What a message says: text from the language's template (templates/*.yaml),
the JSON webhook's body, and the alert Alertmanager receives. Pure.

Every message starts with the incident id, its grade and title; a drill says
DRILL in its first words (issue 7: nobody may take a drill for the real thing).
"""

from __future__ import annotations

import re
import string
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from ..incidents import Incident
from ..texts import deadline_title, grade_title, incident_title, reason_zh, role_name, said
from .routing import Rules, branches_of

TEMPLATES = Path(__file__).with_name("templates")
FAULTS_SHOWN = 5
KEYS = ("drill", "ungraded", "subject", "reasons", "body")


@cache
def template(language: str) -> dict:
    """The shipped template of a language (checked: every key, every reason)."""
    data = yaml.safe_load((TEMPLATES / f"{language}.yaml").read_text(encoding="utf-8"))
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise ValueError(f"templates/{language}.yaml: missing {', '.join(missing)}")
    return data


def is_drill(inc: Incident) -> bool:
    """A drill incident: a `drill` flag (set by the drill feature) or a DRILL title."""
    return bool(getattr(inc, "drill", False)) or inc.title.upper().startswith("DRILL")


def grade_label(inc: Incident, rules: Rules, ungraded: str) -> str:
    """'III 较大' per graded table (' / ' between tables), or the ungraded word."""
    labels = []
    for name, rec in inc.grades.items():
        if rec.grade is None:
            continue
        t = rules.tables.get(name)
        title = grade_title(t, rec.grade, rules.settings.language) if t is not None else None
        labels.append(f"{rec.grade} {title}" if title else rec.grade)
    return " / ".join(labels) or ungraded


def zone(rules: Rules) -> ZoneInfo:
    """The time zone messages show times in."""
    return ZoneInfo(rules.timezone)


def local(t: datetime | None, tz: ZoneInfo) -> str:
    """A time as people at the bank read it."""
    return "" if t is None else t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def render(inc: Incident, reason: str, detail: str, rules: Rules, tz: ZoneInfo
           ) -> tuple[str, str]:
    """(subject, text without the ack link) for one alert."""
    t = template(rules.settings.language)
    subject = _fill(t["subject"], drill=t["drill"] if is_drill(inc) else "", id=inc.id,
                    grade=grade_label(inc, rules, t["ungraded"]),
                    title=incident_title(inc.title, rules.settings.language))
    lang, states = rules.settings.language, t.get("states", {})
    faults = [f for f in inc.faults.values() if f.active and not f.suppressed]
    said = reason_zh if lang == "zh" else (lambda text: text)
    shown = "; ".join(f"{f.check} {states.get(f.state, f.state)}: {said(f.reason)}"
                      for f in faults[:FAULTS_SHOWN])
    if len(faults) > FAULTS_SHOWN:
        shown += f"; +{len(faults) - FAULTS_SHOWN}"
    due_words = t.get("deadline_statuses", {})
    due = "; ".join(f"{d.key} {due_words.get(d.status, d.status)} {local(d.due_at, tz)}"
                    for d in inc.deadlines if d.status != "met")
    branches = branches_of(inc)
    values = dict(subject=subject, id=inc.id,
                  title=incident_title(inc.title, rules.settings.language),
                  what=_fill(t["reasons"].get(reason, "{detail}"),
                             detail=_detail(detail, inc, lang, states, tz, rules)),
                  branches=", ".join(branches),
                  region=", ".join(dict.fromkeys(r for b in branches
                                                 if (r := rules.region_of(b)))) or "-",
                  started=local(inc.started_at, tz),
                  status=t.get("statuses", {}).get(inc.status, inc.status), faults=shown,
                  deadlines=due)
    lines = [line for line in (_line(b, values) for b in t["body"]) if line is not None]
    return subject, "\n".join(lines)


def _detail(detail: str, inc: Incident, lang: str, states: dict, tz: ZoneInfo | None = None,
            rules: Rules | None = None) -> str:
    """What changed, as the engine wrote it, with its own words in the message's
    language: titles, fault states, deadlines, grades (a device's words stay)."""
    if lang == "en" or not detail:
        return detail
    title = inc.title
    for head in (title, title.removeprefix("DRILL: ")):
        if head and detail.startswith(head + ": "):
            return incident_title(head, lang) + "：" + _detail(detail[len(head) + 2:], inc, lang,
                                                             states, tz, rules)
    graded = _GRADED.match(detail)
    if graded:
        return _graded_zh(graded, inc)
    if detail == "every fault cleared":
        return "全部故障已恢复"
    m = _NOT_COVERED.match(detail)
    if m:
        return f"没有预案覆盖{incident_title(m['title'], lang)}（{m['faults']}）；由应急领导小组决定处置"
    m = _PLAN_FAILED.match(detail)
    if m:
        step = _step_title(inc, m["step"])
        return f"预案步骤“{step or m['title']}”失败：{m['note']}"
    m = _MISSED.match(detail) or _REMINDER.match(detail)
    if m:
        d = next((x for x in inc.deadlines if x.key == m["key"]), None)
        name = deadline_title(rules.tables if rules else {}, d, lang) if d else m["title"]
        at = local(d.due_at, tz) if d and tz else m["at"]
        if m.re is _MISSED:
            return f"{name}（{m['key']}）已于 {at} 到期"
        return f"{name}（{m['key']}）{at} 到期，剩余 {m['left']} 分钟"
    m = _ESCALATED.match(detail)
    if m:
        roles = "、".join(role_name(r.strip(), lang) for r in m["roles"].split(","))
        return f"{m['after']} 分钟 → {roles}"
    by = re.match(r"^by (?P<who>[^:]+): (?P<why>.*)$", detail)       # a person's resolve
    if by:
        return f"{by['who']}：{by['why']}"
    m = _FAULT.match(detail)
    if m:
        return f"{m['check']} {states.get(m['state'], m['state'])}: {reason_zh(m['reason'])}"
    return detail


# notify/escalation.py, incident_grades.py and incidents.py write these
_MISSED = re.compile(r"^(?P<key>\S+) was due (?P<at>\S+): (?P<title>.+)$")
_REMINDER = re.compile(r"^(?P<title>.+) \((?P<key>[\w-]+)\) due (?P<at>.+), in (?P<left>-?\d+) min$")
_ESCALATED = re.compile(r"^(?P<after>[\d.]+) min -> (?P<roles>.+)$")
_FAULT = re.compile(r"^(?P<check>\S+) (?P<state>ok|warning|critical|unknown): (?P<reason>.*)$")


# incident_runbooks.py and runbooks/run.py write these
_NOT_COVERED = re.compile(r"^no runbook covers (?P<title>.+) \((?P<faults>[^()]*)\); "
                          r"the leadership group decides what to do$")
_PLAN_FAILED = re.compile(r"^(?:\S+ )?plan failed at (?P<step>\S+) \((?P<title>.+?)\): (?P<note>.*)$")


def _step_title(inc: Incident, step_id: str) -> str | None:
    """A runbook step's title in Chinese, from the run frozen on the incident."""
    for run in inc.runbooks:
        try:
            return said(run.runbook.step(step_id), "title", "zh")
        except KeyError:
            continue
    return None


# incident_grades._apply_grade's detail: "cbrc: ungraded -> III 较大 by rule r (reason)"
_GRADED = re.compile(r"^(?P<table>[\w-]+): (?P<old>.+?) -> (?P<new>.+?)"
                     r"(?: by rule (?P<rule>\S+)(?: \((?P<reason>.*)\))?| by (?P<who>[^:]+): (?P<why>.*))?$")
_GRADE_WORDS = (("not yet graded", "尚未定级"), ("ungraded", "未定级"), (" (provisional)", "（暂定）"))


def _graded_zh(m: re.Match, inc: Incident) -> str:
    def label(text: str) -> str:
        for en, zh in _GRADE_WORDS:
            text = text.replace(en, zh)
        return text
    out = f"{m['table']}：{label(m['old'])} → {label(m['new'])}"
    if m["who"]:
        return out + f"（{m['who']} 人工定级：{m['why']}）"
    rec = inc.grades.get(m["table"])
    zh = list(getattr(rec, "reasons_zh", ()) or ())
    return out + (f"（{zh[0]}）" if zh else "")


def with_link(text: str, ack_url: str | None, rules: Rules) -> str:
    """The text with the person's ack link in the template's ack line."""
    lines = text.split("\n")
    if ack_url:
        line = _line(next(b for b in template(rules.settings.language)["body"]
                          if "{ack_url}" in b), {"ack_url": ack_url})
        lines.insert(max(len(lines) - 1, 1), line)   # before the CLI line
    return "\n".join(lines)


def webhook_body(inc: Incident, rules: Rules, reason: str, subject: str, text: str,
                 to: str, role: str | None, level: int | None, ack_url: str | None,
                 at: datetime) -> dict:
    """The native JSON webhook's body: the message and the incident's essentials."""
    return {"version": 1, "incident": inc.id, "drill": is_drill(inc), "reason": reason,
            "subject": subject, "text": text, "to": to, "role": role, "level": level,
            "ack_url": ack_url, "at": at.isoformat(), "title": inc.title,
            "status": inc.status, "branch": inc.branch, "branches": branches_of(inc),
            "region": rules.region_of(inc.branch),
            "started_at": inc.started_at.isoformat(),
            "grades": {n: r.grade for n, r in inc.grades.items()},
            "deadlines": [{"key": d.key, "status": d.status, "due_at": d.due_at.isoformat()}
                          for d in inc.deadlines]}


def am_alert(inc: Incident, rules: Rules, now: datetime) -> dict:
    """The incident as one Alertmanager alert (POST /api/v2/alerts). A firing one
    ends 4 resend intervals ahead (re-posted every `resend`, as Prometheus does);
    a resolved one ends when it resolved."""
    am = rules.settings.alertmanager
    # Severity from the worst any fault was, not what is active now: Alertmanager
    # knows an alert by its labels, which should change as little as possible.
    critical = any(r.grade is not None for r in inc.grades.values()) or any(
        not f.suppressed and any(h[2] in ("critical", "unknown") for h in f.history)
        for f in inc.faults.values())
    labels = {"alertname": "BranchwatchIncident", "incident": inc.id, "branch": inc.branch,
              "severity": "critical" if critical else "warning"}
    if region := rules.region_of(inc.branch):
        labels["region"] = region
    for name, rec in inc.grades.items():
        if rec.grade is not None:
            labels["grade_" + re.sub(r"[^A-Za-z0-9_]", "_", name)] = rec.grade
    if is_drill(inc):
        labels["drill"] = "true"
    subject, _ = render(inc, "opened", "", rules, zone(rules))
    ends = inc.resolved_at if inc.status != "open" and inc.resolved_at else \
        now + timedelta(seconds=4 * am.resend)
    alert = {"labels": labels,
             "annotations": {"summary": subject, "title": inc.title},
             "startsAt": inc.started_at.isoformat(), "endsAt": ends.isoformat()}
    if rules.settings.public_url:
        alert["generatorURL"] = f"{rules.settings.public_url.rstrip('/')}/api/v1/incidents/{inc.id}"
    return alert


def _fill(pattern: str, **values) -> str:
    return string.Formatter().vformat(pattern, (), _Blank(values))


def _line(pattern: str, values: dict) -> str | None:
    names = [n for _, n, _, _ in string.Formatter().parse(pattern) if n]
    data = [n for n in names if n != "id"]
    if data and not any(values.get(n) for n in data):
        return None
    return _fill(pattern, **values)


class _Blank(dict):
    def __missing__(self, key):
        return ""
