from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kpiloop.collector.otlp_json import MAX_DEPTH, decode_logs, decode_metrics, decode_traces
from kpiloop.collector.records import STATUS_ERROR, STATUS_OK, STATUS_UNSET, DataPointRecord, LogRecord, SpanRecord
from kpiloop.errors import InputError


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(parent for parent in here.parents if (parent / "pyproject.toml").is_file())


OTLP_EXAMPLES = _repo_root() / "tests" / "testdata" / "otlp"
CLAUDE_CODE = _repo_root().parent / "shared" / "fixtures" / "claude-code"
SESSION_A = "58c5cbd9-f879-42ab-8c47-a1661be51bcb"
SESSION_B = "75d52e26-37f6-48fe-b684-599268e2d382"


def kv(key: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"key": key, "value": value}


def logs_request(*records: dict[str, Any], resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": resource or []},
                "scopeLogs": [{"scope": {"name": "t"}, "logRecords": list(records)}],
            }
        ]
    }


def traces_request(*spans: object, resource: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"resourceSpans": [{"resource": {"attributes": resource or []}, "scopeSpans": [{"spans": list(spans)}]}]}


def metrics_request(*metrics: object) -> dict[str, Any]:
    return {"resourceMetrics": [{"resource": {}, "scopeMetrics": [{"metrics": list(metrics)}]}]}


def span(name: str = "s", **fields: Any) -> dict[str, Any]:
    return {"name": name, "startTimeUnixNano": "1000", "endTimeUnixNano": "2000", **fields}


def one_log_attributes(*attrs: dict[str, Any]) -> dict[str, Any]:
    [record] = list(decode_logs(logs_request({"timeUnixNano": "5", "attributes": list(attrs)})))
    assert isinstance(record, LogRecord)
    return dict(record.attributes)


def nested_array(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(levels):
        value = {"arrayValue": {"values": [value]}}
    return value


def jsonl(path: Path) -> list[dict[str, Any]]:
    assert path.is_file(), f"missing fixture {path}: shared/ must sit beside the repository"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# AnyValue kinds


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"stringValue": "hello"}, "hello"),
        ({"stringValue": ""}, ""),
        ({"intValue": "2519"}, 2519),
        ({"intValue": 2519}, 2519),
        ({"intValue": "-7"}, -7),
        ({"intValue": "9223372036854775807"}, 9223372036854775807),
        ({"doubleValue": 637.704}, 637.704),
        ({"doubleValue": 5}, 5.0),
        ({"doubleValue": "0.25"}, 0.25),
        ({"boolValue": True}, True),
        ({"boolValue": False}, False),
        ({"arrayValue": {"values": [{"stringValue": "many"}, {"intValue": "2"}]}}, ["many", 2]),
        ({"arrayValue": {}}, []),
        (
            {"kvlistValue": {"values": [kv("a", {"doubleValue": 1.5}), kv("b", {"kvlistValue": {"values": []}})]}},
            {"a": 1.5, "b": {}},
        ),
        ({"bytesValue": "AQL/"}, b"\x01\x02\xff"),
        ({"bytesValue": "AQL_"}, b"\x01\x02\xff"),
        ({"bytesValue": "AQI="}, b"\x01\x02"),
        ({"bytesValue": "AQI"}, b"\x01\x02"),
        ({"bytesValue": ""}, b""),
        ({}, None),
        ({"futureValue": 1}, None),
    ],
)
def test_any_value_kinds_decode_to_python_values(value: dict[str, Any], expected: object) -> None:
    attrs = one_log_attributes(kv("k", value))
    assert attrs == {"k": expected}
    assert type(attrs["k"]) is type(expected)


def test_attribute_without_value_is_none_and_entries_without_key_are_skipped() -> None:
    assert one_log_attributes({"key": "no.value"}, {"value": {"stringValue": "orphan"}}) == {"no.value": None}


def test_int_value_that_is_not_an_integer_rejects_the_item() -> None:
    [item] = list(decode_logs(logs_request({"attributes": [kv("n", {"intValue": "12abc"})]})))
    assert isinstance(item, InputError)
    assert "malformed log record" in str(item)


