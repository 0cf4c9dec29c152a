"""The collector's `reports:` settings (issue 7; domain.md §3, 第二十八條).

    reports:
      language: zh                 # zh (Simplified Chinese) or en: the default template
      unit: 某县农村信用合作联社    # 报告单位: the reporting unit
      contact: 张三                # 联系人
      phone: "0839-1234567"        # 联系方式
      signer: 王五                 # 签发人: who signs the report for the unit
      timezone: Asia/Shanghai      # times in reports (default: grading.calendar's zone)
      reporter: 李四               # 报告责任人 (第二十六條), named on every new incident

The lead engineer wires it into collector.config.Config as
`reports: ReportSettings = msgspec.field(default_factory=ReportSettings)`;
until then collector.api_reports falls back to these defaults.
"""

from __future__ import annotations

import typing
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agent.schema_network import _S

LANGUAGES = ("zh", "en")          # zh = zh-CN, Simplified Chinese


class ReportSettings(_S):
    """Who reports (第二十八條: reporting unit, contact person and details) and in
    which language; every value is a default a person may edit on a draft."""

    language: typing.Literal["zh", "en"] = "zh"
    unit: str = ""
    contact: str = ""
    phone: str = ""
    # 签发人: who signs for the unit (the sign-off block; blank line when unset)
    signer: str = ""
    timezone: str | None = None
    # 報告責任人 (第二十六條): recorded on every new incident; the leadership
    # may name another on the incident (every change is filed with the regulator).
    reporter: str | None = None

    def __post_init__(self) -> None:
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timezone: expected an IANA time zone name like "
                                 f"'Asia/Shanghai', got {self.timezone!r}") from None
