"""Hypothesis strategies for hostile input, shared by the fuzz tests of every receiver.

Values are drawn from what breaks parsers and arithmetic: NaN and infinities, negative numbers,
2^53 / 2^63 / 2^64 boundaries and integers too large for a float, numbers as strings, wrong
types, huge arrays and 1 MB strings, deep nesting, non-UTF-8 bytes. Requests are built around the
attribute keys kpiloop's adapters read, so the hostile values reach the code that uses them.
"""

from __future__ import annotations

import functools
import gzip
import math
import string
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from google.protobuf.message import Message
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord as ProtoLogRecord
from opentelemetry.proto.logs.v1.logs_pb2 import ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AGGREGATION_TEMPORALITY_CUMULATIVE,
    AGGREGATION_TEMPORALITY_DELTA,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.records import DataPointRecord, LogRecord, SpanRecord
from kpiloop.errors import InputError
from kpiloop.model import (
    ActiveTime,
    ApiCall,
    ContextSnapshot,
    Evaluation,
    Event,
    LinesChanged,
    Prompt,
    SessionSummary,
    UsageMetric,
)
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.testing import FakeClock, ListSink


class _BigString(str):
    """A string whose repr is short: a failing example stays readable and shrinks fast."""

    def __repr__(self) -> str:
        return f"<string of {len(self)} characters>"


class _BigList(list[int]):
    """A list whose repr is short."""

    def __repr__(self) -> str:
        return f"<list of {len(self)} integers>"


SESSIONS = ("s-1", "s-2")
MEGABYTE_STRING: str = _BigString("x" * (1024 * 1024))
HUGE_ARRAY: list[int] = _BigList(range(5_000))
GZIP_BOMB = gzip.compress(b"\0" * (17 * 1024 * 1024), compresslevel=9)
"""17 MiB of zeros in ~17 KB: inflates past the server's default 16 MiB ``max_request_bytes``."""

BOUNDARY_INTS = (0, 1, -1, 2**31, 2**53, 2**53 + 1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), 10**30, 10**400)
BOUNDARY_FLOATS = (
    0.0,
    -0.0,
    0.5,
    -1.5,
    1e-300,
    1e300,
    1.7976931348623157e308,
    float("nan"),
    float("inf"),
    -float("inf"),
)
NUMBER_STRINGS = ("NaN", "nan", "inf", "-Infinity", "1e999", "-5", "2.5", "0x10", "", " 7 ", "9" * 30, "1_000", "12abc")

TOKEN_KEYS = (
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens", "cache_creation_1h_tokens",
    "tokens.input", "tokens.output", "tokens.cache_read", "tokens.cache_creation",
    "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.usage.cache_read.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens", "gen_ai.usage.cache_write.input_tokens",
    "context.total_tokens", "context.free_space", "prompt_length", "status_code", "attempt",
)  # fmt: skip
NUMBER_KEYS = (
    "cost_usd", "gen_ai.usage.cost", "duration_ms", "gen_ai.evaluation.score.value", "context.utilization_percent",
)  # fmt: skip
OTHER_KEYS = (
    "success", "decision", "tool_name", "tool_use_id", "request_id", "model", "agent_id", "agent.name", "type",
    "hook.event", "todos", "tool_input", "gen_ai.operation.name", "gen_ai.tool.name", "gen_ai.evaluation.name",
    "gen_ai.evaluation.evaluator.type", "builtin.tool", "builtin.success", "mcp.server", "event.name",
    "agent.type", "error.type", "task.id", "task.status",
)  # fmt: skip
SPAN_NAMES = (
    "hook:token-metrics-extraction", "hook:builtin-post-tool", "hook:mcp-post-tool", "hook:skill-activation-prompt",
    "claude_code.llm_request", "claude_code.tool", "claude_code.tool.execution", "chat", "session.end",
)  # fmt: skip
LOG_NAMES = (
    "claude_code.api_request", "claude_code.api_error", "claude_code.tool_result", "claude_code.tool_decision",
    "claude_code.user_prompt", "gen_ai.evaluation.result", "kpiloop.hook", "session.end",
)  # fmt: skip
METRIC_NAMES = (
    "claude_code.token.usage", "claude_code.cost.usage", "claude_code.active_time.total",
    "claude_code.lines_of_code.count", "claude_code.session.count",
)  # fmt: skip
KNOWN_STRINGS = (
    "true", "false", "reject", "accept", "input", "output", "cacheRead", "cacheCreation", "added", "removed",
    "execute_tool", "llm", "PostToolUse", "PostToolUseFailure", "PermissionDenied", "UserPromptSubmit",
    "SessionStart", "TaskUpdate", "TodoWrite", "Read", "claude-sonnet-4-5", "t-1", "relevance",
    '{"taskId": "1", "status": "completed"}', '{"todos": [{"content": "a", "status": "completed"}]}',
)  # fmt: skip


