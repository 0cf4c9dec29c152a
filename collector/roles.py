"""Who may do what, on every interface alike: the API (operator tokens), the CLI
(which speaks the API) and the console (logged-in users) share this table.

domain.md §2.1, §4 (第四條): the leadership group commands and announces a
downgrade or the end of the response, so setting a grade by hand (lowering
it), setting or withdrawing a data criterion, declaring the response over
(a person's resolve), closing an incident, naming the reporter (報告責任人,
第二十六條) and issuing reports are leadership's; the execution group handles
the incident and reports, an operator here; a viewer reads.
"""

from __future__ import annotations

from collections.abc import Iterable

ROLES = ("viewer", "operator", "leadership")

VIEWER = frozenset({"logout", "read"})
OPERATOR = VIEWER | frozenset({"ack", "note", "deadline", "confirm", "skip", "fail", "start",
                               "draft", "drill", "report", "clear",
                               # domain.md §2.3: IT (the execution group) declares the
                               # whole-network outage, announces to the departments and
                               # records the monthly restore test (collector/hospital/).
                               "declare", "announce", "restore_test"})
LEADERSHIP = OPERATOR | frozenset({"resolve", "close", "grade", "criterion", "withdraw",
                                   "issue", "reporter"})
ROLE_ACTIONS = {"viewer": VIEWER, "operator": OPERATOR, "leadership": LEADERSHIP}


def allowed(roles: Iterable[str], action: str) -> bool:
    """Whether any of these roles may do `action`."""
    return any(action in ROLE_ACTIONS.get(r, ()) for r in roles)


def refusal(who: str, roles: Iterable[str], action: str) -> str:
    """The one-line reason a person may not do `action` (for a 403)."""
    roles = list(roles)
    need = next((r for r in ROLES if action in ROLE_ACTIONS[r]), None)
    why = (f"; it is the {need} role's act" + (" (domain.md §4, 第四條)" if need == "leadership"
                                                else "")) if need else ""
    return f"{who} ({', '.join(roles) or 'no role'}) may not {action}{why}"
