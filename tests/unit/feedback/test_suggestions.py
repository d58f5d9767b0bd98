"""The suggestion engine on sessions replayed through the real pipeline (the plan's E&N session and
seeded healthy ones), and the plan's ``optimizations/{session_id}.json`` document."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

import orjson
import pytest

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import JsonlReplay
from kpiloop.feedback.config import FeedbackConfig, RuleCondition, SuggestionRule
from kpiloop.feedback.rules import DEFAULT_RULES, RULE_METRICS, effective_rules
from kpiloop.feedback.suggestions import (
    Suggestion,
    condition_excess,
    encode_document,
    render_evidence,
    session_metrics,
    suggest,
    suggestions_document,
    write_suggestions,
)
from kpiloop.model import SessionSummary
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.sample_sessions import (
    EN_SESSION_ID,
    EN_START_NS,
    SECOND,
    PlanSession,
    en_session,
    healthy_session,
    write_daily_files,
)
from kpiloop.testing import FakeClock, ListSink

NOW = "2026-02-14T12:00:00Z"
HEALTHY_SEEDS = (1, 4, 7)  # replayed: cache efficiency >= 0.80 and at least as many Reads as Writes


def replay(session: PlanSession, directory: Path) -> SessionSummary:
    """Replay the session's JSONL files through the real receiver, adapter and session processor."""
    files = write_daily_files(directory, [session])
    sink: ListSink[SessionSummary] = ListSink()
    processor = SessionKpiProcessor(sink, SessionKpiConfig(), FakeClock())
    problems: list[object] = []
    JsonlReplay([str(path) for path in files], processor, EventAdapter(), problems.append).run()
    processor.close_all()
    assert problems == []
    (summary,) = sink.items
    return summary


@pytest.fixture
def en(tmp_path) -> SessionSummary:
    return replay(en_session(), tmp_path / "en")


def healthy(seed: int, directory: Path) -> SessionSummary:
    return replay(healthy_session(seed, EN_START_NS + seed * 3600 * SECOND), directory / f"healthy-{seed}")


def ids(suggestions: Iterable[Suggestion]) -> list[str]:
    return [suggestion.id for suggestion in suggestions]


def rule(rule_id: str, priority: str, condition: RuleCondition) -> SuggestionRule:
    base = DEFAULT_RULES[0].model_dump()
    return SuggestionRule.model_validate({**base, "id": rule_id, "priority": priority, "condition": condition})


def test_the_en_session_metrics_are_the_plans_numbers(en):
    metrics = session_metrics(en)
    assert set(metrics) == set(RULE_METRICS)
    assert (metrics["read_calls"], metrics["write_calls"], metrics["documents"]) == (1, 3, 3)
    assert (metrics["management_calls"], metrics["productive_calls"], metrics["tool_calls"]) == (26, 15, 41)
    assert metrics["api_requests"] == 20
    assert metrics["input_to_output"] == pytest.approx((169_830 + 9_820_170) / 10_000)
    assert metrics["token_efficiency"] == pytest.approx(0.001)


def test_the_en_session_gets_background_agents_batching_and_preloading_critical_first(en):
    suggestions = suggest(en, DEFAULT_RULES)
    assert ids(suggestions) == [
        "opt-background-agents",  # CRITICAL: token efficiency 0.001 < 0.02
        "opt-batch-task-operations",  # HIGH, 73 % past its threshold (1.73 > 1.0)
        "opt-preload-documents",  # HIGH, 67 % past (1 Read < 3 documents)
        "opt-idle-timeout",  # MEDIUM: active time 0.22 < 0.40
    ]
    assert [s.priority for s in suggestions] == ["CRITICAL", "HIGH", "HIGH", "MEDIUM"]
    evidence = {s.id: s.evidence for s in suggestions}
    assert evidence["opt-batch-task-operations"].startswith("26 of 41 tool calls were task bookkeeping")
    assert evidence["opt-preload-documents"] == "Only 1 Read call for 3 documents"
    assert evidence["opt-background-agents"] == "Current 999:1 input-to-output ratio"
    assert evidence["opt-idle-timeout"] == "Only 22% of the wall clock was active"


def test_a_suggestion_carries_its_rules_guidance_and_target(en):
    (first, *_) = suggest(en, DEFAULT_RULES)
    source = DEFAULT_RULES[1]
    assert (first.title, first.description, first.implementation, first.impact, first.category) == (
        source.title,
        source.description,
        source.implementation,
        source.impact,
        source.category,
    )
    assert (first.target_kpi, first.direction, first.magnitude) == ("token_efficiency", "increase", "10-20x")


@pytest.mark.parametrize("seed", HEALTHY_SEEDS)
def test_a_healthy_session_gets_no_suggestion(seed, tmp_path):
    assert suggest(healthy(seed, tmp_path), DEFAULT_RULES) == []


