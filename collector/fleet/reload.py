"""The agents and operators the collector knows, and reloading them without a
restart: those of its config file and those enrolled in its database
(collector/fleet/enrolment.py) make one list; SIGHUP (or an enrolment)
rebuilds the tokens, the regions grading and routing use, and the operators,
while connections and the event log go on. Listening, storage and TLS need a
restart (said in the log)."""

from __future__ import annotations

import logging

import msgspec

from ..api_base import STATE, STORE
from ..config import ConfigError, load
from ..notify.silences_http import refresh as refresh_silences
from .enrolment import active_entries

log = logging.getLogger("branchwatch.collector")

RESTART_ONLY = ("listen", "storage", "limits")


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


async def reload_file(app, path: str) -> bool:
    """SIGHUP: read the config file again; keep the running config if it is wrong."""
    st = app[STATE]
    try:
        new = load(path)
    except ConfigError as e:
        log.error("reload refused, the running config stays: %s", e)
        return False
    before = st.config
    try:
        await apply_config(app, new)
    except (OSError, ValueError) as e:
        log.error("reload refused, the running config stays: %s", e)
        return False
    for key in RESTART_ONLY:
        if getattr(before, key) != getattr(new, key):
            log.warning("reload: %s changed: it takes effect at the next restart", key)
    log.info("reloaded %s: %d agents (%d enrolled here), %d operators", path,
             len(st.config.agents), len(st.config.agents) - len(new.agents), len(new.operators))
    return True
