from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kpiloop.collector.adapters import EventAdapter, log_name
from kpiloop.collector.otlp_json import decode_traces
from kpiloop.collector.records import (
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    DataPointRecord,
    LogRecord,
    SpanEventRecord,
    SpanRecord,
)
from kpiloop.errors import InputError
from kpiloop.model import ApiCall, ContextSnapshot, Evaluation, SessionEnd, Source, ToolCall
from kpiloop.types import AgentType, SessionId

START = 1_770_920_880_000_000_000
END = START + 2_500_000_000
SID = SessionId("s-1")
CODER = AgentType("coder")


def span(
    name: str,
    attributes: dict[str, Any],
    *,
    status: int = STATUS_UNSET,
    resource: dict[str, Any] | None = None,
    events: list[SpanEventRecord] | None = None,
) -> SpanRecord:
    return SpanRecord(
        name=name,
        start_ns=START,
        end_ns=END,
        attributes=attributes,
        resource=resource if resource is not None else {},
        status_code=status,
        events=events or [],
    )


def log(attributes: dict[str, Any], *, event_name: str | None = None, body: object = None) -> LogRecord:
    return LogRecord(time_ns=START, body=body, attributes=attributes, resource={}, event_name=event_name)


def ids(**attributes: Any) -> dict[str, Any]:
    return {"session.id": "s-1", "agent.type": "coder", **attributes}


def only(events: list[Any]) -> Any:
    assert len(events) == 1, events
    return events[0]


# The plan's hook spans


def test_token_span_is_an_api_call_with_cache_creation_as_five_minute_writes() -> None:
    attrs = ids(
        **{
            "tokens.model": "claude-opus-4-6",
            "tokens.input": 8491,
            "tokens.output": "500",
            "tokens.cache_read": 491008,
            "tokens.cache_creation": 1200,
            "request_id": "req_1",
            "cost_usd": "0.42",
        }
    )
    event = only(EventAdapter().from_span(span("hook:token-metrics-extraction", attrs, status=STATUS_OK)))
    assert event == ApiCall(
        session_id=SID,
        agent_type=CODER,
        start_ns=START,
        end_ns=END,
        source="plan",
        model="claude-opus-4-6",
        request_id="req_1",
        input_tokens=8491,
        output_tokens=500,
        cache_read_tokens=491008,
        cache_write_5m_tokens=1200,
        cache_write_1h_tokens=0,
        cost_usd=0.42,
        ok=True,
    )


def test_token_span_with_missing_counts_reads_zero_and_error_status_fails() -> None:
    event = only(EventAdapter().from_span(span("hook:token-metrics-extraction", ids(), status=STATUS_ERROR)))
    assert isinstance(event, ApiCall)
    assert (event.input_tokens, event.output_tokens, event.cache_read_tokens, event.cache_write_5m_tokens) == (0,) * 4
    assert (event.model, event.request_id, event.cost_usd, event.ok) == ("", None, None, False)


@pytest.mark.parametrize(
    ("attributes", "status", "ok"),
    [
        ({"builtin.success": True, "builtin.has_error": False}, STATUS_OK, True),
        ({"builtin.success": True, "builtin.has_error": False}, STATUS_UNSET, True),
        ({}, STATUS_UNSET, True),
        ({"builtin.success": False}, STATUS_OK, False),
        ({"builtin.success": "false"}, STATUS_UNSET, False),
        ({"builtin.has_error": True}, STATUS_OK, False),
        ({"builtin.has_error": "TRUE"}, STATUS_UNSET, False),
        ({"builtin.success": True, "builtin.has_error": False}, STATUS_ERROR, False),
    ],
)
def test_builtin_tool_outcome(attributes: dict[str, Any], status: int, ok: bool) -> None:
    attrs = ids(**{"builtin.tool": "Edit", **attributes})
    event = only(EventAdapter().from_span(span("hook:builtin-post-tool", attrs, status=status)))
    assert isinstance(event, ToolCall)
    assert event.ok is ok


def test_builtin_tool_fields() -> None:
    attrs = ids(
        **{"builtin.tool": "Bash", "builtin.success": False, "builtin.error_type": "exit_1", "tool_use_id": "t1"}
    )
    event = only(EventAdapter().from_span(span("hook:builtin-post-tool", attrs)))
    assert event == ToolCall(
        session_id=SID,
        agent_type=CODER,
        start_ns=START,
        end_ns=END,
        source="plan",
        tool="Bash",
        tool_use_id="t1",
        ok=False,
        error_type="exit_1",
    )


