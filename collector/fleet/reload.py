"""The agents the collector knows: those of its config file and those enrolled
in its database (collector/fleet/enrolment.py), as one list."""

from __future__ import annotations

import msgspec

from .enrol_http import active_entries


def with_enrolled(config, store):
    """`config` with the agents enrolled in the store added to its own."""
    own = {a.id for a in config.agents}
    extra = [e for e in active_entries(store.enrolments()) if e.id not in own]
    return msgspec.structs.replace(config, agents=[*config.agents, *extra]) if extra else config
