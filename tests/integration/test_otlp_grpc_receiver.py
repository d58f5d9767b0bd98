"""The OTLP/gRPC receiver on loopback, called through a real channel and the OpenTelemetry SDK's
own OTLP exporters: responses, ``partial_success``, status codes with their details, limits."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf.message import Message
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, LogRecordExportResult, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, MetricExportResult
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.ingest import EventQueue, Ingest
from kpiloop.collector.otlp_grpc import GrpcSettings, OtlpGrpcReceiver
from kpiloop.model import ApiCall, Evaluation, Event, ToolCall, UsageMetric
from tests.buggy_adapter import BuggyAdapter, boom_request
from tests.otlp_requests import (
    evaluation_log,
    logs_request,
    metrics_request,
    token_point,
    token_span,
    tool_span,
    traces_request,
)

RECEIVER = "otlp_grpc"
SMALL_LIMIT = 64 * 1024
STATUS_DETAILS_KEY = "grpc-status-details-bin"


# --- request builders (the plan's span vocabulary, GenAI evaluation logs, Claude Code metrics) ---


@dataclass(frozen=True)
class SignalCase:
    """One OTLP service: its method, response type, good and bad items and the events they make."""

    signal: str
    method: str
    response: type[Message]
    rejected_field: str
    good: Callable[[str | None], Message]
    with_bad_item: Callable[[str], Message]
    event_types: tuple[type[Event], ...]


CASES = [
    SignalCase(
        "traces",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        ExportTraceServiceResponse,
        "rejected_spans",
        lambda sid: traces_request(token_span(sid), tool_span(sid)),
        lambda sid: traces_request(token_span(sid, input_tokens=-5), token_span(sid), tool_span(sid)),
        (ApiCall, ToolCall),
    ),
    SignalCase(
        "logs",
        "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
        ExportLogsServiceResponse,
        "rejected_log_records",
        lambda sid: logs_request(evaluation_log(sid)),
        lambda sid: logs_request(evaluation_log(sid, score="high"), evaluation_log(sid)),
        (Evaluation,),
    ),
    SignalCase(
        "metrics",
        "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
        ExportMetricsServiceResponse,
        "rejected_data_points",
        lambda sid: metrics_request(token_point(sid)),
        lambda sid: metrics_request(token_point(sid, value=math.nan), token_point(sid)),
        (UsageMetric,),
    ),
]
TRACES = CASES[0]


# --- the server and a channel ---


class RecordingMetrics:
    """A SelfMetrics fake: sums what the receiver counts, by signal and by (signal, reason)."""

    def __init__(self) -> None:
        self.received_items: Counter[str] = Counter()
        self.refused_items: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def received(self, receiver: str, signal: str, count: int) -> None:
        assert receiver == RECEIVER
        with self._lock:
            self.received_items[signal] += count

    def refused(self, receiver: str, signal: str, reason: str, count: int) -> None:
        assert receiver == RECEIVER
        with self._lock:
            self.refused_items[signal, reason] += count


@dataclass
class Server:
    receiver: OtlpGrpcReceiver
    queue: EventQueue
    channel: grpc.Channel
    metrics: RecordingMetrics = field(default_factory=RecordingMetrics)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.receiver.port}"

    def export(
        self, case: SignalCase, request: Message | bytes, compression: grpc.Compression | None = None
    ) -> Message:
        """Call the service's Export with the request's bytes (raw bytes are sent as they are)."""
        call: grpc.UnaryUnaryMultiCallable[bytes, Message] = self.channel.unary_unary(
            case.method, request_serializer=None, response_deserializer=case.response.FromString
        )
        body = request if isinstance(request, bytes) else request.SerializeToString()
        return call(body, timeout=10, compression=compression)

    def drain(self) -> list[Event]:
        """Every queued event (the response is sent after the enqueue, so nothing is in flight)."""
        events: list[Event] = []
        while (batch := self.queue.get(timeout=0)) is not None:
            events.extend(batch)
        return events


@pytest.fixture
def start_server(request: pytest.FixtureRequest) -> Callable[..., Server]:
    def start(
        max_request_bytes: int = SMALL_LIMIT, max_events: int = 10_000, adapter: EventAdapter | None = None
    ) -> Server:
        threads_before = set(threading.enumerate())
        queue = EventQueue(max_events=max_events)
        metrics = RecordingMetrics()
        ingest = Ingest(RECEIVER, adapter or EventAdapter(), queue, metrics)
        receiver = OtlpGrpcReceiver(GrpcSettings("127.0.0.1", 0, max_request_bytes, workers=4), ingest)
        receiver.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{receiver.port}")
        request.addfinalizer(lambda: stop(receiver, channel, threads_before))
        return Server(receiver, queue, channel, metrics)

    return start


def stop(receiver: OtlpGrpcReceiver, channel: grpc.Channel, threads_before: set[threading.Thread]) -> None:
    channel.close()
    receiver.shutdown()
    deadline = time.monotonic() + 5  # grpc's worker threads end once the stopped server is released
    while (left := set(threading.enumerate()) - threads_before) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left, f"threads left running: {left}"


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


def assert_still_serves(server: Server) -> None:
    """A valid request after the case under test is accepted and its events are queued."""
    server.drain()
    assert server.export(TRACES, traces_request(token_span("still-serving"))) == ExportTraceServiceResponse()
    assert [event.session_id for event in server.drain()] == ["still-serving"]


def status_details(error: grpc.RpcError) -> Status:
    """The ``google.rpc.Status`` sent in the ``grpc-status-details-bin`` trailer."""
    (details,) = [item.value for item in error.trailing_metadata() or () if item.key == STATUS_DETAILS_KEY]
    assert isinstance(details, bytes)
    return Status.FromString(details)


def retry_delay_seconds(status: Status) -> int:
    (detail,) = status.details
    retry = RetryInfo()
    assert detail.Unpack(retry)
    return int(retry.retry_delay.seconds)


# --- accepted ---


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_a_valid_export_returns_an_empty_response_and_queues_events(server, case):
    response = server.export(case, case.good("g-1"))

    assert response == case.response()
    assert not response.HasField("partial_success")
    events = server.drain()
    assert [type(event) for event in events] == list(case.event_types)
    assert {event.session_id for event in events} == {"g-1"}
    assert not server.metrics.refused_items
    assert_still_serves(server)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_bad_items_are_reported_in_partial_success(server, case):
    response = server.export(case, case.with_bad_item("g-2"))

    partial = response.partial_success
    assert getattr(partial, case.rejected_field) == 1
    assert partial.error_message.startswith("1 item(s) rejected") and "must be" in partial.error_message
    events = server.drain()
    assert [type(event) for event in events] == list(case.event_types)
    assert {event.session_id for event in events} == {"g-2"}
    assert server.metrics.refused_items == {(case.signal, "bad_value"): 1}
    assert_still_serves(server)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_items_without_a_session_are_accepted_without_events(server, case):
    assert server.export(case, case.good(None)) == case.response()
    assert server.queue.depth() == 0
    assert not server.metrics.refused_items
    assert_still_serves(server)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_gzip_compressed_requests_are_accepted(server, case):
    response = server.export(case, case.good("g-gz"), compression=grpc.Compression.Gzip)

    assert response == case.response()
    assert {event.session_id for event in server.drain()} == {"g-gz"}


# --- the OpenTelemetry SDK's own exporters ---


def test_the_sdk_span_exporter_delivers_plan_spans(server):
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"session.id": "sdk-traces"}))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = provider.get_tracer("kpiloop-test")
    attributes = {"tokens.input": 1200, "tokens.output": 300, "tokens.cache_read": 4000}
    with tracer.start_as_current_span("hook:token-metrics-extraction", attributes=attributes):
        pass
    with tracer.start_as_current_span("hook:builtin-post-tool", attributes={"builtin.tool": "Edit"}):
        pass
    provider.shutdown()

    exporter = OTLPSpanExporter(endpoint=server.endpoint, insecure=True, compression=grpc.Compression.Gzip)
    try:
        assert exporter.export(spans.get_finished_spans()) == SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()

    api_call, tool_call = server.drain()
    assert isinstance(api_call, ApiCall) and api_call.session_id == "sdk-traces"
    assert (api_call.input_tokens, api_call.output_tokens, api_call.cache_read_tokens) == (1200, 300, 4000)
    assert isinstance(tool_call, ToolCall) and tool_call.tool == "Edit"
    assert server.metrics.received_items == {"traces": 2}


def test_the_sdk_log_exporter_delivers_evaluation_results(server):
    records = InMemoryLogRecordExporter()  # type: ignore[no-untyped-call]
    provider = LoggerProvider(resource=Resource.create({"service.name": "evaluator"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(records))
    attributes: dict[str, str | float] = {
        "session.id": "sdk-logs",
        "gen_ai.evaluation.name": "relevance",
        "gen_ai.evaluation.score.value": 0.5,
    }
    provider.get_logger("kpiloop-test").emit(event_name="gen_ai.evaluation.result", attributes=attributes)
    provider.shutdown()

    exporter = OTLPLogExporter(endpoint=server.endpoint, insecure=True)
    try:
        assert exporter.export(records.get_finished_logs()) == LogRecordExportResult.SUCCESS
    finally:
        exporter.shutdown()

    (evaluation,) = server.drain()
    assert isinstance(evaluation, Evaluation)
    assert (evaluation.session_id, evaluation.name, evaluation.score) == ("sdk-logs", "relevance", 0.5)


def test_the_sdk_metric_exporter_delivers_token_usage(server):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": "claude-code"}))
    usage = provider.get_meter("kpiloop-test").create_counter("claude_code.token.usage", unit="tokens")
    usage.add(250, {"session.id": "sdk-metrics", "type": "input", "model": "claude-opus-4-6"})
    data = reader.get_metrics_data()
    provider.shutdown()
    assert data is not None

    exporter = OTLPMetricExporter(endpoint=server.endpoint, insecure=True)
    try:
        assert exporter.export(data) == MetricExportResult.SUCCESS
    finally:
        exporter.shutdown()

    (sample,) = server.drain()
    assert isinstance(sample, UsageMetric)
    assert (sample.session_id, sample.token_type, sample.value) == ("sdk-metrics", "input", 250)
    assert sample.cumulative  # the SDK's default temporality for counters


# --- refused ---


GARBAGE = [
    pytest.param(b"\xff\xfe\xfd not a protobuf at all", id="garbage"),
    pytest.param(TRACES.good("g-1").SerializeToString()[:-7], id="truncated"),
]


@pytest.mark.parametrize("body", GARBAGE)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_undecodable_bytes_are_answered_invalid_argument(server, case, body):
    with pytest.raises(grpc.RpcError) as refused:
        server.export(case, body)

    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a valid Export" in str(error.details())
    assert server.metrics.refused_items == {(case.signal, "undecodable"): 1}
    assert server.queue.depth() == 0
    assert_still_serves(server)


def test_an_unknown_method_is_answered_unimplemented(server):
    call = server.channel.unary_unary("/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export")
    with pytest.raises(grpc.RpcError) as refused:
        call(b"", timeout=10)

    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert_still_serves(server)


def test_a_full_queue_is_answered_resource_exhausted_with_retry_info(start_server):
    server = start_server(max_events=2)
    server.export(TRACES, TRACES.good("g-first"))
    assert server.queue.depth() == 2

    with pytest.raises(grpc.RpcError) as refused:
        server.export(TRACES, TRACES.good("g-second"))

    error = refused.value
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "queue full" in str(error.details())
    status = status_details(error)
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == str(error.details())
    assert retry_delay_seconds(status) == 1
    assert server.metrics.refused_items == {("traces", "queue_full"): 2}
    assert {event.session_id for event in server.drain()} == {"g-first"}  # the refused request left nothing behind
    assert_still_serves(server)


def test_a_closed_queue_is_answered_unavailable_with_retry_info(server):
    server.queue.close()

    for _ in range(2):  # the server keeps answering while it stops
        with pytest.raises(grpc.RpcError) as refused:
            server.export(CASES[1], CASES[1].good("g-late"))

        error = refused.value
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        status = status_details(error)
        assert status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        assert "shutting down" in status.message
        assert retry_delay_seconds(status) == 5
    assert server.metrics.refused_items == {("logs", "shutting_down"): 2}
    assert server.queue.depth() == 0


def big_request(size: int) -> ExportTraceServiceRequest:
    return traces_request(token_span("g-big", note="x" * size))


@pytest.mark.parametrize(
    ("compression", "size"),
    [
        pytest.param(grpc.Compression.NoCompression, 2 * SMALL_LIMIT, id="plain"),
        pytest.param(grpc.Compression.Gzip, 16 << 20, id="gzip-inflating-past-the-limit"),
    ],
)
def test_a_request_over_max_request_bytes_is_refused(server, compression, size):
    request = big_request(size)

    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as refused:
        server.export(TRACES, request, compression=compression)

    assert time.monotonic() - started < 5
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in str(refused.value.details())
    assert server.queue.depth() == 0
    assert_still_serves(server)


def test_a_request_just_under_max_request_bytes_is_accepted(server):
    request = big_request(SMALL_LIMIT - 1024)
    assert request.ByteSize() <= SMALL_LIMIT

    assert server.export(TRACES, request) == ExportTraceServiceResponse()
    assert {event.session_id for event in server.drain()} == {"g-big"}


def test_concurrent_exports_are_all_served(server):
    failures: list[grpc.RpcError] = []

    def client(number: int) -> None:
        try:
            for round_ in range(5):
                server.export(TRACES, traces_request(token_span(f"c-{number}-{round_}")))
        except grpc.RpcError as error:
            failures.append(error)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert not failures
    assert len({event.session_id for event in server.drain()}) == 40


def test_a_bug_costs_one_request_a_counted_internal_and_the_server_goes_on(start_server, caplog):
    server = start_server(adapter=BuggyAdapter())
    boom = boom_request()
    with caplog.at_level(logging.ERROR), pytest.raises(grpc.RpcError) as raised:
        server.export(TRACES, boom)
    assert raised.value.code() == grpc.StatusCode.INTERNAL
    assert server.metrics.refused_items["traces", "internal"] == 1
    assert "internal error while handling an OTLP/gRPC traces export" in caplog.text
    assert_still_serves(server)