def test_mcp_tool_is_named_mcp__server__tool() -> None:
    attrs = ids(**{"mcp.server": "github", "mcp.tool": "create_issue", "mcp.success": True})
    event = only(EventAdapter().from_span(span("hook:mcp-post-tool", attrs, status=STATUS_OK)))
    assert isinstance(event, ToolCall)
    assert (event.tool, event.ok, event.source) == ("mcp__github__create_issue", True, "plan")


@pytest.mark.parametrize(
    ("attributes", "ok"),
    [({"mcp.success": False}, False), ({"mcp.has_error": True}, False), ({"mcp.success": "true"}, True)],
)
def test_mcp_tool_outcome(attributes: dict[str, Any], ok: bool) -> None:
    event = only(EventAdapter().from_span(span("hook:mcp-post-tool", ids(**attributes))))
    assert isinstance(event, ToolCall)
    assert event.tool == "mcp__unknown__unknown"
    assert event.ok is ok


def test_context_span_is_a_context_snapshot() -> None:
    attrs = ids(**{"context.total_tokens": 120000, "context.utilization_percent": "60.5", "context.free_space": 80000})
    event = only(EventAdapter().from_span(span("hook:skill-activation-prompt", attrs)))
    assert event == ContextSnapshot(
        session_id=SID,
        agent_type=CODER,
        start_ns=START,
        end_ns=END,
        source="plan",
        total_tokens=120000,
        utilization_percent=60.5,
        free_space=80000,
    )


def test_claude_code_resource_keeps_its_own_source() -> None:
    resource = {"service.name": "claude-code"}
    event = only(EventAdapter().from_span(span("hook:builtin-post-tool", ids(), resource=resource)))
    assert event.source == "claude_code"


# OpenTelemetry GenAI semantic conventions


def test_genai_span_input_includes_cached_tokens_which_are_subtracted() -> None:
    attrs = ids(
        **{
            "gen_ai.request.model": "claude-sonnet-4",
            "gen_ai.response.model": "claude-sonnet-4-20250514",
            "gen_ai.response.id": "msg_1",
            "gen_ai.usage.input_tokens": 1000,
            "gen_ai.usage.output_tokens": 50,
            "gen_ai.usage.cache_read.input_tokens": 600,
            "gen_ai.usage.cache_creation.input_tokens": 100,
        }
    )
    event = only(EventAdapter().from_span(span("chat claude-sonnet-4", attrs)))
    assert event == ApiCall(
        session_id=SID,
        agent_type=CODER,
        start_ns=START,
        end_ns=END,
        source="genai",
        model="claude-sonnet-4-20250514",
        request_id="msg_1",
        input_tokens=300,
        output_tokens=50,
        cache_read_tokens=600,
        cache_write_5m_tokens=100,
        ok=True,
    )


def test_genai_span_model_falls_back_to_request_and_error_type_fails_it() -> None:
    attrs = ids(**{"gen_ai.request.model": "m", "gen_ai.usage.output_tokens": 1, "error.type": "timeout"})
    event = only(EventAdapter().from_span(span("chat m", attrs)))
    assert isinstance(event, ApiCall)
    assert (event.model, event.input_tokens, event.ok) == ("m", 0, False)


def test_genai_span_with_more_cache_than_input_clamps_input_at_zero() -> None:
    attrs = ids(**{"gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read.input_tokens": 50})
    event = only(EventAdapter().from_span(span("chat", attrs, status=STATUS_ERROR)))
    assert isinstance(event, ApiCall)
    assert (event.input_tokens, event.cache_read_tokens, event.ok) == (0, 50, False)


def test_execute_tool_span_is_a_tool_call() -> None:
    attrs = ids(**{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "Read", "gen_ai.tool.call.id": "c1"})
    event = only(EventAdapter().from_span(span("execute_tool Read", attrs)))
    assert event == ToolCall(
        session_id=SID,
        agent_type=CODER,
        start_ns=START,
        end_ns=END,
        source="genai",
        tool="Read",
        tool_use_id="c1",
        ok=True,
    )
    failed = only(
        EventAdapter().from_span(
            span("execute_tool", ids(**{"gen_ai.operation.name": "execute_tool", "error.type": "io"}))
        )
    )
    assert isinstance(failed, ToolCall)
    assert (failed.tool, failed.ok, failed.error_type) == ("unknown", False, "io")


