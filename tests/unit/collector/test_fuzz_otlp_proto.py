"""Property-based fuzzing of the OTLP protobuf decoder (shared by the gRPC and HTTP receivers): random,
truncated and mutated bytes are refused with InputError, valid requests carrying hostile values are
decoded item by item, and nothing NaN, infinite, negative or over 2^63 reaches a KPI."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs

from kpiloop.collector import otlp_proto
from kpiloop.errors import InputError
from tests.strategies import adapt_and_summarize, deep_proto_log_request, mutated_bytes, otlp_proto_requests

FUZZ = settings(derandomize=True, max_examples=60, deadline=None, database=None)
DECODERS: dict[str, Callable[[bytes], Iterator[object]]] = {
    "traces": lambda data: otlp_proto.decode_traces(otlp_proto.parse_traces(data)),
    "logs": lambda data: otlp_proto.decode_logs(otlp_proto.parse_logs(data)),
    "metrics": lambda data: otlp_proto.decode_metrics(otlp_proto.parse_metrics(data)),
}


def decode(signal: str, data: bytes) -> list[object]:
    """Every item of the request; a request-level InputError (with a message) is the only exception allowed."""
    try:
        return list(DECODERS[signal](data))
    except InputError as error:
        assert str(error)
        return []


@pytest.mark.parametrize("signal", DECODERS)
@FUZZ
@given(data=st.binary(max_size=512))
@example(data=b"\x0a\xff\xff\xff\xff\x0f")  # a length prefix far past the end
@example(data=b"\x0a\x02\x0a\x80")  # a truncated nested message
def test_random_bytes_are_decoded_or_refused_with_input_error(signal: str, data: bytes) -> None:
    adapt_and_summarize(decode(signal, data))


@pytest.mark.parametrize("signal", DECODERS)
@FUZZ
@given(data=st.data())
def test_hostile_values_in_valid_requests_are_dropped_item_by_item(signal: str, data: st.DataObject) -> None:
    request = data.draw(otlp_proto_requests(signal))
    items = decode(signal, request.SerializeToString())
    rejected, _ = adapt_and_summarize(items)
    assert rejected <= len(items)


@pytest.mark.parametrize("signal", DECODERS)
@FUZZ
@given(data=st.data())
def test_truncated_and_mutated_requests_never_raise_anything_else(signal: str, data: st.DataObject) -> None:
    valid = data.draw(otlp_proto_requests(signal)).SerializeToString()
    adapt_and_summarize(decode(signal, data.draw(mutated_bytes(valid))))


@pytest.mark.parametrize("depth", [otlp_proto.MAX_DEPTH + 1, 40, 200])
def test_deeply_nested_values_reject_only_their_item(depth: int) -> None:
    items = decode("logs", deep_proto_log_request(depth))
    # protobuf itself refuses messages nested past its recursion limit (100): then the whole request goes
    assert items == [] or (isinstance(items[0], InputError) and not isinstance(items[1], InputError))
    assert items or depth > 45  # each array level is two messages


def test_a_timestamp_past_2_to_the_63_rejects_its_item() -> None:
    late = LogRecord(time_unix_nano=2**64 - 1)
    request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[late])])])
    [item] = decode("logs", request.SerializeToString())
    assert isinstance(item, InputError) and item.reason == "bad_value"
