"""Carrying out the collector-side runbook actions (issue 6): webhooks and
commands from the allow list. Each reads back its result: a webhook is done
on a 2xx answer, a command on exit status 0; anything else fails the step
(and the run raises "plan failed"). Agent-side actions (a switch port, a UPS
command) are not done here: the branch's agent fetches them.
"""

from __future__ import annotations

import asyncio

from urllib.parse import quote

import aiohttp

from .config import RunbookSettings
from .incident_runbooks import Execute


def _fill(value, x: Execute):
    """{incident}, {branch}, {run}, {step} in webhook bodies."""
    if isinstance(value, str):
        return value.format(incident=x.incident, branch=x.branch, run=x.run, step=x.step)
    if isinstance(value, dict):
        return {k: _fill(v, x) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, x) for v in value]
    return value


async def execute(x: Execute, settings: RunbookSettings,
                  key: str | None = None) -> tuple[bool, str]:
    """Carry out one action; (ok, what happened in one line). `key` (the outbox's
    idempotency key) goes with a webhook, so a retry after a crash is done once."""
    a = x.action
    try:
        if a.type == "webhook":
            return await _webhook(x, settings.timeout, key)
        if a.type == "command":
            argv = settings.commands.get(a.command)
            if argv is None:
                return False, (f"command {a.command!r} is not in runbooks.commands "
                               "(the allow list); nothing was run")
            return await _command([_fill(arg, x) for arg in argv], settings.timeout)
        return False, f"{a.type} is carried out by the branch agent, not the collector"
    except (OSError, aiohttp.ClientError, asyncio.TimeoutError) as e:
        return False, f"{a.type} failed: {type(e).__name__}: {e}"


async def _webhook(x: Execute, timeout: float, key: str | None = None) -> tuple[bool, str]:
    default = {"incident": "{incident}", "branch": "{branch}", "step": "{step}"}
    body = _fill(dict(x.action.body) or default, x)
    headers = {}
    if key is not None:
        headers["Idempotency-Key"] = quote(key, safe=":/@")     # a header is ASCII
        if not x.action.body:            # a configured body is the receiver's format
            body["idempotency_key"] = key
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http:
        async with http.post(x.action.url, json=body, headers=headers) as r:
            text = (await r.text())[:200].strip().replace("\n", " ")
            ok = 200 <= r.status < 300
            return ok, f"webhook {x.action.url}: HTTP {r.status}" + (f": {text}" if text else "")


async def _command(argv: list[str], timeout: float) -> tuple[bool, str]:
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        return False, f"{argv[0]}: no result within {timeout:g} s (killed)"
    last = (out or b"").decode(errors="replace").strip().splitlines()[-1:] or [""]
    return proc.returncode == 0, f"{argv[0]} exited {proc.returncode}" + (
        f": {last[0][:200]}" if last[0] else "")
