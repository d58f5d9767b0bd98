"""SessionKpiProcessor and SessionState end to end: events in, hand-computed summaries out."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from kpiloop.model import (
    ActiveTime,
    ApiCall,
    DataCompleteness,
    Evaluation,
    LinesChanged,
    Prompt,
    QualityStat,
    SessionEnd,
    SessionStart,
    SessionSummary,
    Source,
    TodoItem,
    TokenCounts,
    ToolCall,
    UsageMetric,
)
from kpiloop.processors.session_kpi import (
    CLOSE_END_OF_INPUT,
    CLOSE_EVICTED,
    CLOSE_IDLE,
    CLOSE_SESSION_END,
    SessionKpiProcessor,
)
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.testing import FakeClock, ListSink
from kpiloop.types import AgentType, SessionId

T0 = 1_699_000_000_000_000_000
"""Event time origin (ns): about 11.6 days before the FakeClock's default arrival time."""

SONNET = "claude-sonnet-4-5-20250929"  # priced by the "claude-sonnet-4" prefix: $3 / $15 / 0.30 / 3.75 / 6
QUALITY = ("quality_relevance", "quality_faithfulness", "quality_coherence", "quality_hallucination")
MINUTES = 60.0
HOURS = 3600.0


def ns(seconds: float) -> int:
    return T0 + round(seconds * 1_000_000_000)


def common(sid: str, start: float, end: float | None, agent: str, source: Source) -> dict[str, Any]:
    return {
        "session_id": SessionId(sid),
        "agent_type": AgentType(agent),
        "start_ns": ns(start),
        "end_ns": ns(start if end is None else end),
        "source": source,
    }


def api(
    start: float = 0.0,
    end: float | None = None,
    *,
    sid: str = "s1",
    agent: str = "default",
    source: Source = "plan",
    **fields: Any,
) -> ApiCall:
    fields.setdefault("model", SONNET)
    return ApiCall(**common(sid, start, end, agent, source), **fields)


def tool(
    name: str,
    start: float = 0.0,
    end: float | None = None,
    *,
    sid: str = "s1",
    agent: str = "default",
    source: Source = "plan",
    **fields: Any,
) -> ToolCall:
    return ToolCall(**common(sid, start, end, agent, source), tool=name, **fields)


def evaluation(name: str, score: float | None, at: float = 0.0, *, sid: str = "s1", **fields: Any) -> Evaluation:
    return Evaluation(**common(sid, at, None, "default", "plan"), name=name, score=score, **fields)


def end(at: float = 0.0, *, sid: str = "s1", reason: str | None = None, source: Source = "hook") -> SessionEnd:
    return SessionEnd(**common(sid, at, None, "default", source), reason=reason)


def prompt(at: float = 0.0, *, sid: str = "s1", source: Source = "hook") -> Prompt:
    return Prompt(**common(sid, at, None, "default", source), prompt_id="p", length=12)


def start_hook(at: float = 0.0, *, sid: str = "s1") -> SessionStart:
    return SessionStart(**common(sid, at, None, "default", "hook"), start_source="startup")


def usage(
    token_type: str | None,
    value: float,
    at: float = 0.0,
    *,
    sid: str = "s1",
    series: str = "",
    cumulative: bool = False,
) -> UsageMetric:
    return UsageMetric(
        **common(sid, at, None, "default", "claude_code"),
        token_type=token_type,
        value=value,
        model=SONNET,
        series=series,
        cumulative=cumulative,
    )


def todo_write(at: float, *items: tuple[str, str], **fields: Any) -> ToolCall:
    todos = tuple(TodoItem(key=key, status=status) for key, status in items)
    return tool("TodoWrite", at, at + 1, todos=todos, **fields)


def make(config: SessionKpiConfig | None = None) -> tuple[SessionKpiProcessor, ListSink[SessionSummary], FakeClock]:
    sink: ListSink[SessionSummary] = ListSink()
    clock = FakeClock()
    return SessionKpiProcessor(sink, config or SessionKpiConfig(), clock), sink, clock


def run(*events: Any, config: SessionKpiConfig | None = None) -> SessionSummary:
    """Feed the events, close everything, return the one summary."""
    processor, sink, _ = make(config)
    for event in events:
        processor.consume(event)
    processor.close_all()
    assert len(sink.items) == 1
    return sink.items[0]


# --- a whole session ---------------------------------------------------------------------------


