"""The agents and operators the collector knows, and reloading them without a
restart: those of its config file and those enrolled in its database
(collector/fleet/enrolment.py) make one list; SIGHUP (or an enrolment)
rebuilds the tokens, the regions grading and routing use, and the operators,
while connections and the event log go on. Listening, storage and TLS need a
restart (said in the log)."""

from __future__ import annotations

import logging

import msgspec

from aiohttp import web

from ..api_base import STATE, STORE, Rejected, _json, _operator
from ..config import ConfigError, load
from ..notify.silences_http import refresh as refresh_silences
from .enrolment import active_entries

log = logging.getLogger("branchwatch.collector")

RESTART_ONLY = ("listen", "storage", "limits")
CONFIG_PATH = web.AppKey("config_path", str)      # set by service.serve: what SIGHUP reads


def add_reload_route(app: web.Application) -> None:
    """POST /api/v1/reload (the leadership): as SIGHUP does."""
    app.router.add_post("/api/v1/reload", reload_request)


async def reload_request(request: web.Request) -> web.Response:
    """Read the config file again; 409 with the reason if it is wrong."""
    st = request.app[STATE]
    who = _operator(st, request)
    roles = getattr(st, "operator_roles", {}).get(who)
    if roles is not None and "leadership" not in roles:
        raise Rejected(403, "reloading the collector's config is the leadership's act")
    path = request.app.get(CONFIG_PATH)
    if path is None:
        raise Rejected(409, "this collector was not started from a config file")
    problem = await reload_file(request.app, path)
    if problem is not None:
        raise Rejected(409, f"reload refused, the running config stays: {problem}")
    await st.run(request.app[STORE].record, st.clock(), "config.reloaded", who, {"path": path})
    return _json({"reloaded": path, "agents": len(st.config.agents),
                  "operators": len(st.config.operators)})


def with_enrolled(config, store):
    """`config` with the agents enrolled in the store added to its own."""
    own = {a.id for a in config.agents}
    extra = [e for e in active_entries(store.enrolments()) if e.id not in own]
    return msgspec.structs.replace(config, agents=[*config.agents, *extra]) if extra else config


async def apply_config(app, file_config) -> None:
    """Make `file_config` (plus the store's enrolments) the running one: tokens,
    operators, and the regions the grader and the notifier use."""
    from ..grader import Grader
    from ..notify.notifier import Notifier
    st, store = app[STATE], app[STORE]

    def swap():
        # On the writer thread: the desk (book, grader, notifier) is only touched there.
        config = with_enrolled(file_config, store)
        grader = Grader.from_config(config)
        st.desk.grader = grader
        st.desk.notifier = Notifier.from_config(config, grader.tables)
        return config
    config = await st.run(swap)
    await refresh_silences(app)                    # the new notifier honours people's silences too
    st.config = config
    st.file_config = file_config
    st.by_hash = {a.token_sha256: a for a in config.agents}
    st.operators = {o.token_sha256: o.name for o in config.operators}


async def reload_file(app, path: str) -> str | None:
    """SIGHUP: read the config file again; keep the running config if it is wrong
    (then the reason, else None)."""
    st = app[STATE]
    try:
        new = load(path)
        before = st.config
        await apply_config(app, new)
    except (ConfigError, OSError, ValueError) as e:
        log.error("reload refused, the running config stays: %s", e)
        return str(e)
    for key in RESTART_ONLY:
        if getattr(before, key) != getattr(new, key):
            log.warning("reload: %s changed: it takes effect at the next restart", key)
    log.info("reloaded %s: %d agents (%d enrolled here), %d operators", path,
             len(st.config.agents), len(st.config.agents) - len(new.agents), len(new.operators))
    return None