def test_genai_cache_write_alias_sent_by_claude_code() -> None:
    attrs = ids(
        **{
            "gen_ai.usage.input_tokens": 12595,
            "gen_ai.usage.cache_read.input_tokens": 0,
            "gen_ai.usage.cache_write.input_tokens": 10076,
            "gen_ai.usage.output_tokens": 63,
        }
    )
    event = only(EventAdapter().from_span(span("claude_code.llm_request", attrs)))
    assert isinstance(event, ApiCall)
    assert (event.input_tokens, event.cache_write_5m_tokens) == (2519, 10076)


def test_genai_standard_cache_creation_key_wins_over_the_alias() -> None:
    attrs = ids(
        **{
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.cache_creation.input_tokens": 30,
            "gen_ai.usage.cache_write.input_tokens": 999,
        }
    )
    event = only(EventAdapter().from_span(span("chat", attrs)))
    assert isinstance(event, ApiCall)
    assert (event.input_tokens, event.cache_write_5m_tokens) == (70, 30)


def test_claude_code_beta_llm_request_spans_give_the_sessions_token_totals() -> None:
    root = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
    path = root.parent / "shared" / "fixtures" / "claude-code" / "A-http-protobuf-beta" / "otlp-traces.jsonl"
    assert path.is_file(), f"missing fixture {path}: shared/ must sit beside the repository"
    spans = [
        item
        for text in path.read_text(encoding="utf-8").splitlines()
        for item in decode_traces(json.loads(text))
        if isinstance(item, SpanRecord) and item.name == "claude_code.llm_request"
    ]
    calls = [event for s in spans for event in EventAdapter().from_span(s) if isinstance(event, ApiCall)]
    assert len(calls) == 5
    assert {(c.session_id, c.source, c.model) for c in calls} == {
        ("58c5cbd9-f879-42ab-8c47-a1661be51bcb", "claude_code", "claude-opus-5-5")
    }
    totals = (
        sum(c.input_tokens for c in calls),
        sum(c.output_tokens for c in calls),
        sum(c.cache_read_tokens for c in calls),
        sum(c.cache_write_5m_tokens for c in calls),
    )
    assert totals == (7673, 202, 36048, 20375)  # expected.json of the capture
    assert calls[0].request_id == "req_mock_ae055a91c0c74ed6"


def test_chat_span_without_usage_is_ignored() -> None:
    adapter = EventAdapter()
    assert adapter.from_span(span("chat", ids(**{"gen_ai.operation.name": "chat"}))) == []
    assert adapter.stats.ignored == 1


# Evaluations


EVAL_ATTRS = {
    "gen_ai.evaluation.name": "relevance",
    "gen_ai.evaluation.score.value": 0.94,
    "gen_ai.evaluation.score.label": "good",
    "gen_ai.evaluation.evaluator": "llm-judge",
    "gen_ai.evaluation.evaluator.type": "llm",
}


def expected_evaluation(time_ns: int, source: Source = "otlp") -> Evaluation:
    return Evaluation(
        session_id=SID,
        agent_type=CODER,
        start_ns=time_ns,
        end_ns=time_ns,
        source=source,
        name="relevance",
        score=0.94,
        label="good",
        evaluator="llm-judge",
        evaluator_type="llm",
    )


def test_evaluation_result_log_record() -> None:
    event = only(EventAdapter().from_log(log(ids(**EVAL_ATTRS), event_name="gen_ai.evaluation.result")))
    assert event == expected_evaluation(START)


def test_evaluation_recognized_by_body_event_name_attribute_or_its_attributes() -> None:
    adapter = EventAdapter(source="plan")
    by_body = adapter.from_log(log(ids(**EVAL_ATTRS), body="gen_ai.evaluation.result"))
    by_attribute = adapter.from_log(log(ids(**EVAL_ATTRS, **{"event.name": "gen_ai.evaluation.result"})))
    by_shape = adapter.from_log(log(ids(**EVAL_ATTRS)))
    assert by_body == by_attribute == by_shape == [expected_evaluation(START, "plan")]