def test_worked_example_every_kpi():
    processor, sink, _ = make()
    events = [
        prompt(0),
        api(
            0,
            10,
            request_id="r1",
            input_tokens=1000,
            output_tokens=500,
            cache_read_tokens=8000,
            cache_write_5m_tokens=400,
            cache_write_1h_tokens=100,
        ),
        tool("Read", 10, 15, tool_use_id="t1"),
        tool("Bash", 12, 25, tool_use_id="t2", ok=False, error_type="exit_code"),
        api(30, 40, request_id="r2", input_tokens=200, output_tokens=300, cache_read_tokens=9000),
        tool("TaskCreate", 40, 41, tool_use_id="t3"),
        tool("TaskUpdate", 41, 42, tool_use_id="t4"),
        tool("Edit", 50, 60, tool_use_id="t5"),
        evaluation("relevance", 0.8, at=100),  # evaluations do not extend the wall clock
        end(200, reason="logout"),  # neither does the end marker
    ]
    for event in events:
        processor.consume(event)

    assert processor.open_sessions() == 0
    [summary] = sink.items
    # tokens: input 1000 + 200 = 1200, output 500 + 300 = 800, cache_read 8000 + 9000 = 17000, writes 400 + 100
    assert summary.tokens == TokenCounts(
        input=1200, output=800, cache_read=17000, cache_write_5m=400, cache_write_1h=100
    )
    # cost: r1 = (1000·3 + 500·15 + 8000·0.3 + 400·3.75 + 100·6) / 1e6 = 15000 / 1e6 = 0.015
    #       r2 = (200·3 + 300·15 + 9000·0.3) / 1e6 = 7800 / 1e6 = 0.0078 → 0.0228
    assert summary.cost_usd == pytest.approx(0.0228)
    assert summary.cost_per_output_token == pytest.approx(0.0228 / 800)
    assert summary.model == SONNET
    assert summary.duration_seconds == 60.0  # first start 0 → last end 60; not 100, not 200
    assert (summary.api_requests, summary.api_errors) == (2, 0)
    assert (summary.tool_calls, summary.tool_failures, summary.tool_denials) == (5, 1, 0)
    assert summary.tools_by_name == {"Read": 1, "Bash": 1, "TaskCreate": 1, "TaskUpdate": 1, "Edit": 1}
    assert (summary.management_tool_calls, summary.productive_tool_calls) == (2, 3)
    assert summary.prompts == 1
    # union: [0, 10] ∪ [10, 15] ∪ [12, 25] = 25; [30, 40] ∪ [40, 41] ∪ [41, 42] = 12; [50, 60] = 10 → 47
    assert summary.active_seconds == 47.0
    assert summary.quality == {"relevance": QualityStat(1, 0.8, 0.8)}
    assert summary.kpis == pytest.approx(
        {
            "token_efficiency": 800 / 19500,  # 800 / (1200 + 800 + 17000 + 500)
            "task_completion_rate": 1.0,  # no status visible: min(1 update / 1 create, 1)
            "active_time_ratio": 47 / 60,
            "tool_overhead_ratio": 2 / 3,  # (TaskCreate + TaskUpdate) / (Read + Bash + Edit)
            "cache_efficiency": 17000 / 18700,  # 17000 / (1200 + 17000 + 500)
            "error_rate": 1 / 7,  # (1 failed tool + 0) / (5 tools + 2 calls)
            "quality_relevance": 0.8,
            "quality_faithfulness": None,
            "quality_coherence": None,
            "quality_hallucination": None,
        }
    )
    assert summary.close_reason == CLOSE_SESSION_END
    assert summary.end_reason == "logout"
    assert summary.close_count == 1
    assert summary.data_completeness == DataCompleteness(
        api_calls=True,
        tool_calls=True,
        evaluations=True,
        task_status=False,
        usage_from_metrics=False,
        cost_from_source=False,
        session_end=True,
        sources=("hook", "plan"),
    )
    assert not summary.empty


# --- missing inputs give None, never 0 ----------------------------------------------------------


def test_no_api_calls_has_no_token_or_cache_efficiency():
    summary = run(tool("Read", 0, 4), tool("Bash", 4, 10, ok=False))
    assert summary.kpis["token_efficiency"] is None
    assert summary.kpis["cache_efficiency"] is None
    assert summary.kpis["error_rate"] == 0.5  # 1 failed / 2 tools
    assert summary.kpis["tool_overhead_ratio"] == 0.0  # 0 management / 2 productive
    assert summary.cost_usd == 0.0  # no spend costs nothing; it is known
    assert summary.cost_per_output_token is None
    assert summary.model == "unknown"
    assert summary.data_completeness.api_calls is False


def test_no_tools_has_no_tool_overhead_and_errors_over_api_calls_only():
    summary = run(
        api(0, 1, input_tokens=10, output_tokens=5),
        api(1, 2, input_tokens=10, output_tokens=5),
        api(2, 3, ok=False, status_code=529),
    )
    assert summary.kpis["tool_overhead_ratio"] is None
    assert summary.kpis["error_rate"] == pytest.approx(1 / 3)  # 1 failed call / 3 calls
    assert summary.kpis["task_completion_rate"] is None
    assert (summary.api_requests, summary.api_errors) == (3, 1)


def test_only_management_tools_overhead_is_management_over_one():
    summary = run(tool("TaskCreate", 0, 1), tool("TaskCreate", 1, 2), tool("TodoWrite", 2, 3))
    assert summary.kpis["tool_overhead_ratio"] == 3.0  # 3 management / max(0 productive, 1)


def test_tools_outside_both_sets_count_as_operations_only():
    summary = run(tool("WebFetch", 0, 1), tool("TaskCreate", 1, 2))
    assert (summary.management_tool_calls, summary.productive_tool_calls) == (1, 0)
    assert summary.kpis["tool_overhead_ratio"] == 1.0  # 1 / max(0, 1)
    assert summary.kpis["error_rate"] == 0.0  # 0 / 2 tools