@pytest.mark.parametrize("encoded", ["!!!", "A", "AQ I", 12])
def test_bytes_value_that_is_not_base64_rejects_the_item(encoded: object) -> None:
    [item] = list(decode_logs(logs_request({"attributes": [kv("b", {"bytesValue": encoded})]})))
    assert isinstance(item, InputError)


# Nesting depth


def test_nesting_up_to_max_depth_is_accepted() -> None:
    value: object = one_log_attributes(kv("deep", nested_array(MAX_DEPTH)))["deep"]
    for _ in range(MAX_DEPTH):
        assert isinstance(value, list)
        value = value[0]
    assert value == "leaf"


def test_nesting_deeper_than_max_depth_is_rejected_without_losing_siblings() -> None:
    records = list(
        decode_logs(
            logs_request(
                {"timeUnixNano": "1", "attributes": [kv("deep", nested_array(MAX_DEPTH + 1))]},
                {"timeUnixNano": "2", "attributes": [kv("ok", {"stringValue": "yes"})]},
            )
        )
    )
    assert isinstance(records[0], InputError)
    assert records[0].reason == "too_deep"
    assert isinstance(records[1], LogRecord)
    assert records[1].attributes == {"ok": "yes"}


def test_deep_kvlist_nesting_is_rejected_too() -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(MAX_DEPTH + 5):
        value = {"kvlistValue": {"values": [kv("k", value)]}}
    [item] = list(decode_traces(traces_request(span(attributes=[kv("deep", value)]))))
    assert isinstance(item, InputError)
    assert item.reason == "too_deep"


# Spans


def test_span_fields_decode_and_hex_ids_are_ignored() -> None:
    request = traces_request(
        span(
            "llm",
            traceId="5B8EFFF798038103D269B633813FC60C",
            spanId="not-hex-at-all",
            parentSpanId="",
            kind="SPAN_KIND_INTERNAL",
            startTimeUnixNano="1795639858855000000",
            endTimeUnixNano=1795639859118291597,
            attributes=[kv("session.id", {"stringValue": "s-1"})],
            status={"code": "STATUS_CODE_OK", "message": "fine"},
            events=[{"name": "e", "timeUnixNano": "1795639859000000000", "attributes": [kv("x", {"intValue": 3})]}],
        ),
        resource=[kv("service.name", {"stringValue": "svc"})],
    )
    [record] = list(decode_traces(request))
    assert isinstance(record, SpanRecord)
    assert record.name == "llm"
    assert record.start_ns == 1795639858855000000
    assert record.end_ns == 1795639859118291597
    assert record.attributes == {"session.id": "s-1"}
    assert record.resource == {"service.name": "svc"}
    assert record.status_code == STATUS_OK
    assert [(e.name, e.time_ns, e.attributes) for e in record.events] == [("e", 1795639859000000000, {"x": 3})]


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, STATUS_UNSET),
        ({}, STATUS_UNSET),
        ({"code": 0}, STATUS_UNSET),
        ({"code": 1}, STATUS_OK),
        ({"code": 2}, STATUS_ERROR),
        ({"code": "2"}, STATUS_ERROR),
        ({"code": "STATUS_CODE_UNSET"}, STATUS_UNSET),
        ({"code": "STATUS_CODE_OK"}, STATUS_OK),
        ({"code": "STATUS_CODE_ERROR", "message": "Shell command failed"}, STATUS_ERROR),
    ],
)
def test_status_code_as_int_or_enum_name(status: dict[str, Any] | None, expected: int) -> None:
    fields: dict[str, Any] = {} if status is None else {"status": status}
    [record] = list(decode_traces(traces_request(span(**fields))))
    assert isinstance(record, SpanRecord)
    assert record.status_code == expected


def test_unknown_status_name_rejects_only_that_span() -> None:
    records = list(decode_traces(traces_request(span("a", status={"code": "STATUS_CODE_MAYBE"}), span("b"))))
    assert isinstance(records[0], InputError)
    assert isinstance(records[1], SpanRecord) and records[1].name == "b"


