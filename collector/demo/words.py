"""The demo's words in Chinese: every line the story prints is an English
template with named fields (`{branch}`), and here is its Simplified Chinese.
`branchwatch demo` speaks Chinese by default, English with `--lang en`.

What the collector itself says (incident titles, runbook steps, grade reasons,
its notes) is read from its API and printed as it gives it; ids, commands,
addresses and device words (ups.status OB, tcp/core) stay as they are.
A test scans the code for templates missing here and the Chinese story for
English left in it.
"""

from __future__ import annotations

LANGUAGES = ("zh", "en")

ZH: dict[str, str] = {
    # --- the header and the end -------------------------------------------------------
    "branchwatch demo: the collector, three simulated branches and a data centre in one "
    "province": "branchwatch 演示：一个省内的采集中心、三个模拟网点和一个数据中心",
    "  console  {url}/console/  (user {user}, password {password})":
        "  运维台   {url}/console/  （用户名 {user}，密码 {password}）",
    "  [not served by this collector build]": "  [此版本的采集中心未提供运维台]",
    "  API      {url}/api/v1/incidents  (operator {operator}, token {token})":
        "  API      {url}/api/v1/incidents  （操作员 {operator}，令牌 {token}）",
    "           BRANCHWATCH_TOKEN={token} branchwatch incidents list --url {url}":
        "           BRANCHWATCH_TOKEN={token} branchwatch incidents list --url {url}",
    "  inbox    {url}/console/demo/inbox  (webhooks of {on_duty}, on duty, and {leader}, "
    "leadership, received at {hooks})":
        "  收件箱   {url}/console/demo/inbox  （值班人员 {on_duty} 与领导小组 {leader} 的 "
        "Webhook 通知，接收端 {hooks}）",
    "  data     {folder}": "  数据目录 {folder}",
    "           (removed when the demo stops)": "           （演示结束时删除）",
    "  {name:<12} province {region} agent {agent}: UPS {ups} on upsd 127.0.0.1:{upsd}, "
    "switch udp 127.0.0.1:{switch}, metrics {metrics}":
        "  {name:<12} 省 {region}，代理 {agent}：UPS {ups}（upsd 127.0.0.1:{upsd}），"
        "交换机 udp 127.0.0.1:{switch}，指标 {metrics}",
    "{m:.1f} min": "{m:.1f} 分钟",
    "{s:.0f} s": "{s:.0f} 秒",
    "  speed {speed:g}: the story takes about {took}; Ctrl-C stops the demo":
        "  速度 {speed:g}：演示约需 {took}；按 Ctrl-C 结束",
    "What the collector holds now:": "采集中心现有的事件：",
    "  {id}  {status:<8} grade {grade:<3} {title} ({branches})":
        "  {id}  {status:<6} 等级 {grade:<3} {title}（{branches}）",
    "    {url}/console/incidents/{id}": "    {url}/console/incidents/{id}",
    "  report file  {path}": "  报告文件  {path}",
    "  notifications {count} received: {url}/console/demo/inbox":
        "  通知     共收到 {count} 条：{url}/console/demo/inbox",
    "  incidents    {url}/api/v1/incidents (operator token above)":
        "  事件     {url}/api/v1/incidents（使用上面的操作员令牌）",
    "  console      {url}/console/  (user {user}, password {password})":
        "  运维台   {url}/console/  （用户名 {user}，密码 {password}）",
    "Everything keeps running: explore the console; Ctrl-C stops.":
        "一切仍在运行：请在运维台中查看；按 Ctrl-C 结束。",
    "Everything keeps running for {s:.0f} s more.": "一切仍将运行 {s:.0f} 秒。",
    "demo stopped": "演示已结束",
    "; its temporary data removed": "；临时数据已删除",
    "story over": "演示完毕",
    # --- who speaks, and the clock ----------------------------------------------------
    "collector: ": "采集中心：",
    "operator demo ": "操作员 demo ",
    "; collector clock now {at}": "；采集中心时钟现为 {at}",
    "{why}: the collector's clock moves {span} forward": "{why}：采集中心时钟向前拨 {span}",
    "{h} h {m:02d} min": "{h} 小时 {m:02d} 分钟",
    "{m} min": "{m} 分钟",
    "generator-stable waits 3 min": "generator-stable 需等待 3 分钟",
    "wait-ups needs the UPS on mains for 5 min": "wait-ups 需 UPS 恢复市电 5 分钟",
    "wait-primary needs the primary healthy for 10 min": "wait-primary 需主线路正常 10 分钟",
    "30 min of business time pass": "营业时间过去 30 分钟",
    "2.5 h more pass": "又过去 2.5 小时",
    "3 h more pass": "又过去 3 小时",
    # --- settling -------------------------------------------------------------------------
    "The branches come up": "各网点上线",
    "{agent} at {branch} (province {region}): UPS on mains, primary line up, backup port "
    "shut ({port}), core system reachable":
        "{agent}（{branch}，省 {region}）：UPS 市电供电，主线路正常，备用端口关闭（{port}），"
        "核心系统可达",
    "{agents} agents reporting; {open} incidents open": "{agents} 个代理在报告；{open} 个未结事件",
    # --- act 1: the power cut --------------------------------------------------------------
    "Power cut at {branch}": "{branch} 停电",
    "A storm cuts the mains at {branch}: its UPS runs the branch on battery (ups.status OB "
    "DISCHRG, input 0 V)": "暴雨导致 {branch} 市电中断：UPS 以电池为网点供电"
                           "（ups.status OB DISCHRG，输入 0 V）",
    "incident {id} opened: \"{title}\"{where} ({check}: {reason})":
        "事件 {id} 开启：“{title}”{where}（{check}：{reason}）",
    " at {branch}": "，位于 {branch}",
    "runbook {id} ({title}) started; {where}": "处置预案 {id}（{title}）已启动；{where}",
    "cbrc: {grade}": "监管定级：{grade}",
    "confirms {step}{choice}: {note}": "完成步骤 {step}{choice}：{note}",
    "a storm brought down the overhead supply line": "暴雨刮断架空供电线路",
    "State Grid: a crew is on the way, about 4 h": "国家电网：抢修队已出发，约需 4 小时",
    "4 h is far longer than the UPS can carry the branch (31 min)":
        "4 小时远超 UPS 能支撑网点的时间（31 分钟）",
    "mains input breaker open (photo: breaker-open.jpg)": "市电输入断路器已断开（照片：breaker-open.jpg）",
    "generator started, 230 V at its output": "发电机已启动，输出 230 V",
    "The generator settles": "发电机趋于稳定",
    "{step} {status} by itself: {note}": "{step} 自动结束（{status}）：{note}",
    "The generator feeds {branch}: the UPS has input again (ups.status OL CHRG, 226 V)":
        "发电机为 {branch} 供电：UPS 重新有输入（ups.status OL CHRG，226 V）",
    "{id} still {status}: the UPS sees the generator, but the branch runs on the generator "
    "(power/generator held)": "{id} 仍为{status}：UPS 已有发电机输入，但网点仍靠发电机运行"
                              "（power/generator 保持）",
    "loads on the generator; the UPS reads 226 V input": "负载已接入发电机；UPS 输入 226 V",
    "confirms connect-loads: loads on the generator": "完成步骤 connect-loads：负载已接入发电机",
    "Mains are back at {branch}: the transfer switch is on mains":
        "{branch} 市电恢复：转换开关已切回市电",
    "State Grid restored the line; ATS on mains": "国家电网已修复线路；ATS 已切回市电",
    "loads on mains, generator stopped": "负载已回到市电，发电机已停机",
    "confirms {step}: {note}": "完成步骤 {step}：{note}",
    "{id} resolved: mains back, every fault cleared": "{id} 已恢复：市电恢复，全部故障消除",
    "plan worked; test the generator monthly": "预案有效；发电机每月试机",
    "confirms review (leadership group): the plan worked": "完成复盘（领导小组）：预案有效",
    "mains back, generator off": "市电恢复，发电机已停机",
    "closes {id}: mains back, generator off -> {status}": "关闭 {id}：市电恢复，发电机已停机 -> {status}",
    # --- notifications ---------------------------------------------------------------------
    "{person} ({role}) received a message ({reason}{level}): {subject}":
        "{person}（{role}）收到通知（{reason}{level}）：{subject}",
    ", level {n}": "，第 {n} 级",
    "  inbox: {url}/console/demo/inbox": "  收件箱：{url}/console/demo/inbox",
    "acknowledges {id} by the link in the message: escalation to the leadership group stops":
        "通过通知中的链接确认收到 {id}：不再升级通知领导小组",
    "{id} open {minutes} min, past the {after}-min escalation: nothing sent to {person}, "
    "{who} acknowledged": "{id} 已持续 {minutes} 分钟，超过 {after} 分钟的升级时限：因 {who} "
                          "已确认，未通知 {person}",
    "opened": "事件开启", "escalation": "无人确认·逐级上报", "graded": "定级上升",
    "resolved": "已恢复", "reminder": "时限提醒", "deadline_missed": "报告时限超时",
    # --- act 2: the line cut ---------------------------------------------------------------
    "Line cut at {branch}": "{branch} 线路中断",
    "A digger cuts carrier A's line at {branch}: the primary line's far side stops answering":
        "挖掘机挖断 {branch} 的运营商 A 线路：主线路对端不再应答",
    "runbook network-fault started; {where}": "处置预案 network-fault 已启动；{where}",
    "{agent}: {step} {state}: {reason}": "{agent}：{step} {state}：{reason}",
    "  switch {switch} now: {port} (SNMP SET ifAdminStatus.{ifindex} = up)":
        "  交换机 {switch} 现在：{port}（SNMP SET ifAdminStatus.{ifindex} = up）",
    "backup-line done (pre-authorised, by the agent): {note}":
        "backup-line 已完成（预授权，由代理执行）：{note}",
    "county IT called; carrier ticket 4471": "已致电县联社科技部；运营商工单 4471",
    "confirms call-it-line: county IT called, carrier ticket 4471":
        "完成步骤 call-it-line：已致电县联社科技部，运营商工单 4471",
    "The primary line is repaired at {branch}": "{branch} 主线路修复",
    "Carrier A repairs the line: the primary's far side answers again":
        "运营商 A 修复线路：主线路对端重新应答",
    "{id} resolved: the primary line answers": "{id} 已恢复：主线路应答",
    "  switch {switch} now: {port}": "  交换机 {switch} 现在：{port}",
    "wait-primary done by itself; swap-back done by the agent: {note}":
        "wait-primary 自动完成；swap-back 由代理完成：{note}",
    "failover and swap back worked by themselves": "切换与回切均自动完成",
    "confirms review: the failover worked by itself": "完成复盘：线路切换自动完成",
    "back on the primary line": "已回到主线路",
    "closes {id}: back on the primary line -> {status}": "关闭 {id}：已回到主线路 -> {status}",
    # --- act 3: the province outage --------------------------------------------------------
    "The core system is lost at {branch}": "{branch} 核心系统中断",
    "The core banking system stops answering {branch} (tcp/core refused)":
        "核心业务系统不再响应 {branch}（tcp/core 被拒绝）",
    "incident {id} opened: \"{title}\" at {at} (collector time): 1 of 3 branches of {region}, "
    "a fault but not yet the province's scope":
        "事件 {id} 开启：“{title}”，时间 {at}（采集中心时间）：{region} 3 个网点中的 1 个，"
        "是故障，但尚未达到全省范围",
    "... and {branch}: 2 of 3 branches, half the province (rounded up)":
        "……接着是 {branch}：3 个网点中的 2 个，达到全省一半（向上取整）",
    "{branch} joins {id}: \"{title}\"; {grade}": "{branch} 并入 {id}：“{title}”；{grade}",
    "Half an hour with half the province out: grade III": "全省一半网点中断半小时：III 级",
    "{id}: {grade}": "{id}：{grade}",
    "  why: {reason}": "  依据：{reason}",
    "  deadline {line}": "  时限 {line}",
    "phoned the regulator's duty desk, ref 0417": "已电话报告监管部门值班室，编号 0417",
    "records regulator-notice as met: phoned the regulator, ref 0417":
        "记录 regulator-notice 已完成：已电话报告监管部门，编号 0417",
    "The data centre {centre} loses the core system; the branches get it back":
        "数据中心 {centre} 核心系统中断；各网点恢复",
    "The core banking system stops answering {centre}, the province's key site":
        "核心业务系统不再响应全省重点站点 {centre}",
    "{first} and {second} reach the core system again": "{first} 与 {second} 重新连通核心系统",
    "{id}: \"{title}\": the key site alone keeps {region} out":
        "{id}：“{title}”：仅重点站点中断，{region} 仍视为全省中断",
    "The province out for 3 h: grade II": "全省中断 3 小时：II 级",
    "faxed to the regulator": "已传真报送监管部门",
    "report {id} issued and faxed": "报告 {id} 已签发并传真",
    "records written-report as met": "记录 written-report 已完成",
    "The province out for 6 h: grade I": "全省中断 6 小时：I 级",
    "The core system is back": "核心系统恢复",
    "The core banking system answers the data centre again": "核心业务系统重新响应数据中心",
    "{id} resolved at {at}; grades went {grades}": "{id} 于 {at} 恢复；等级经历 {grades}",
    "none": "无",
    "  {id} stays resolved: close it in the console (leadership) when you have read it":
        "  {id} 保持“已恢复”：阅读后请在运维台中关闭（领导小组）",
    # --- reports ----------------------------------------------------------------------------
    "report {id} drafted ({kind}, {language})": "报告 {id} 已起草（{kind}，{language}）",
    "written": "书面报告", "progress": "进展报告", "summary": "总结报告",
    "fills in {fields} of {id}": "填写 {id} 的 {fields}",
    "issues {id} ({why}): it is frozen now": "签发 {id}（{why}）：报告已冻结",
    "  saved {path} (and .html)": "  已保存 {path}（及 .html）",
    "  download: {url}/console/reports/{id}.pdf (console, also .md, .html)":
        "  下载：{url}/console/reports/{id}.pdf（运维台，另有 .md、.html）",
    "  download: {url}/api/v1/reports/{id}?format=pdf (API)":
        "  下载：{url}/api/v1/reports/{id}?format=pdf（API）",
    # --- where a runbook is, grades and deadlines (views.py) ---------------------------------
    "runbook {id} {status}": "处置预案 {id} {status}",
    "now at {step}: {title} (waits for {who})": "当前步骤 {step}：{title}（等待{who}）",
    "a person ({role})": "人员（{role}）",
    "anyone": "任何人",
    "a decision": "决策",
    "time": "时间",
    "the branch's agent": "网点代理",
    "below grade III: {why}": "未达 III 级：{why}",
    "no business stopped": "无业务中断",
    "grade {grade} {title} (rule {rule}, reached {at}{provisional})":
        "{grade} 级 {title}（规则 {rule}，达到时间 {at}{provisional}）",
    ", provisional": "，暂定",
    "{key}: {title}, due {at} [{status}{met}]": "{key}：{title}，截止 {at} [{status}{met}]",
    " {at} by {who}": " {at}，{who}",
    # statuses the collector gives (incidents, runbooks, steps, deadlines)
    "open": "处置中", "closed": "已关闭", "done": "已完成", "running": "进行中",
    "waiting": "等待中", "skipped": "已跳过", "failed": "失败", "pending": "未开始",
    "due": "待完成", "met": "已完成", "missed": "已超时",
}


def say(lang: str, text: str, **fields) -> str:
    """The template `text` in `lang` (English as written; Chinese from ZH), filled."""
    template = ZH.get(text, text) if lang == "zh" else text
    return template.format(**fields) if fields else template