def test_evaluation_without_a_name_or_score() -> None:
    event = only(EventAdapter().from_log(log(ids(), event_name="gen_ai.evaluation.result")))
    assert isinstance(event, Evaluation)
    assert (event.name, event.score, event.label, event.evaluator) == ("unnamed", None, None, None)


def test_evaluation_result_as_a_span_event() -> None:
    later = START + 7
    events = [
        SpanEventRecord("gen_ai.evaluation.result", later, EVAL_ATTRS),
        SpanEventRecord("exception", later, {"exception.type": "X"}),
    ]
    adapter = EventAdapter()
    assert adapter.from_span(span("judge", ids(), events=events)) == [expected_evaluation(later)]
    assert adapter.stats.ignored == 0


def test_span_event_evaluations_follow_the_spans_own_event() -> None:
    attrs = ids(**{"builtin.tool": "Read"})
    events = [SpanEventRecord("gen_ai.evaluation.result", END, EVAL_ATTRS)]
    result = EventAdapter().from_span(span("hook:builtin-post-tool", attrs, events=events))
    assert [type(e) for e in result] == [ToolCall, Evaluation]
    assert result[1].source == "otlp"


def test_evaluation_score_must_be_a_finite_number() -> None:
    bad = log(ids(**{**EVAL_ATTRS, "gen_ai.evaluation.score.value": "NaN"}), event_name="gen_ai.evaluation.result")
    with pytest.raises(InputError) as caught:
        EventAdapter().from_log(bad)
    assert caught.value.reason == "bad_value"


# Session end


def test_session_end_span() -> None:
    end = only(EventAdapter().from_span(span("session.end", ids(**{"session.end.reason": "logout"}))))
    assert end == SessionEnd(session_id=SID, agent_type=CODER, start_ns=END, end_ns=END, source="otlp", reason="logout")


@pytest.mark.parametrize("name", ["session.end", "session_end", "SessionEnd"])
def test_session_end_log(name: str) -> None:
    end = only(EventAdapter().from_log(log(ids(reason="clear"), event_name=name)))
    assert end == SessionEnd(
        session_id=SID, agent_type=CODER, start_ns=START, end_ns=START, source="otlp", reason="clear"
    )


def test_session_end_log_by_event_name_attribute_without_reason() -> None:
    end = only(EventAdapter().from_log(log(ids(**{"event.name": "session.end"}, reason=3))))
    assert isinstance(end, SessionEnd)
    assert end.reason is None


def test_other_logs_are_ignored() -> None:
    adapter = EventAdapter()
    assert adapter.from_log(log(ids(), body="claude_code.hook_registered")) == []
    assert adapter.stats.ignored == 1


# Session id and agent type


@pytest.mark.parametrize(
    ("attributes", "resource", "expected"),
    [
        ({"session.id": "item"}, {"session.id": "res"}, "item"),
        ({}, {"session.id": "res"}, "res"),
        ({"gen_ai.conversation.id": "conv"}, {}, "conv"),
        ({"gen_ai.conversation.id": "conv"}, {"session.id": "res"}, "res"),
        ({"session.id": "", "gen_ai.conversation.id": "conv"}, {}, "conv"),
        ({}, {"gen_ai.conversation.id": "res-conv"}, "res-conv"),
        ({"session.id": "../../etc"}, {}, "etc"),
        ({"session.id": "a/b\\c d"}, {}, "a_b_c_d"),
        ({"session.id": 42}, {}, "42"),
    ],
)
def test_session_id_resolution(attributes: dict[str, Any], resource: dict[str, Any], expected: str) -> None:
    record = span("hook:builtin-post-tool", attributes, resource=resource)
    assert only(EventAdapter().from_span(record)).session_id == expected


@pytest.mark.parametrize(
    ("attributes", "resource", "expected"),
    [
        ({"agent.type": "item"}, {"agent.type": "res"}, "item"),
        ({"gen_ai.agent.name": "genai"}, {"agent.type": "res"}, "res"),
        ({"gen_ai.agent.name": "genai"}, {}, "genai"),
        ({}, {"gen_ai.agent.name": "res-genai"}, "res-genai"),
        ({}, {}, "fallback"),
        ({"agent.type": ""}, {}, "fallback"),
        ({"agent.type": "Translation Agent/v2"}, {}, "translation-agent-v2"),
        ({"agent.type": "../../etc/passwd"}, {}, "etc-passwd"),
        ({"agent.type": "../.."}, {}, "fallback"),
        ({"agent.type": 7}, {}, "fallback"),
    ],
)
def test_agent_type_resolution_and_sanitizing(
    attributes: dict[str, Any], resource: dict[str, Any], expected: str
) -> None:
    record = span("hook:builtin-post-tool", {"session.id": "s", **attributes}, resource=resource)
    assert only(EventAdapter(AgentType("fallback")).from_span(record)).agent_type == expected


