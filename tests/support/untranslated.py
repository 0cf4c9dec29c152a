"""Find words a reader of one language would not understand in a rendered page
or report: English in a zh page, Chinese in an en page.

`visible_text(html)` is what a person sees: text nodes, and the attributes a
browser shows (placeholder, title, aria-label, alt, a button's value), not
scripts or styles. An element marked `lang="en"` inside a zh page (or
`lang="zh-CN"` in an en page) holds text its source gave in that language (a
device's own error message) and is left out: it is marked, not hidden.

`english_in(texts, allow)` lists the English words left: a token is a device
identifier, not a word, when it holds a digit or one of `_ / . : @ -` (branch
ids, check ids like ups/rack/on_battery, addresses, incident ids); proper names
and product words are in ALLOWED or the caller's `allow` (its branch, region,
user and table names). `chinese_in(texts, allow)` lists Chinese in an en page.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

# Proper names and device/product words that are the same in both languages.
ALLOWED = {"ups", "snmp", "branchwatch", "nut", "md", "html", "pdf", "csv", "ats", "grafana",
           "prometheus", "webhook", "smtp", "i", "ii", "iii", "iv", "id", "ip", "tcp", "http",
           "https", "utc", "cst", "os", "json", "yaml", "v", "kva", "hz", "w", "ms"}    # units too
SHOWN_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")
SKIPPED = {"script", "style", "template", "head", "code"}     # code: a command to type
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
TOKEN = re.compile(r"[A-Za-z0-9_./:@+\-']+")
IDENTIFIER = re.compile(r"[0-9_./:@\-]")
HAN = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]+")


class _Visible(HTMLParser):
    def __init__(self, page_lang: str):
        super().__init__(convert_charrefs=True)
        self.page_lang = page_lang
        self.stack: list[tuple[str, bool]] = []       # (tag, hidden)
        self.texts: list[str] = []
        self.marked: list[str] = []                   # text in an element of another lang
        self.other = 0                                # depth inside such elements

    def _hidden(self) -> bool:
        return bool(self.stack) and self.stack[-1][1]

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        lang = (a.get("lang") or "").lower()
        other = bool(lang) and not lang.startswith(self.page_lang)
        hidden = self._hidden() or tag in SKIPPED or other or a.get("hidden") is not None
        if other and not self._hidden() and tag not in VOID:
            self.marked.append("")
        if not hidden:
            for name in SHOWN_ATTRIBUTES:
                if a.get(name):
                    self.texts.append(a[name])
            if tag in ("button", "input") and a.get("type") in ("submit", "button") and a.get("value"):
                self.texts.append(a["value"])
        if tag not in VOID:
            self.stack.append((tag, hidden))

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID and self.stack and self.stack[-1][0] == tag:
            self.stack.pop()

    def handle_endtag(self, tag):
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                del self.stack[i:]
                return

    def handle_data(self, data):
        if not self._hidden() and data.strip():
            self.texts.append(data.strip())
        elif self.stack and self.stack[-1][1] and self.marked and data.strip() and \
                not any(t in SKIPPED for t, _ in self.stack):
            self.marked[-1] = (self.marked[-1] + " " + data.strip()).strip()


def visible_text(html: str, lang: str) -> list[str]:
    """The texts a person reading this page in `lang` ("zh" or "en") sees."""
    p = _Visible("zh" if lang == "zh" else "en")
    p.feed(html)
    p.close()
    return p.texts


def marked_text(html: str, lang: str) -> list[str]:
    """The texts a page in `lang` marks as another language's (`lang="en"` in zh): what
    a device or a person said, passed through. A test checks each is such a text."""
    p = _Visible("zh" if lang == "zh" else "en")
    p.feed(html)
    p.close()
    return [t for t in p.marked if t]


def without(texts: list[str], passages) -> list[str]:
    """The texts with these passages taken out: what a device or a person said, or a
    message as it was sent, which a report quotes as it came."""
    out = []
    for text in texts:
        for p in sorted((p for p in passages if p), key=len, reverse=True):
            text = text.replace(p, " ")
        out.append(text)
    return out


def english_in(texts: list[str], allow: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(word, the text it is in) for each English word that is no identifier or name."""
    allowed = {w.lower() for w in ALLOWED | set(allow)}
    found = []
    for text in texts:
        for token in TOKEN.findall(text):
            word = token.strip("'-.:/")
            if not word or IDENTIFIER.search(word) or word.lower() in allowed:
                continue
            if not re.search(r"[A-Za-z]", word):
                continue
            found.append((word, text))
    return found


def chinese_in(texts: list[str], allow: set[str] = frozenset()) -> list[tuple[str, str]]:
    """(Chinese run, the text it is in) for Chinese an English reader cannot read."""
    found = []
    for text in texts:
        rest = text
        for name in sorted(allow, key=len, reverse=True):
            rest = rest.replace(name, " ")
        for run in HAN.findall(rest):
            if run.strip("\u3000 ·，、：（）"):
                found.append((run, text))
    return found


def report(found: list[tuple[str, str]], where: str, limit: int = 25) -> str:
    """A failure message a person can act on: each word and where it stands."""
    lines = [f"{where}: {len(found)} untranslated"]
    seen = set()
    for word, text in found:
        if (word, text) in seen:
            continue
        seen.add((word, text))
        lines.append(f"  {word!r} in {text[:120]!r}")
        if len(lines) > limit:
            break
    return "\n".join(lines)