def test_configured_tool_sets_replace_the_defaults():
    config = SessionKpiConfig.model_validate({"tool_sets": {"management": ["Plan"], "productive": ["Search"]}})
    summary = run(tool("Plan", 0, 1), tool("Search", 1, 2), tool("Search", 2, 3), tool("Read", 3, 4), config=config)
    assert (summary.management_tool_calls, summary.productive_tool_calls) == (1, 2)
    assert summary.kpis["tool_overhead_ratio"] == 0.5  # 1 / 2


def test_overlapping_intervals_count_their_union_not_their_sum():
    summary = run(api(0, 10), tool("Read", 5, 15), tool("Grep", 8, 12), api(20, 30))
    # [0, 10] ∪ [5, 15] ∪ [8, 12] = [0, 15] → 15; [20, 30] → 10; union 25 (the sum would be 34 > 30)
    assert summary.active_seconds == 25.0
    assert summary.kpis["active_time_ratio"] == pytest.approx(25 / 30)


def test_idle_gaps_lower_active_time():
    summary = run(api(0, 10), prompt(90), api(90, 100))
    assert summary.kpis["active_time_ratio"] == pytest.approx(0.2)  # (10 + 10) / 100


def test_only_error_status_is_a_failure():
    # Adapters map span status UNSET and OK to ok=True and ERROR to ok=False.
    summary = run(
        tool("Read", 0, 1, tool_use_id="unset"),
        tool("Read", 1, 2, tool_use_id="ok", ok=True),
        tool("Bash", 2, 3, tool_use_id="error", ok=False),
        api(3, 4, request_id="unset"),
        api(4, 5, request_id="error", ok=False),
    )
    assert (summary.tool_calls, summary.tool_failures) == (3, 1)
    assert (summary.api_requests, summary.api_errors) == (2, 1)
    assert summary.kpis["error_rate"] == pytest.approx(2 / 5)  # (1 + 1) / (3 + 2)


def test_denied_tools_count_only_as_denials():
    summary = run(
        api(0, 1),
        tool("Bash", 1, 2, tool_use_id="d1", denied=True, ok=False),
        tool("Edit", 2, 3, tool_use_id="d2", denied=True),
        tool("Read", 3, 4, tool_use_id="r1"),
    )
    assert summary.tool_denials == 2
    assert (summary.tool_calls, summary.tool_failures) == (1, 0)
    assert summary.tools_by_name == {"Read": 1}
    assert (summary.management_tool_calls, summary.productive_tool_calls) == (0, 1)
    assert summary.kpis["error_rate"] == 0.0  # 0 / (1 tool + 1 call): the denials are not operations
    assert summary.active_seconds == 2.0  # [0, 1] ∪ [3, 4]: a denied tool did not run
    assert summary.duration_seconds == 4.0


def test_a_session_with_only_denials_is_not_empty():
    summary = run(tool("Bash", 0, 1, denied=True))
    assert summary.tool_denials == 1
    assert summary.kpis["tool_overhead_ratio"] is None  # no tool executed
    assert summary.kpis["error_rate"] is None  # no operation at all
    assert summary.data_completeness.tool_calls is True


# --- quality -------------------------------------------------------------------------------------


def test_missing_evaluations_leave_quality_null():
    summary = run(api(0, 1, output_tokens=3))
    assert summary.quality == {}
    for kpi in QUALITY:
        assert summary.kpis[kpi] is None
    assert summary.data_completeness.evaluations is False


def test_rule_engine_evaluations_are_ignored_for_quality():
    summary = run(
        api(0, 1),
        evaluation("relevance", 0.1, evaluator_type="rule"),
        evaluation("relevance", 0.9, evaluator_type="llm"),
        evaluation("coherence", 0.2, evaluator_type="rule"),
        evaluation("faithfulness", None, evaluator_type="llm", label="pass"),  # a label without a score
    )
    assert summary.kpis["quality_relevance"] == 0.9  # the rule's 0.1 is not a judge score
    assert summary.kpis["quality_coherence"] is None
    assert summary.kpis["quality_faithfulness"] is None
    assert summary.quality == {"relevance": QualityStat(1, 0.9, 0.9)}
    assert summary.data_completeness.evaluations is True


def test_rule_only_evaluations_make_a_session_without_quality():
    summary = run(evaluation("relevance", 1.0, evaluator_type="rule"))
    assert summary.quality == {}
    assert summary.kpis["quality_relevance"] is None


def test_quality_median_of_an_even_number_of_scores():
    summary = run(
        evaluation("relevance", 0.2),
        evaluation("quality_relevance", 0.9),  # the plan's span names carry a prefix
        evaluation("Relevance", 0.4, evaluator_type="llm"),
        evaluation("relevance", 0.6),
    )
    # sorted 0.2 0.4 | 0.6 0.9 → (0.4 + 0.6) / 2 = 0.5; mean 2.1 / 4 = 0.525
    assert summary.kpis["quality_relevance"] == pytest.approx(0.5)
    stat = summary.quality["relevance"]
    assert stat.count == 4
    assert stat.median == pytest.approx(0.5)
    assert stat.mean == pytest.approx(0.525)


