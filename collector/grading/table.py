"""Grading tables as data: schema, loading and validation of YAML files.

A table lists its grades (most severe first), the rules that give them and
the deadlines they start (domain.md §2, §3). Everything is checked at load:
any problem raises TableError with one line naming the file, the key path and
the rule, e.g.

    config/grading/x.yaml: rules[2].business_minutes: expected a positive number, got -5 (rule 'ii-1-region-3h')

Rule kinds: scope, provisional, observed, asserted (classify.py says how each
is judged); deadline kinds: deadlines.py. The schema is in docs/grading.md.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

import yaml

from ..texts import zh_problem

ROOT = Path(__file__).resolve().parents[2]


def _search_dir() -> Path:
    """Where table names are looked up: the source tree's config/grading, or,
    for an installed package, <prefix>/share/branchwatch/grading (pyproject's
    data-files put the shipped tables there)."""
    source = ROOT / "config" / "grading"
    if source.is_dir():
        return source
    return Path(sys.prefix) / "share" / "branchwatch" / "grading"


SEARCH_DIR = _search_dir()

RULE_KINDS = ("scope", "provisional", "observed", "asserted")
DEADLINE_KINDS = ("after_start", "after_grade_reached", "every_after_grade", "after_end",
                  "after_observed_start", "day_of_observed_end")


class TableError(Exception):
    """A grading table cannot be used; str() is the one line shown to the user."""


@dataclass(frozen=True)
class Rule:
    """One row of a grading table; which fields matter depends on kind."""

    id: str
    kind: str                       # one of RULE_KINDS
    grade: str
    title: str = ""
    title_zh: str = ""              # the title in Chinese, for reasons in zh
    regions_at_least: int = 1       # scope, provisional: units (domain.md §2.1) out at once
    business_minutes: float = 0.0   # scope
    wall_minutes: float = 0.0       # provisional
    kinds_any: frozenset[str] = frozenset()   # observed
    criterion: str = ""             # asserted
    override: bool = False          # asserted: a person's correction replaces the rest

    @property
    def provisional(self) -> bool:
        """True for the domain.md §2.1 outside-business-hours criterion."""
        return self.kind == "provisional"


@dataclass(frozen=True)
class DeadlineRule:
    """One deadline a table starts; see deadlines.plan_deadlines for each kind."""

    key: str
    kind: str                       # one of DEADLINE_KINDS
    title: str
    title_zh: str = ""              # the deadline's name in Chinese (collector/texts.said)
    minutes: float = 0.0
    min_grade: str | None = None    # applies once the incident reached this grade or higher
    not_before_grade: bool = False  # due no earlier than the moment min_grade was reached
    at_once_for_rules: frozenset[str] = frozenset()   # due at once when one of these rules held
    observed: str = ""              # after_observed_start: which observed kind
    departments: tuple[str, ...] = ()
    days: int = 0                   # day_of_observed_end: 0 = the same day, 1 = the next day
    cite: str = ""


@dataclass(frozen=True)
class GradingTable:
    """A validated grading table: grades most severe first, rules, deadlines."""

    name: str
    title: str
    source: str
    grades: tuple[str, ...]
    rules: tuple[Rule, ...]
    deadlines: tuple[DeadlineRule, ...] = ()
    grade_titles: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    handlers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # grade -> {zh, en}: its name in each language (collector/texts.grade_title);
    # grade_titles above keeps the Chinese names, as the regulation writes them.
    grade_names: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))
    handlers_zh: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    title_zh: str = ""

    def rank(self, grade: str | None) -> int:
        """Severity as a number: higher = more severe, None (ungraded) = 0."""
        if grade is None:
            return 0
        try:
            return len(self.grades) - self.grades.index(grade)
        except ValueError:
            raise ValueError(f"table {self.name}: unknown grade {grade!r}") from None

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError if none)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def criteria(self) -> dict[str, Rule]:
        """Criteria a person may set on an incident, by criterion id."""
        return {r.criterion: r for r in self.rules if r.kind == "asserted"}

    def handler(self, grade: str | None) -> str | None:
        """Who handles an incident of this grade (domain.md §2.2), if the table says."""
        return None if grade is None else self.handlers.get(grade)


def load_table(path: str | Path) -> GradingTable:
    """Read and validate one grading table file."""
    p = Path(path)
    shown = _shown(p)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise TableError(f"{shown}: cannot read: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        where = getattr(e, "problem_mark", None)
        at = f" at line {where.line + 1}" if where else ""
        raise TableError(f"{shown}: not valid YAML{at}: {getattr(e, 'problem', None) or e}") from None
    return parse_table(data, shown)


def load_tables(names_or_paths, search_dir: Path = SEARCH_DIR) -> dict[str, GradingTable]:
    """Load tables by name ('cbrc' → search_dir/cbrc.yaml) or path, keyed by table name."""
    base = Path(search_dir)
    out: dict[str, GradingTable] = {}
    for item in names_or_paths:
        s = str(item)
        p = Path(s) if ("/" in s or s.endswith((".yaml", ".yml"))) else base / f"{s}.yaml"
        t = load_table(p)
        if t.name in out:
            raise TableError(f"{t.source}: name: table {t.name!r} is already loaded from {out[t.name].source}")
        out[t.name] = t
    return out


def shipped_tables() -> list[Path]:
    """Every table file shipped in config/grading."""
    return sorted(SEARCH_DIR.glob("*.yaml"))


def _shown(p: Path) -> str:
    """The file as people know it: relative to the project when inside it."""
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


# ---- validation: each field is (required, check); a check returns the value to keep -----

class _Bad(Exception):
    """A problem at a key path; parse_table turns it into the one-line TableError."""

    def __init__(self, path: str, what: str):
        super().__init__(path, what)
        self.path, self.what = path, what


def parse_table(data, source: str) -> GradingTable:
    """Validate plain data (as from YAML) into a GradingTable; `source` names it in errors."""
    try:
        return _table(data, source)
    except _Bad as b:
        raise TableError(f"{source}: {b.path}: {b.what}") from None


def _table(d, source: str) -> GradingTable:
    _mapping(d, "(top level)")
    _no_unknown(d, _TOP, "")
    for k in ("name", "grades", "rules"):
        if k not in d:
            raise _Bad(k, "missing (a table needs name, grades and rules)")
    name = _text(d["name"], "name")
    # YAML reads `grades: [1, 2]` as numbers; hospital classes are names, not amounts.
    grades = tuple(_text(str(g) if _is_int(g) else g, f"grades[{i}]")
                   for i, g in enumerate(_list(d["grades"], "grades")))
    if not grades:
        raise _Bad("grades", "expected at least one grade, most severe first")
    _unique(grades, "grades", "", "grade")
    ctx = {"grades": grades}
    maps = {}
    for k in ("handlers", "handlers_zh"):
        m = d.get(k) or {}
        _mapping(m, k)
        check = _zh if k.endswith("_zh") else _text
        maps[k] = MappingProxyType({_grade(g, f"{k}.{g}", ctx): check(v, f"{k}.{g}") for g, v in m.items()})
    names = d.get("grade_titles") or {}
    _mapping(names, "grade_titles")
    maps["grade_names"] = MappingProxyType({_grade(g, f"grade_titles.{g}", ctx):
                                            _bilingual(v, f"grade_titles.{g}") for g, v in names.items()})
    maps["grade_titles"] = MappingProxyType({g: v["zh"] for g, v in maps["grade_names"].items()})
    rules = tuple(_items(d["rules"], "rules", "id", "rule", _RULE_FIELDS, _COMMON_RULE, ctx, Rule))
    if not rules:
        raise _Bad("rules", "expected at least one rule")
    _unique([r.id for r in rules], "rules", ".id", "rule id")
    _unique([r.criterion or None for r in rules], "rules", ".criterion", "criterion (one criterion, one rule)")
    ctx["rule_ids"] = {r.id for r in rules}
    deadlines = tuple(_items(d.get("deadlines") or [], "deadlines", "key", "deadline", _DEADLINE_FIELDS,
                             _COMMON_DEADLINE, ctx, DeadlineRule))
    _unique([x.key for x in deadlines], "deadlines", ".key", "deadline key")
    return GradingTable(name=name, title=_text(d.get("title", name), "title"), source=source,
                        grades=grades, rules=rules, deadlines=deadlines,
                        grade_titles=maps["grade_titles"], handlers=maps["handlers"],
                        grade_names=maps["grade_names"], handlers_zh=maps["handlers_zh"],
                        title_zh=_zh(d["title_zh"], "title_zh") if "title_zh" in d else "")


def _items(items, at: str, id_key: str, what: str, kinds: dict, common: dict, ctx: dict, make):
    """Each list item checked against its kind's fields; errors name the item's id."""
    for i, x in enumerate(_list(items, at)):
        here = f"{at}[{i}]"
        try:
            _mapping(x, here)
            kind = x.get("kind")
            if kind not in kinds:
                raise _Bad(f"{here}.kind", f"expected one of {', '.join(kinds)}, got {kind!r}")
            spec = {k: v for k, v in {**common, **kinds[kind]}.items() if v is not None}
            _no_unknown(x, set(spec), here)
            kw = {"kind": kind}
            for k, (required, check) in spec.items():
                if k in x and check is not None:
                    kw[k] = check(x[k], f"{here}.{k}", ctx)
                elif required and k not in x:
                    raise _Bad(f"{here}.{k}", f"missing (a {kind} {what} needs it)")
            if kw.get("not_before_grade") and "min_grade" not in kw:
                raise _Bad(f"{here}.not_before_grade", "needs min_grade (the grade it waits for)")
            yield make(**kw)
        except _Bad as b:
            name = x.get(id_key) if isinstance(x, dict) else None
            raise _Bad(b.path, b.what + (f" ({what} {name!r})" if isinstance(name, str) else "")) from None


# ---- small checks, each naming the key path --------------------------------------------

def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _need(ok: bool, v, at: str, expected: str):
    """v when ok, else the one-line problem at this key path."""
    if not ok:
        raise _Bad(at, f"expected {expected}, got {v!r}")
    return v


def _mapping(v, at: str) -> None:
    _need(isinstance(v, dict), v, at, "a mapping")


def _list(v, at: str) -> list:
    return _need(isinstance(v, list), v, at, "a list")


def _no_unknown(d: dict, allowed: set[str], at: str) -> None:
    for k in d:
        if k not in allowed:
            raise _Bad(f"{at}.{k}" if at else str(k), f"unknown key (expected one of {', '.join(sorted(allowed))})")


def _text(v, at: str, ctx=None) -> str:
    return _need(isinstance(v, str) and bool(v.strip()), v, at, "a non-empty string")


def _opt_text(v, at: str, ctx=None) -> str:
    return _need(isinstance(v, str), v, at, "a string")


def _zh(v, at: str, ctx=None) -> str:
    """A text in Simplified Chinese (collector/texts.zh_problem says what is wrong)."""
    problem = zh_problem(v)
    if problem:
        raise _Bad(at, problem)
    return v


def _bilingual(v, at: str) -> MappingProxyType:
    """{zh: .., en: ..}; a plain string (older tables) is the Chinese name, shown in both."""
    if isinstance(v, str):
        return MappingProxyType({"zh": _zh(v, at), "en": v})
    _mapping(v, at)
    _no_unknown(v, {"zh", "en"}, at)
    for lang in ("zh", "en"):
        if lang not in v:
            raise _Bad(f"{at}.{lang}", "missing (a name is given in zh and en)")
    return MappingProxyType({"zh": _zh(v["zh"], f"{at}.zh"), "en": _text(v["en"], f"{at}.en")})


def _grade(v, at: str, ctx) -> str:
    g = str(v) if _is_int(v) else v
    _need(g in ctx["grades"], v, at, f"one of the grades {list(ctx['grades'])}")
    return g


def _count(v, at: str, ctx=None) -> int:
    return _need(_is_int(v) and v >= 1, v, at, "a whole number >= 1")


def _days(v, at: str, ctx=None) -> int:
    return _need(_is_int(v) and 0 <= v <= 31, v, at, "a whole number of days from 0 to 31")


def _positive(v, at: str, ctx=None) -> float:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0
    return float(_need(ok, v, at, "a positive number"))


def _bool(v, at: str, ctx=None) -> bool:
    return _need(isinstance(v, bool), v, at, "true or false")


def _texts(v, at: str, ctx=None) -> tuple[str, ...]:
    return tuple(_text(x, f"{at}[{j}]") for j, x in enumerate(_list(v, at)))


def _kinds(v, at: str, ctx=None) -> frozenset[str]:
    kinds = _texts(v, at)
    _need(bool(kinds), v, at, "at least one observed kind")
    return frozenset(kinds)


def _rule_ids(v, at: str, ctx) -> frozenset[str]:
    for j, x in enumerate(_texts(v, at)):
        _need(x in ctx["rule_ids"], x, f"{at}[{j}]", "the id of a rule in this table")
    return frozenset(v)


def _unique(values, at: str, key: str, what: str) -> None:
    seen: set = set()
    for i, v in enumerate(values):
        if v is not None and v in seen:
            raise _Bad(f"{at}[{i}]{key}", f"duplicate {what} {v!r}")
        seen.add(v)


_TOP = {"name", "title", "title_zh", "source", "grades", "grade_titles", "handlers", "handlers_zh",
        "rules", "deadlines"}
_COMMON_RULE = {"id": (True, _text), "kind": (True, None), "grade": (True, _grade), "title": (False, _opt_text),
                "title_zh": (False, _zh)}
_RULE_FIELDS = {
    "scope": {"regions_at_least": (False, _count), "business_minutes": (True, _positive)},
    "provisional": {"regions_at_least": (False, _count), "wall_minutes": (True, _positive)},
    "observed": {"kinds_any": (True, _kinds)},
    "asserted": {"criterion": (True, _text), "override": (False, _bool)},
}
_COMMON_DEADLINE = {"key": (True, _text), "kind": (True, None), "title": (True, _text),
                    "title_zh": (False, _zh),
                    "cite": (False, _opt_text), "minutes": (True, _positive)}
_DEADLINE_FIELDS = {
    "after_start": {"min_grade": (False, _grade), "not_before_grade": (False, _bool),
                    "at_once_for_rules": (False, _rule_ids)},
    "after_grade_reached": {"min_grade": (True, _grade)},
    "every_after_grade": {"min_grade": (True, _grade)},
    "after_end": {"min_grade": (False, _grade)},
    "after_observed_start": {"observed": (True, _text), "departments": (False, _texts)},
    # None: a common field this kind does not take (its due time is a day's end).
    "day_of_observed_end": {"observed": (True, _text), "days": (True, _days), "minutes": None},
}
assert tuple(_RULE_FIELDS) == RULE_KINDS and tuple(_DEADLINE_FIELDS) == DEADLINE_KINDS
