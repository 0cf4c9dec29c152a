"""The first words of the sections a person edits (model.SECTIONS), drawn from
the incident's record in the report's language (pure).

A draft starts with them so that "已采取的措施" (measures taken) reads the
runbook steps done, the agents' actions and the acknowledgements rather than
"无"; the person corrects or completes them before issuing. They are plain
text (templates/LANG/_prefill.j2), not layout: the check ids, rule ids and raw
errors behind them stay in the annex (附件：技术细节).
"""

from __future__ import annotations

import functools

import jinja2

from .templating import TEMPLATES, time_format


@functools.cache
def _environment() -> jinja2.Environment:
    # Plain text: nothing escaped here; the Markdown and HTML renderers escape it
    # as they escape anything a person wrote.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        extensions=["jinja2.ext.do"], finalize=lambda v: "" if v is None else v)


def prefill(fields: dict, names, language: str) -> dict[str, str]:
    """Each of the sections `names` as text (a macro of templates/LANG/_prefill.j2
    each), from the report's facts (`fields`, plain data as model.build makes them)."""
    module = _environment().get_template(f"{language}/_prefill.j2").module
    t = time_format(fields["timezone"])
    return {name: str(getattr(module, name)(fields, t)).strip() for name in names}