def test_hallucination_is_a_mean_the_others_medians():
    summary = run(
        *(evaluation("hallucination", score) for score in (0.0, 0.0, 0.9)),
        *(evaluation("faithfulness", score) for score in (0.0, 0.0, 0.9)),
        *(evaluation("coherence", score) for score in (0.7, 0.1, 0.8)),
    )
    assert summary.kpis["quality_hallucination"] == pytest.approx(0.3)  # (0 + 0 + 0.9) / 3
    assert summary.kpis["quality_faithfulness"] == 0.0  # median of 0, 0, 0.9
    assert summary.kpis["quality_coherence"] == 0.7  # median of 0.1, 0.7, 0.8
    assert summary.kpis["quality_relevance"] is None


# --- wall clock ----------------------------------------------------------------------------------


def test_zero_duration_session_has_no_active_time_ratio():
    summary = run(api(5, 5, input_tokens=10, output_tokens=10))
    assert summary.duration_seconds == 0.0
    assert summary.kpis["active_time_ratio"] is None
    assert summary.kpis["token_efficiency"] == 0.5  # 10 / (10 + 10): other KPIs are still computed


def test_fully_busy_session_has_active_time_ratio_one():
    summary = run(api(0, 10), tool("Read", 2, 8))
    assert summary.kpis["active_time_ratio"] == 1.0  # union [0, 10] = 10 / wall 10 (the sum 16 would overshoot)


def test_metric_samples_extend_the_wall_clock_at_their_end():
    summary = run(
        api(10, 20),
        ActiveTime(**common("s1", 0, 40, "default", "claude_code"), seconds=12.5),
        LinesChanged(**common("s1", 0, 30, "default", "claude_code"), kind="added", lines=7),
        LinesChanged(**common("s1", 0, 30, "default", "claude_code"), kind="removed", lines=2),
    )
    # wall: first 10 (the call; a metric counts at its end only) → last max(20, 40, 30) = 40, so 30 s
    assert summary.duration_seconds == 30.0
    assert summary.kpis["active_time_ratio"] == pytest.approx(10 / 30)
    assert summary.reported_active_seconds == 12.5
    assert (summary.lines_added, summary.lines_removed) == (7, 2)


# --- deduplication -------------------------------------------------------------------------------


def test_same_request_id_counts_once():
    call = api(0, 2, request_id="req-1", input_tokens=100, output_tokens=50)
    summary = run(call, call, api(0, 2, request_id="req-1", source="claude_code", input_tokens=100, output_tokens=50))
    assert summary.api_requests == 1
    assert summary.tokens == TokenCounts(input=100, output=50)
    assert summary.cost_usd == pytest.approx((100 * 3 + 50 * 15) / 1e6)  # once: 1050 / 1e6


def test_calls_without_request_id_are_never_duplicates():
    summary = run(api(0, 1, input_tokens=10), api(0, 1, input_tokens=10))
    assert summary.api_requests == 2
    assert summary.tokens.input == 20


def test_same_tool_use_id_counts_once():
    summary = run(
        tool("Bash", 0, 1, tool_use_id="toolu_1", ok=False),
        tool("Bash", 0, 1, tool_use_id="toolu_1", ok=False),
        tool("Bash", 1, 2, tool_use_id="toolu_2"),
        tool("Bash", 1, 2),
        tool("Bash", 1, 2),
    )
    assert (summary.tool_calls, summary.tool_failures) == (4, 1)  # toolu_1 once, toolu_2, two without id
    assert summary.tools_by_name == {"Bash": 4}


def test_dedup_window_is_bounded():
    config = SessionKpiConfig(dedup_window=2)
    events = [api(i, i + 1, request_id=f"r{i}") for i in range(3)]
    # r0 has left the 2-id window by the time it repeats; r2 has not
    summary = run(*events, api(0, 1, request_id="r0"), api(2, 3, request_id="r2"), config=config)
    assert summary.api_requests == 4


# --- cost ----------------------------------------------------------------------------------------


def test_source_cost_is_used_as_sent():
    summary = run(api(0, 1, model="mystery-model", input_tokens=1_000_000, cost_usd=0.42))
    assert summary.cost_usd == pytest.approx(0.42)
    assert summary.data_completeness.cost_from_source is True


def test_priced_from_the_default_table_by_model_prefix():
    summary = run(
        api(
            0,
            1,
            input_tokens=2000,
            output_tokens=1000,
            cache_read_tokens=10_000,
            cache_write_5m_tokens=1000,
            cache_write_1h_tokens=500,
        ),
    )
    # (2000·3 + 1000·15 + 10000·0.30 + 1000·3.75 + 500·6) / 1e6 = (6000 + 15000 + 3000 + 3750 + 3000) / 1e6
    assert summary.cost_usd == pytest.approx(0.03075)
    assert summary.cost_per_output_token == pytest.approx(0.03075 / 1000)
    assert summary.data_completeness.cost_from_source is False


def test_the_longest_matching_prefix_prices_the_call():
    # "claude-opus-4-5-…" matches both "claude-opus-4" ($15) and "claude-opus-4-5" ($5): the longer wins
    summary = run(api(0, 1, model="claude-opus-4-5-20251101", input_tokens=1_000_000))
    assert summary.cost_usd == pytest.approx(5.0)


def test_a_failed_call_without_tokens_costs_nothing_even_unpriced():
    summary = run(api(0, 1, model="mystery-model", ok=False), api(1, 2, input_tokens=1000))
    assert summary.cost_usd == pytest.approx(0.003)  # 0 + 1000 · 3 / 1e6


