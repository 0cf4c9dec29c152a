"""Reports as Markdown, HTML and PDF from one Jinja2 template per language and
kind (templates/zh/written.j2, templates/en/summary.j2, ...).

The same template renders twice: with MarkdownBlocks in an environment
without autoescape, and with HtmlBlocks in one with autoescape (so text a
person or an agent wrote is escaped). PDF is WeasyPrint over the HTML, where
WeasyPrint and the Noto CJK fonts are installed (../shared/realstack.md:
the font must be named in @page too, or footers fall back to another font).
"""

from __future__ import annotations

import functools
import shutil
import subprocess

import jinja2
from markupsafe import Markup

from .blocks import BLOCKS
from .templating import TEMPLATES, time_format
from .model import with_defaults

FORMATS = ("md", "html")
AUDIT_LABEL = {"zh": "签发时的审计链（可用 branchwatch audit verify 核对）：",
               "en": "The audit chain when issued (branchwatch audit verify checks it): "}
CJK_FONT = "Noto Sans CJK SC"
LANG_TAGS = {"zh": "zh-CN", "en": "en"}


def _finalize_md(value):
    # None prints as nothing; `<` can never open a tag in a Markdown viewer.
    return "" if value is None else str(value).replace("<", "&lt;")


def _finalize_html(value):
    return "" if value is None else value


@functools.cache
def environment(fmt: str) -> jinja2.Environment:
    """The template environment for one format (HTML autoescapes)."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=fmt == "html",
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True, extensions=["jinja2.ext.do"],
        finalize=_finalize_html if fmt == "html" else _finalize_md)


# The one style sheet of the reports: inlined in every HTML page and PDF, and
# served to the console for its preview (collector/web/pages.py).
STYLE = (TEMPLATES / "html" / "report.css").read_text(encoding="utf-8")
# The console adds its page around the preview and the phone's rules.
CONSOLE_STYLE = STYLE + (TEMPLATES / "html" / "report-console.css").read_text(encoding="utf-8")


def body(meta: dict, fields: dict, fmt: str) -> str:
    """One report's body (meta: id, status, issued_at, issued_by, supersedes): Markdown,
    or the HTML inside the page (the console's preview shows it as it is)."""
    if fmt not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    fields = with_defaults(fields)
    env = environment(fmt)
    template = env.get_template(f"{fields['language']}/{fields['kind']}.j2")
    text = template.render(r=fields, meta=meta, b=BLOCKS[fmt], t=time_format(fields["timezone"]))
    text = text.strip() + "\n"
    if meta.get("audit_head"):      # the chain's head, in every issued report
        # The line itself stays as `branchwatch audit verify` prints it; the label
        # says what it is in the report's language.
        line = AUDIT_LABEL.get(fields["language"], AUDIT_LABEL["en"]) + meta["audit_head"]
        text += ("\n---\n" + line + "\n" if fmt == "md" else
                 str(Markup('<p class="note">{}</p>\n').format(line)))
    return text


def page(body_html: str, title: str, language: str, wide: bool = False) -> str:
    """A whole HTML page (for the browser and for print) around a report's body;
    `wide`: landscape throughout in print (a report of wide tables)."""
    return environment("html").get_template("html/page.j2").render(
        body=Markup(body_html), title=title, lang=LANG_TAGS.get(language, "en"),
        font=CJK_FONT, style=Markup(STYLE), wide=wide)


def render(meta: dict, fields: dict, fmt: str) -> str:
    """One report as Markdown or a whole HTML page."""
    text = body(meta, fields, fmt)
    return text if fmt == "md" else page(text, meta["id"], fields["language"])


def pdf_problem() -> str | None:
    """Why a PDF cannot be made here (None when it can)."""
    try:
        import weasyprint  # noqa: F401
    except (ImportError, OSError) as e:        # OSError: pango missing
        return (f"PDF needs WeasyPrint ({e}): pip install 'branchwatch[pdf]' "
                "(and Debian's libpango-1.0-0)")
    if not _cjk_font():
        return (f"PDF needs the {CJK_FONT} font for Chinese text: apt-get install "
                "fonts-noto-cjk")
    return None


@functools.cache
def _cjk_font() -> bool:
    if shutil.which("fc-match") is None:
        return False
    out = subprocess.run(["fc-match", "-f", "%{family}", CJK_FONT], capture_output=True,
                         text=True, timeout=10)
    return CJK_FONT.split(" CJK")[0] + " CJK" in out.stdout


def pdf(html: str) -> bytes:
    """The HTML page as PDF (WeasyPrint; ~2 s a page). RuntimeError when it cannot."""
    problem = pdf_problem()
    if problem:
        raise RuntimeError(problem)
    import weasyprint
    return weasyprint.HTML(string=html).write_pdf()
