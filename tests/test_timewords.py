"""Dates, times and durations as people read them (collector/timewords.py, Babel): the
zone always said, no microseconds; and the CLI printing the collector's times so."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from collector.api import token_hash
from collector.incidents_cli import local_times
from collector.texts import Reader, incident_title
from collector.timewords import span, when, zone_label

from .support.collector import CollectorProcess
from .support.console import fault_batch
from .support.paths import REPO
from .test_collector_api import request

SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 12, 2, 6, 5, 3, 98660, tzinfo=timezone.utc)


def test_a_moment_says_its_zone_in_each_language():
    assert when(AT, "zh", SHANGHAI) == "2026-12-02 14:05（北京时间）"
    assert when(AT, "en", SHANGHAI) == "2026-12-02 14:05 (CST, UTC+8)"
    assert when(AT, "en", SHANGHAI, seconds=True) == "2026-12-02 14:05:03 (CST, UTC+8)"
    assert when(AT, "en", timezone.utc) == "2026-12-02 06:05 (UTC)"
    assert zone_label(ZoneInfo("Asia/Kolkata"), "en", AT) == "IST, UTC+5:30"
    assert zone_label(ZoneInfo("Europe/Berlin"), "zh", AT) == "UTC+1"


def test_durations_are_babels_in_two_units_never_raw():
    # domain.md §2.1 reasons: "3h00m5.09866s of business time" is what a person must not read
    raw = timedelta(hours=3, seconds=5.09866)
    assert span(raw, "en") == "3 hr" and span(raw, "zh") == "3小时"
    assert span(3725, "en") == "1 hr, 2 min" and span(3725, "zh") == "1小时2分钟"
    assert span(-4, "zh") == "0秒" and span(59.9, "en") == "59 sec"
    assert span(86400 * 2 + 60, "zh") == "2天"


def test_incident_titles_and_the_drill_prefix_are_said_in_chinese():
    assert incident_title("DRILL: power outage", "zh") == "演练：停电"
    assert incident_title("network outage (line)", "zh") == "网络中断（线路）"
    assert incident_title("core system unreachable: 3 branches", "zh") == "核心系统不可达：3 个网点"
    assert incident_title("branch unreachable: line or agent down", "zh") == \
        "网点失联：线路或代理程序中断"
    assert incident_title("power outage", "en") == "power outage"
    assert incident_title("柜台打印机坏了", "zh") == "柜台打印机坏了"      # a person's own title
    words = Reader("zh", SHANGHAI)
    assert words.roles(["operator", "leadership"]) == "值班员、领导小组"
    assert words.title("DRILL: UPS on battery", bare=True) == "UPS 电池供电"


def test_the_cli_turns_api_times_into_the_collectors_zone():
    data = {"started_at": "2026-12-02T06:05:03.098660Z", "note": "2026-12-02 is a date",
            "acks": [{"at": "2026-12-02T06:10:00+00:00"}]}
    shown = local_times(data, "Asia/Shanghai")
    assert shown["started_at"] == "2026-12-02 14:05:03 (CST, UTC+8)"
    assert shown["acks"][0]["at"] == "2026-12-02 14:10:00 (CST, UTC+8)"
    assert shown["note"] == data["note"]
    assert local_times(data, "Not/AZone")["started_at"] == "2026-12-02 06:05:03 (UTC)"


def test_incidents_list_prints_local_times_with_the_zone_and_no_microseconds(tmp_path):
    agent, operator = "cli-time-agent-token-xxxxxxxxxx", "cli-time-operator-token-xxxxxxx"
    extra = (f"operators:\n  - {{name: alice, roles: [operator], "
             f"token_sha256: {token_hash(operator)}}}\n"
             "grading:\n  calendar: {timezone: Asia/Shanghai}\n")
    with CollectorProcess(tmp_path / "c", {"a1": ("BR-1", "east", agent)}, extra=extra) as c:
        status, body = request(c.url + "/api/v1/events",
                               fault_batch("a1", "BR-1", "tcp/core-system", "critical", "down"),
                               agent)
        assert status == 200, body
        for _ in range(100):
            out = subprocess.run([sys.executable, "-m", "collector.cli", "incidents", "list",
                                  "--url", c.url], cwd=REPO, capture_output=True, text=True,
                                 timeout=60, env={**os.environ, "BRANCHWATCH_TOKEN": operator})
            if "INC-" in out.stdout:
                break
        assert out.returncode == 0, out.stderr
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(CST, UTC\+8\)", out.stdout), out.stdout
        assert not re.search(r"T\d\d:\d\d:\d\d|\.\d{6}", out.stdout), out.stdout


def test_the_agents_and_collectors_own_reasons_are_said_in_chinese():
    from collector.texts import reason_zh
    assert reason_zh("on battery: mains power lost") == "电池供电：市电中断"
    assert reason_zh("battery runtime 3.0 min below 5.0 min") == "电池续航 3.0 分钟，低于 5.0 分钟"
    assert reason_zh("down: 0/3 answered (icmp): timeout; line fault: x") == \
        "中断：3 次探测 0 次应答（icmp）: timeout；线路故障：x"
    assert reason_zh("no network at 柜台: 断网 - reported by 王") == "网络不通（柜台）：断网（王 报告）"
    # a device's own words stay as it sent them
    assert reason_zh("connection to 127.0.0.1:38959 refused") == \
        "connection to 127.0.0.1:38959 refused"
