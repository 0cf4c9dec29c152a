"""`branchwatch demo`: start the collector and three simulated branches in one
process, play the story, keep the console up until Ctrl-C (or --duration).

Order matters on the way in (the collector listens before the agents send)
and on the way out (the agents stop and deliver, then the collector stops);
a temporary data directory is removed at the end, a --data-dir is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import webbrowser
from pathlib import Path

from agent.sim.nut_server import SimulatedUpsd

from .branch import Branch
from .client import CollectorClient, DemoError, wait_for
from .config import (CONSOLE_PASSWORD, CONSOLE_USER, LEADER, ON_DUTY, OPERATOR, Timing,
                     agent_config, collector_config, demo_branches, notify_config)
from .inbox import Inbox, add_inbox_page
from .narrator import Narrator
from .words import say
from .story import OFFSET_METRIC, SCENES, DemoClock, Story, expected_seconds


def run_demo(port: int = 9812, speed: float = 1.0, duration: float | None = None,
             no_browser: bool = False, data_dir: str | None = None, lang: str = "zh") -> int:
    """Run the demo, told in `lang` (zh or en); 0 once the story was told, 130 if
    stopped before, 1 if it failed."""
    logging.getLogger().setLevel(logging.WARNING)     # the story is the output
    logging.getLogger("branchwatch.sender").addFilter(_slow_loop_timeouts)
    with contextlib.suppress(AttributeError, ValueError):
        sys.stdout.reconfigure(errors="replace")
    if speed <= 0:
        print("branchwatch demo: --speed must be more than 0", file=sys.stderr)
        return 2
    if data_dir is not None:
        folder, keep = Path(data_dir).resolve(), True
        if (folder / "collector.db").exists():
            print(f"branchwatch demo: {folder} already holds a collector's data; "
                  f"give an empty or new directory", file=sys.stderr)
            return 2
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder, keep = Path(tempfile.mkdtemp(prefix="branchwatch-demo-")), False
    try:
        sock = socket.create_server(("127.0.0.1", port))
    except OSError as e:
        print(f"branchwatch demo: cannot listen on 127.0.0.1:{port}: {e.strerror or e} "
              f"(--port 0 takes any free port)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_demo(sock, folder, keep, speed, duration, no_browser, lang))
    except DemoError as e:
        print(f"branchwatch demo: {e}", file=sys.stderr)
        return 1
    finally:
        sock.close()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


async def _demo(sock: socket.socket, folder: Path, keep: bool, speed: float,
                duration: float | None, no_browser: bool, lang: str) -> int:
    from aiohttp import web

    from ..api import build_app
    from ..store import SqliteStore
    from ..web.passwords import hash_password

    started = time.monotonic()
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    token = secrets.token_urlsafe(24)
    specs = demo_branches()
    # The receiver first: the collector's config names its hooks.
    inbox = await Inbox().start()
    config = collector_config(folder, specs, token, hash_password(CONSOLE_PASSWORD),
                              notify_config({p: inbox.hook(p) for p in (ON_DUTY, LEADER)},
                                            url, lang), lang)
    clock = DemoClock()
    quit_ = asyncio.Event()
    upsd = SimulatedUpsd().start()
    branches = [Branch(s, upsd) for s in specs]
    store = SqliteStore(config.db_path())
    app = build_app(config, store, clock=clock)
    add_inbox_page(app, inbox)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    agents: list[tuple[asyncio.Event, asyncio.Task]] = []
    code = 130
    try:
        for b in branches:
            await b.start()
        await runner.setup()
        await web.SockSite(runner, sock, shutdown_timeout=5).start()
        async with CollectorClient(url, token) as client:
            _take_signals(quit_)
            metrics = await _start_agents(branches, url, folder, speed, client, agents, quit_)
            narrator = Narrator(SCENES, clock, lang=lang)
            console = await client.console_answers()
            _header(narrator, url, token, folder, keep, branches, metrics, speed, console, inbox)
            if console and not no_browser and _has_display():
                await asyncio.to_thread(webbrowser.open, url + "/console/")
            story = Story(branches, client, clock, narrator, folder, url, speed, console, inbox)
            code = await _play(story, quit_, [t for _, t in agents])
            if code == 0:
                _epilogue(narrator, story, url, console, await client.incidents())
                left = None if duration is None else duration - (time.monotonic() - started)
                if left is None or left > 0:
                    if left is None:
                        narrator.plain("Everything keeps running: explore the console; "
                                       "Ctrl-C stops.")
                    else:
                        narrator.plain("Everything keeps running for {s:.0f} s more.", s=left)
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(quit_.wait(), left)
    finally:
        for stop, _ in agents:
            stop.set()
        results = await asyncio.gather(*(t for _, t in agents), return_exceptions=True)
        await runner.cleanup()
        store.close()
        for b in branches:
            await b.stop()
        upsd.stop()
        await inbox.stop()
    for r in results:
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            print(f"branchwatch demo: an agent stopped: {r}", file=sys.stderr)
            code = code or 1
    print(say(lang, "demo stopped") + ("" if keep else say(lang, "; its temporary data removed")),
          flush=True)
    return code


async def _start_agents(branches: list[Branch], url: str, folder: Path, speed: float,
                        client: CollectorClient, agents: list,
                        quit_: asyncio.Event) -> dict[str, str]:
    """Start each branch's agent in turn, each once the one before has reported (all
    at once, their first polls and imports would crowd the event loop they share
    with the collector). Returns each agent's /metrics URL."""
    from agent.links import LinkView
    from agent.probes import build_probes
    from agent.service import serve as serve_agent

    await asyncio.to_thread(_warm_up)
    metrics: dict[str, str] = {}
    for b in branches:
        stop = asyncio.Event()
        cfg = agent_config(b.spec, b.ports(), url, folder / f"spool-{b.spec.agent}.db",
                           Timing.for_speed(speed))
        links = LinkView()
        task = asyncio.create_task(serve_agent(
            cfg, build_probes(cfg, links), b.log, None, stop,
            lambda u, a=b.spec.agent: metrics.__setitem__(a, u), links))
        agents.append((stop, task))
        await asyncio.sleep(0)          # it starts, and takes SIGINT and SIGTERM:
        _take_signals(quit_)            # they are the demo's again

        async def reported(agent=b.spec.agent, task=task):
            if task.done():       # it could not start: say why
                raise DemoError(f"agent {agent} stopped: {task.exception()!r}")
            return quit_.is_set() or agent in await client.metric(OFFSET_METRIC)
        await wait_for(reported, f"agent {b.spec.agent}'s first heartbeat", timeout=60)
        _take_signals(quit_)
    return metrics


