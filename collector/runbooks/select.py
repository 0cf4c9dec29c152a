"""Which runbook an incident gets (issue 6: "chosen by the incident's faults").

A runbook applies when any unsuppressed fault of the incident is of one of
its `applies_to.categories` or matches one of its `checks`, or the incident's
title matches one of its `titles`. The highest `priority` wins; a tie goes to
the runbook id that sorts first, so the choice never depends on file order.
"""

from __future__ import annotations

import fnmatch

from ..incident_rules import DRILL_TITLE
from ..incidents import Incident
from .schema import Runbook


def applies(rb: Runbook, inc: Incident, no_backup_port: tuple[str, ...] = ()) -> bool:
    """Whether this runbook is for this incident (`no_backup_port`: branch patterns
    of the branches without a pre-wired backup port)."""
    a = rb.applies_to
    if a.backup_port != "any":
        without = any(fnmatch.fnmatchcase(inc.branch, p) for p in no_backup_port)
        if without != (a.backup_port == "none"):
            return False
    faults = [f for f in inc.faults.values() if not f.suppressed] or list(inc.faults.values())
    # domain.md §5: a drill's incident gets the runbook the real one would.
    title = inc.title.removeprefix(DRILL_TITLE) if inc.drill else inc.title
    return (any(f.category in a.categories for f in faults)
            or any(fnmatch.fnmatchcase(f.check, p) for f in faults for p in a.checks)
            or any(fnmatch.fnmatchcase(title, p) for p in a.titles))


def choose(runbooks: dict[str, Runbook], inc: Incident,
           no_backup_port: tuple[str, ...] = ()) -> Runbook | None:
    """The runbook for this incident, or None when none applies."""
    fitting = [rb for rb in runbooks.values() if applies(rb, inc, no_backup_port)]
    if not fitting:
        return None
    return min(fitting, key=lambda rb: (-rb.applies_to.priority, rb.id))
