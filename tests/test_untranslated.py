"""No untranslated words: every console page and every report, rendered from a
realistic state by a real collector on 127.0.0.1, read as a person reads it.

The state: a power cut at one branch (the power-cut runbook, a step confirmed,
a decision answered), a line fault at another (the network-fault runbook),
a grade set by hand (grade III, its deadlines), an acknowledgement, a note,
written, progress and summary reports, a drill with its report. Each page in
zh must hold no English word but identifiers and proper names
(tests/support/untranslated.py); each page in en no Chinese but names.
"""

from __future__ import annotations

import re

import pytest

from collector.drills.scenario import load_scenarios

from .support.collector import CollectorProcess
from .support.console import console_yaml, fault_batch, heartbeat
from .support.notify import HttpSink, notify_yaml
from .support.untranslated import (chinese_in, english_in, marked_text, report, visible_text,
                                   without)
from .test_collector_api import request
from .test_console_http import Visitor
from .test_delivery_e2e import wait_for

TOKENS = {"a1": "untranslated-agent-token-1", "a2": "untranslated-agent-token-2"}
AGENTS = {"a1": ("BR-N1", "north", TOKENS["a1"]), "a2": ("BR-S1", "south", TOKENS["a2"])}
PEOPLE = {"李娜", "张伟"}
# What the test's people typed (notes, reasons): shown as they wrote them.
TYPED = {"市电停电，原因已查明", "已到现场", "发电机已就位", "监管部门要求按较大事件报告", "市电已恢复",
         "试一下", "王芳", "李娜在现场", "备用设备也坏了", "2号柜台", "打印机无法打印", "王芳 8021"}
# What the agents said: a report quotes a device's words as they came.
DEVICE_SAID = {"input 0 V, on battery", "connection to 127.0.0.1:38959 refused", "on mains",
               "on battery"}
# Names from this collector's config: branch ids, regions, users, grading tables.
NAMES = {"north", "south", "rack", "alice", "boss", "vera", "cbrc", "hospital", "webhook"} | PEOPLE


def send(c, agent: str, body: bytes, path: str = "events") -> None:
    status, data = request(f"{c.url}/api/v1/{path}", body, TOKENS[agent])
    assert status in (200, 204), data


def post(v: Visitor, path: str, form: dict) -> str:
    page = re.match(r"/console/(incidents/[^/]+|drills|reports/[^/]+|faults)", path)[0]
    page = "/console/incidents" if page == "/console/faults" else page
    status, headers, body = v.go(path, {**form, "csrf": v.csrf(), "next": page})
    assert status in (200, 303), (status, body[:400])
    back = v.go(headers["Location"])[2]
    refused = re.search(r'<p class="flash error"[^>]*>(.*?)</p>', back, re.S)
    assert refused is None, (path, refused and refused[1])
    return headers.get("Location", "")