def _warm_up() -> None:
    """Import (off the event loop) what the agents' first polls would import on it."""
    for module in ("pysnmp.hlapi.v3arch.asyncio", "pysnmp.hlapi.v3arch.asyncio.cmdgen",
                   "pysnmp.entity.rfc3413.cmdgen", "agent.ups.nut_client"):
        importlib.import_module(module)


async def _play(story: Story, quit_: asyncio.Event, agents: list[asyncio.Task]) -> int:
    """Play until the story is over (0), it fails (1) or the user stops it (130)."""
    play = asyncio.create_task(story.play())
    stopped = asyncio.create_task(quit_.wait())
    try:
        done, _ = await asyncio.wait([play, stopped, *agents],
                                     return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (play, stopped):
            t.cancel()
        await asyncio.gather(play, stopped, return_exceptions=True)
    if play in done and play.exception() is None:
        return 0
    if play in done and isinstance(play.exception(), DemoError):
        print(f"branchwatch demo: {play.exception()}", file=sys.stderr)
        return 1
    if play in done:
        raise play.exception()
    if stopped not in done:
        print("branchwatch demo: an agent stopped before the story was over", file=sys.stderr)
        return 1
    return 130


def _slow_loop_timeouts(record: logging.LogRecord) -> bool:
    """Drop an agent's "collector did not answer in time" warning: here agents and
    collector share one event loop, so it says only that the machine is busy (the
    next heartbeat, half a second later, carries the same; events are resent)."""
    return "TimeoutError" not in record.getMessage()


def _take_signals(quit_: asyncio.Event) -> None:
    """Ctrl-C and SIGTERM end the demo (the agents and the collector each took
    them when they started; the demo stops them in order instead)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, quit_.set)


def _has_display() -> bool:
    return sys.platform in ("darwin", "win32") or bool(
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _header(n: Narrator, url: str, token: str, folder: Path, keep: bool, branches, metrics,
            speed: float, console: bool, inbox: Inbox) -> None:
    not_served = n.tr("  [not served by this collector build]")
    n.plain("branchwatch demo: the collector, three simulated branches and a data centre "
            "in one province")
    n.plain("  console  {url}/console/  (user {user}, password {password})", url=url,
            user=CONSOLE_USER, password=CONSOLE_PASSWORD)
    if not console:
        n.plain(not_served)
    n.plain("  API      {url}/api/v1/incidents  (operator {operator}, token {token})", url=url,
            operator=OPERATOR, token=token)
    n.plain("           BRANCHWATCH_TOKEN={token} branchwatch incidents list --url {url}",
            token=token, url=url)
    n.plain("  inbox    {url}/console/demo/inbox  (webhooks of {on_duty}, on duty, and "
            "{leader}, leadership, received at {hooks})", url=url, on_duty=ON_DUTY,
            leader=LEADER, hooks=inbox.url)
    n.plain("  data     {folder}", folder=folder)
    if not keep:
        n.plain("           (removed when the demo stops)")
    for b in branches:
        n.plain("  {name:<12} province {region} agent {agent}: UPS {ups} on upsd "
                "127.0.0.1:{upsd}, switch udp 127.0.0.1:{switch}, metrics {metrics}",
                name=b.name, region=b.spec.region, agent=b.spec.agent, ups=b.spec.ups,
                upsd=b.upsd.port, switch=b.switch.port, metrics=metrics.get(b.spec.agent, "-"))
    seconds = expected_seconds(speed)
    took = n.tr("{m:.1f} min", m=seconds / 60) if seconds >= 90 else \
        n.tr("{s:.0f} s", s=seconds)
    n.plain("  speed {speed:g}: the story takes about {took}; Ctrl-C stops the demo",
            speed=speed, took=took)


def _epilogue(n: Narrator, story: Story, url: str, console: bool, incidents: list) -> None:
    n.plain("")
    n.plain("What the collector holds now:")
    for inc in incidents:
        grade = (inc["grades"].get("cbrc") or {}).get("grade")
        n.plain("  {id}  {status:<8} grade {grade:<3} {title} ({branches})", id=inc["id"],
                status=n.tr(inc["status"]), grade=grade or "-", title=inc["title"],
                branches=", ".join(sorted({f["branch"] for f in inc["faults"]})))
        if console:
            n.plain("    {url}/console/incidents/{id}", url=url, id=inc["id"])
    for path in story.saved:
        n.plain("  report file  {path}", path=path)
    n.plain("  notifications {count} received: {url}/console/demo/inbox",
            count=len(story.inbox.messages), url=url)
    n.plain("  incidents    {url}/api/v1/incidents (operator token above)", url=url)
    n.plain("  console      {url}/console/  (user {user}, password {password})", url=url,
            user=CONSOLE_USER, password=CONSOLE_PASSWORD)
    if not console:
        n.plain("  [not served by this collector build]")