@functools.cache
def boundary_numbers() -> st.SearchStrategy[Any]:
    """Numbers at and beyond every limit, and numbers in disguise."""
    return st.one_of(
        st.sampled_from(BOUNDARY_INTS),
        st.sampled_from(BOUNDARY_FLOATS),
        st.sampled_from(NUMBER_STRINGS),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.booleans(),
    )


@functools.cache
def hostile_scalars() -> st.SearchStrategy[Any]:
    """Any scalar a JSON document or an attribute can carry, weighted towards trouble."""
    return st.one_of(
        boundary_numbers(),
        st.none(),
        st.sampled_from(KNOWN_STRINGS),
        st.text(max_size=20),
        st.just(MEGABYTE_STRING),
        st.sampled_from(SESSIONS),
    )


@functools.cache
def hostile_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """Scalars, lists and string-keyed objects nested a few levels (plus, one time in ten, a 5,000-item array)."""
    nested = st.recursive(
        hostile_scalars(),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
        max_leaves=max_leaves,
    )
    return mostly(nested, st.just(HUGE_ARRAY), 9)


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry (NaN, infinities, integers outside 64 bits) made strings."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return str(value)
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    return value


def json_round_trip(doc: Any) -> Any:
    """``doc`` as a receiver sees it: its JSON text parsed back (orjson writes NaN as null)."""
    try:
        return orjson.loads(orjson.dumps(doc))
    except orjson.JSONEncodeError:  # an integer outside 64 bits somewhere
        return orjson.loads(orjson.dumps(json_safe(doc)))


@functools.cache
def attribute_maps() -> st.SearchStrategy[dict[str, Any]]:
    """Attributes with a session, an agent type and hostile values under the keys the adapters read."""
    keys = st.sampled_from(TOKEN_KEYS + NUMBER_KEYS + OTHER_KEYS) | st.text(max_size=10)
    return st.builds(
        lambda session, extra: {"session.id": session, **extra},
        mostly(st.sampled_from(SESSIONS), hostile_scalars(), 8),
        st.dictionaries(keys, mostly(plausible_values(), boundary_numbers() | hostile_values(6), 10), max_size=8),
    )


@functools.cache
def plausible_values() -> st.SearchStrategy[Any]:
    """Values an honest sender writes under the adapters' keys."""
    return st.one_of(
        st.integers(0, 5000), st.floats(0, 10), st.sampled_from(KNOWN_STRINGS), st.sampled_from(SESSIONS), st.booleans()
    )


def mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int = 3) -> st.SearchStrategy[Any]:
    """``usual`` ``odds`` times out of ``odds + 1``, else ``rare``: most items of a hostile request are
    fine, so the values that are not reach the session processor beside them."""
    return st.sampled_from([usual] * odds + [rare]).flatmap(lambda chosen: chosen)  # one_of would dedupe


def deep_json(depth: int) -> bytes:
    """An array nested ``depth`` levels deep, as JSON text."""
    return b"[" * depth + b"]" * depth


@st.composite
def nested_any_value(draw: st.DrawFn, max_depth: int = 40) -> dict[str, Any]:
    """An OTLP/JSON ``AnyValue`` nested up to ``max_depth`` arrays/kvlists (past kpiloop's limit of 16)."""
    depth = draw(st.integers(0, max_depth))
    value: dict[str, Any] = {"stringValue": "leaf"}
    for level in range(depth):
        if level % 2:
            value = {"arrayValue": {"values": [value]}}
        else:
            value = {"kvlistValue": {"values": [{"key": "k", "value": value}]}}
    return value


