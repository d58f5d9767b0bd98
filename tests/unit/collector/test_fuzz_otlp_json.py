"""Property-based fuzzing of the OTLP/JSON decoder, the adapters behind it and the session processor:
only InputError escapes, and nothing NaN, infinite, negative or over 2^63 reaches a KPI."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kpiloop.collector import otlp_json
from kpiloop.errors import InputError
from tests.strategies import (
    POISONED_LOG_RECORDS,
    adapt_and_summarize,
    api_request,
    hostile_values,
    json_round_trip,
    malformed_any_values,
    nested_any_value,
    otlp_json_requests,
)

FUZZ = settings(derandomize=True, max_examples=150, deadline=None, database=None)
DECODERS = {"traces": otlp_json.decode_traces, "logs": otlp_json.decode_logs, "metrics": otlp_json.decode_metrics}


def decode(signal: str, doc: Any) -> list[object]:
    """Every item of the request; a request-level InputError is the only exception allowed."""
    try:
        return list(DECODERS[signal](doc))
    except InputError as error:
        assert str(error), "an InputError must say what is wrong"
        return []


@pytest.mark.parametrize("signal", DECODERS)
@FUZZ
@given(data=st.data())
def test_hostile_requests_decode_item_by_item_into_sane_kpis(signal: str, data: st.DataObject) -> None:
    doc = json_round_trip(data.draw(otlp_json_requests(signal)))
    items = decode(signal, doc)
    rejected, _ = adapt_and_summarize(items)
    assert rejected <= len(items)


@pytest.mark.parametrize("signal", DECODERS)
@FUZZ
@given(doc=hostile_values())
def test_any_json_document_is_decoded_or_refused_with_input_error(signal: str, doc: Any) -> None:
    adapt_and_summarize(decode(signal, json_round_trip(doc)))


@FUZZ
@given(value=malformed_any_values())
@example(value={"kvlistValue": {"values": [{"value": {"intValue": "1"}}]}})  # kvlist entry without a key
@example(value={"doubleValue": 10**400})  # Python ints are unbounded, floats are not
@example(value={"intValue": "9" * 400})  # an int64 field far past 64 bits
def test_a_malformed_attribute_value_rejects_only_its_item(value: Any) -> None:
    good = {"name": "chat", "attributes": [{"key": "session.id", "value": {"stringValue": "s-1"}}]}
    bad = {"name": "chat", "attributes": [{"key": "x", "value": value}]}
    doc = {"resourceSpans": [{"scopeSpans": [{"spans": [bad, good]}]}]}
    items = decode("traces", json_round_trip(doc))
    assert len(items) == 2 and not isinstance(items[1], InputError)


@FUZZ
@given(value=nested_any_value(max_depth=200))
def test_deeply_nested_attribute_values_are_refused_not_recursed_into(value: dict[str, Any]) -> None:
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": [{"key": "deep", "value": value}]}]}]}]}
    items = decode("logs", doc)
    assert len(items) == 1


def points(*points: dict[str, Any]) -> dict[str, Any]:
    return {"resourceMetrics": [{"scopeMetrics": [{"metrics": [{"name": "m", "sum": {"dataPoints": list(points)}}]}]}]}


@pytest.mark.parametrize(
    ("signal", "doc"),
    [
        ("metrics", points({"asInt": "9" * 400}, {"asInt": 2**64}, {"asDouble": 1e308}, {"asDouble": "1e999"})),
        ("traces", {"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": str(2**63)}]}]}]}),
        ("logs", {"resourceLogs": [{"resource": {"attributes": [{"key": "k", "value": {"doubleValue": 10**400}}]}}]}),
        ("logs", {"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": [{"key": 7, "value": {}}]}]}]}]}),
    ],
)
def test_out_of_range_numbers_are_input_errors(signal: str, doc: dict[str, Any]) -> None:
    adapt_and_summarize(decode(signal, doc))


@pytest.mark.parametrize("bad", POISONED_LOG_RECORDS)
def test_values_that_poisoned_a_session_are_rejected_item_by_item(bad: dict[str, Any]) -> None:
    good = api_request(request_id="c", cost_usd=0.5)
    doc = {"resourceLogs": [{"scopeLogs": [{"logRecords": [bad, good, good]}]}]}
    rejected, summaries = adapt_and_summarize(decode("logs", doc))
    assert rejected == 1
    [summary] = summaries
    assert summary.api_requests == 1 and summary.cost_usd == 0.5
