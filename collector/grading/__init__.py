"""Grading and deadlines, pure: classify(facts, table, calendar, now) → Grading,
raise_only() so a grade never drops by itself, and plan_deadlines() for the
reports domain.md §3 requires. Tables are YAML data (config/grading/*.yaml);
time is always passed in. See docs/grading.md.
"""

from .calendar import Calendar
from .classify import classify, raise_only
from .deadlines import (Deadline, history_from, observed_span_lists, observed_spans,
                        plan_deadlines)
from .facts import Assertion, Grading, IncidentFacts, Observed, Outage, RuleMatch
from .table import (DeadlineRule, GradingTable, Rule, TableError, load_table, load_tables,
                    parse_table, shipped_tables)

__all__ = [
    "Assertion", "Calendar", "Deadline", "DeadlineRule", "Grading", "GradingTable",
    "IncidentFacts", "Observed", "Outage", "Rule", "RuleMatch", "TableError", "classify",
    "history_from", "load_table", "load_tables", "observed_span_lists", "observed_spans", "parse_table",
    "plan_deadlines", "raise_only", "shipped_tables",
]
