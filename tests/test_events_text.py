"""The terminal's text sink writes every kind of wire event (a missing kind
once raised KeyError and, before the spool sink, lost the event)."""

from __future__ import annotations

import io
import typing
from datetime import datetime, timezone

import pytest

from agent import wire
from agent.events import TextSink


@pytest.mark.parametrize("kind", typing.get_args(wire.EventKind))
def test_every_event_kind_is_one_readable_line(kind):
    out = io.StringIO()
    TextSink(out).emit(wire.Event(id="e1", kind=kind, agent="a1", branch="B1",
                                  check="action/failover/fail_over", old_state=None,
                                  new_state="ok", reason="backup port up",
                                  observed_at=datetime(2026, 1, 5, tzinfo=timezone.utc)))
    text = out.getvalue()
    assert text.count("\n") == 1 and "backup port up" in text
