from __future__ import annotations

from typing import Any

import pytest

from kpiloop.collector.plan_jsonl import is_plan_span, log_from_plan, span_from_plan, to_nanos
from kpiloop.collector.records import STATUS_ERROR, STATUS_OK, STATUS_UNSET, LogRecord, SpanEventRecord, SpanRecord
from kpiloop.errors import InputError
from kpiloop.sample_sessions import PlanSession

SECOND = 1_000_000_000
T0 = 1_770_920_880  # 2026-02-12T18:28:00Z
T0_NS = T0 * SECOND


# to_nanos


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ([T0, 5], T0_NS + 5),
        ([T0, 999_999_999], T0_NS + 999_999_999),
        (["1770920880", "7"], T0_NS + 7),
        ([0, 0], 0),
    ],
)
def test_hrtime_pairs(value: list[Any], expected: int) -> None:
    assert to_nanos(value, "t") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-02-12T18:28:00Z", T0_NS),
        ("2026-02-12T18:28:00.250Z", T0_NS + 250_000_000),
        ("2026-02-12T18:28:00.123456Z", T0_NS + 123_456_000),
        ("2026-02-12T18:28:00+00:00", T0_NS),
        ("2026-02-12T20:28:00+02:00", T0_NS),
        ("2026-02-12T13:58:00.5-04:30", T0_NS + 500_000_000),
        ("2026-02-12 18:28:00Z", T0_NS),
    ],
)
def test_iso_8601_with_z_or_offset(text: str, expected: int) -> None:
    assert to_nanos(text, "t") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T0, T0_NS),
        (1_770_920_880_123, T0_NS + 123_000_000),
        (1_770_920_880_123_456, T0_NS + 123_456_000),
        (1_770_920_880_123_456_789, T0_NS + 123_456_789),
        ("1770920880", T0_NS),
        ("1770920880123", T0_NS + 123_000_000),
        ("1770920880123456789", T0_NS + 123_456_789),
        (0, 0),
    ],
)
def test_numbers_in_seconds_millis_micros_or_nanos_told_apart_by_magnitude(value: object, expected: int) -> None:
    assert to_nanos(value, "t") == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_770_920_880.25, T0_NS + 250_000_000),
        (1_770_920_880_500.0, T0_NS + 500_000_000),
        (0.5, 500_000_000),
    ],
)
def test_float_times_to_within_a_microsecond(value: float, expected: int) -> None:
    # A float holds ~16 significant digits: epoch nanoseconds from float seconds are exact to ~0.2 µs.
    result = to_nanos(value, "t")
    assert isinstance(result, int)
    assert abs(result - expected) < 1_000


@pytest.mark.parametrize(
    "value",
    [
        -1,
        -1.5,
        "-5",
        float("nan"),
        float("inf"),
        [T0, -1],
        [-T0, 0],
        True,
        "yesterday",
        "2026-02-12T18:28:00",  # naive: no zone, no instant
        {"seconds": T0},
        [T0, "x"],
    ],
)
def test_bad_times_are_rejected_as_bad_values(value: object) -> None:
    with pytest.raises(InputError, match="startTime") as caught:
        to_nanos(value, "startTime")
    assert caught.value.reason == "bad_value"


def test_nanosecond_precision_survives_large_integers() -> None:
    assert to_nanos(T0_NS + 1, "t") - to_nanos(T0_NS, "t") == 1


# span_from_plan


def plan_span(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": "hook:builtin-post-tool",
        "kind": 0,
        "spanContext": {"traceId": "ab" * 16, "spanId": "cd" * 8},
        "startTime": [T0, 0],
        "endTime": [T0 + 2, 500],
        "attributes": {"builtin.tool": "Read", "session.id": "s-1"},
        "status": {"code": STATUS_OK},
        "events": [],
        "resource": {"attributes": {"service.name": "claude-code-hooks"}},
    }
    doc.update(overrides)
    return doc


