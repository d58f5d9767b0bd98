"""The suggestion rules as data: the plan's six (Component 2's table and example JSON), and the
merge of the user's changes from ``exporters.feedback.rules`` in the config.

A rule's ``evidence`` is a :meth:`str.format` template over the session metrics
(:data:`RULE_METRICS`); besides the usual format specs it understands ``{name:plural:word}``,
which renders ``1 word`` or ``3 words``.
"""

from __future__ import annotations

import string

from pydantic import ValidationError

from kpiloop.feedback.config import FeedbackConfig, RuleCondition, RuleOverride, SuggestionRule
from kpiloop.model import KPI_DIRECTIONS, KPI_NAMES

COUNT_METRICS: tuple[str, ...] = (
    "read_calls",
    "write_calls",
    "documents",
    "tool_calls",
    "api_requests",
    "management_calls",
    "productive_calls",
)
"""Session counts a rule can test or quote (whole numbers, carried as floats)."""

RULE_METRICS: tuple[str, ...] = (*KPI_NAMES, "cost_per_output_token", *COUNT_METRICS, "input_to_output")
"""Every name a rule's condition or evidence template may use."""


def _rule(rule_id: str, condition: RuleCondition, **fields: str) -> SuggestionRule:
    return SuggestionRule.model_validate({"id": rule_id, "condition": condition, **fields})


DEFAULT_RULES: tuple[SuggestionRule, ...] = (
    _rule(
        "batch-task-operations",
        RuleCondition(metric="tool_overhead_ratio", operator=">", threshold=1.0),
        priority="HIGH",
        category="tooling",
        title="Batch task operations to reduce overhead",
        description="Create all tasks in single TaskCreate call with JSON array",
        implementation="Update task creation patterns in agent prompts",
        impact="~50% reduction in management tool calls",
        target_kpi="tool_overhead_ratio",
        direction="decrease",
        magnitude="~50%",
        evidence="{management_calls} of {tool_calls} tool calls were task bookkeeping (TaskCreate/TaskUpdate)",
    ),
    _rule(
        "background-agents",
        RuleCondition(metric="token_efficiency", operator="<", threshold=0.02),
        priority="CRITICAL",
        category="architecture",
        title="Use background agents for independent work units",
        description="Launch a dedicated agent per work unit (e.g. per document) with pre-loaded context",
        implementation="Modify session-start hook to spawn background agents",
        impact="10-20x improvement in token efficiency",
        target_kpi="token_efficiency",
        direction="increase",
        magnitude="10-20x",
        evidence="Current {input_to_output:,.0f}:1 input-to-output ratio",
    ),
    _rule(
        "idle-timeout",
        RuleCondition(metric="active_time_ratio", operator="<", threshold=0.40),
        priority="MEDIUM",
        category="resources",
        title="Set 30-minute idle timeout with auto-hibernation",
        description="Set session timeout at 30 minutes idle, implement auto-hibernation",
        implementation="Configure a 30-minute idle timeout and hibernate idle sessions",
        impact="Reclaim idle resources",
        target_kpi="active_time_ratio",
        direction="increase",
        magnitude="to 40% or more",
        evidence="Only {active_time_ratio:.0%} of the wall clock was active",
    ),
    _rule(
        "preload-documents",
        RuleCondition(metric="read_calls", operator="<", other_metric="documents", agent_type_contains="translation"),
        priority="HIGH",
        category="workflow",
        title="Pre-load all source documents at session start",
        description="Load source docs + voice profiles before translation begins",
        implementation="Add pre-load step to session-start hook",
        impact="Reduce hallucination, improve faithfulness",
        target_kpi="quality_faithfulness",
        direction="increase",
        magnitude="not quantified",
        evidence="Only {read_calls:plural:Read call} for {documents:plural:document}",
    ),
    _rule(
        "auto-close-tasks",
        RuleCondition(metric="task_completion_rate", operator="<", threshold=0.85),
        priority="MEDIUM",
        category="workflow",
        title="Implement auto-close logic for tasks",
        description="When a Write completes, close the associated task",
        implementation="Add a post-tool hook step that closes the task a completed Write belongs to",
        impact="Improve work tracking hygiene",
        target_kpi="task_completion_rate",
        direction="increase",
        magnitude="to 85% or more",
        evidence="Only {task_completion_rate:.0%} of created tasks were completed",
    ),
    _rule(
        "cache-friendly-prompts",
        RuleCondition(metric="cache_efficiency", operator="<", threshold=0.80),
        priority="LOW",
        category="cost",
        title="Review prompt structure for cache-friendly patterns",
        description="Keep stable context (system prompt, tools, documents) in an unchanging prompt prefix",
        implementation="Move per-turn content to the end of prompts so the shared prefix is served from cache",
        impact="Reduce API costs 50-80%",
        target_kpi="cache_efficiency",
        direction="increase",
        magnitude="to 80% or more",
        evidence="Only {cache_efficiency:.1%} of input tokens were cache reads",
    ),
)
"""The plan's six rules (Component 2), in the plan's order."""


def effective_rules(config: FeedbackConfig) -> tuple[SuggestionRule, ...]:
    """The default rules with ``config.rules`` applied by id, enabled ones only.

    An override of a default rule changes the fields it gives (``enabled: false`` disables it);
    an unknown id must be a complete rule. Raises ValueError naming the rule id when an entry is
    incomplete or uses an unknown metric, placeholder or target KPI.
    """
    rules = {rule.id: rule for rule in DEFAULT_RULES}
    for override in config.rules:
        rules[override.id] = _apply(rules.get(override.id), override)
    for rule in rules.values():
        check_rule(rule)
    return tuple(rule for rule in rules.values() if rule.enabled)


def check_rule(rule: SuggestionRule) -> None:
    """Raise ValueError naming the rule when it refers to a metric or KPI that does not exist."""
    condition = rule.condition
    names = [condition.metric, *([condition.other_metric] if condition.other_metric else [])]
    try:
        placeholders = template_fields(rule.evidence)
    except ValueError as error:
        raise ValueError(f"rule {rule.id!r}: {error}") from None
    unknown = [name for name in [*names, *placeholders] if name not in RULE_METRICS]
    if unknown:
        raise ValueError(f"rule {rule.id!r}: unknown metric {unknown[0]!r}; known: {', '.join(RULE_METRICS)}")
    if rule.target_kpi not in KPI_DIRECTIONS:
        raise ValueError(f"rule {rule.id!r}: unknown target_kpi {rule.target_kpi!r}")


def template_fields(template: str) -> list[str]:
    """The placeholder names of an evidence template.

    >>> template_fields("{management_calls} of {tool_calls:.0f} calls")
    ['management_calls', 'tool_calls']
    """
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as error:
        raise ValueError(f"invalid evidence template {template!r}: {error}") from error
    return [name for _, name, _, _ in parsed if name is not None]


def _apply(base: SuggestionRule | None, override: RuleOverride) -> SuggestionRule:
    given = override.model_dump(exclude_none=True)
    data = {**base.model_dump(), **given} if base is not None else given
    try:
        return SuggestionRule.model_validate(data)
    except ValidationError as error:
        missing = [".".join(map(str, e["loc"])) for e in error.errors(include_url=False) if e["type"] == "missing"]
        if base is None and missing:
            reason = f"is not a default rule, so it must be complete (missing: {', '.join(missing)})"
        else:
            reason = f"is invalid: {error}"
        raise ValueError(f"rule {override.id!r} {reason}") from None