def test_an_unpriced_model_makes_the_cost_unknown(caplog):
    processor, sink, _ = make()
    with caplog.at_level(logging.WARNING, logger="kpiloop.processors.session_kpi"):
        for sid in ("a", "b"):
            processor.consume(api(0, 1, sid=sid, input_tokens=1000))
            processor.consume(api(1, 2, sid=sid, model="mystery-model", input_tokens=10, output_tokens=5))
        processor.close_all()
    assert [summary.cost_usd for summary in sink.items] == [None, None]
    assert [summary.cost_per_output_token for summary in sink.items] == [None, None]
    warnings = [record for record in caplog.records if "mystery-model" in record.getMessage()]
    assert len(warnings) == 1  # once per model, not per session


def test_configured_prices_replace_the_default_table():
    config = SessionKpiConfig.model_validate(
        {"prices": {"mystery": {"input": 1, "output": 2, "cache_read": 0, "cache_write_5m": 0, "cache_write_1h": 0}}}
    )
    summary = run(api(0, 1, model="mystery-model", input_tokens=1000, output_tokens=1000), config=config)
    assert summary.cost_usd == pytest.approx(0.003)  # (1000·1 + 1000·2) / 1e6
    assert run(api(0, 1, input_tokens=1000), config=config).cost_usd is None  # sonnet is not in the new table


def test_a_session_without_spend_costs_zero():
    summary = run(tool("Read", 0, 1), evaluation("relevance", 0.5))
    assert summary.cost_usd == 0.0
    assert summary.tokens == TokenCounts()


def test_subagent_spend_is_kept_apart_and_in_the_total():
    summary = run(
        api(0, 1, input_tokens=1000),
        api(1, 2, subagent="explorer", input_tokens=2000, output_tokens=100),
        tool("Grep", 2, 3, subagent="explorer"),
    )
    explorer = summary.subagents["explorer"]
    assert (explorer.api_requests, explorer.tool_calls) == (1, 1)
    assert explorer.tokens == TokenCounts(input=2000, output=100)
    assert explorer.cost_usd == pytest.approx(0.0075)  # (2000·3 + 100·15) / 1e6
    assert summary.cost_usd == pytest.approx(0.0105)  # + 1000·3 / 1e6
    assert summary.api_requests == 2


# --- usage metrics -------------------------------------------------------------------------------


def test_delta_usage_metrics_count_without_api_calls():
    summary = run(
        usage("input", 100, at=1),
        usage("output", 50, at=2),
        usage("cache_read", 600, at=3),
        usage("cache_read", 250, at=4),
        usage(None, 0.25, at=5),  # cost in USD
        tool("Read", 0, 1),
    )
    assert summary.tokens == TokenCounts(input=100, output=50, cache_read=850)
    assert summary.kpis["token_efficiency"] == pytest.approx(0.05)  # 50 / (100 + 50 + 850)
    assert summary.kpis["cache_efficiency"] == pytest.approx(850 / 950)  # 850 / (100 + 850)
    assert summary.cost_usd == pytest.approx(0.25)
    assert summary.api_requests == 0
    assert summary.kpis["error_rate"] == 0.0  # 0 / 1 tool: metrics are not operations
    assert summary.model == SONNET
    assert summary.data_completeness.usage_from_metrics is True
    assert summary.data_completeness.cost_from_source is True
    assert summary.data_completeness.api_calls is False


def test_usage_metrics_alone_make_a_non_empty_session():
    summary = run(usage("output", 7))
    assert summary.tokens.output == 7
    assert summary.kpis["error_rate"] is None


def test_usage_metrics_are_ignored_once_the_session_has_api_calls():
    summary = run(
        usage("output", 1000, at=0),  # before the call…
        api(0, 1, input_tokens=10, output_tokens=10),
        usage("input", 5000, at=2),  # …and after: the same spend, seen twice
        usage(None, 9.99, at=3),
    )
    assert summary.tokens == TokenCounts(input=10, output=10)
    assert summary.cost_usd == pytest.approx((10 * 3 + 10 * 15) / 1e6)
    assert summary.data_completeness.usage_from_metrics is False
    assert summary.data_completeness.cost_from_source is False


def test_cumulative_usage_metrics_are_differenced_per_series_and_reset_on_drops():
    summary = run(
        usage("output", 100, at=1, series="out", cumulative=True),  # +100
        usage("input", 1000, at=1, series="in", cumulative=True),  # +1000
        usage("output", 250, at=2, series="out", cumulative=True),  # +150
        usage("input", 1500, at=2, series="in", cumulative=True),  # +500
        usage("output", 400, at=3, series="out", cumulative=True),  # +150
        usage("output", 50, at=4, series="out", cumulative=True),  # dropped: a restart, +50
        usage("output", 120, at=5, series="out", cumulative=True),  # +70
        usage("output", 120, at=6, series="out", cumulative=True),  # +0 (repeated export)
        usage(None, 0.5, at=6, series="cost", cumulative=True),  # +0.5
        usage(None, 0.75, at=7, series="cost", cumulative=True),  # +0.25
    )
    assert summary.tokens.output == 520  # 100 + 150 + 150 + 50 + 70 + 0
    assert summary.tokens.input == 1500  # 1000 + 500
    assert summary.cost_usd == pytest.approx(0.75)  # 0.5 + 0.25


