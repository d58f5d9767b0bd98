"""The default suggestion rules as data, and merging the user's rule changes from the config."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from kpiloop.feedback.config import FeedbackConfig, RuleCondition, RuleOverride, SuggestionRule
from kpiloop.feedback.rules import DEFAULT_RULES, RULE_METRICS, check_rule, effective_rules, template_fields

PLAN_IDS = [
    "batch-task-operations",
    "background-agents",
    "idle-timeout",
    "preload-documents",
    "auto-close-tasks",
    "cache-friendly-prompts",
]

NEW_RULE = {
    "id": "fewer-bash",
    "condition": {"metric": "error_rate", "operator": ">", "threshold": 0.05},
    "priority": "LOW",
    "category": "tooling",
    "title": "Check failing commands",
    "description": "Look at the failing tool calls",
    "implementation": "Add a pre-tool check",
    "impact": "Fewer failures",
    "target_kpi": "error_rate",
    "direction": "decrease",
    "magnitude": "-50%",
    "evidence": "{error_rate:.0%} of operations failed",
}


def by_id(rules: Iterable[SuggestionRule]) -> dict[str, SuggestionRule]:
    return {rule.id: rule for rule in rules}


def test_the_defaults_are_the_plans_six_rules_in_the_plans_order():
    assert [rule.id for rule in DEFAULT_RULES] == PLAN_IDS
    rules = by_id(DEFAULT_RULES)
    assert rules["batch-task-operations"].condition == RuleCondition(
        metric="tool_overhead_ratio", operator=">", threshold=1.0
    )
    assert (rules["batch-task-operations"].priority, rules["batch-task-operations"].direction) == ("HIGH", "decrease")
    assert rules["background-agents"].condition.threshold == 0.02
    assert (rules["background-agents"].priority, rules["background-agents"].magnitude) == ("CRITICAL", "10-20x")
    assert rules["idle-timeout"].condition.threshold == 0.40
    preload = rules["preload-documents"].condition
    assert (preload.metric, preload.operator, preload.other_metric) == ("read_calls", "<", "documents")
    assert preload.agent_type_contains == "translation"
    assert rules["preload-documents"].target_kpi == "quality_faithfulness"
    assert rules["auto-close-tasks"].condition.threshold == 0.85
    assert (rules["cache-friendly-prompts"].condition.threshold, rules["cache-friendly-prompts"].priority) == (
        0.80,
        "LOW",
    )


def test_every_default_rule_uses_known_metrics_only():
    for rule in DEFAULT_RULES:
        check_rule(rule)
        assert set(template_fields(rule.evidence)) <= set(RULE_METRICS)


def test_no_config_means_the_defaults():
    assert effective_rules(FeedbackConfig()) == DEFAULT_RULES


def test_an_override_changes_only_the_fields_it_gives_and_keeps_the_rules_place():
    lower = RuleCondition(metric="active_time_ratio", operator="<", threshold=0.3)
    config = FeedbackConfig(rules=[RuleOverride(id="idle-timeout", priority="HIGH", condition=lower)])
    rules = effective_rules(config)
    assert [rule.id for rule in rules] == PLAN_IDS
    changed, default = by_id(rules)["idle-timeout"], by_id(DEFAULT_RULES)["idle-timeout"]
    assert (changed.priority, changed.condition) == ("HIGH", lower)
    assert changed.model_dump(exclude={"priority", "condition"}) == default.model_dump(
        exclude={"priority", "condition"}
    )


def test_enabled_false_disables_a_rule():
    config = FeedbackConfig.model_validate({"rules": [{"id": "background-agents", "enabled": False}]})
    assert [rule.id for rule in effective_rules(config)] == [i for i in PLAN_IDS if i != "background-agents"]


def test_a_disabled_rule_can_be_enabled_again_by_a_later_entry():
    config = FeedbackConfig.model_validate(
        {"rules": [{"id": "idle-timeout", "enabled": False}, {"id": "idle-timeout", "enabled": True}]}
    )
    assert "idle-timeout" in by_id(effective_rules(config))


def test_a_new_complete_rule_is_added_after_the_defaults():
    config = FeedbackConfig.model_validate({"rules": [NEW_RULE]})
    rules = effective_rules(config)
    assert [rule.id for rule in rules] == [*PLAN_IDS, "fewer-bash"]
    assert rules[-1].condition.threshold == 0.05


@pytest.mark.parametrize("missing", ["title", "condition", "evidence"])
def test_a_new_rule_without_every_field_is_refused_naming_the_rule_and_the_field(missing):
    entry = {key: value for key, value in NEW_RULE.items() if key != missing}
    config = FeedbackConfig.model_validate({"rules": [entry]})
    with pytest.raises(ValueError, match=rf"rule 'fewer-bash' .*missing: {missing}"):
        effective_rules(config)


def test_an_unknown_id_that_only_disables_is_refused_as_a_probable_typo():
    config = FeedbackConfig.model_validate({"rules": [{"id": "background-agent", "enabled": False}]})
    with pytest.raises(ValueError, match="rule 'background-agent'"):
        effective_rules(config)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"evidence": "{tool_callz} calls"}, "unknown metric 'tool_callz'"),
        ({"condition": {"metric": "reads", "operator": "<", "threshold": 1}}, "unknown metric 'reads'"),
        ({"condition": {"metric": "read_calls", "operator": "<", "other_metric": "docs"}}, "unknown metric 'docs'"),
        ({"target_kpi": "happiness"}, "unknown target_kpi 'happiness'"),
        ({"evidence": "{unclosed"}, "invalid evidence template"),
    ],
)
def test_a_rule_that_names_an_unknown_metric_is_refused_naming_the_rule(change, message):
    config = FeedbackConfig.model_validate({"rules": [{"id": "idle-timeout", **change}]})
    with pytest.raises(ValueError, match=message) as raised:
        effective_rules(config)
    assert "idle-timeout" in str(raised.value)


def test_template_fields_lists_placeholders_in_order():
    assert template_fields("Only {read_calls:plural:Read call} for {documents} documents") == [
        "read_calls",
        "documents",
    ]
