"""Texts of the data files (runbook and step titles, incident titles) in the
report's language: the one seam through which the reports ask for a text in
zh or en.

The data files carry their texts in one of three shapes, and this reads all:
a mapping `{zh: ..., en: ...}`, a sibling attribute `title_zh` (the grading
tables and drill scenarios do this), or plain text (one language only, shown
as it is). When the catalogue of the whole project gives incidents and
runbooks their texts in both languages, only this module has to follow.
"""

from __future__ import annotations

from collections.abc import Mapping


def pick(value, language: str) -> str:
    """A `{zh, en}` mapping's text in `language` (else English, else any); text as is."""
    if isinstance(value, Mapping):
        return str(value.get(language) or value.get("en") or next(iter(value.values()), ""))
    return "" if value is None else str(value)


def text_of(obj, attr: str, language: str) -> str:
    """`obj.attr` in `language`: the mapping's entry, or `obj.attr_<language>`, or the
    text as it is."""
    value = obj.get(attr) if isinstance(obj, Mapping) else getattr(obj, attr, None)
    if language != "en" and not isinstance(value, Mapping):
        other = (obj.get(f"{attr}_{language}") if isinstance(obj, Mapping)
                 else getattr(obj, f"{attr}_{language}", None))
        if other:
            return pick(other, language)
    return pick(value, language)
