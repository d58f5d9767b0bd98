"""The suggestion engine: which rules a closed session meets, ranked, and the plan's
``optimizations/{session_id}.json`` document.

A rule applies when its condition holds on the session's metrics; a metric that is null (not
computable for this session) never makes a condition true. Suggestions are ranked by priority,
then by how far past the threshold the session is, relative to the threshold.
"""

from __future__ import annotations

import operator
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from kpiloop.feedback.config import RuleCondition, SuggestionRule
from kpiloop.model import KPI_NAMES, SessionSummary
from kpiloop.storage import atomic_write

PRIORITY_ORDER: Mapping[str, int] = {"CRITICAL": 0, "HIGH": 1, "MEDIUM": 2, "LOW": 3}
"""Rank of each priority, most urgent first."""

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
"""What a session id, agent type or KPI must look like to become part of a file name."""

_OPERATORS: Mapping[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True, slots=True)
class Suggestion:
    """One rule that applies to a session, with its evidence rendered from the session's numbers."""

    id: str
    priority: str
    category: str
    title: str
    description: str
    impact: str
    evidence: str
    implementation: str
    target_kpi: str
    direction: str
    magnitude: str


def session_metrics(summary: SessionSummary) -> dict[str, float | None]:
    """The KPIs plus the counts rules test and quote.

    ``documents`` is the number of Write calls: the summary carries no file paths, so distinct
    files cannot be told apart. ``input_to_output`` is all input (uncached, cache reads and cache
    writes) per output token, None without output.
    """
    tokens = summary.tokens
    tools = summary.tools_by_name
    metrics: dict[str, float | None] = {name: summary.kpis.get(name) for name in KPI_NAMES}
    metrics["cost_per_output_token"] = summary.cost_per_output_token
    counts = {
        "read_calls": tools.get("Read", 0),
        "write_calls": tools.get("Write", 0),
        "documents": tools.get("Write", 0),
        "tool_calls": summary.tool_calls,
        "api_requests": summary.api_requests,
        "management_calls": summary.management_tool_calls,
        "productive_calls": summary.productive_tool_calls,
    }
    metrics.update({name: float(value) for name, value in counts.items()})
    all_input = tokens.input + tokens.cache_read + tokens.cache_creation
    metrics["input_to_output"] = all_input / tokens.output if tokens.output else None
    return metrics


def suggest(summary: SessionSummary, rules: Iterable[SuggestionRule]) -> list[Suggestion]:
    """Suggestions of the enabled rules whose condition holds for ``summary``, most urgent first."""
    metrics = session_metrics(summary)
    ranked: list[tuple[int, float, int, Suggestion]] = []
    for position, rule in enumerate(rules):
        if not rule.enabled:
            continue
        excess = condition_excess(rule.condition, summary.agent_type, metrics)
        if excess is not None:
            ranked.append((PRIORITY_ORDER[rule.priority], -excess, position, _suggestion(rule, metrics)))
    return [item[-1] for item in sorted(ranked, key=lambda item: item[:3])]


def condition_excess(condition: RuleCondition, agent_type: str, metrics: Mapping[str, float | None]) -> float | None:
    """How far past its threshold the session is (relative to the threshold), or None when the
    condition does not hold, a metric is null, or the agent type does not match.

    >>> low = RuleCondition(metric="token_efficiency", operator="<", threshold=0.02)
    >>> condition_excess(low, "any-agent", {"token_efficiency": 0.001})
    0.95
    """
    wanted = condition.agent_type_contains
    if wanted is not None and wanted.lower() not in agent_type.lower():
        return None
    value = metrics.get(condition.metric)
    limit = condition.threshold if condition.other_metric is None else metrics.get(condition.other_metric)
    if value is None or limit is None or not _OPERATORS[condition.operator](value, limit):
        return None
    gap = abs(value - limit)
    return gap / abs(limit) if limit else gap


def render_evidence(template: str, metrics: Mapping[str, float | None]) -> str:
    """Fill an evidence template with the session's numbers.

    Whole counts print without decimals, null values as ``n/a``, and ``{name:plural:word}``
    gives ``1 word`` / ``2 words``.

    >>> render_evidence("{a} of {b} calls; only {c:plural:Read call}", {"a": 26.0, "b": 41.0, "c": 1.0})
    '26 of 41 calls; only 1 Read call'
    """
    return _EvidenceFormatter().vformat(template, (), dict(metrics))


class _EvidenceFormatter(string.Formatter):
    def format_field(self, value: Any, format_spec: str) -> str:
        if value is None:
            return "n/a"
        if format_spec.startswith("plural:"):
            word = format_spec.removeprefix("plural:")
            return f"{value:g} {word}{'' if value == 1 else 's'}"
        if not format_spec and isinstance(value, float) and value.is_integer():
            return str(int(value))
        return format(value, format_spec)


def _suggestion(rule: SuggestionRule, metrics: Mapping[str, float | None]) -> Suggestion:
    return Suggestion(
        id=f"opt-{rule.id}",
        priority=rule.priority,
        category=rule.category,
        title=rule.title,
        description=rule.description,
        impact=rule.impact,
        evidence=render_evidence(rule.evidence, metrics),
        implementation=rule.implementation,
        target_kpi=rule.target_kpi,
        direction=rule.direction,
        magnitude=rule.magnitude,
    )


def suggestions_document(
    summary: SessionSummary,
    suggestions: Sequence[Suggestion],
    now_iso: str,
    *,
    sessions_target: int = 60,
) -> dict[str, Any]:
    """The plan's "Optimization Suggestions Output Schema", every suggestion ``proposed``.

    ``sessions_target`` is how many sessions the effectiveness experiment may track
    (``max_tracked_sessions``); ``expected_impact`` is kpiloop's addition, as in ``active.json``.
    """
    return {
        "session_id": summary.session_id,
        "agent_type": summary.agent_type,
        "date": now_iso,
        "suggestions": [_entry(suggestion, sessions_target) for suggestion in suggestions],
    }


def _entry(suggestion: Suggestion, sessions_target: int) -> dict[str, Any]:
    return {
        "id": suggestion.id,
        "priority": suggestion.priority,
        "category": suggestion.category,
        "title": suggestion.title,
        "description": suggestion.description,
        "impact": suggestion.impact,
        "evidence": suggestion.evidence,
        "implementation": suggestion.implementation,
        "expected_impact": {
            "kpi": suggestion.target_kpi,
            "direction": suggestion.direction,
            "magnitude": suggestion.magnitude,
        },
        "activation_status": "proposed",
        "tracking": {
            "activated_at": None,
            "sessions_tracked": 0,
            "sessions_target": sessions_target,
            "impact_measured": None,
        },
    }


def encode_document(document: Mapping[str, Any]) -> bytes:
    """The document as written to disk: indented JSON with a final newline."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"


def write_suggestions(data_dir: Path, document: Mapping[str, Any]) -> Path:
    """Write ``document`` atomically to ``{data_dir}/optimizations/{session_id}.json``; return the path."""
    session_id = str(document["session_id"])
    if not SAFE_NAME.fullmatch(session_id):
        raise ValueError(f"session id {session_id!r} cannot be used in a file name")
    path = data_dir / "optimizations" / f"{session_id}.json"
    atomic_write(path, encode_document(document))
    return path