def test_readable_span_fields() -> None:
    record = span_from_plan(plan_span())
    assert record == SpanRecord(
        name="hook:builtin-post-tool",
        start_ns=T0_NS,
        end_ns=T0_NS + 2 * SECOND + 500,
        attributes={"builtin.tool": "Read", "session.id": "s-1"},
        resource={"service.name": "claude-code-hooks"},
        status_code=STATUS_OK,
        events=[],
    )


def test_duration_stands_in_for_a_missing_end_time() -> None:
    doc = plan_span(duration=[1, 250_000_000])
    del doc["endTime"]
    record = span_from_plan(doc)
    assert (record.start_ns, record.end_ns) == (T0_NS, T0_NS + 1_250_000_000)


def test_null_end_time_uses_duration_and_no_duration_means_a_point() -> None:
    assert span_from_plan(plan_span(endTime=None, duration=[0, 7])).end_ns == T0_NS + 7
    point = span_from_plan(plan_span(endTime=None))
    assert point.end_ns == point.start_ns == T0_NS


def test_end_time_wins_over_duration() -> None:
    assert span_from_plan(plan_span(duration=[100, 0])).end_ns == T0_NS + 2 * SECOND + 500


def test_iso_start_and_end() -> None:
    record = span_from_plan(plan_span(startTime="2026-02-12T18:28:00Z", endTime="2026-02-12T18:28:01.5Z"))
    assert (record.start_ns, record.end_ns) == (T0_NS, T0_NS + 1_500_000_000)


def test_end_before_start_is_rejected() -> None:
    with pytest.raises(InputError, match="ends before it starts") as caught:
        span_from_plan(plan_span(endTime=[T0 - 1, 0]))
    assert caught.value.reason == "bad_value"


def test_bad_start_time_is_rejected() -> None:
    with pytest.raises(InputError, match="startTime"):
        span_from_plan(plan_span(startTime=[T0, -3]))


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ({"code": 0}, STATUS_UNSET),
        ({"code": 1}, STATUS_OK),
        ({"code": 2, "message": "boom"}, STATUS_ERROR),
        ({"code": "2"}, STATUS_ERROR),
        ({}, STATUS_UNSET),
        (None, STATUS_UNSET),
        ("ERROR", STATUS_UNSET),
    ],
)
def test_status_codes(status: object, expected: int) -> None:
    assert span_from_plan(plan_span(status=status)).status_code == expected


def test_non_numeric_status_code_is_rejected() -> None:
    with pytest.raises(InputError, match="status.code"):
        span_from_plan(plan_span(status={"code": "ERROR"}))


def test_events_with_their_times_and_attributes() -> None:
    events = [
        {
            "name": "gen_ai.evaluation.result",
            "time": [T0 + 1, 0],
            "attributes": {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9},
        },
        {"name": "checkpoint", "time": "2026-02-12T18:28:02Z"},
        "not an event",
    ]
    record = span_from_plan(plan_span(events=events))
    assert record.events == [
        SpanEventRecord(
            "gen_ai.evaluation.result",
            T0_NS + SECOND,
            {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9},
        ),
        SpanEventRecord("checkpoint", T0_NS + 2 * SECOND, {}),
    ]


def test_attributes_must_be_an_object() -> None:
    with pytest.raises(InputError, match="attributes"):
        span_from_plan(plan_span(attributes=[{"key": "a"}]))


def test_resource_attributes_or_the_js_sdk_private_field() -> None:
    assert span_from_plan(plan_span(resource={"_attributes": {"service.name": "x"}})).resource == {"service.name": "x"}
    assert span_from_plan(plan_span(resource="nope")).resource == {}
    assert span_from_plan(plan_span(resource={"attributes": None})).resource == {}


