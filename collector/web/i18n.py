"""The console's words in Chinese and English, and how it says times.

Templates call `t("key")`; a key missing from one language falls back to
English, then to the key itself (a test checks both languages have every
key). Grade titles, rule reasons and runbook text come from the tables and
runbook files as they are written.
"""

from __future__ import annotations

LANGUAGES = ("zh", "en")

WORDS: dict[str, dict[str, str]] = {
    "app": {"zh": "branchwatch 运维台", "en": "branchwatch console"},
    "incidents": {"zh": "事件", "en": "Incidents"},
    "branches": {"zh": "网点", "en": "Branches"},
    "drills": {"zh": "演练", "en": "Drills"},
    "login": {"zh": "登录", "en": "Log in"},
    "logout": {"zh": "退出", "en": "Log out"},
    "user": {"zh": "用户名", "en": "User"},
    "password": {"zh": "密码", "en": "Password"},
    "login_failed": {"zh": "用户名或密码错误", "en": "Wrong user name or password"},
    "login_throttled": {"zh": "失败次数过多，请稍后再试", "en": "Too many failed attempts; try again later"},
    "login_busy": {"zh": "登录请求过多，请几秒后再试", "en": "Too many logins at once; try again in a few seconds"},
    "session_expired": {"zh": "会话已过期，请重新登录", "en": "Your session expired; log in again"},
    "logged_out": {"zh": "已退出", "en": "Logged out"},
    "open_incidents": {"zh": "未结事件", "en": "Open incidents"},
    "recent_incidents": {"zh": "近期已恢复", "en": "Recently resolved"},
    "shown_most_severe": {"zh": "仅显示最严重的", "en": "Showing the most severe"},
    "no_incidents": {"zh": "当前没有未结事件", "en": "No open incidents"},
    "id": {"zh": "编号", "en": "ID"},
    "title": {"zh": "事件", "en": "Incident"},
    "grade": {"zh": "等级", "en": "Grade"},
    "ungraded": {"zh": "未定级", "en": "ungraded"},
    "provisional": {"zh": "暂定", "en": "provisional"},
    "age": {"zh": "持续", "en": "Age"},
    "next_deadline": {"zh": "下一时限", "en": "Next deadline"},
    "ack": {"zh": "确认", "en": "Ack"},
    "acknowledge": {"zh": "确认收到", "en": "Acknowledge"},
    "acked_by": {"zh": "已确认", "en": "acked by"},
    "not_acked": {"zh": "未确认", "en": "not acknowledged"},
    "status": {"zh": "状态", "en": "Status"},
    "status_open": {"zh": "处置中", "en": "open"},
    "status_resolved": {"zh": "已恢复", "en": "resolved"},
    "status_closed": {"zh": "已关闭", "en": "closed"},
    "started": {"zh": "开始", "en": "Started"},
    "branch": {"zh": "网点", "en": "Branch"},
    "region": {"zh": "区域", "en": "Region"},
    "no_region": {"zh": "未分区", "en": "no region"},
    "timeline": {"zh": "时间线", "en": "Timeline"},
    "faults": {"zh": "故障", "en": "Faults"},
    "check": {"zh": "检查项", "en": "Check"},
    "state": {"zh": "状态", "en": "State"},
    "reason": {"zh": "原因", "en": "Reason"},
    "diagnosis": {"zh": "判断", "en": "Diagnosis"},
    "runbook": {"zh": "处置预案", "en": "Runbook"},
    "no_runbook": {"zh": "未启动预案", "en": "No runbook running"},
    "step": {"zh": "步骤", "en": "Step"},
    "confirm": {"zh": "完成", "en": "Confirm"},
    "skip": {"zh": "跳过", "en": "Skip"},
    "fail": {"zh": "失败", "en": "Failed"},
    "note": {"zh": "备注", "en": "Note"},
    "notes": {"zh": "备注", "en": "Notes"},
    "add_note": {"zh": "添加备注", "en": "Add note"},
    "why": {"zh": "原因", "en": "Why"},
    "grade_history": {"zh": "定级记录", "en": "Grade history"},
    "deadlines": {"zh": "报告时限", "en": "Deadlines"},
    "due": {"zh": "待完成", "en": "due"},
    "met": {"zh": "已完成", "en": "met"},
    "missed": {"zh": "已超时", "en": "missed"},
    "overdue": {"zh": "已超时", "en": "overdue"},
    "mark_met": {"zh": "标记已报送", "en": "Mark met"},
    "what_sent": {"zh": "报送内容", "en": "what was sent"},
    "reports": {"zh": "报告", "en": "Reports"},
    "no_reports": {"zh": "尚无报告", "en": "No reports yet"},
    "draft_report": {"zh": "起草书面报告", "en": "Draft written report"},
    "issue_report": {"zh": "签发", "en": "Issue"},
    "download": {"zh": "下载", "en": "Download"},
    "resolve": {"zh": "标记恢复", "en": "Resolve"},
    "close": {"zh": "关闭事件", "en": "Close"},
    "set_grade": {"zh": "人工定级", "en": "Set grade"},
    # 報告責任人 (第二十六條): who reports, and every change of them.
    "reporter": {"zh": "报告责任人", "en": "Reporter"},
    "reporter_none": {"zh": "未指定", "en": "nobody named"},
    "reporter_name": {"zh": "新报告责任人", "en": "New reporter"},
    "set_reporter": {"zh": "变更报告责任人（须向监管部门备案）", "en": "Change reporter (filed with the regulator)"},
    "named_by": {"zh": "指定人", "en": "named by"},
    "reported_by_person": {"zh": "人工报告", "en": "reported by a person"},
    "report_fault": {"zh": "报告故障", "en": "Report a fault"},
    # 預授權 (domain.md §4): who granted it, when, up to which grade.
    "preauthorised": {"zh": "预授权", "en": "Pre-authorised"},
    "up_to_grade": {"zh": "有效至", "en": "up to"},
    "above_grant": {"zh": "事件级别已超出预授权，须人工确认", "en": "the incident is graded above it: a person confirms"},
    "report_kind": {"zh": "故障类型", "en": "What kind"},
    "report_where": {"zh": "具体位置（科室、柜台）", "en": "Where (ward, counter, room)"},
    "report_sees": {"zh": "看到的现象", "en": "What you see"},
    "report_contact": {"zh": "联系人及电话", "en": "Contact (name, phone)"},
    "report_cause": {"zh": "已知原因", "en": "Known cause"},
    "cause_unknown": {"zh": "原因不明", "en": "cause not known"},
    "cause_force_majeure": {"zh": "不可抗力（火灾、水灾、雷击、盗窃）", "en": "force majeure (fire, flood, lightning, theft)"},
    "cause_operator_misuse": {"zh": "操作不熟或误操作", "en": "operator unfamiliarity or misuse"},
    "kind_core_unreachable": {"zh": "核心系统无法访问", "en": "core system unreachable"},
    "kind_network_down": {"zh": "网络不通", "en": "no network"},
    "kind_power_cut": {"zh": "停电", "en": "power cut"},
    "kind_ups_fault": {"zh": "UPS故障", "en": "UPS fault"},
    "kind_service_down": {"zh": "系统无法启动或无法保存", "en": "a system will not start or save"},
    "kind_terminal_fault": {"zh": "终端故障", "en": "terminal fault"},
    "kind_other": {"zh": "其他", "en": "other"},
    "who": {"zh": "人员", "en": "Who"},
    "when": {"zh": "时间", "en": "When"},
    "what": {"zh": "内容", "en": "What"},
    "by_rule": {"zh": "依据", "en": "rule"},
    "ups": {"zh": "UPS", "en": "UPS"},
    "uplinks": {"zh": "线路", "en": "Uplinks"},
    "services": {"zh": "服务", "en": "Services"},
    "host": {"zh": "主机", "en": "Host"},
    "agent_silent": {"zh": "失联", "en": "silent"},
    "config_drift": {"zh": "配置与模板不一致", "en": "config differs from the template"},
    "agent_version": {"zh": "版本", "en": "version"},
    "never_seen": {"zh": "未上线", "en": "never seen"},
    "last_heard": {"zh": "最后联系", "en": "last heard"},
    "all_ok": {"zh": "正常", "en": "all OK"},
    "ok": {"zh": "正常", "en": "OK"},
    "warning": {"zh": "告警", "en": "warning"},
    "critical": {"zh": "严重", "en": "critical"},
    "unknown": {"zh": "未知", "en": "unknown"},
    "silent": {"zh": "失联", "en": "silent"},
    "drill": {"zh": "演练", "en": "DRILL"},
    "drill_runs": {"zh": "演练记录", "en": "Drill runs"},
    "drill_incidents": {"zh": "演练事件", "en": "Drill incidents"},
    "no_drills": {"zh": "尚无演练", "en": "No drills yet"},
    "scenario": {"zh": "场景", "en": "Scenario"},
    "start_drill": {"zh": "开始演练", "en": "Start drill"},
    "drill_report": {"zh": "演练报告", "en": "Drill report"},
    "read_only": {"zh": "只读账户", "en": "read-only account"},
    "not_allowed": {"zh": "你的角色不能执行此操作", "en": "Your role may not do this"},
    "done": {"zh": "已完成", "en": "Done"},
    "refused": {"zh": "未执行", "en": "Refused"},
    "live": {"zh": "实时", "en": "live"},
    "opened": {"zh": "事件开启", "en": "incident opened"},
    "resolved": {"zh": "已恢复", "en": "resolved"},
    "closed": {"zh": "已关闭", "en": "closed"},
    "acked": {"zh": "确认收到", "en": "acknowledged"},
    "fault_entry": {"zh": "故障", "en": "fault"},
    "graded": {"zh": "定级", "en": "graded"},
    "step_entry": {"zh": "预案步骤", "en": "runbook step"},
    "deadline_met": {"zh": "时限完成", "en": "deadline met"},
    "deadline_missed": {"zh": "时限超时", "en": "deadline missed"},
    "in": {"zh": "剩余", "en": "in"},
    "ago": {"zh": "前", "en": "ago"},
    "choice": {"zh": "选择", "en": "choice"},
    "waiting": {"zh": "等待中", "en": "waiting"},
    "running": {"zh": "进行中", "en": "running"},
    "skipped": {"zh": "已跳过", "en": "skipped"},
    "failed": {"zh": "失败", "en": "failed"},
    "pending": {"zh": "未开始", "en": "pending"},
    "role": {"zh": "负责", "en": "role"},
    "language": {"zh": "English", "en": "中文"},
    "all": {"zh": "全部", "en": "all"},
    "edit": {"zh": "编辑", "en": "Edit"},
    "save": {"zh": "保存", "en": "Save"},
    "report": {"zh": "报告", "en": "Report"},
    "preview": {"zh": "预览", "en": "Preview"},
    "frozen": {"zh": "已签发，不可修改", "en": "issued: frozen"},
    # the fields a person fills on a report (collector/reports/model.py EDITABLE),
    # named as the report templates head them
    "field_unit": {"zh": "报告单位", "en": "Reporting unit"},
    "field_contact": {"zh": "联系人", "en": "Contact person"},
    "field_phone": {"zh": "联系方式", "en": "Phone"},
    "field_cause_analysis": {"zh": "原因分析", "en": "Cause analysis"},
    "field_consequences": {"zh": "初步后果", "en": "Preliminary consequences"},
    "field_next_steps": {"zh": "下一步工作（建议）", "en": "Next steps"},
    "field_other": {"zh": "其他事项", "en": "Other"},
    "field_coordination": {"zh": "需要监管部门协调的事项", "en": "Coordination needed from the regulator"},
    "field_situation": {"zh": "当前态势", "en": "The situation now"},
    "field_losses": {"zh": "损失情况", "en": "Losses"},
    "field_plan_review": {"zh": "预案评价", "en": "Review of the plan"},
    "field_root_cause": {"zh": "根本原因", "en": "Root cause"},
    "field_recommendations": {"zh": "整改建议", "en": "Recommendations"},
    # The report page (collector/web/templates/report.html): what a report is, and the
    # sections and sign-off fields a person edits (collector/reports/model.py SECTIONS).
    "rpt_kind_written": {"zh": "书面报告（第二十八条）", "en": "written report (Art. 28)"},
    "rpt_kind_progress": {"zh": "进展报告（第二十七条）", "en": "progress report (Art. 27)"},
    "rpt_kind_summary": {"zh": "总结报告（第三十四条）", "en": "closing summary (Art. 34)"},
    "rpt_lang_zh": {"zh": "中文", "en": "in Chinese"},
    "rpt_lang_en": {"zh": "英文", "en": "in English"},
    "rpt_status_draft": {"zh": "草稿", "en": "draft"},
    "rpt_status_issued": {"zh": "已签发", "en": "issued"},
    "rpt_drafted": {"zh": "起草", "en": "drafted"},
    "rpt_download": {"zh": "下载", "en": "Download"},
    "rpt_sections": {"zh": "报告正文", "en": "The report's sections"},
    "rpt_sign_off": {"zh": "签发栏", "en": "Sign-off"},
    "rpt_prefilled_hint": {"zh": "各部分已由系统根据事件记录起草，请核对、修改后保存；签发后不可修改。",
                           "en": "Each section is drafted from the incident's record: check it, change it, save. Once issued it cannot change."},
    "field_signer": {"zh": "签发人", "en": "Signed by"},
    "field_time_text": {"zh": "事件发生时间", "en": "Time"},
    "field_place_text": {"zh": "发生地点", "en": "Place"},
    "field_symptoms_text": {"zh": "事件现象", "en": "Symptoms"},
    "field_business_text": {"zh": "影响的业务", "en": "Affected business"},
    "field_measures_text": {"zh": "已采取的措施", "en": "Measures taken"},
    "field_changes_text": {"zh": "本时段主要变化", "en": "What changed in this period"},
    "field_plan_failures_text": {"zh": "预案执行失败情况（第三十条）", "en": "Plan failures (Art. 30)"},
    "field_scope_text": {"zh": "影响范围", "en": "Scope"},
    "field_handling_text": {"zh": "处置时间和过程", "en": "Handling time and process"},
    "rpt_issue_why": {"zh": "签发说明（如：已传真报送监管部门）", "en": "Why it is issued (e.g. faxed to the regulator)"},
    "notifications": {"zh": "通知与升级", "en": "Notifications"},
    "escalation_stopped": {"zh": "已确认，升级停止", "en": "acknowledged: escalation stopped"},
    "held": {"zh": "暂缓", "en": "held"},
    "queued": {"zh": "排队中", "en": "queued"},
    "sent": {"zh": "已发送", "en": "sent"},

}


def translate(lang: str):
    """`t(key)` for templates in `lang`."""
    def t(key: str) -> str:
        words = WORDS.get(key)
        if words is None:
            return key
        return words.get(lang) or words.get("en") or key
    return t


def duration(seconds: float, lang: str) -> str:
    """'2 h 05 min' / '2小时05分' (a countdown or an age; never negative)."""
    s = max(0, int(seconds))
    d, rest = divmod(s, 86400)
    h, rest = divmod(rest, 3600)
    m, sec = divmod(rest, 60)
    if lang == "zh":
        if d:
            return f"{d}天{h}小时"
        if h:
            return f"{h}小时{m:02d}分"
        return f"{m}分{sec:02d}秒" if m else f"{sec}秒"
    if d:
        return f"{d} d {h} h"
    if h:
        return f"{h} h {m:02d} min"
    return f"{m} min {sec:02d} s" if m else f"{sec} s"
