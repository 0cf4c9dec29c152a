"""The drill report as Markdown or HTML: one Jinja2 template per language
(templates/zh.j2, templates/en.j2), laid out with the regulator reports'
blocks and HTML page (collector/reports/: the same escaping rules, so text a
person wrote can never become markup; the same style sheet, so its PDF, made
by reports.render.pdf from the HTML, prints as theirs do).
"""

from __future__ import annotations

import functools
from pathlib import Path

import jinja2

from ..reports.blocks import BLOCKS
from ..reports.render import TEMPLATES as REPORT_TEMPLATES
from ..reports.render import _finalize_html, _finalize_md, page, time_format

TEMPLATES = Path(__file__).parent / "templates"
FORMATS = ("md", "html")
LANGUAGES = ("zh", "en")
_UNITS = {"zh": ("小时", "分", "秒"), "en": (" h ", " min ", " s")}


@functools.cache
def environment(fmt: str) -> jinja2.Environment:
    """The template environment for one format (HTML autoescapes)."""
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader([jinja2.FileSystemLoader(TEMPLATES),
                                    jinja2.FileSystemLoader(REPORT_TEMPLATES)]),
        autoescape=fmt == "html", undefined=jinja2.StrictUndefined, trim_blocks=True,
        lstrip_blocks=True, keep_trailing_newline=True, extensions=["jinja2.ext.do"],
        finalize=_finalize_html if fmt == "html" else _finalize_md)


def duration(language: str):
    """A function for templates: seconds as '1 h 05 min', '12 min 05 s', '45 s'
    (zh: 1小时05分, 12分05秒, 45秒); None stays None."""
    h_, m_, s_ = _UNITS[language]

    def d(seconds):
        if seconds is None:
            return None
        total = int(round(abs(seconds)))
        h, rest = divmod(total, 3600)
        m, s = divmod(rest, 60)
        sign = "-" if seconds < 0 else ""
        if h:
            return f"{sign}{h}{h_}{m:02d}{m_}".strip()
        if m:
            return f"{sign}{m}{m_}{s:02d}{s_}".strip()
        return f"{sign}{s}{s_}".strip()
    return d


def render(r: dict, fmt: str) -> str:
    """The drill report `r` (report.build) as Markdown or a whole HTML page."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if r["language"] not in LANGUAGES:
        raise ValueError(f"language: expected one of {', '.join(LANGUAGES)}, "
                         f"got {r['language']!r}")
    env = environment(fmt)
    body = env.get_template(f"{r['language']}.j2").render(
        r=r, b=BLOCKS[fmt], t=time_format(r["timezone"]), d=duration(r["language"]))
    body = body.strip() + "\n"
    if fmt == "md":
        return body
    # The incident reports' page: one style sheet, one print layout, one PDF renderer.
    # Landscape: its timeline and step tables have seven and nine columns.
    return page(body, r["drill"]["id"], r["language"], wide=True)