def test_cumulative_series_of_the_same_token_type_are_independent():
    summary = run(
        usage("output", 100, at=1, series="model=a", cumulative=True),
        usage("output", 1000, at=1, series="model=b", cumulative=True),
        usage("output", 300, at=2, series="model=a", cumulative=True),
        usage("output", 1100, at=2, series="model=b", cumulative=True),
    )
    # a: 100 + 200 = 300; b: 1000 + 100 = 1100. Interleaved on one key they would look like resets.
    assert summary.tokens.output == 1400


def test_mixed_delta_and_cumulative_samples():
    summary = run(
        usage("output", 10, at=1),
        usage("output", 40, at=2, series="out", cumulative=True),
        usage("output", 10, at=3),
        usage("output", 100, at=4, series="out", cumulative=True),
    )
    assert summary.tokens.output == 120  # 10 + 40 + 10 + (100 − 40)


def test_cumulative_active_time_and_lines():
    base = common("s1", 0, 10, "default", "claude_code")
    summary = run(
        api(0, 1),
        ActiveTime(**base, seconds=5.0, cumulative=True, series="cli"),
        ActiveTime(**base, seconds=7.5, cumulative=True, series="cli"),
        LinesChanged(**base, kind="added", lines=10, cumulative=True, series="added"),
        LinesChanged(**base, kind="added", lines=25, cumulative=True, series="added"),
    )
    assert summary.reported_active_seconds == 7.5  # 5 + 2.5
    assert summary.lines_added == 25  # 10 + 15


# --- closing -------------------------------------------------------------------------------------


def test_session_end_closes_immediately():
    processor, sink, _ = make()
    processor.consume(api(0, 5, output_tokens=1))
    processor.consume(api(0, 5, sid="other", output_tokens=1))
    assert sink.items == []
    processor.consume(end(500))
    assert processor.open_sessions() == 1  # only "other"
    [summary] = sink.items
    assert summary.session_id == "s1"
    assert summary.close_reason == CLOSE_SESSION_END
    assert summary.end_reason == "session.end"  # no reason given
    assert summary.duration_seconds == 5.0  # the marker at 500 does not extend the wall clock
    assert summary.data_completeness.session_end is True
    assert processor.stats.closed_sessions == 1


def test_idle_timeout_default_is_thirty_minutes_of_arrival_time():
    processor, sink, clock = make()
    # Event times are ~11 days old (backfill): the timeout runs on arrival time, not event time.
    processor.consume(api(0, 1, output_tokens=1))
    assert processor.expire() == 0
    clock.advance(20 * MINUTES)
    processor.consume(tool("Read", 1, 2))  # activity resets the idle clock
    clock.advance(29 * MINUTES)
    assert processor.expire() == 0
    clock.advance(59.0)
    assert processor.expire() == 0  # 29:59 idle
    clock.advance(1.0)
    assert processor.expire() == 1  # 30:00 idle
    [summary] = sink.items
    assert summary.close_reason == CLOSE_IDLE
    assert summary.end_reason is None
    assert processor.open_sessions() == 0
    assert processor.expire() == 0


def test_claude_code_sessions_wait_a_day():
    processor, sink, clock = make()
    processor.consume(api(0, 1, source="claude_code", output_tokens=1))
    processor.consume(api(0, 1, sid="plan", output_tokens=1))
    clock.advance(30 * MINUTES)
    assert processor.expire() == 1
    assert [s.session_id for s in sink.items] == ["plan"]
    clock.advance(24 * HOURS - 30 * MINUTES - 1)
    assert processor.expire() == 0
    clock.advance(1)
    assert processor.expire() == 1
    assert [s.session_id for s in sink.items] == ["plan", "s1"]


def test_a_session_start_hook_means_an_end_is_expected():
    processor, sink, clock = make()
    processor.consume(start_hook(0))
    processor.consume(api(0, 1, output_tokens=1))  # plan source, but the start hook was seen
    clock.advance(23 * HOURS)
    assert processor.expire() == 0
    clock.advance(1 * HOURS)
    assert processor.expire() == 1
    assert len(sink.items) == 1


def test_idle_timeouts_are_configurable():
    processor, sink, clock = make(
        SessionKpiConfig.model_validate({"idle_timeout": "5m", "end_signal_idle_timeout": "1h"})
    )
    processor.consume(api(0, 1, sid="a", output_tokens=1))
    processor.consume(api(0, 1, sid="b", source="claude_code", output_tokens=1))
    clock.advance(5 * MINUTES)
    assert processor.expire() == 1
    clock.advance(55 * MINUTES)
    assert processor.expire() == 1
    assert [s.session_id for s in sink.items] == ["a", "b"]


