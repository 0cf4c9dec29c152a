"""The web console in tests: users in the collector's config, a real headless
Chromium (Debian's, driven by Playwright; no browser downloads), and where
screenshots go for a person to look at."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agent.wire import Batch, CheckStatus, Event, Heartbeat, encode, new_event_id
from collector.web.passwords import hash_password

from .paths import REPO, need_binary

# name -> (roles, password)
USERS = {"alice": (["operator"], "alice-password"),
         "boss": (["operator", "leadership"], "boss-password"),
         "vera": (["viewer"], "vera-password")}

CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--disable-dev-shm-usage"]


def console_yaml(users: dict = USERS, **settings) -> str:
    """The collector config's `console:` section for these users."""
    lines = ["console:"] + [f"  {k}: {v}" for k, v in settings.items()] + ["  users:"]
    for name, (roles, password) in users.items():
        lines.append(f"    - {{name: {name}, roles: [{', '.join(roles)}], "
                     f"password: '{hash_password(password)}'}}")
    return "\n".join(lines) + "\n"


def screenshots() -> Path:
    """Where screenshots go: $BRANCHWATCH_TEST_OUTPUT/console or test-output/console."""
    root = Path(os.environ.get("BRANCHWATCH_TEST_OUTPUT", REPO / "test-output"))
    path = root / "console"
    path.mkdir(parents=True, exist_ok=True)
    return path


def reports_output() -> Path:
    """Where PDFs written by tests go for a person to look at: .../test-output/reports."""
    path = screenshots().parent / "reports"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def chromium():
    """A headless Debian Chromium through Playwright; skips, saying why, if absent."""
    exe = need_binary("/usr/bin/chromium")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


def login(page, base: str, user: str) -> None:
    """Log in through the form, as a person would."""
    page.goto(base + "/console/incidents")
    page.fill("input[name=user]", user)
    page.fill("input[name=password]", USERS[user][1])
    page.click("button[type=submit]")
    page.wait_for_selector("#who")


def fault_batch(agent: str, branch: str, check: str, state: str, reason: str,
                old: str = "ok") -> bytes:
    """One state change as the agent sends it (agent/wire.py)."""
    now = datetime.now(timezone.utc)
    return encode(Batch(agent=agent, branch=branch, sent_at=now, events=[Event(
        id=new_event_id(), kind="state", agent=agent, branch=branch, check=check,
        old_state=old, new_state=state, reason=reason, observed_at=now)]))


def heartbeat(agent: str, branch: str, region: str, checks: dict[str, tuple[str, str]]) -> bytes:
    """A heartbeat carrying these checks: check -> (state, reason)."""
    return encode(Heartbeat(agent=agent, branch=branch, region=region,
                            sent_at=datetime.now(timezone.utc), interval=15.0,
                            checks=[CheckStatus(check=c, state=s, reason=r)
                                    for c, (s, r) in checks.items()]))
