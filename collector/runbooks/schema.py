"""Runbooks as data (issue 6; domain.md §4, branch plan §5, hospital §5).

A runbook file is YAML in config/runbooks/: which incidents it applies to,
and its steps. Loaded and checked with the config loader's wording (one line
naming the file, the key path and what was expected). A step is one of:

- action:   something done to equipment or the world: `snmp_port` (a switch
            port up/down, carried out by the branch agent), `nut_command` (a
            UPS instant command, by the agent), `webhook` (an HTTP call from the
            collector), `command` (a collector-side command from the allow
            list), `hold`/`release` (a fact of the collector's own that keeps
            the incident open, e.g. "the branch runs on the generator": it
            touches no equipment, so it needs no pre-authorisation). `preauthorised` (預授權, 第三條(二)) runs it by itself: a
            grant that records who granted it, when, and up to which grade
            it holds (domain.md §4); above that grade, or without a grant,
            a person confirms first. `done_when` lets the
            agent's own pre-authorised action (e.g. its uplink failover,
            reported as an `action/...` event) complete the step.
- manual:   a task for a person in a role, with optional evidence.
- wait:     until `seconds` have passed, or until checks are `state` for `for`
            seconds (`until`), failing after `timeout` if given.
- decision: a question with options, each naming the next step; `auto:
            diagnosis` answers it from the agents' device/line diagnosis.

Steps run in file order unless `next` (or a decision's option, or `on_fail`)
names another; `next: end` finishes the runbook.
"""

from __future__ import annotations

import typing
from pathlib import Path

import msgspec

from agent.config import ConfigError, load_as
from agent.schema_network import _S, Name

from ..texts import zh_problem

Text = typing.Annotated[str, msgspec.Meta(min_length=1)]
Seconds = typing.Annotated[float, msgspec.Meta(gt=0)]
END = "end"


class Applies(_S):
    """Which incidents a runbook is for: any fault of these categories or checks."""

    categories: list[Text] = []
    checks: list[Text] = []
    titles: list[Text] = []          # incident title patterns (e.g. "power outage*")
    priority: int = 0                # the highest priority that matches wins
    # domain.md §4: a branch with a pre-wired backup port fails over by SNMP SET;
    # one without swaps cables by hand (runbooks.no_backup_port lists those).
    backup_port: typing.Literal["any", "pre-wired", "none"] = "any"


class Action(_S, kw_only=True):
    """What an action step does."""

    type: typing.Literal["snmp_port", "nut_command", "webhook", "command", "hold", "release"]
    switch: Text | None = None       # snmp_port: the switch (agent config name) or "{uplink}"
    port: Text | None = None         # snmp_port: the port id, or "backup"/"primary" uplink
    state: typing.Literal["up", "down"] | None = None
    ups: Text | None = None          # nut_command
    command: Text | None = None      # nut_command: instcmd; command: allow-list name
    url: Text | None = None          # webhook
    body: dict = {}                  # webhook: JSON body (values may use {incident}, {branch})
    check: Text | None = None        # hold/release: the fact that keeps the incident open
    reason: Text | None = None       # hold: what it means, for people
    reason_zh: Text | None = None    # the same in Chinese


class Until(_S, kw_only=True):
    """A wait's condition: every fault of these checks is `state` for `for` seconds."""

    checks: list[Text]
    state: typing.Literal["ok", "warning", "critical", "unknown", "cleared"] = "cleared"
    for_: Seconds = msgspec.field(default=1.0, name="for")


class Grant(_S, kw_only=True):
    """A pre-authorisation (預授權, domain.md §4): a decision by people, recorded."""

    granted_by: Text                         # who granted it (a person or a body)
    granted_by_zh: Text | None = None        # the same in Chinese
    granted_at: Text                         # when (a date, as the decision says it)
    up_to_grade: Text                        # the most severe grade it still holds for
    table: Text = "cbrc"                     # which grading table that grade is of


class Step(_S, kw_only=True):
    """One step of a runbook (see the module docstring for the kinds)."""

    id: Name
    kind: typing.Literal["action", "manual", "wait", "decision"]
    title: Text
    title_zh: Text | None = None             # each text a person reads, in Chinese too
    role: Text | None = None                 # who does it (第四條: leadership, execution, support)
    text: Text | None = None                 # what to do, for people
    text_zh: Text | None = None
    evidence: typing.Literal["none", "note", "photo"] = "none"
    action: Action | None = None
    # A Grant; `true` is read only from runs stored before grants were recorded.
    preauthorised: Grant | bool = False
    done_when: Text | None = None            # an agent action event check pattern
    seconds: Seconds | None = None           # wait
    until: Until | None = None               # wait
    timeout: Seconds | None = None           # wait, action: fail after this long
    question: Text | None = None             # decision
    question_zh: Text | None = None
    options: dict[str, Name] = {}            # decision: answer -> next step id
    options_zh: dict[str, Text] = {}         # decision: answer -> its words in Chinese
    auto: typing.Literal["diagnosis"] | None = None
    next: Name | None = None
    on_fail: Name | None = None
    # Done once the incident is over (swap back, review, re-enter data): a person
    # still does it after the incident resolved; any other step waiting for a
    # person then is not needed (runbooks/run.py stand_down).
    after_recovery: bool = False