def test_a_null_metric_never_triggers_a_rule(en):
    kpis = {name: None for name in en.kpis}
    blank = dataclasses.replace(en, kpis=kpis, tools_by_name={}, management_tool_calls=0, tool_calls=0)
    assert suggest(blank, DEFAULT_RULES) == []
    metrics = {"read_calls": 1.0, "documents": None}
    condition = RuleCondition(metric="read_calls", operator="<", other_metric="documents")
    assert condition_excess(condition, "translation-agent", metrics) is None


@pytest.mark.parametrize(
    ("agent_type", "preloads"),
    [("translation-agent", True), ("Legal-Translation", True), ("code-reviewer", False), ("translator", False)],
)
def test_the_agent_type_match_is_a_case_insensitive_substring(en, agent_type, preloads):
    suggestions = suggest(dataclasses.replace(en, agent_type=agent_type), DEFAULT_RULES)
    assert ("opt-preload-documents" in ids(suggestions)) is preloads


def test_a_disabled_rule_suggests_nothing(en):
    config = FeedbackConfig.model_validate({"rules": [{"id": "background-agents", "enabled": False}]})
    assert "opt-background-agents" not in ids(suggest(en, effective_rules(config)))
    disabled = DEFAULT_RULES[1].model_copy(update={"enabled": False})
    assert "opt-background-agents" not in ids(suggest(en, [disabled]))


def test_an_override_changes_what_fires(en):
    stricter = {"metric": "active_time_ratio", "operator": "<", "threshold": 0.2}
    config = FeedbackConfig.model_validate({"rules": [{"id": "idle-timeout", "condition": stricter}]})
    assert "opt-idle-timeout" not in ids(suggest(en, effective_rules(config)))


def test_within_a_priority_the_session_furthest_past_the_threshold_ranks_first(en):
    near = rule("near", "HIGH", RuleCondition(metric="tool_overhead_ratio", operator=">", threshold=1.6))
    far = rule("far", "HIGH", RuleCondition(metric="tool_overhead_ratio", operator=">", threshold=0.5))
    low = rule("low", "LOW", RuleCondition(metric="tool_overhead_ratio", operator=">", threshold=0.1))
    urgent = rule("urgent", "CRITICAL", RuleCondition(metric="tool_overhead_ratio", operator=">", threshold=1.7))
    assert ids(suggest(en, [low, near, far, urgent])) == ["opt-urgent", "opt-far", "opt-near", "opt-low"]


@pytest.mark.parametrize(
    ("operator", "threshold", "holds"),
    [("<", 0.001, False), ("<=", 0.001, True), (">", 0.0009, True), (">=", 0.002, False)],
)
def test_operators(operator, threshold, holds):
    condition = RuleCondition(metric="token_efficiency", operator=operator, threshold=threshold)
    assert (condition_excess(condition, "a", {"token_efficiency": 0.001}) is not None) is holds


def test_a_zero_threshold_measures_the_absolute_distance():
    condition = RuleCondition(metric="error_rate", operator=">", threshold=0.0)
    assert condition_excess(condition, "a", {"error_rate": 0.25}) == 0.25


def test_evidence_renders_counts_plurals_formats_and_nulls():
    metrics = {"read_calls": 2.0, "documents": 1.0, "cache_efficiency": 0.7512, "token_efficiency": None}
    text = "{read_calls:plural:Read call} for {documents:plural:document}; {cache_efficiency:.1%}; "
    text += "{token_efficiency:.3f}"
    assert render_evidence(text, metrics) == "2 Read calls for 1 document; 75.1%; n/a"


def test_the_en_suggestions_document_matches_the_golden_file(en, golden):
    document = suggestions_document(en, suggest(en, DEFAULT_RULES), NOW)
    golden.check("feedback_en_suggestions.json", encode_document(document).decode())


def test_the_document_has_the_plans_schema(en):
    document = suggestions_document(en, suggest(en, DEFAULT_RULES), NOW, sessions_target=30)
    assert (document["session_id"], document["agent_type"]) == (EN_SESSION_ID, "translation-agent")
    assert document["date"] == NOW
    entry = document["suggestions"][0]
    assert list(entry) == [
        "id",
        "priority",
        "category",
        "title",
        "description",
        "impact",
        "evidence",
        "implementation",
        "expected_impact",
        "activation_status",
        "tracking",
    ]
    assert entry["activation_status"] == "proposed"
    assert entry["tracking"] == {
        "activated_at": None,
        "sessions_tracked": 0,
        "sessions_target": 30,
        "impact_measured": None,
    }
    assert entry["expected_impact"] == {"kpi": "token_efficiency", "direction": "increase", "magnitude": "10-20x"}


def test_write_suggestions_writes_the_document_atomically_where_the_plan_puts_it(en, tmp_path):
    document = suggestions_document(en, suggest(en, DEFAULT_RULES), NOW)
    path = write_suggestions(tmp_path, document)
    assert path == tmp_path / "optimizations" / f"{EN_SESSION_ID}.json"
    assert orjson.loads(path.read_bytes()) == document
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_write_suggestions_refuses_a_session_id_that_is_not_a_file_name(tmp_path):
    with pytest.raises(ValueError, match="file name"):
        write_suggestions(tmp_path, {"session_id": "../escape", "suggestions": []})