def test_spans_written_by_the_sample_generator_decode() -> None:
    session = PlanSession("gen-1", "coder")
    session.api_call(T0_NS, T0_NS + 3 * SECOND, input=10, output=5, cache_read=100, cache_creation=7)
    session.tool(T0_NS + 4 * SECOND, T0_NS + 5 * SECOND, "Bash", success=False, status=STATUS_ERROR)
    records = [span_from_plan(doc) for doc in session.spans]
    assert all(is_plan_span(doc) for doc in session.spans)
    assert [(r.name, r.start_ns, r.end_ns, r.status_code) for r in records] == [
        ("hook:token-metrics-extraction", T0_NS, T0_NS + 3 * SECOND, STATUS_OK),
        ("hook:builtin-post-tool", T0_NS + 4 * SECOND, T0_NS + 5 * SECOND, STATUS_ERROR),
    ]
    assert records[0].attributes["tokens.cache_creation"] == 7
    assert records[0].attributes["session.id"] == "gen-1"
    assert records[1].resource == {"service.name": "claude-code-hooks"}


def test_is_plan_span_needs_a_name_and_a_start_time() -> None:
    assert is_plan_span({"name": "x", "startTime": [0, 0]})
    assert not is_plan_span({"name": "x"})
    assert not is_plan_span({"startTime": [0, 0]})


# log_from_plan


def test_top_level_dotted_keys_join_the_attributes_and_attributes_win() -> None:
    record = log_from_plan(
        {
            "timestamp": "2026-02-12T18:28:00Z",
            "gen_ai.evaluation.name": "relevance",
            "gen_ai.evaluation.score.value": 0.92,
            "session.id": "top-level",
            "attributes": {"session.id": "from-attributes", "agent.type": "coder"},
            "plain": "not dotted",
        }
    )
    assert record.attributes == {
        "session.id": "from-attributes",
        "agent.type": "coder",
        "gen_ai.evaluation.name": "relevance",
        "gen_ai.evaluation.score.value": 0.92,
    }
    assert record.time_ns == T0_NS


def test_evaluation_record_as_the_sample_generator_writes_it() -> None:
    session = PlanSession("gen-2", "coder")
    session.evaluation(T0_NS + 1_500_000_000, "coherence", 0.93)
    [doc] = session.evaluations
    record = log_from_plan(doc)
    assert record.event_name == "gen_ai.evaluation.result"
    assert record.time_ns == T0_NS + 1_500_000_000
    assert record.attributes["gen_ai.evaluation.name"] == "coherence"
    assert record.attributes["gen_ai.evaluation.score.value"] == 0.93
    assert record.attributes["session.id"] == "gen-2"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"timestamp": "2026-02-12T19:28:00+01:00"}, T0_NS),
        ({"timestamp": [T0, 9]}, T0_NS + 9),
        ({"time": 1_770_920_880_250}, T0_NS + 250_000_000),
        ({"timeUnixNano": "1770920880000000001"}, T0_NS + 1),
        ({"observedTimestamp": T0}, T0_NS),
        ({"date": "2026-02-12T18:28:00Z"}, T0_NS),
        ({"timestamp": None, "time": T0}, T0_NS),
        ({"timestamp": T0, "time": T0 + 60}, T0_NS),
        ({}, 0),
    ],
)
def test_log_timestamp_forms(fields: dict[str, Any], expected: int) -> None:
    assert log_from_plan({"body": "b", **fields}).time_ns == expected


def test_bad_log_timestamp_is_rejected() -> None:
    with pytest.raises(InputError) as caught:
        log_from_plan({"body": "b", "timestamp": -5})
    assert caught.value.reason == "bad_value"


def test_log_body_message_name_and_resource() -> None:
    record = log_from_plan(
        {"message": "hello", "eventName": "session.end", "resource": {"attributes": {"service.name": "svc"}}}
    )
    assert record == LogRecord(
        time_ns=0, body="hello", attributes={}, resource={"service.name": "svc"}, event_name="session.end"
    )
    assert log_from_plan({"body": "b", "message": "m", "event_name": "a", "name": "c"}).event_name == "a"
    assert log_from_plan({"body": "b", "name": ""}).event_name is None
    assert log_from_plan({"body": {"k": 1}, "name": 3}).event_name is None


def test_log_attributes_must_be_an_object() -> None:
    with pytest.raises(InputError, match="attributes"):
        log_from_plan({"attributes": "x"})
