"""What the demo prints: each step as it happens, with the time and a progress
line; plain lines that read the same in a terminal, a pipe or a log. In
Chinese by default, in English with `--lang en`: every line is an English
template with named fields, and words.py holds its Chinese.

Who speaks is marked at the start of each line:
    ▶  the world (what the story does to the branches)
    ⚙  an agent (what it did by itself)
    ◆  the collector (read back from its API)
    ✎  a person: the demo operator (through the API), or someone told
    ✉  a notification that arrived at the demo's inbox
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TextIO

from .words import say

BAR = 24


class Narrator:
    """Prints the story; `collector_now` gives the collector's (shifted) clock."""

    def __init__(self, scenes: int, collector_now: Callable[[], float],
                 out: TextIO | None = None, lang: str = "zh"):
        self.scenes, self.collector_now, self.lang = scenes, collector_now, lang
        self.out = out or sys.stdout
        self.scene_no = 0
        self.started = time.monotonic()

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def tr(self, text: str, **fields) -> str:
        """A template in the story's language, its fields filled."""
        return say(self.lang, text, **fields)

    def plain(self, text: str = "", **fields) -> None:
        self._line(self.tr(text, **fields) if text else "")

    def scene(self, title: str, **fields) -> None:
        """A new step of the story, with the progress line."""
        self.scene_no += 1
        done = round(BAR * (self.scene_no - 1) / self.scenes)
        elapsed = int(time.monotonic() - self.started)
        self._line(f"\n[{self.scene_no:>2}/{self.scenes}] [{'#' * done}{'.' * (BAR - done)}] "
                   f"{elapsed // 60}:{elapsed % 60:02d}  {self.tr(title, **fields)}")

    def _say(self, mark: str, text: str) -> None:
        self._line(f"{time.strftime('%H:%M:%S')} {mark} {text}")

    def world(self, text: str, **fields) -> None:
        self._say("▶", self.tr(text, **fields))

    def agent(self, text: str, **fields) -> None:
        self._say("⚙", self.tr(text, **fields))

    def collector(self, text: str, **fields) -> None:
        self._say("◆", self.tr("collector: ") + self.tr(text, **fields))

    def operator(self, text: str, **fields) -> None:
        self._say("✎", self.tr("operator demo ") + self.tr(text, **fields))

    def person(self, who: str, text: str, **fields) -> None:
        """Someone the collector told, acting."""
        self._say("✎", f"{who} " + self.tr(text, **fields))

    def inbox(self, text: str, **fields) -> None:
        """A notification that arrived at the inbox."""
        self._say("✉", self.tr(text, **fields))

    def note(self, text: str, **fields) -> None:
        self._say(" ", self.tr(text, **fields))

    def clock(self, text: str, **fields) -> None:
        """A move of the collector's clock, with where it is now."""
        self._say("⏩", self.tr(text, **fields) + self.tr("; collector clock now {at}",
                                                          at=self.at(self.collector_now())))

    def progress_done(self) -> None:
        elapsed = int(time.monotonic() - self.started)
        self._line(f"\n[{self.scenes}/{self.scenes}] [{'#' * BAR}] "
                   f"{elapsed // 60}:{elapsed % 60:02d}  {self.tr('story over')}")

    @staticmethod
    def at(when: float | str | datetime | None) -> str:
        """A collector time as people read it: local date and time to the minute."""
        if when is None:
            return "-"
        if isinstance(when, str):
            when = datetime.fromisoformat(when)
        if isinstance(when, datetime):
            when = when.timestamp()
        return datetime.fromtimestamp(when, tz=timezone.utc).astimezone().strftime(
            "%Y-%m-%d %H:%M")
