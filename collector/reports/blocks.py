"""The layout blocks a report template calls (`b.h2(...)`, `b.table(...)`), once
for Markdown and once for HTML, so one template per language and kind gives
both formats.

HTML: every value is escaped here (markupsafe.escape leaves Markup, e.g. a
macro's output, alone) and the template environment autoescapes the rest:
text a person or an agent wrote can never become markup.
Markdown: table cells escape `|` and fold line breaks so a cell cannot break
the table; the environment's finalize turns every `<` into `&lt;`, so text
pasted into a Markdown viewer cannot become HTML either.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape


def _cell(value) -> str:
    text = "" if value is None else str(value)
    return re.sub(r"\s*\n\s*", " ", text).replace("|", "\\|").strip()


def _label(k) -> str:
    k = str(k)
    if k.endswith(":"):
        return f"**{k[:-1]}**: "
    if k.endswith("："):
        return f"**{k[:-1]}**："
    return f"**{k}** "


class MarkdownBlocks:
    """Blocks as Markdown text (no trailing newline: the template spaces them)."""

    def title(self, text) -> str:
        """The document's title."""
        return f"# {text}"

    def h2(self, text) -> str:
        """A section heading."""
        return f"## {text}"

    def h3(self, text) -> str:
        """A sub-heading."""
        return f"### {text}"

    def kv(self, pairs) -> str:
        """Labelled values, one per line (the label carries its own colon, which
        stays outside the bold: CommonMark would not close `**` after "：")."""
        return "\n".join(f"- {_label(k)}{_cell(v)}" for k, v in pairs)

    def items(self, values) -> str:
        """A bulleted list."""
        return "\n".join(f"- {_cell(v)}" for v in values)

    def table(self, head, rows) -> str:
        """A table; every cell escaped for Markdown."""
        lines = ["| " + " | ".join(_cell(h) for h in head) + " |",
                 "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
        return "\n".join(lines)

    def text(self, value, placeholder, todo: bool = True) -> str:
        """A person's text as they wrote it (Markdown); else the placeholder, in italics
        when it marks a field still to fill (`todo`), plain when it is the answer ("无")."""
        value = (value or "").strip()
        return value if value else f"*{placeholder}*" if todo else str(placeholder)

    def note(self, text) -> str:
        """A remark in small print."""
        return f"> {text}"

    def sign(self, rows, seal) -> str:
        """The sign-off block: (label, value) rows, a blank line where a value is
        missing, and the place for the seal."""
        lines = [f"- {_label(k)}{_cell(v) if v else BLANK}" for k, v in rows]
        return "\n".join(lines + [f"- {_label(seal)}"])

    def annex(self, title) -> str:
        """Where the annex begins (a rule, then its title)."""
        return f"---\n\n## {title}"

    def annex_end(self) -> str:
        """Where the annex ends."""
        return ""


class HtmlBlocks:
    """Blocks as HTML (Markup); values escaped."""

    def title(self, text) -> Markup:
        """The document's title."""
        return Markup("<h1>{}</h1>").format(text)

    def h2(self, text) -> Markup:
        """A section heading."""
        return Markup("<h2>{}</h2>").format(text)

    def h3(self, text) -> Markup:
        """A sub-heading."""
        return Markup("<h3>{}</h3>").format(text)

    def kv(self, pairs) -> Markup:
        """Labelled values, one per line."""
        rows = Markup("").join(Markup("<li><strong>{}</strong>{}{}</li>").format(
            k, " " if str(k).endswith(":") else "", _or(v)) for k, v in pairs)
        return Markup('<ul class="kv">{}</ul>').format(rows)

    def items(self, values) -> Markup:
        """A bulleted list."""
        return Markup("<ul>{}</ul>").format(
            Markup("").join(Markup("<li>{}</li>").format(_or(v)) for v in values))

    def table(self, head, rows) -> Markup:
        """A table; every cell escaped."""
        th = Markup("").join(Markup("<th>{}</th>").format(h) for h in head)
        body = Markup("").join(
            Markup("<tr>{}</tr>").format(Markup("").join(Markup("<td>{}</td>").format(_or(c))
                                                         for c in row)) for row in rows)
        # The scroll box keeps a wide table from widening a narrow screen; print
        # ignores it (report.css).
        return Markup('<div class="table-box"><table><thead><tr>{}</tr></thead>'
                      '<tbody>{}</tbody></table></div>').format(th, body)

    def text(self, value, placeholder, todo: bool = True) -> Markup:
        """A person's text: paragraphs on blank lines, line breaks kept; or the
        placeholder, marked as still to fill only when it is one (`todo`)."""
        value = (value or "").strip()
        if not value:
            return Markup('<p class="{}">{}</p>').format("todo" if todo else "none",
                                                         placeholder)
        paras = re.split(r"\n\s*\n", value)
        return Markup("").join(
            Markup("<p>{}</p>").format(Markup("<br>").join(escape(line) for line in
                                                           p.splitlines())) for p in paras)

    def note(self, text) -> Markup:
        """A remark in small print."""
        return Markup('<p class="note">{}</p>').format(text)

    def sign(self, rows, seal) -> Markup:
        """The sign-off block: (label, value) rows, a line to write on where a value
        is missing, and the box for the seal."""
        cells = Markup("").join(
            Markup('<tr><th>{}</th><td>{}</td></tr>').format(
                str(k).rstrip(":："), v if v else Markup('<span class="blank"></span>'))
            for k, v in rows)
        return Markup('<div class="sign"><table class="sign-rows">{}</table>'
                      '<div class="seal">{}</div></div>').format(cells, str(seal).rstrip(":："))

    def annex(self, title) -> Markup:
        """Where the annex begins: on a page of its own, landscape in print."""
        return Markup('<section class="annex"><h2>{}</h2>').format(title)

    def annex_end(self) -> Markup:
        """Where the annex ends."""
        return Markup("</section>")


BLANK = "________"              # a line to write on, in Markdown


def _or(value):
    return "" if value is None else value


BLOCKS = {"md": MarkdownBlocks(), "html": HtmlBlocks()}