def test_late_events_reopen_and_the_next_close_is_cumulative():
    processor, sink, clock = make()
    processor.consume(api(0, 10, request_id="r1", input_tokens=100, output_tokens=10))
    processor.consume(end(10))
    clock.advance(10 * MINUTES)
    processor.consume(api(100, 110, request_id="r2", input_tokens=300, output_tokens=30))
    processor.consume(api(0, 10, request_id="r1", input_tokens=100, output_tokens=10))  # still deduplicated
    assert processor.stats.reopened_sessions == 1
    assert processor.stats.late_events == 1
    assert processor.open_sessions() == 1
    processor.close_all()
    first, second = sink.items
    assert (first.close_count, second.close_count) == (1, 2)
    assert first.tokens == TokenCounts(input=100, output=10)
    assert second.tokens == TokenCounts(input=400, output=40)  # both calls: cumulative
    assert second.api_requests == 2
    assert second.duration_seconds == 110.0
    # (10 + 10) / 110: the union spans both openings
    assert second.kpis["active_time_ratio"] == pytest.approx(20 / 110)
    assert second.close_reason == CLOSE_END_OF_INPUT
    assert processor.stats.closed_sessions == 2


def test_without_closed_memory_late_events_start_afresh():
    processor, sink, _ = make(SessionKpiConfig(max_closed_sessions=0))
    processor.consume(api(0, 1, output_tokens=1))
    processor.consume(end(1))
    processor.consume(api(5, 6, output_tokens=2))
    processor.close_all()
    assert [(s.close_count, s.tokens.output) for s in sink.items] == [(1, 1), (1, 2)]
    assert processor.stats.reopened_sessions == 0


def test_empty_sessions_are_counted_not_emitted():
    processor, sink, _ = make()
    processor.consume(start_hook(0, sid="resume"))
    processor.consume(prompt(1, sid="resume"))
    processor.consume(prompt(0, sid="prompts-only"))
    processor.consume(end(0, sid="end-only"))  # an end for a session never seen opens nothing
    assert processor.close(SessionId("resume"), CLOSE_IDLE) is None
    assert processor.close_all() == []
    assert sink.items == []
    assert processor.stats.empty_sessions == 2
    assert processor.stats.closed_sessions == 2
    assert processor.stats.stray_ends == 1
    assert processor.open_sessions() == 0


def test_close_of_an_unknown_session_is_none():
    processor, sink, _ = make()
    assert processor.close(SessionId("nope"), CLOSE_IDLE) is None
    assert processor.stats.closed_sessions == 0


def test_close_returns_the_emitted_summary():
    processor, sink, _ = make()
    processor.consume(api(0, 1, output_tokens=1))
    summary = processor.close(SessionId("s1"), CLOSE_IDLE)
    assert summary is not None
    assert sink.items == [summary]


def test_open_session_cap_evicts_the_least_recently_active():
    processor, sink, clock = make(SessionKpiConfig(max_open_sessions=2))
    processor.consume(api(0, 1, sid="a", output_tokens=1))
    clock.advance(10)
    processor.consume(api(0, 1, sid="b", output_tokens=1))
    clock.advance(10)
    processor.consume(api(1, 2, sid="a", output_tokens=1))  # "a" is now the more recently active
    clock.advance(10)
    processor.consume(api(0, 1, sid="c", output_tokens=1))
    assert [(s.session_id, s.close_reason) for s in sink.items] == [("b", CLOSE_EVICTED)]
    assert processor.open_sessions() == 2
    processor.close_all()
    assert sorted(s.session_id for s in sink.items[1:]) == ["a", "c"]


def test_close_all_closes_in_order_of_last_event_time():
    processor, sink, _ = make()
    processor.consume(api(0, 100, sid="x", output_tokens=1))
    processor.consume(api(0, 50, sid="y", output_tokens=1))
    processor.consume(api(0, 75, sid="z", output_tokens=1))
    processor.consume(prompt(80, sid="y"))  # y's last event is now at 80
    summaries = processor.close_all()
    assert [s.session_id for s in summaries] == ["z", "y", "x"]  # 75, 80, 100
    assert summaries == sink.items
    assert all(s.close_reason == CLOSE_END_OF_INPUT for s in summaries)


def test_shutdown_keeps_sessions_open():
    processor, sink, _ = make()
    processor.start()
    processor.consume(api(0, 1, output_tokens=1))
    processor.shutdown()
    processor.shutdown()
    assert sink.items == []
    assert processor.open_sessions() == 1


def test_stats_count_events():
    processor, _, _ = make()
    for event in (prompt(0), api(0, 1), tool("Read", 1, 2), end(2)):
        processor.consume(event)
    assert processor.stats.events == 4


# --- agent type ----------------------------------------------------------------------------------


def test_agent_type_is_the_first_non_default_seen():
    summary = run(
        prompt(0),
        api(0, 1, agent="default"),
        api(1, 2, agent="planner"),
        api(2, 3, agent="coder"),
        api(3, 4, agent="default"),
    )
    assert summary.agent_type == "planner"


def test_agent_type_stays_default_when_nothing_names_one():
    assert run(api(0, 1)).agent_type == "default"


def test_configured_default_agent_type():
    config = SessionKpiConfig(default_agent_type="Fallback Agent")  # sanitized to "fallback-agent"
    assert run(api(0, 1, agent="fallback-agent"), config=config).agent_type == "fallback-agent"
    assert run(api(0, 1, agent="fallback-agent"), api(1, 2, agent="x"), config=config).agent_type == "x"


# --- task completion -----------------------------------------------------------------------------