def test_unknown_fields_are_ignored_at_every_level() -> None:
    request = {
        "resourceSpans": [
            {
                "resource": {"attributes": [], "droppedAttributesCount": 0, "entityRefs": [{"type": "x"}]},
                "schemaUrl": "https://opentelemetry.io/schemas/1.30.0",
                "futureBlock": {"a": [1, 2]},
                "scopeSpans": [
                    {
                        "scope": {"name": "n", "version": "1"},
                        "schemaUrl": "",
                        "spans": [span("x", flags=257, traceState="a=b", links=[{"traceId": "00"}], newField={})],
                    }
                ],
            }
        ],
        "topLevelExtra": True,
    }
    [record] = list(decode_traces(request))
    assert isinstance(record, SpanRecord)
    assert (record.name, record.start_ns, record.end_ns) == ("x", 1000, 2000)


def test_malformed_spans_yield_errors_while_the_others_decode() -> None:
    request = traces_request(
        span("first"),
        span("bad-time", startTimeUnixNano="yesterday"),
        "not a span object",
        span("bad-attrs", attributes={"a": 1}),
        span("negative", endTimeUnixNano="-1"),
        span("last"),
    )
    records = list(decode_traces(request))
    assert [type(r).__name__ for r in records] == [
        "SpanRecord",
        "InputError",
        "InputError",
        "InputError",
        "InputError",
        "SpanRecord",
    ]
    assert [r.name for r in records if isinstance(r, SpanRecord)] == ["first", "last"]
    assert "startTimeUnixNano" in str(records[1])


def test_malformed_spans_in_another_resource_do_not_hide_good_ones() -> None:
    request = traces_request(span("bad", startTimeUnixNano="x"))
    request["resourceSpans"].append(traces_request(span("good"))["resourceSpans"][0])
    records = list(decode_traces(request))
    assert isinstance(records[0], InputError)
    assert isinstance(records[1], SpanRecord) and records[1].name == "good"


@pytest.mark.parametrize(
    "request_doc",
    [
        ["not", "an", "object"],
        {"resourceSpans": "nope"},
        {"resourceSpans": ["nope"]},
        {"resourceSpans": [{"resource": ["nope"]}]},
        {"resourceSpans": [{"resource": {"attributes": [kv("a", {"intValue": "zz"})]}}]},
        {"resourceSpans": [{"scopeSpans": ["nope"]}]},
        {"resourceSpans": [{"scopeSpans": [{"spans": 7}]}]},
    ],
)
def test_a_request_of_the_wrong_shape_raises_input_error(request_doc: Any) -> None:
    with pytest.raises(InputError):
        list(decode_traces(request_doc))


def test_empty_requests_decode_to_nothing() -> None:
    assert list(decode_traces({})) == []
    assert list(decode_logs({"resourceLogs": []})) == []
    assert list(decode_metrics({"resourceMetrics": [{"scopeMetrics": [{"metrics": []}]}]})) == []


# Logs


def test_log_fields_event_name_and_observed_time_fallback() -> None:
    records = list(
        decode_logs(
            logs_request(
                {"timeUnixNano": "10", "observedTimeUnixNano": "20", "eventName": "evt", "body": {"stringValue": "b"}},
                {"observedTimeUnixNano": "20", "eventName": "", "body": {"kvlistValue": {"values": []}}},
                {"timeUnixNano": 0, "severityNumber": 9, "severityText": "INFO"},
            )
        )
    )
    assert all(isinstance(r, LogRecord) for r in records)
    logs = [r for r in records if isinstance(r, LogRecord)]
    assert [(r.time_ns, r.event_name, r.body) for r in logs] == [(10, "evt", "b"), (20, None, {}), (0, None, None)]


def test_malformed_log_record_yields_error_and_keeps_the_rest() -> None:
    records = list(
        decode_logs(
            logs_request(
                {"timeUnixNano": "1"},
                {"timeUnixNano": "1.5"},
                {"timeUnixNano": "3", "attributes": "x"},
                {"timeUnixNano": "4"},
            )
        )
    )
    assert [r.time_ns if isinstance(r, LogRecord) else "error" for r in records] == [1, "error", "error", 4]


# Metrics