def ids(body: str, attr: str) -> list[str]:
    return list(dict.fromkeys(re.findall(rf'{attr}="([^"]+)"', body)))


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """A collector holding the realistic state, and the pages to read, by name."""
    with HttpSink() as hook, CollectorProcess(
            tmp_path_factory.mktemp("untranslated"), AGENTS,
            extra=console_yaml(refresh=60) + notify_yaml(hook.url)
            # both tables: the hospital's classes are named too (a line down: class 2)
            + "grading:\n  tables: [cbrc, hospital]\n") as c:
        send(c, "a1", heartbeat("a1", "BR-N1", "north", {"ups/rack/on_battery": ("critical", "on battery")}),
             "heartbeat")
        send(c, "a2", heartbeat("a2", "BR-S1", "south", {"line/primary/core": ("ok", "")}), "heartbeat")
        send(c, "a1", fault_batch("a1", "BR-N1", "ups/rack/on_battery", "critical",
                                  "input 0 V, on battery"))
        send(c, "a2", fault_batch("a2", "BR-S1", "line/primary/core", "critical",
                                  "connection to 127.0.0.1:38959 refused"))
        boss = Visitor(c.url)
        assert boss.login("boss")[0] == 303
        incidents = wait_for(lambda: (lambda found: found if len(found) >= 2 else None)(
            ids(boss.go("/console/incidents")[2], "data-incident")), timeout=30)
        power = next(i for i in incidents if "BR-N1" in boss.go(f"/console/incidents/{i}")[2])
        page = boss.go(f"/console/incidents/{power}")[2]
        wait_for(lambda: "data-step" in boss.go(f"/console/incidents/{power}")[2], timeout=30)
        page = boss.go(f"/console/incidents/{power}")[2]
        run = ids(page, "data-run")[0]
        step = re.search(r'class="step [a-z]+ current" id="step-[^"]+" data-step="([^"]+)"', page)[1]
        post(boss, f"/console/incidents/{power}/steps/{step}/confirm",
             {"run": run, "note": "市电停电，原因已查明"})
        post(boss, f"/console/incidents/{power}/ack", {"why": "已到现场"})
        post(boss, f"/console/incidents/{power}/note", {"text": "发电机已就位"})
        post(boss, f"/console/incidents/{power}/grade",
             {"table": "cbrc", "grade": "III", "why": "监管部门要求按较大事件报告"})
        post(boss, f"/console/incidents/{power}/reporter", {"name": "王芳", "why": "李娜在现场"})
        # The line fault's runbook: its step fails (第三十條: a deadline due at once).
        line = next(i for i in incidents if i != power)
        wait_for(lambda: "data-step" in boss.go(f"/console/incidents/{line}")[2], timeout=30)
        page = boss.go(f"/console/incidents/{line}")[2]
        step = re.search(r'class="step [a-z]+ current" id="step-[^"]+" data-step="([^"]+)"', page)[1]
        post(boss, f"/console/incidents/{line}/steps/{step}/fail",
             {"run": ids(page, "data-run")[0], "why": "备用设备也坏了"})
        # A fault a person reports at the counter.
        post(boss, "/console/faults", {"branch": "BR-S1", "kind": "terminal_fault",
                                       "where": "2号柜台", "sees": "打印机无法打印",
                                       "contact": "王芳 8021"})
        for kind in ("written", "progress"):
            post(boss, f"/console/incidents/{power}/reports", {"kind": kind})
        reports = wait_for(lambda: (lambda r: r if len(r) >= 2 else None)(
            ids(boss.go(f"/console/incidents/{power}")[2], "data-report")), timeout=30)
        # A refusal a person meets: resolving while a fault is still active.
        status, headers, _ = boss.go(f"/console/incidents/{power}/resolve",
                                     {"why": "试一下", "csrf": boss.csrf(),
                                      "next": f"/console/incidents/{power}"})
        refusal = boss.go(headers["Location"])[2]
        assert 'class="flash error"' in refusal
        send(c, "a1", fault_batch("a1", "BR-N1", "ups/rack/on_battery", "ok", "on mains",
                                  old="critical"))
        wait_for(lambda: "active" not in re.findall(r'<tr class="(active|cleared)',
                                                    boss.go(f"/console/incidents/{power}")[2]),
                 timeout=30, what="the fault cleared")
        if 'id="resolve-form"' in boss.go(f"/console/incidents/{power}")[2]:
            post(boss, f"/console/incidents/{power}/resolve", {"why": "市电已恢复"})
        post(boss, f"/console/incidents/{power}/reports", {"kind": "summary"})
        reports = wait_for(lambda: (lambda r: r if len(r) >= 3 else None)(
            ids(boss.go(f"/console/incidents/{power}")[2], "data-report")), timeout=30,
            what="the summary report")
        post(boss, "/console/drills", {"scenario": "power-cut", "branch": "BR-S1"})
        drill = wait_for(lambda: (ids(boss.go("/console/drills")[2], "data-drill") or [None])[0],
                         timeout=30)
        wait_for(lambda: "data-incident" in boss.go("/console/drills")[2], timeout=30)
        pages = {"incidents": "/console/incidents", "branches": "/console/branches",
                 "drills": "/console/drills", "history": "/console/history",
                 "history closed": "/console/history?status=closed&grade=III",
                 "branch BR-N1": "/console/branches/BR-N1", f"drill {drill}": f"/console/drills/{drill}"}
        pages |= {f"incident {i}": f"/console/incidents/{i}" for i in incidents}
        pages |= {f"report {r}": f"/console/reports/{r}" for r in reports}
        downloads = {f"report {r}.html": f"/console/reports/{r}.html" for r in reports}
        downloads |= {f"report {r}.md": f"/console/reports/{r}.md" for r in reports}
        wait_for(lambda: hook.bodies, timeout=30, what="a notification sent")
        yield {"c": c, "boss": boss, "pages": pages, "downloads": downloads, "drill": drill,
               "reports": reports, "sent": hook, "refusal": refusal}


def _sent(state) -> set[str]:
    """Every message subject and line as the webhook received it."""
    out = set()
    for _, _, body in state["sent"].bodies:
        out.add(body.get("subject", ""))
        out |= set((body.get("text") or "").split("\n"))
    return out


def _read(v: Visitor, path: str) -> str:
    status, _, body = v.go(path)
    assert status == 200, (path, status, body[:300])
    return body


