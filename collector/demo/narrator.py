"""What the demo prints: each step as it happens, with the time and a progress
line; plain lines that read the same in a terminal, a pipe or a log.

Who speaks is marked at the start of each line:
    ▶  the world (what the story does to the branches)
    ⚙  an agent (what it did by itself)
    ◆  the collector (read back from its API)
    ✎  the demo operator (through the API)
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TextIO

BAR = 24


class Narrator:
    """Prints the story; `collector_now` gives the collector's (shifted) clock."""

    def __init__(self, scenes: int, collector_now: Callable[[], float],
                 out: TextIO | None = None):
        self.scenes, self.collector_now = scenes, collector_now
        self.out = out or sys.stdout
        self.scene_no = 0
        self.started = time.monotonic()

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def plain(self, text: str = "") -> None:
        self._line(text)

    def scene(self, title: str) -> None:
        """A new step of the story, with the progress line."""
        self.scene_no += 1
        done = round(BAR * (self.scene_no - 1) / self.scenes)
        elapsed = int(time.monotonic() - self.started)
        self._line(f"\n[{self.scene_no:>2}/{self.scenes}] [{'#' * done}{'.' * (BAR - done)}] "
                   f"{elapsed // 60}:{elapsed % 60:02d}  {title}")

    def _say(self, mark: str, text: str) -> None:
        self._line(f"{time.strftime('%H:%M:%S')} {mark} {text}")

    def world(self, text: str) -> None:
        self._say("▶", text)

    def agent(self, text: str) -> None:
        self._say("⚙", text)

    def collector(self, text: str) -> None:
        self._say("◆", "collector: " + text)

    def operator(self, text: str) -> None:
        self._say("✎", "operator demo " + text)

    def note(self, text: str) -> None:
        self._say(" ", text)

    def clock(self, text: str) -> None:
        """A move of the collector's clock, with where it is now."""
        self._say("⏩", f"{text}; collector clock now {self.at(self.collector_now())}")

    def progress_done(self) -> None:
        elapsed = int(time.monotonic() - self.started)
        self._line(f"\n[{self.scenes}/{self.scenes}] [{'#' * BAR}] "
                   f"{elapsed // 60}:{elapsed % 60:02d}  story over")

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