def any_value_json(value: Any) -> dict[str, Any]:
    """One Python value as an OTLP/JSON ``AnyValue`` (intValue as a string, as the spec writes int64)."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value if value == value and abs(value) != float("inf") else str(value)}
    if isinstance(value, list):
        return {"arrayValue": {"values": [any_value_json(item) for item in value]}}
    if isinstance(value, dict):
        return {"kvlistValue": {"values": [{"key": str(k), "value": any_value_json(v)} for k, v in value.items()]}}
    if value is None:
        return {}
    return {"stringValue": str(value)}


@functools.cache
def malformed_any_values() -> st.SearchStrategy[Any]:
    """AnyValue objects of the wrong shape: wrong kinds, wrong value types, missing keys."""
    kinds = st.sampled_from(
        ("stringValue", "intValue", "doubleValue", "boolValue", "arrayValue", "kvlistValue", "bytesValue", "bogus")
    )
    wrong = st.one_of(
        hostile_scalars(),
        st.just({"values": [{"value": {"intValue": "1"}}]}),  # kvlist entry without a key
        st.just({"values": [1, "x", None]}),
        st.just({"values": "not a list"}),
        st.just("!!not base64!!"),
    )
    return st.one_of(st.dictionaries(kinds, wrong, min_size=1, max_size=2), nested_any_value(), hostile_scalars())


def otlp_attributes(attrs: dict[str, Any]) -> list[dict[str, Any]]:
    """``{k: v}`` → OTLP/JSON ``[{"key": k, "value": AnyValue}]``."""
    return [{"key": key, "value": any_value_json(value)} for key, value in attrs.items()]


TIMES = mostly(
    st.integers(1_700_000_000 * 10**9, 1_700_000_100 * 10**9).map(str),
    st.sampled_from(BOUNDARY_INTS).map(str) | boundary_numbers() | st.none(),
    12,
)


@st.composite
def otlp_json_requests(draw: st.DrawFn, signal: str) -> dict[str, Any]:
    """An OTLP/JSON export request for ``signal`` whose items carry hostile values and, now and then, a
    malformed attribute, item or block."""
    items = draw(_json_items(signal))
    inner = {"traces": "spans", "logs": "logRecords", "metrics": "metrics"}[signal]
    scope = {"traces": "scopeSpans", "logs": "scopeLogs", "metrics": "scopeMetrics"}[signal]
    outer = {"traces": "resourceSpans", "logs": "resourceLogs", "metrics": "resourceMetrics"}[signal]
    resource = {"attributes": otlp_attributes(draw(_resource_attributes()))}
    block: Any = {"resource": resource, scope: [{inner: items}]}
    if draw(_corrupt_block()):
        return {outer: [draw(hostile_values(4))]}
    return {outer: [block]}


@functools.cache
def _resource_attributes() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={"agent.type": hostile_scalars()})


@functools.cache
def _corrupt_block() -> st.SearchStrategy[bool]:
    return st.sampled_from((False, False, False, True))


@functools.cache
def _json_items(signal: str) -> st.SearchStrategy[list[Any]]:
    return st.lists(_json_item(signal), max_size=4)


@functools.cache
def _json_item(signal: str) -> st.SearchStrategy[Any]:
    if signal == "traces":
        item = st.builds(
            lambda name, attrs, start, end, status, bad: {
                "name": name,
                "startTimeUnixNano": start,
                "endTimeUnixNano": end,
                "status": status,
                "attributes": otlp_attributes(attrs) + bad,
                "events": [
                    {"name": "gen_ai.evaluation.result", "timeUnixNano": start, "attributes": otlp_attributes(attrs)}
                ],
            },
            mostly(st.sampled_from(SPAN_NAMES), hostile_scalars(), 8),
            attribute_maps(),
            TIMES,
            TIMES,
            st.sampled_from(({"code": 2}, {"code": "STATUS_CODE_ERROR"}, {}, {"code": "x"}, [], None)),
            st.lists(st.builds(lambda v: {"key": "k", "value": v}, malformed_any_values()), max_size=1),
        )
    elif signal == "logs":
        item = st.builds(
            lambda name, attrs, time, body, bad: {
                "timeUnixNano": time,
                "eventName": name,
                "body": body,
                "attributes": otlp_attributes(attrs) + bad,
            },
            mostly(st.sampled_from(LOG_NAMES), hostile_scalars(), 8),
            attribute_maps(),
            TIMES,
            mostly(st.sampled_from(LOG_NAMES).map(lambda n: {"stringValue": n}), malformed_any_values(), 6),
            st.lists(st.builds(lambda v: {"key": "k", "value": v}, malformed_any_values()), max_size=1),
        )
    else:
        point = st.builds(
            lambda attrs, time, value: {"timeUnixNano": time, "attributes": otlp_attributes(attrs), **value},
            attribute_maps(),
            TIMES,
            mostly(
                st.integers(0, 5000).map(lambda v: {"asInt": str(v)}) | st.floats(0, 10).map(lambda v: {"asDouble": v}),
                boundary_numbers().map(lambda v: {"asDouble": json_safe(v)})
                | boundary_numbers().map(lambda v: {"asInt": json_safe(v)})
                | st.just({}),
            ),
        )
        item = st.builds(
            lambda name, kind, temporality, points: {
                "name": name,
                kind: {"aggregationTemporality": temporality, "dataPoints": points},
            },
            mostly(st.sampled_from(METRIC_NAMES), hostile_scalars(), 8),
            st.sampled_from(("sum", "gauge", "histogram")),
            st.sampled_from((1, 2, "AGGREGATION_TEMPORALITY_CUMULATIVE", "x")),
            st.lists(point, max_size=3),
        )
    return mostly(item, hostile_values(4), 8)


@st.composite
def mutated_bytes(draw: st.DrawFn, valid: bytes) -> bytes:
    """``valid`` truncated, with bytes flipped, inserted or deleted."""
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(("truncate", "flip", "insert", "delete")))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "truncate":
            del data[position:]
        elif op == "flip" and data:
            data[position] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif data:
            del data[position]
    return bytes(data)


NON_UTF8 = st.sampled_from(
    (b"\xff\xfe", b"\xc3\x28", b'{"a": "\xed\xa0\x80"}', b"\x80" * 10, b'{"resourceLogs": "\xff"}')
)
PRINTABLE = st.text(alphabet=string.printable, max_size=40)


def any_value_proto(value: Any) -> AnyValue:
    """One Python value as a protobuf ``AnyValue``; integers outside int64 become strings."""
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value) if -(2**63) <= value < 2**63 else AnyValue(string_value=str(value))
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, list):
        return AnyValue(array_value=ArrayValue(values=[any_value_proto(item) for item in value]))
    if isinstance(value, dict):
        pairs = [KeyValue(key=str(k), value=any_value_proto(v)) for k, v in value.items()]
        return AnyValue(kvlist_value=KeyValueList(values=pairs))
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


def key_values(attrs: dict[str, Any]) -> list[KeyValue]:
    """``{k: v}`` → repeated protobuf ``KeyValue``."""
    return [KeyValue(key=key, value=any_value_proto(value)) for key, value in attrs.items()]


FIXED64 = st.one_of(
    st.integers(1_700_000_000 * 10**9, 1_700_000_100 * 10**9), st.sampled_from((0, 1, 2**63, 2**64 - 1))
)


def _proto_span(name: Any, attrs: dict[str, Any], start: int, end: int, code: int) -> Span:
    events = [Span.Event(name="gen_ai.evaluation.result", time_unix_nano=start, attributes=key_values(attrs))]
    return Span(
        name=str(name), start_time_unix_nano=start, end_time_unix_nano=end, attributes=key_values(attrs),
        status=Status(code=Status.StatusCode.ValueType(code)), events=events,
    )  # fmt: skip


def _proto_log(name: Any, attrs: dict[str, Any], time: int) -> ProtoLogRecord:
    return ProtoLogRecord(
        time_unix_nano=time, event_name=str(name), body=AnyValue(string_value=str(name)), attributes=key_values(attrs)
    )


def _proto_metric(name: Any, attrs: dict[str, Any], time: int, value: Any, cumulative: bool) -> Metric:
    point = NumberDataPoint(time_unix_nano=time, attributes=key_values(attrs))
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        point.as_int = value
    elif isinstance(value, float):
        point.as_double = value
    temporality = AGGREGATION_TEMPORALITY_CUMULATIVE if cumulative else AGGREGATION_TEMPORALITY_DELTA
    return Metric(name=str(name), sum=Sum(data_points=[point], aggregation_temporality=temporality))


_SMALL = st.integers(0, 4)
_BOOLS = st.booleans()


@functools.cache
def _names(signal: str) -> st.SearchStrategy[str]:
    return st.sampled_from({"traces": SPAN_NAMES, "logs": LOG_NAMES, "metrics": METRIC_NAMES}[signal]) | PRINTABLE


@st.composite
def otlp_proto_requests(draw: st.DrawFn, signal: str) -> Message:
    """A valid protobuf export request for ``signal`` whose items carry hostile values."""
    resource = Resource(attributes=key_values(draw(_resource_attributes())))
    count = draw(_SMALL)
    name, attrs, time = _names(signal), attribute_maps(), FIXED64
    if signal == "traces":
        spans = [_proto_span(draw(name), draw(attrs), draw(time), draw(time), draw(_SMALL)) for _ in range(count)]
        return ExportTraceServiceRequest(
            resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)])]
        )
    if signal == "logs":
        logs = [_proto_log(draw(name), draw(attrs), draw(time)) for _ in range(count)]
        return ExportLogsServiceRequest(
            resource_logs=[ResourceLogs(resource=resource, scope_logs=[ScopeLogs(log_records=logs)])]
        )
    metrics = [
        _proto_metric(draw(name), draw(attrs), draw(time), draw(boundary_numbers()), draw(_BOOLS)) for _ in range(count)
    ]
    return ExportMetricsServiceRequest(
        resource_metrics=[ResourceMetrics(resource=resource, scope_metrics=[ScopeMetrics(metrics=metrics)])]
    )


def deep_proto_log_request(depth: int) -> bytes:
    """A logs request whose one attribute value is nested ``depth`` arrays deep, serialized (built in
    place: copying a message nested past protobuf's recursion limit fails)."""
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    value = record.attributes.add(key="deep").value
    for _ in range(depth):
        value = value.array_value.values.add()
    value.string_value = "leaf"
    record.attributes.add(key="session.id").value.string_value = "s-1"
    request.resource_logs[0].scope_logs[0].log_records.add().attributes.add(key="ok").value.string_value = "yes"
    data: bytes = request.SerializeToString()
    return data


# Invariants every fuzz test checks on what survives decoding.

MAX_NS = 2**63
RATIO_KPIS = ("token_efficiency", "task_completion_rate", "active_time_ratio", "cache_efficiency", "error_rate")
"""KPIs DESIGN.md defines in [0, 1]; every other KPI is only non-negative."""


def _finite_non_negative(value: float | None, what: str) -> None:
    assert value is None or (math.isfinite(value) and value >= 0), f"{what} = {value!r}"


def _count(value: int | None, what: str) -> None:
    assert value is None or (type(value) is int and 0 <= value < MAX_NS), f"{what} = {value!r}"


def assert_sane_event(event: Event) -> None:
    """No NaN, infinity, negative or over-2^63 number in an event an adapter produced."""
    _count(event.start_ns, "start_ns")
    _count(event.end_ns, "end_ns")
    if isinstance(event, ApiCall):
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_5m_tokens"):
            _count(getattr(event, name), name)
        _count(event.cache_write_1h_tokens, "cache_write_1h_tokens")
        _count(event.status_code, "status_code")
        _count(event.attempt, "attempt")
        _finite_non_negative(event.cost_usd, "cost_usd")
    elif isinstance(event, Evaluation):
        _finite_non_negative(event.score, "score")
    elif isinstance(event, UsageMetric):
        _finite_non_negative(event.value, "usage value")
    elif isinstance(event, ActiveTime):
        _finite_non_negative(event.seconds, "active seconds")
    elif isinstance(event, LinesChanged):
        _count(event.lines, "lines")
    elif isinstance(event, Prompt):
        _count(event.length, "prompt length")
    elif isinstance(event, ContextSnapshot):
        _count(event.total_tokens, "total_tokens")
        _count(event.free_space, "free_space")
        assert event.utilization_percent is None or math.isfinite(event.utilization_percent)


def assert_sane_summary(summary: SessionSummary) -> None:
    """Every KPI finite and in its range; every total finite and non-negative."""
    for name, value in summary.kpis.items():
        _finite_non_negative(value, name)
        if name in RATIO_KPIS:
            assert value is None or value <= 1.0, f"{name} = {value!r}"
    _finite_non_negative(summary.cost_per_output_token, "cost_per_output_token")
    _finite_non_negative(summary.cost_usd, "cost_usd")
    _finite_non_negative(summary.active_seconds, "active_seconds")
    _finite_non_negative(summary.reported_active_seconds, "reported_active_seconds")
    _finite_non_negative(summary.duration_seconds, "duration_seconds")
    _count(summary.start_ns, "start_ns")
    _count(summary.end_ns, "end_ns")
    for name in ("input", "output", "cache_read", "cache_write_5m", "cache_write_1h"):
        _count(getattr(summary.tokens, name), f"tokens.{name}")
    for name in ("api_requests", "api_errors", "tool_calls", "tool_failures", "tool_denials", "lines_added"):
        _count(getattr(summary, name), name)
    _count(summary.lines_removed, "lines_removed")
    for stat in summary.quality.values():
        _finite_non_negative(stat.median, "quality median")
        _finite_non_negative(stat.mean, "quality mean")


def assert_sane_history_line(line: Mapping[str, Any]) -> None:
    """A ``history/kpis.jsonl`` line: KPIs finite and in range, totals non-negative."""
    for name, value in line["kpis"].items():
        _finite_non_negative(value, name)
        if name in RATIO_KPIS:
            assert value is None or value <= 1.0, f"{name} = {value!r}"
    _finite_non_negative(line["cost_usd"], "cost_usd")
    _finite_non_negative(line["duration_seconds"], "duration_seconds")
    for name, value in line["tokens"].items():
        _count(value, f"tokens.{name}")


def adapt_and_summarize(items: Iterable[object]) -> tuple[int, list[SessionSummary]]:
    """Adapt decoded records as a receiver does (an InputError item or value is counted and skipped;
    any other exception fails the test), check every event, feed them to a session processor and
    close every session; the count of rejected items and the checked summaries."""
    adapter = EventAdapter()
    sink: ListSink[SessionSummary] = ListSink()
    processor = SessionKpiProcessor(sink, SessionKpiConfig(), FakeClock())
    rejected = 0
    for item in items:
        try:
            if isinstance(item, InputError):
                raise item
            events = adapt(adapter, item)
        except InputError:
            rejected += 1
            continue
        for event in events:
            assert_sane_event(event)
            processor.consume(event)
    processor.close_all()
    for summary in sink.items:
        assert_sane_summary(summary)
    return rejected, sink.items


def adapt(adapter: EventAdapter, item: object) -> list[Event]:
    """The events of one record."""
    if isinstance(item, SpanRecord):
        return adapter.from_span(item)
    if isinstance(item, LogRecord):
        return adapter.from_log(item)
    assert isinstance(item, DataPointRecord), f"not a record: {item!r:.200}"
    return adapter.from_point(item)


# JSONL replay lines: the plan's formats and Claude Code transcripts, with hostile values.

HOSTILE_TIMES: tuple[Any, ...] = (
    "2026-02-12T18:28:00Z", "2026-02-12T18:28:01.5+00:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-23:59",
    "2026-02-12T18:28:00", "²", "1" * 5000, "1770920880", [1770920880, 5], [2**53, 0], [1, -1], [1.5, 0],
    1770920880, 1770920880123, 1770920880123456, 1770920880123456789, 2**64 - 1, 1e300, -1, [[[]]],
)  # fmt: skip


@functools.cache
def line_times() -> st.SearchStrategy[Any]:
    """Times as the plan's lines and transcripts write them, and as they should not."""
    return mostly(st.integers(1770920880, 1770920990), st.sampled_from(HOSTILE_TIMES) | boundary_numbers(), 2)


@functools.cache
def plan_lines() -> st.SearchStrategy[dict[str, Any]]:
    """A plan-format span, evaluation or log line with hostile values."""
    span = st.fixed_dictionaries(
        {"name": mostly(st.sampled_from(SPAN_NAMES), hostile_scalars(), 8), "startTime": line_times()},
        optional={
            "endTime": line_times(),
            "duration": line_times(),
            "attributes": attribute_maps() | hostile_values(4),
            "status": st.sampled_from(({"code": 2}, {"code": -1}, {"code": "x"}, [], {"code": 2**70})),
            "events": st.lists(st.fixed_dictionaries({"name": st.just(LOG_NAMES[5]), "time": line_times()})),
            "resource": st.fixed_dictionaries({"attributes": attribute_maps() | hostile_values(3)}),
        },
    )
    log = st.builds(
        lambda attrs, extra: {**attrs, **extra},
        attribute_maps(),
        st.fixed_dictionaries(
            {"timestamp": line_times()},
            optional={
                "gen_ai.evaluation.name": st.sampled_from(("relevance", "hallucination")) | hostile_scalars(),
                "gen_ai.evaluation.evaluator.type": st.just("llm"),
                "body": st.sampled_from(LOG_NAMES) | hostile_values(3),
                "event_name": mostly(st.sampled_from(LOG_NAMES), hostile_scalars(), 8),
                "attributes": attribute_maps() | hostile_values(3),
            },
        ),
    )
    return span | log


@functools.cache
def transcript_lines() -> st.SearchStrategy[dict[str, Any]]:
    """A Claude Code transcript line with hostile values in its usage, blocks and times."""
    usage = st.fixed_dictionaries(
        {},
        optional={
            "input_tokens": boundary_numbers() | st.integers(0, 5000),
            "output_tokens": boundary_numbers() | st.integers(0, 5000),
            "cache_read_input_tokens": boundary_numbers(),
            "cache_creation_input_tokens": boundary_numbers(),
            "cache_creation": st.fixed_dictionaries(
                {},
                optional={
                    "ephemeral_5m_input_tokens": boundary_numbers(),
                    "ephemeral_1h_input_tokens": boundary_numbers(),
                },
            ),
        },
    )
    block = st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("tool_use"), "id": st.sampled_from(("t-1", "t-2")) | hostile_scalars()},
            optional={"name": st.sampled_from(KNOWN_STRINGS) | hostile_scalars(), "input": hostile_values(4)},
        ),
        st.fixed_dictionaries(
            {"type": st.just("tool_result"), "tool_use_id": st.sampled_from(("t-1", "t-2")) | hostile_scalars()},
            optional={"is_error": hostile_scalars(), "content": hostile_values(4)},
        ),
        st.fixed_dictionaries({"type": st.just("text"), "text": hostile_scalars()}),
        hostile_values(3),
    )
    message = st.fixed_dictionaries(
        {},
        optional={
            "id": st.sampled_from(("m-1", "m-2")) | hostile_scalars(),
            "model": st.sampled_from(("claude-sonnet-4-5", "<synthetic>")) | hostile_scalars(),
            "usage": usage | hostile_values(3),
            "content": st.lists(block, max_size=3) | hostile_scalars(),
        },
    )
    return st.fixed_dictionaries(
        {
            "type": st.sampled_from(("assistant", "user", "api-request", "summary", "system")),
            "sessionId": mostly(st.sampled_from(SESSIONS), hostile_scalars(), 8),
        },
        optional={
            "timestamp": line_times(),
            "uuid": st.text(max_size=8),
            "agentId": st.sampled_from(("a-1",)) | hostile_scalars(),
            "isSidechain": st.booleans(),
            "isApiErrorMessage": st.booleans(),
            "message": message | hostile_values(3),
            "toolUseResult": st.fixed_dictionaries({"agentId": hostile_scalars(), "agentType": hostile_scalars()}),
            "permissionDecision": st.fixed_dictionaries({"decision": hostile_values(3)}),
        },
    )