def sum_metric(name: str, temporality: object, *points: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {"dataPoints": list(points), "isMonotonic": True}
    if temporality is not None:
        body["aggregationTemporality"] = temporality
    return {"name": name, "sum": body}


@pytest.mark.parametrize(
    ("temporality", "cumulative"),
    [
        (2, True),
        ("AGGREGATION_TEMPORALITY_CUMULATIVE", True),
        (1, False),
        ("AGGREGATION_TEMPORALITY_DELTA", False),
        (0, False),
        (None, False),
    ],
)
def test_aggregation_temporality_as_int_or_name(temporality: object, cumulative: bool) -> None:
    [point] = list(decode_metrics(metrics_request(sum_metric("m", temporality, {"asDouble": 1}))))
    assert isinstance(point, DataPointRecord)
    assert point.cumulative is cumulative


def test_data_points_of_sums_and_gauges() -> None:
    request = metrics_request(
        sum_metric(
            "claude_code.token.usage",
            "AGGREGATION_TEMPORALITY_DELTA",
            {
                "startTimeUnixNano": "100",
                "timeUnixNano": "200",
                "asInt": "2519",
                "attributes": [kv("type", {"stringValue": "input"})],
            },
            {"timeUnixNano": 300, "asInt": 7},
            {"timeUnixNano": "400", "asDouble": 0.5},
        ),
        {"name": "g", "gauge": {"dataPoints": [{"timeUnixNano": "500", "asDouble": "2.5"}]}},
        {"name": "h", "histogram": {"dataPoints": [{"count": "2", "sum": 3}]}},
    )
    points = list(decode_metrics(request))
    assert all(isinstance(p, DataPointRecord) for p in points)
    rows = [(p.metric, p.start_ns, p.time_ns, p.value, p.cumulative) for p in points if isinstance(p, DataPointRecord)]
    assert rows == [
        ("claude_code.token.usage", 100, 200, 2519.0, False),
        ("claude_code.token.usage", 0, 300, 7.0, False),
        ("claude_code.token.usage", 0, 400, 0.5, False),
        ("g", 0, 500, 2.5, False),
    ]
    first = points[0]
    assert isinstance(first, DataPointRecord) and first.attributes == {"type": "input"}


def test_malformed_data_point_yields_error_and_keeps_its_neighbours() -> None:
    request = metrics_request(
        sum_metric("m", 1, {"timeUnixNano": "1", "asInt": "1"}, {"timeUnixNano": "2", "asInt": "lots"}, {"asInt": "3"}),
        "not a metric",
        sum_metric("n", 1, {"asDouble": 4.0}),
    )
    items = list(decode_metrics(request))
    assert [i.value if isinstance(i, DataPointRecord) else "error" for i in items] == [1.0, "error", 3.0, "error", 4.0]


# The official examples of open-telemetry/opentelemetry-proto (examples/*.json)


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((OTLP_EXAMPLES / name).read_text(encoding="utf-8"))
    return loaded


def test_official_trace_example() -> None:
    [record] = list(decode_traces(example("trace.json")))
    assert record == SpanRecord(
        name="I'm a server span",
        start_ns=1544712660000000000,
        end_ns=1544712661000000000,
        attributes={"my.span.attr": "some value"},
        resource={"service.name": "my.service"},
        status_code=STATUS_UNSET,
        events=[],
    )


def test_official_logs_example() -> None:
    [record] = list(decode_logs(example("logs.json")))
    assert record == LogRecord(
        time_ns=1544712660300000000,
        body="Example log record",
        attributes={
            "string.attribute": "some string",
            "boolean.attribute": True,
            "int.attribute": 10,
            "double.attribute": 637.704,
            "array.attribute": ["many", "values"],
            "map.attribute": {"some.map.key": "some value"},
        },
        resource={"service.name": "my.service"},
        event_name=None,
    )


def test_official_metrics_example_yields_the_sum_and_gauge_and_skips_histograms() -> None:
    points = list(decode_metrics(example("metrics.json")))
    resource = {"service.name": "my.service"}
    assert points == [
        DataPointRecord("my.counter", 1544712660300000000, 1544712660300000000, 5.0, {"my.counter.attr": "some value"},
                        resource, cumulative=False),
        DataPointRecord("my.gauge", 0, 1544712660300000000, 10.0, {"my.gauge.attr": "some value"}, resource),
    ]  # fmt: skip


# Real Claude Code captures (shared/fixtures/claude-code)


def decode_all(decoder: Any, path: Path) -> list[Any]:
    items = [item for request in jsonl(path) for item in decoder(request)]
    errors = [item for item in items if isinstance(item, InputError)]
    assert errors == [], f"{path.name}: {errors[:3]}"
    return items


def test_claude_code_logs_http_protobuf_capture() -> None:
    logs = decode_all(decode_logs, CLAUDE_CODE / "A-http-protobuf-beta" / "otlp-logs.jsonl")
    assert len(logs) == 75
    assert {log.attributes["session.id"] for log in logs} == {SESSION_A}
    assert {log.resource["service.name"] for log in logs} == {"claude-code"}
    api_requests = [log for log in logs if log.attributes.get("event.name") == "api_request"]
    assert len(api_requests) == 5
    first = api_requests[0]
    assert first.body == "claude_code.api_request"
    assert first.time_ns == 1795639859117000000
    assert first.attributes["input_tokens"] == 2519
    assert first.attributes["cache_creation_tokens"] == 10076
    assert first.attributes["cost_usd"] == 0.061716
    assert first.attributes["request_id"] == "req_mock_ae055a91c0c74ed6"
    assert first.attributes["anthropic.custom_base_url"] is True
    assert sum(log.attributes["output_tokens"] for log in api_requests) == 202


def test_claude_code_traces_capture() -> None:
    spans = decode_all(decode_traces, CLAUDE_CODE / "A-http-protobuf-beta" / "otlp-traces.jsonl")
    assert len(spans) == 18
    llm = [s for s in spans if s.name == "claude_code.llm_request"]
    assert len(llm) == 5
    assert llm[0].attributes["input_tokens"] == 2519
    assert llm[0].attributes["gen_ai.conversation.id"] == SESSION_A
    assert llm[0].end_ns - llm[0].start_ns == 263291597
    assert all(s.resource["service.name"] == "claude-code" for s in spans)
    failed = [s.name for s in spans if s.status_code == STATUS_ERROR]
    assert failed == ["claude_code.tool.execution"]


def test_claude_code_metrics_capture() -> None:
    points = decode_all(decode_metrics, CLAUDE_CODE / "A-http-protobuf-beta" / "otlp-metrics.jsonl")
    assert len(points) == 30
    assert not any(p.cumulative for p in points)
    assert {p.attributes["session.id"] for p in points} == {SESSION_A}
    tokens = [p for p in points if p.metric == "claude_code.token.usage"]
    by_type: dict[str, float] = {}
    for p in tokens:
        by_type[p.attributes["type"]] = by_type.get(p.attributes["type"], 0.0) + p.value
    assert by_type == {"input": 7673.0, "output": 202.0, "cacheRead": 36048.0, "cacheCreation": 20375.0}


def test_claude_code_logs_http_json_capture() -> None:
    logs = decode_all(decode_logs, CLAUDE_CODE / "B-http-json" / "otlp-logs.jsonl")
    assert {log.attributes["session.id"] for log in logs} == {SESSION_B}
    assert {log.resource["service.name"] for log in logs} == {"claude-code"}
    api_requests = [log for log in logs if log.body == "claude_code.api_request"]
    assert [log.attributes["input_tokens"] for log in api_requests][:1] == [2519]
    assert api_requests[0].attributes["cost_usd"] == 0.061706


def test_claude_code_raw_http_json_bodies_with_numeric_int_values() -> None:
    raw_files = sorted((CLAUDE_CODE / "B-http-json" / "raw").glob("*-logs-http.json"))
    assert raw_files
    raw_logs = [item for path in raw_files for item in decode_logs(json.loads(path.read_text(encoding="utf-8")))]
    assert '"intValue":0' in raw_files[0].read_text(encoding="utf-8")
    converted = decode_all(decode_logs, CLAUDE_CODE / "B-http-json" / "otlp-logs.jsonl")
    assert raw_logs == converted