class Runbook(_S, kw_only=True):
    """A runbook file."""

    id: Name
    title: Text
    title_zh: Text | None = None
    source: Text
    applies_to: Applies = msgspec.field(default_factory=Applies)
    steps: typing.Annotated[list[Step], msgspec.Meta(min_length=1)]

    def step(self, step_id: str) -> Step:
        """The step with this id (KeyError if none)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def after(self, step_id: str) -> str:
        """The step that follows this one in the file (END after the last)."""
        ids = [s.id for s in self.steps]
        i = ids.index(step_id)
        return ids[i + 1] if i + 1 < len(ids) else END


def _zh_problems(rb: Runbook):
    """Each `_zh` text is Simplified Chinese (collector/texts.py)."""
    items = [("", rb)] + [(f"steps[{i}].", s) for i, s in enumerate(rb.steps)]
    items += [(f"steps[{i}].action.", s.action) for i, s in enumerate(rb.steps) if s.action]
    items += [(f"steps[{i}].preauthorised.", s.preauthorised) for i, s in enumerate(rb.steps)
              if isinstance(s.preauthorised, Grant)]
    for at, obj in items:
        for key in ("title", "text", "question", "reason", "granted_by"):
            value = getattr(obj, f"{key}_zh", None)
            problem = value is not None and zh_problem(value)
            if problem:
                yield f"{at}{key}_zh", problem
    for i, s in enumerate(rb.steps):
        for answer, words in s.options_zh.items():
            if answer not in s.options:
                yield f"steps[{i}].options_zh.{answer}", f"no option {answer!r} in options"
            elif zh_problem(words):
                yield f"steps[{i}].options_zh.{answer}", zh_problem(words)


def _problems(rb: Runbook):
    """What the types cannot say: unique ids, targets that exist, each kind's fields."""
    yield from _zh_problems(rb)
    ids = [s.id for s in rb.steps]
    known = set(ids) | {END}
    for i, s in enumerate(rb.steps):
        at = f"steps[{i}]"
        if s.id in ids[:i]:
            yield f"{at}.id", f"duplicate step id {s.id!r}"
        for key in ("next", "on_fail"):
            target = getattr(s, key)
            if target is not None and target not in known:
                yield f"{at}.{key}", f"no step {target!r} (expected one of: {', '.join(ids)}, end)"
        for answer, target in s.options.items():
            if target not in known:
                yield f"{at}.options.{answer}", f"no step {target!r}"
        need = {"action": ("action",), "manual": ("text",), "decision": ("question",),
                "wait": ()}[s.kind]
        for key in need:
            if getattr(s, key) in (None, {}, []):
                yield f"{at}.{key}", f"missing, and a {s.kind} step needs it"
        if s.kind == "decision" and not s.options:
            yield f"{at}.options", "missing, and a decision step needs at least one option"
        if s.kind == "wait" and (s.seconds is None) == (s.until is None):
            yield at, "expected exactly one of seconds or until for a wait step"
        if s.kind == "action" and s.action is not None:
            yield from _action_problems(f"{at}.action", s.action)
        if s.preauthorised is True:
            yield (f"{at}.preauthorised", "expected a grant {granted_by, granted_at, "
                   "up_to_grade} (domain.md §4: who granted it, when, up to which grade), "
                   "not true")


def _action_problems(at: str, a: Action):
    need = {"snmp_port": ("switch", "port", "state"), "nut_command": ("ups", "command"),
            "webhook": ("url",), "command": ("command",), "hold": ("check", "reason"),
            "release": ("check",)}[a.type]
    for key in need:
        if getattr(a, key) is None:
            yield f"{at}.{key}", f"missing, and a {a.type} action needs it"


def load_runbook(path: str | Path) -> Runbook:
    """Read and check one runbook file; ConfigError (one line) when it is wrong."""
    return load_as(path, Runbook, _problems)


def load_runbooks(folder: str | Path) -> dict[str, Runbook]:
    """Every *.yaml runbook in a folder, by id; a duplicate id is an error."""
    out: dict[str, Runbook] = {}
    for p in sorted(Path(folder).glob("*.yaml")):
        rb = load_runbook(p)
        if rb.id in out:
            raise ConfigError(f"{p}: id: runbook {rb.id!r} is also defined in another file")
        out[rb.id] = rb
    return out
