"""OTLP request builders shared by the receiver tests: the plan's span vocabulary, GenAI evaluation
logs and Claude Code's token metric, as protobuf messages."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_DELTA,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

T0 = 1_700_000_000_000_000_000


def kv(key: str, value: object) -> KeyValue:
    """One attribute: bool, int, float, else string."""
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=str(value)))


def kvs(session_id: str | None, attributes: Mapping[str, object] | None = None) -> list[KeyValue]:
    """Attributes, with ``session.id`` first unless the item names no session."""
    pairs = {"session.id": session_id} if session_id is not None else {}
    return [kv(key, value) for key, value in {**pairs, **(attributes or {})}.items()]


def token_span(session_id: str | None, input_tokens: int = 100, output_tokens: int = 20, note: str = "") -> Span:
    """One API call in the plan's ``hook:token-metrics-extraction`` span (cache read 5)."""
    tokens: dict[str, object] = {"tokens.input": input_tokens, "tokens.output": output_tokens, "tokens.cache_read": 5}
    if note:
        tokens["note"] = note
    return Span(
        name="hook:token-metrics-extraction",
        start_time_unix_nano=T0,
        end_time_unix_nano=T0 + 2_000_000_000,
        attributes=kvs(session_id, tokens),
    )


def tool_span(session_id: str | None, tool: str = "Read") -> Span:
    """One tool call in the plan's ``hook:builtin-post-tool`` span."""
    attributes = kvs(session_id, {"builtin.tool": tool})
    return Span(
        name="hook:builtin-post-tool", start_time_unix_nano=T0, end_time_unix_nano=T0 + 1, attributes=attributes
    )


def evaluation_log(session_id: str | None, score: object = 0.9) -> LogRecord:
    """A GenAI ``gen_ai.evaluation.result`` event."""
    attributes = {
        "event.name": "gen_ai.evaluation.result",
        "gen_ai.evaluation.name": "correctness",
        "gen_ai.evaluation.score.value": score,
    }
    return LogRecord(time_unix_nano=T0, attributes=kvs(session_id, attributes))


def token_point(session_id: str | None, value: float = 100.0) -> NumberDataPoint:
    """A ``claude_code.token.usage`` data point of type input."""
    return NumberDataPoint(time_unix_nano=T0, as_double=value, attributes=kvs(session_id, {"type": "input"}))


def traces_request(*spans: Span) -> ExportTraceServiceRequest:
    return ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])])


def logs_request(*records: LogRecord) -> ExportLogsServiceRequest:
    return ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=records)])])


def metrics_request(*points: NumberDataPoint) -> ExportMetricsServiceRequest:
    """``claude_code.token.usage`` as a monotonic delta sum of ``points``."""
    usage = Metric(
        name="claude_code.token.usage",
        sum=Sum(data_points=points, aggregation_temporality=AGGREGATION_TEMPORALITY_DELTA, is_monotonic=True),
    )
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(scope_metrics=[ScopeMetrics(metrics=[usage])])]
    )


def json_kv(key: str, value: object) -> dict[str, Any]:
    """One OTLP/JSON attribute (``intValue`` as a string, as the protobuf JSON mapping writes int64)."""
    if isinstance(value, bool):
        return {"key": key, "value": {"boolValue": value}}
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    if isinstance(value, float):
        return {"key": key, "value": {"doubleValue": value}}
    return {"key": key, "value": {"stringValue": value}}