def test_default_agent_type_is_default() -> None:
    record = span("hook:builtin-post-tool", {"session.id": "s"})
    assert only(EventAdapter().from_span(record)).agent_type == "default"


def test_records_without_a_session_are_counted_and_produce_nothing() -> None:
    adapter = EventAdapter()
    assert adapter.from_span(span("hook:token-metrics-extraction", {"tokens.input": 5})) == []
    assert adapter.from_span(span("session.end", {"session.id": "///"})) == []
    assert adapter.from_log(log(EVAL_ATTRS, event_name="gen_ai.evaluation.result")) == []
    point = DataPointRecord("claude_code.token.usage", 0, START, 1.0, {"type": "input"}, {})
    assert adapter.from_point(point) == []
    assert adapter.stats.unattributed == 4
    assert adapter.stats.ignored == 0


def test_points_with_a_session_are_ignored_for_now() -> None:
    adapter = EventAdapter()
    point = DataPointRecord("some.metric", 0, START, 1.0, {}, {"session.id": "s"})
    assert adapter.from_point(point) == []
    assert (adapter.stats.ignored, adapter.stats.unattributed) == (1, 0)


# Bad values


@pytest.mark.parametrize("bad", [-1, float("nan"), float("inf"), "abc", "1.5", True, [1], 2**60])
@pytest.mark.parametrize("key", ["tokens.input", "tokens.output", "tokens.cache_read", "tokens.cache_creation"])
def test_bad_token_counts_in_plan_spans_raise_bad_value(key: str, bad: object) -> None:
    record = span("hook:token-metrics-extraction", ids(**{key: bad}))
    with pytest.raises(InputError, match=key.replace(".", r"\.")) as caught:
        EventAdapter().from_span(record)
    assert caught.value.reason == "bad_value"


@pytest.mark.parametrize(
    ("name", "key", "bad"),
    [
        ("chat", "gen_ai.usage.input_tokens", -3),
        ("chat", "gen_ai.usage.output_tokens", "abc"),
        ("chat", "gen_ai.usage.cache_read.input_tokens", float("nan")),
        ("hook:token-metrics-extraction", "cost_usd", "free"),
        ("hook:skill-activation-prompt", "context.total_tokens", -1),
        ("hook:skill-activation-prompt", "context.utilization_percent", "NaN"),
    ],
)
def test_other_bad_values_raise_bad_value(name: str, key: str, bad: object) -> None:
    attrs = ids(**{"gen_ai.usage.output_tokens": 1, key: bad})
    with pytest.raises(InputError) as caught:
        EventAdapter().from_span(span(name, attrs))
    assert caught.value.reason == "bad_value"


def test_numeric_strings_are_accepted_as_counts() -> None:
    attrs = ids(
        **{"tokens.input": "2519", "tokens.output": 63.0, "tokens.cache_read": None, "tokens.cache_creation": ""}
    )
    event = only(EventAdapter().from_span(span("hook:token-metrics-extraction", attrs)))
    assert isinstance(event, ApiCall)
    assert (event.input_tokens, event.output_tokens, event.cache_read_tokens, event.cache_write_5m_tokens) == (
        2519,
        63,
        0,
        0,
    )


def test_reject_counts_by_reason() -> None:
    adapter = EventAdapter()
    adapter.reject(InputError("x", reason="bad_value"))
    adapter.reject(InputError("y", reason="bad_value"))
    adapter.reject(InputError("z"))
    assert adapter.stats.rejected == {"bad_value": 2, "malformed": 1}


def test_log_name_prefers_the_otlp_field_then_the_attribute_then_a_string_body() -> None:
    assert log_name(LogRecord(0, "body", {"event.name": "attr"}, {}, event_name="field")) == "field"
    assert log_name(LogRecord(0, "body", {"event.name": "attr"}, {})) == "attr"
    assert log_name(LogRecord(0, "body", {"event.name": ""}, {})) == "body"
    assert log_name(LogRecord(0, {"k": "v"}, {}, {})) is None