def _in(v: Visitor, lang: str) -> Visitor:
    assert v.go(f"/console/lang/{lang}?next=/console/incidents")[0] in (302, 303)
    return v


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_console_page_is_in_the_readers_language(state, lang):
    v = _in(state["boss"], lang)
    problems = []
    # What a page marks as another language's must be what a device or a person said
    # (or a message as sent, a report in its own language, the other language's name on
    # the switch): with those taken out, nothing of the marked language may be left, so
    # the marking is no way around the check.
    passed_through = DEVICE_SAID | TYPED | _sent(state) | {"English", "中文"} | {
        e.reason for s in load_scenarios().values() for e in s.events}
    passed_through |= {_read(v, p).strip() for n, p in state["downloads"].items()
                       if p.endswith(".md")}
    # The report page previews the report as rendered, in the report's own language:
    # its texts are the downloaded HTML's, piece by piece.
    passed_through |= {t for n, p in state["downloads"].items() if p.endswith(".html")
                       for t in visible_text(_read(v, p), "zh") + visible_text(_read(v, p), "en")}
    for name, path in state["pages"].items():
        body = _read(v, path)
        for text in marked_text(body, lang):
            rest = without([text], passed_through)
            left = chinese_in(rest, PEOPLE | {"中文"}) + english_in(rest, NAMES | {"English"})
            if left:
                problems.append(f"{lang} {name}: marked {text[:80]!r} as another language's, "
                                f"but nobody said {left[0][0]!r} so")
        texts = visible_text(body, lang)
        if name.startswith("report "):
            texts = without(texts, DEVICE_SAID)    # the report's text quotes the devices
        found = (english_in(texts, NAMES) if lang == "zh"
                 else chinese_in(without(texts, TYPED | _sent(state)), PEOPLE | {"中文"}))
        if found:
            problems.append(report(found, f"{lang} {name} ({path})"))
    if lang == "zh":
        flash = [t for t in visible_text(state["refusal"], "zh") if "未执行" in t]
        assert flash and "仍有未恢复的故障" in " ".join(flash), flash
        found = english_in(flash, NAMES)
        if found:
            problems.append(report(found, "zh refusal"))
    login = Visitor(state["c"].url)
    _in(login, lang)
    texts = visible_text(_read(login, "/console/login"), lang)
    found = english_in(texts, NAMES) if lang == "zh" else chinese_in(texts, {"中文"})
    if found:
        problems.append(report(found, f"{lang} login"))
    assert not problems, "\n".join(problems)


def test_the_zh_incident_page_says_runbook_roles_grades_and_times_in_chinese(state):
    v = _in(state["boss"], "zh")
    power = next(p for n, p in state["pages"].items() if n.startswith("incident ")
                 and "BR-N1" in _read(v, p))
    text = " ".join(visible_text(_read(v, power), "zh"))
    assert "停电（先 UPS，后发电机）" in text               # the runbook's title
    assert "查明停电原因" in text and "应急处置小组" in text  # a step, its role
    assert "cbrc III 较大" in text                          # Simplified grade name
    assert "向监管部门报告事件" in text                     # a deadline's name
    assert "北京时间" in text                               # the zone is said
    assert "值班员、领导小组" in text                        # the user's roles in the header
    line = next(p for n, p in state["pages"].items() if n.startswith("incident ") and p != power)
    text = " ".join(visible_text(_read(v, line), "zh"))
    assert "hospital 2 二类故障" in text and "局部网络中断" in text     # the hospital's class, why


def test_every_report_is_in_its_language(state):
    v = _in(state["boss"], "zh")
    problems = []
    for name, path in state["downloads"].items():
        body = _read(v, path)
        texts = visible_text(body, "zh") if path.endswith(".html") else [body]
        found = english_in(without(texts, DEVICE_SAID), NAMES)
        if found:
            problems.append(report(found, f"zh {name}"))
    drill = state["drill"]
    for lang in ("zh", "en"):
        body = _read(v, f"/console/drills/{drill}/report.html?lang={lang}")
        texts = without(visible_text(body, lang), _sent(state))
        found = english_in(texts, NAMES) if lang == "zh" else chinese_in(texts, PEOPLE)
        if found:
            problems.append(report(found, f"{lang} drill report {drill}"))
    assert not problems, "\n".join(problems)



def test_every_message_sent_in_zh_says_its_words_in_chinese(state):
    """The notifications (notify.language zh, the default): subject and body."""
    problems = []
    for _, _, body in state["sent"].bodies:
        lines = [body["subject"]] + body["text"].split("\n")
        # the ack command to type, and the audit stamp `audit verify` reads, stay as they are
        lines = [x for x in lines if not x.startswith(("或：branchwatch ", "audit: record "))]
        # a drill's faults say what its scenario's rehearsed agent says (config/drills/)
        rehearsed = {e.reason for s in load_scenarios().values() for e in s.events}
        # "DRILL" opens every drill message in every language (notify/messages.py)
        found = english_in(without(lines, DEVICE_SAID | TYPED | rehearsed), NAMES | {"DRILL"})
        if found:
            problems.append(report(found, f"zh message {body['reason']} to {body['to']}"))
    assert not problems, "\n".join(problems)