def test_task_completion_from_task_update_status():
    summary = run(
        *(tool("TaskCreate", i, i + 1, task_id=str(i)) for i in range(1, 5)),
        tool("TaskUpdate", 10, 11, task_id="1", task_status="completed"),
        tool("TaskUpdate", 11, 12, task_id="2", task_status="in_progress"),
        tool("TaskUpdate", 12, 13, task_id="2", task_status="completed"),
        tool("TaskUpdate", 13, 14, task_id="2", task_status="completed"),  # the same task twice
        tool("TaskUpdate", 14, 15, task_id="3", task_status="in_progress"),
    )
    # completed {1, 2} / created 4 = 0.5; the fallback would say min(5 updates / 4 creates, 1) = 1.0
    assert summary.kpis["task_completion_rate"] == 0.5
    assert (summary.tasks_created, summary.tasks_completed, summary.task_updates) == (4, 2, 5)
    assert summary.data_completeness.task_status is True


def test_task_update_status_without_task_id_is_not_status():
    summary = run(tool("TaskCreate", 0, 1), tool("TaskCreate", 1, 2), tool("TaskUpdate", 2, 3, task_status="completed"))
    assert summary.tasks_completed is None
    assert summary.kpis["task_completion_rate"] == 0.5  # fallback: min(1 update / 2 creates, 1)


def test_task_completion_from_status_is_clamped_to_one():
    summary = run(
        tool("TaskCreate", 0, 1, task_id="1"),
        *(tool("TaskUpdate", i, i + 1, task_id=str(i), task_status="completed") for i in range(1, 4)),
    )
    # tasks created in an earlier session completed here: 3 completed / 1 created → 1.0
    assert summary.kpis["task_completion_rate"] == 1.0


def test_task_completion_from_todo_write_snapshots():
    summary = run(
        todo_write(0, ("a", "pending"), ("b", "pending"), ("c", "in_progress")),
        todo_write(10, ("a", "completed"), ("b", "in_progress"), ("c", "in_progress")),
        todo_write(20, ("a", "completed"), ("b", "completed"), ("c", "in_progress"), ("d", "pending")),
    )
    # created: distinct keys {a, b, c, d} = 4; completed in the latest list: a, b → 2 / 4
    assert (summary.tasks_created, summary.tasks_completed) == (4, 2)
    assert summary.kpis["task_completion_rate"] == 0.5
    assert summary.kpis["tool_overhead_ratio"] == 3.0  # 3 TodoWrite / max(0, 1)


def test_todo_status_is_taken_from_the_latest_snapshot():
    summary = run(
        todo_write(0, ("a", "completed"), ("b", "completed")),
        todo_write(10, ("a", "completed"), ("b", "in_progress")),  # b was reopened
    )
    assert summary.kpis["task_completion_rate"] == 0.5  # 1 / 2


def test_regression_todos_completed_in_an_earlier_list_stay_completed():
    # A TodoWrite sends the whole list; a new list (next piece of work) or a cleared one must not
    # forget the items already completed, while they still count as created.
    summary = run(
        todo_write(0, ("a", "in_progress"), ("b", "pending")),
        todo_write(10, ("a", "completed"), ("b", "completed")),
        todo_write(20, ("c", "pending"), ("d", "pending"), ("e", "pending")),
        todo_write(30, ("c", "completed"), ("d", "completed"), ("e", "pending")),
        todo_write(40),  # cleared
    )
    # created {a, b, c, d, e} = 5; completed: a, b (first list), c, d (second) = 4 → 0.8, e was dropped unfinished
    assert (summary.tasks_created, summary.tasks_completed) == (5, 4)
    assert summary.kpis["task_completion_rate"] == pytest.approx(0.8)


def test_task_creates_and_todos_add_up():
    summary = run(
        tool("TaskCreate", 0, 1, task_id="t1"),
        tool("TaskUpdate", 1, 2, task_id="t1", task_status="completed"),
        todo_write(2, ("x", "completed"), ("y", "pending")),
    )
    # created: 1 TaskCreate + 2 todo items = 3; completed: t1 + x = 2
    assert summary.kpis["task_completion_rate"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("creates", "updates", "expected"),
    [
        (3, 2, 2 / 3),  # min(2 / 3, 1)
        (2, 5, 1.0),  # min(5 / 2, 1)
        (1, 0, 0.0),
        (0, 3, None),  # no tasks: null, not 1.0
    ],
)
def test_task_completion_fallback_without_visible_status(creates, updates, expected):
    events = [tool("TaskCreate", i, i + 1) for i in range(creates)]
    events += [tool("TaskUpdate", 10 + i, 11 + i) for i in range(updates)]
    summary = run(*events)
    assert summary.tasks_completed is None
    assert summary.data_completeness.task_status is False
    assert summary.kpis["task_completion_rate"] == (None if expected is None else pytest.approx(expected))


def test_no_tasks_at_all_is_null():
    assert run(api(0, 1), tool("Read", 1, 2)).kpis["task_completion_rate"] is None


def test_denied_task_tools_do_not_count_as_tasks():
    summary = run(tool("TaskCreate", 0, 1, denied=True), tool("TaskCreate", 1, 2), tool("TaskUpdate", 2, 3))
    assert summary.kpis["task_completion_rate"] == 1.0  # 1 update / 1 executed create
    assert summary.tasks_created == 1