# Values that once poisoned a session: each must be rejected as one item, the rest of its request kept.


def api_request(**attributes: Any) -> dict[str, Any]:
    """A Claude Code ``api_request`` log record of session s-1 with the given attributes."""
    values = {"session.id": "s-1", "input_tokens": 10, "output_tokens": 5, **attributes}
    return {
        "timeUnixNano": "1770920880000000000",
        "eventName": "claude_code.api_request",
        "body": {"stringValue": "claude_code.api_request"},
        "attributes": [{"key": key, "value": any_value_json(value)} for key, value in values.items()],
    }


def evaluation(score: Any) -> dict[str, Any]:
    """A GenAI evaluation result of session s-1 with the given relevance score."""
    values = {"session.id": "s-1", "gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": score}
    return {
        "timeUnixNano": "1770920880000000000",
        "eventName": "gen_ai.evaluation.result",
        "attributes": [{"key": key, "value": any_value_json(value)} for key, value in values.items()],
    }


POISONED_LOG_RECORDS = [
    api_request(cost_usd=-5.0),  # a negative cost made the session's cost negative
    api_request(cost_usd=1e308, request_id="a"),  # two of these summed to an infinite cost
    api_request(duration_ms=1e15),  # a start before 1970 made the session 56 years long
    api_request(input_tokens=10**400),  # raised OverflowError (HTTP 500)
    {**api_request(), "timeUnixNano": str(2**64 - 1)},  # a time past 2^63 reached the history
    api_request() | {"attributes": [{"key": "success", "value": {"boolValue": "false"}}]},  # read as True
    evaluation(-3.0),  # a negative quality score became a negative KPI
    evaluation(1e308),  # summing scores overflowed the mean to infinity
]
"""Log records that each once poisoned a session, with what they did (regression cases)."""
