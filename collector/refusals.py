"""A refusal as a Chinese reader reads it: the desks refuse in English, one line
naming what is wrong (incident_model.Refused); the console shows it in the
visitor's language. Each pattern is a refusal a person can meet from the console;
one not listed is shown as written (the page marks its language).
"""

from __future__ import annotations

import re

STATUS_ZH = {"open": "处置中", "resolved": "已恢复", "closed": "已关闭", "running": "进行中",
             "ended": "已结束", "archived": "已归档"}

# What a person may be refused (collector/roles.py actions), in Chinese.
ACTIONS_ZH = {"ack": "确认收到", "note": "添加备注", "deadline": "标记时限完成", "confirm": "完成步骤",
              "skip": "跳过步骤", "fail": "标记步骤失败", "start": "启动预案", "draft": "起草报告",
              "drill": "开始演练", "report": "报告故障", "clear": "确认故障恢复",
              "resolve": "标记恢复", "close": "关闭事件", "grade": "人工定级",
              "criterion": "认定分级标准", "withdraw": "撤销认定", "issue": "签发报告",
              "reporter": "变更报告责任人"}
ROLES_ZH = {"viewer": "只读", "operator": "值班员", "leadership": "领导小组", "no role": "无角色"}

# (pattern, Chinese); {status} in the Chinese is the status group in Chinese.
REFUSALS: list[tuple[re.Pattern, str]] = [(re.compile(p), zh) for p, zh in [
    (r"^(?P<id>\S+) is closed$", r"\g<id> 已关闭"),
    (r"^(?P<id>\S+) is (?P<status>\w+), not open$", r"\g<id> {status}，不在处置中"),
    (r"^(?P<id>\S+) has faults still active: (?P<checks>.+)$", r"\g<id> 仍有未恢复的故障：\g<checks>"),
    (r"^(?P<id>\S+) is (?P<status>\w+): faults still active: (?P<checks>.+)$",
     r"\g<id> {status}，仍有未恢复的故障：\g<checks>"),
    (r"^(?P<id>INC-\S+) is (?P<status>open|resolved|closed)$", r"\g<id> {status}"),
    (r"^who and why are required$", "须填写人员和原因"),
    # the console's own (web/console.py, web/actions.py)
    (r"^cross-origin request from (?P<origin>.+) refused$", r"拒绝来自其他站点（cross-origin: \g<origin>）的请求"),
    (r"^the form's CSRF token is missing or stale: .*$", "表单已过期或缺少校验码，请刷新页面后重试"),
    (r"^(?P<field>[a-z_]+): missing, and it is required$", r"缺少必填项：\g<field>"),
    (r"^no such report '(?P<id>[^']+)'$", r"没有报告 \g<id>"),
    (r"^scenario: no scenario '(?P<id>[^']+)'$", r"没有演练场景 \g<id>"),
    (r"^(?P<name>.+) is already the reporter of (?P<id>\S+)$", r"\g<name> 已是 \g<id> 的报告责任人"),
    (r"^name: expected the new reporter's name$", "请填写新的报告责任人"),
    (r"^(?P<key>\S+) was already met by (?P<who>\S+) at (?P<at>\S+)$",
     r"\g<key> 已由 \g<who> 于 \g<at> 完成"),
    (r"^(?P<id>\S+) has no runbook running$", r"\g<id> 没有正在执行的预案"),
    (r"^(?P<id>\S+) has no runbook run '(?P<run>[^']+)'$", r"\g<id> 没有预案执行记录 \g<run>"),
    (r"^runbooks are not configured on this collector$", "本采集端未配置处置预案"),
    (r"^grading is not configured on this collector$", "本采集端未配置分级标准"),
    (r"^(?P<table>\S+) has no grade '(?P<grade>[^']+)'; it has: (?P<grades>.+)$",
     r"\g<table> 没有等级 \g<grade>，可选：\g<grades>"),
    (r"^(?P<id>\S+) ended at (?P<at>\S+) by (?P<who>\S+)$", r"\g<id> 已于 \g<at> 由 \g<who> 结束"),
    (r"^(?P<id>\S+) was archived by (?P<who>\S+): it is frozen$", r"\g<id> 已由 \g<who> 归档，不可修改"),
    (r"^(?P<id>\S+) is running: end it first \(branchwatch drill end\)$", r"\g<id> 进行中，请先结束演练"),
]]


_ROLE = re.compile(r"^(?P<who>.+?) \((?P<roles>[^)]*)\) may not (?P<action>\w+)"
                   r"(?:; it is the (?P<need>\w+) role's act.*)?$")


def refusal_zh(text: str) -> str:
    """The refusal in Chinese when it is one the console knows; else as written."""
    m = _ROLE.match(text)
    if m:
        roles = "、".join(ROLES_ZH.get(r.strip(), r.strip()) for r in m["roles"].split(","))
        out = f"{m['who']}（{roles}）无权{ACTIONS_ZH.get(m['action'], m['action'])}"
        if m["need"]:
            out += f"：这是{ROLES_ZH.get(m['need'], m['need'])}的职责"
        return out
    for pattern, zh in REFUSALS:
        m = pattern.match(text)
        if m:
            out = m.expand(zh)
            status = m.groupdict().get("status")
            return out.replace("{status}", STATUS_ZH.get(status, status or ""))
    return text
