"""OTLP metrics export to real OTLP receivers on loopback: a gRPC ``MetricsService`` and an OTLP/HTTP
``/v1/metrics`` endpoint that keep every request they get. Exact data points after a flush, through
the exporter alone and through ``build_server`` (a session sent to kpiloop over OTLP/JSON), and an
unreachable or slow endpoint that never holds up recording or a session close."""

from __future__ import annotations

import gzip
import math
import socket
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import orjson
import pytest
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from kpiloop.config import parse_config
from kpiloop.exporters import catalogue as c
from kpiloop.exporters.metrics_store import HistogramValue, MetricsStore
from kpiloop.exporters.otlp_metrics import OtlpMetrics
from kpiloop.exporters.otlp_metrics_config import OtlpSettings
from kpiloop.model import Alert, ApiCall, Assessment, DataCompleteness, SessionSummary, TokenCounts, ToolCall
from kpiloop.pipeline import Endpoints, Server, build_server
from kpiloop.testing import make_summary
from kpiloop.types import AgentType, SessionId, SystemClock
from tests.otlp_requests import json_kv

S = 1_000_000_000
T0 = 1_770_000_000 * S
AGENT, MODEL, SESSION = "export-agent", "claude-sonnet-4-5", "export-session-1"
KEY = "signoz-ingestion-key"
Key = tuple[str, frozenset[tuple[str, str]]]
"""A data point's metric name and attributes."""


# --- capture receivers ---


@dataclass
class Captured:
    """What a capture receiver was sent: each request and its headers (lower-case names)."""

    requests: list[ExportMetricsServiceRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, request: ExportMetricsServiceRequest, headers: dict[str, str]) -> None:
        with self.lock:
            self.requests.append(request)
            self.headers.append(headers)

    def points(self) -> dict[Key, Any]:
        """(metric, attributes) → value: sums and gauges as numbers, histograms as (count, sum, buckets),
        from the last request that carried each series (cumulative: the last is the total)."""
        found: dict[Key, Any] = {}
        with self.lock:
            requests = list(self.requests)
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        for key, value in _metric_points(metric):
                            found[key] = value
        return found


def _metric_points(metric: Metric) -> Iterator[tuple[Key, Any]]:
    kind = metric.WhichOneof("data") or "none"
    for point in getattr(metric, kind).data_points:
        attributes = frozenset((a.key, a.value.string_value) for a in point.attributes)
        if kind == "histogram":
            value: object = (point.count, point.sum, tuple(point.bucket_counts))
        else:
            value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
        yield (metric.name, attributes), value


class CaptureServicer(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, captured: Captured, delay: float, release: threading.Event) -> None:
        self.captured, self.delay, self.release = captured, delay, release

    def Export(self, request, context):
        if self.delay:
            self.release.wait(self.delay)
        self.captured.add(request, {k: v for k, v in context.invocation_metadata()})
        return ExportMetricsServiceResponse()


def start_grpc_capture(delay: float = 0.0) -> tuple[str, Captured, Callable[[], None]]:
    captured, release = Captured(), threading.Event()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    servicer = CaptureServicer(captured, delay, release)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()

    def stop() -> None:
        release.set()
        server.stop(grace=None).wait(5)

    return f"http://127.0.0.1:{port}", captured, stop


def start_http_capture() -> tuple[str, Captured, Callable[[], None]]:
    captured = Captured()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            assert self.path == "/v1/metrics", self.path
            assert self.headers["Content-Type"] == "application/x-protobuf"
            captured.add(ExportMetricsServiceRequest.FromString(body), {k.lower(): v for k, v in self.headers.items()})
            reply = ExportMetricsServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return f"http://127.0.0.1:{server.server_address[1]}", captured, stop


@pytest.fixture
def capture(request: pytest.FixtureRequest) -> Iterator[Callable[..., tuple[str, Captured]]]:
    stops: list[Callable[[], None]] = []

    def start(protocol: str, delay: float = 0.0) -> tuple[str, Captured]:
        url, captured, stop = start_grpc_capture(delay) if protocol == "grpc" else start_http_capture()
        stops.append(stop)
        return url, captured

    yield start
    for stop in stops:
        stop()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def settings(endpoint: str, protocol: str, **changes: object) -> OtlpSettings:
    url = f"{endpoint}/v1/metrics" if protocol == "http/protobuf" else endpoint
    values: dict = dict(
        endpoint=url, protocol=protocol, headers={KEY: "key-123"}, insecure=True, timeout=5.0, export_interval=3600.0
    )
    return OtlpSettings(**{**values, **changes})


# --- inputs ---


def summary() -> SessionSummary:
    return make_summary(
        session_id=SessionId(SESSION), agent_type=AgentType(AGENT), model=MODEL, start_ns=T0, end_ns=T0 + 60 * S,
        tokens=TokenCounts(input=1500, output=500), cost_usd=0.012, api_requests=2, api_errors=0, tool_calls=2,
        tool_failures=1, tool_denials=0, tools_by_name={"Read": 1, "Bash": 1}, management_tool_calls=0,
        productive_tool_calls=2, tasks_created=0, tasks_completed=None, task_updates=0, active_seconds=40.0,
        reported_active_seconds=None, prompts=1, lines_added=0, lines_removed=0, subagents={}, quality={},
        kpis={"token_efficiency": 0.25, "error_rate": 0.25, "active_time_ratio": 2 / 3},
        cost_per_output_token=0.012 / 500, data_completeness=DataCompleteness(api_calls=True, tool_calls=True),
        assessment=Assessment("CRITICAL", {}, (Alert("error_rate", "CRITICAL", "threshold", 0.25),)),
    )  # fmt: skip


def api_call(input_tokens: int, output_tokens: int) -> ApiCall:
    return ApiCall(
        session_id=SessionId(SESSION), agent_type=AgentType(AGENT), start_ns=T0, end_ns=T0 + S, source="genai",
        model=MODEL, input_tokens=input_tokens, output_tokens=output_tokens,
    )  # fmt: skip


def tool_call(ok: bool) -> ToolCall:
    return ToolCall(
        session_id=SessionId(SESSION), agent_type=AgentType(AGENT), start_ns=T0, end_ns=T0, source="genai",
        tool="Bash", ok=ok,
    )  # fmt: skip


def attrs(**values: str) -> frozenset[tuple[str, str]]:
    return frozenset(values.items())


LABELS = attrs(agent_type=AGENT, model=MODEL)


def buckets_with_one(kpi: str, value: float) -> tuple[int, ...]:
    bounds = c.KPI_BUCKETS[kpi]
    counts = [0] * (len(bounds) + 1)
    counts[next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))] = 1
    return tuple(counts)


# --- the exporter alone ---


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_exact_data_points_reach_a_real_otlp_receiver(capture, protocol):
    url, captured = capture("grpc" if protocol == "grpc" else "http")
    otlp = OtlpMetrics(settings(url, protocol), MetricsStore())
    otlp.start()
    try:
        otlp.api_call(api_call(1000, 200), 0.0075)
        otlp.api_call(api_call(500, 300), 0.0045)
        otlp.tool_call(tool_call(ok=True))
        otlp.tool_call(tool_call(ok=False))
        otlp.consume(summary())
        otlp.baseline_updated(AGENT, "error_rate", -2.0, 0.5)
        otlp.incident(AGENT, "error_rate")
        otlp.suggestions_counted(AGENT, {"active": 2, "promoted": 1, "retired": 0})
        otlp.gauge_callback(c.OPEN_SESSIONS, lambda: {(AGENT,): 2.0})
        assert otlp.force_flush()
    finally:
        otlp.shutdown()
    got = captured.points()
    assert got["agent.performance.tokens", LABELS | attrs(type="input")] == 1500
    assert got["agent.performance.tokens", LABELS | attrs(type="output")] == 500
    assert math.isclose(got["agent.performance.cost", LABELS], 0.012)
    assert got["agent.performance.tool_calls", attrs(agent_type=AGENT, outcome="success")] == 1
    assert got["agent.performance.tool_calls", attrs(agent_type=AGENT, outcome="failure")] == 1
    assert got["agent.performance.sessions", LABELS | attrs(alert_level="CRITICAL")] == 1
    assert got["agent.performance.alerts", attrs(agent_type=AGENT, kpi="error_rate", severity="CRITICAL")] == 1
    assert got["agent.performance.incidents", attrs(agent_type=AGENT, kpi="error_rate")] == 1
    assert got["agent.performance.baseline", attrs(agent_type=AGENT, kpi="error_rate", stat="center")] == -2.0
    assert got["agent.performance.baseline", attrs(agent_type=AGENT, kpi="error_rate", stat="scale")] == 0.5
    assert got["agent.performance.open_sessions", attrs(agent_type=AGENT)] == 2.0
    assert got["agent.performance.suggestions", attrs(agent_type=AGENT, state="active")] == 2
    assert got["agent.performance.suggestions", attrs(agent_type=AGENT, state="promoted")] == 1
    assert got["agent.performance.suggestions", attrs(agent_type=AGENT, state="retired")] == 0
    for kpi, value in [("token_efficiency", 0.25), ("error_rate", 0.25), ("active_time_ratio", 2 / 3)]:
        assert got[f"agent.performance.{kpi}", LABELS] == (1, value, buckets_with_one(kpi, value))
    cost_per_token = 0.012 / 500
    assert got["agent.performance.cost_per_output_token", LABELS] == (
        1, cost_per_token, buckets_with_one("cost_per_output_token", cost_per_token),
    )  # fmt: skip
    assert not [key for key in got if "session_id" in dict(key[1])]
    assert {name for name, _ in got} <= {m.otlp_name for m in c.ALL_METRICS}
    assert all(headers[KEY] == "key-123" for headers in captured.headers)
    resource = {a.key: a.value.string_value for a in captured.requests[-1].resource_metrics[0].resource.attributes}
    assert resource["service.name"] == "kpiloop"


def test_the_session_id_attribute_when_opted_in(capture):
    url, captured = capture("grpc")
    otlp = OtlpMetrics(settings(url, "grpc", include_session_id=True), MetricsStore())
    otlp.start()
    try:
        otlp.consume(summary())
        otlp.force_flush()
    finally:
        otlp.shutdown()
    sessions = LABELS | attrs(alert_level="CRITICAL", session_id=SESSION)
    assert captured.points()["agent.performance.sessions", sessions] == 1


# --- an unreachable or slow endpoint ---


def export_failures(store: MetricsStore) -> float:
    (values,) = [v for v in store.snapshot() if v.definition is c.EXPORT_FAILURES]
    failures = values.series.get(("otlp",), 0.0)
    assert isinstance(failures, float)
    return failures


def record_a_lot(otlp: OtlpMetrics) -> float:
    """Record 200 closed sessions and 400 calls; the longest single call in seconds."""
    longest = 0.0
    for _ in range(200):
        started = time.perf_counter()
        otlp.consume(summary())
        otlp.api_call(api_call(10, 5), 0.001)
        otlp.tool_call(tool_call(ok=True))
        longest = max(longest, time.perf_counter() - started)
    return longest


def wait_for_failures(store: MetricsStore, at_least: float, timeout: float = 15.0) -> float:
    deadline = time.monotonic() + timeout
    while (failures := export_failures(store)) < at_least:
        assert time.monotonic() < deadline, f"{failures} export failure(s) counted after {timeout} s"
        time.sleep(0.05)
    return failures


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_an_unreachable_endpoint_never_blocks_and_failures_are_counted(protocol):
    store = MetricsStore()
    timeout = 0.5
    otlp = OtlpMetrics(
        settings(f"http://127.0.0.1:{closed_port()}", protocol, timeout=timeout, export_interval=0.05), store
    )
    otlp.start()
    try:
        started = time.perf_counter()
        longest = record_a_lot(otlp)
        assert time.perf_counter() - started < 3.0
        assert longest < timeout / 2  # no call waits for the network
        wait_for_failures(store, 2)
        assert record_a_lot(otlp) < timeout / 2
    finally:
        stopping = time.perf_counter()
        otlp.shutdown()
    assert time.perf_counter() - stopping < timeout + 2.0


def test_a_slow_endpoint_times_out_without_holding_up_recording(capture):
    url, captured = capture("grpc", delay=30.0)
    store = MetricsStore()
    timeout = 0.3
    otlp = OtlpMetrics(settings(url, "grpc", timeout=timeout, export_interval=0.05), store)
    otlp.start()
    try:
        assert record_a_lot(otlp) < timeout / 2
        wait_for_failures(store, 1)
        assert record_a_lot(otlp) < timeout / 2
    finally:
        stopping = time.perf_counter()
        otlp.shutdown()
    assert time.perf_counter() - stopping < timeout + 2.0


# --- through build_server: a session sent to kpiloop, its metrics sent on over OTLP ---


def otlp_json(session: str) -> tuple[dict, dict]:
    kv = json_kv

    def span(name: str, start: int, end: int, attributes: dict) -> dict:
        return {
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": f"{start + 1:016x}", "name": name,
            "startTimeUnixNano": str(T0 + start * S), "endTimeUnixNano": str(T0 + end * S),
            "attributes": [kv(k, v) for k, v in {**attributes, "session.id": session}.items()],
            "status": {"code": "STATUS_CODE_OK"},
        }  # fmt: skip

    tokens = {"tokens.input": 1000, "tokens.output": 250, "tokens.cache_read": 0, "tokens.model": MODEL}
    spans = [
        span("hook:token-metrics-extraction", 0, 10, tokens),
        span("hook:builtin-post-tool", 10, 12, {"builtin.tool": "Read", "builtin.success": True}),
        span("hook:builtin-post-tool", 12, 20, {"builtin.tool": "Bash", "builtin.success": False}),
    ]
    resource = {"attributes": [kv("service.name", "my-agent"), kv("agent.type", AGENT)]}
    traces = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}
    end = {"timeUnixNano": str(T0 + 30 * S), "eventName": "session.end", "attributes": [kv("session.id", session)]}
    logs = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": {"name": "t"}, "logRecords": [end]}]}]}
    return traces, logs


def post(server: Server, path: str, body: dict) -> None:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http.port}{path}",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def wait_for_history(server: Server, timeout: float = 15.0) -> dict:
    path = server.data_dir / "history" / "kpis.jsonl"
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_bytes().strip()):
        assert time.monotonic() < deadline, f"no history line after {timeout} s"
        time.sleep(0.05)
    return dict(orjson.loads(path.read_bytes().splitlines()[0]))


def serve_config(endpoint: str, protocol: str, pipeline_exporters: str = "[prometheus, feedback, otlp]") -> str:
    return f"""
exporters:
  otlp:
    endpoint: {endpoint}
    protocol: {protocol}
    headers:
      signoz-ingestion-key: ${{env:TEST_INGESTION_KEY}}
    export_interval: 1h
service:
  pipelines:
    sessions:
      receivers: [otlp]
      processors: [session_kpi]
      exporters: {pipeline_exporters}
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_a_session_received_by_kpiloop_is_exported_over_otlp_on_shutdown(capture, tmp_path: Path, protocol):
    url, captured = capture("grpc" if protocol == "grpc" else "http")
    config = parse_config(serve_config(url, protocol), {"TEST_INGESTION_KEY": "k-789"})
    endpoints = Endpoints("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
    server = build_server(config, tmp_path / "data", SystemClock(), endpoints, environ={})
    assert server.otlp is not None
    server.start()
    try:
        traces, logs = otlp_json(SESSION)
        post(server, "/v1/traces", traces)
        post(server, "/v1/logs", logs)
        line = wait_for_history(server)
    finally:
        server.shutdown()  # the last export happens here
    got = captured.points()
    assert got["agent.performance.tokens", LABELS | attrs(type="input")] == 1000
    assert got["agent.performance.tokens", LABELS | attrs(type="output")] == 250
    assert math.isclose(got["agent.performance.cost", LABELS], line["cost_usd"])
    assert math.isclose(line["cost_usd"], (1000 * 3 + 250 * 15) / 1e6)  # claude-sonnet-4 list prices
    assert got["agent.performance.tool_calls", attrs(agent_type=AGENT, outcome="failure")] == 1
    assert got["agent.performance.tool_calls", attrs(agent_type=AGENT, outcome="success")] == 1
    level = line["alert_level"]
    assert level == "CRITICAL"  # error rate 1/3 > 0.10, the plan's hard threshold
    assert got["agent.performance.sessions", LABELS | attrs(alert_level=level)] == 1
    assert got["agent.performance.alerts", attrs(agent_type=AGENT, kpi="error_rate", severity="CRITICAL")] == 1
    error_rate = line["kpis"]["error_rate"]
    assert error_rate == 1 / 3  # failed Bash / (2 tools + 1 API call)
    assert got["agent.performance.error_rate", LABELS] == (1, error_rate, buckets_with_one("error_rate", error_rate))
    token_efficiency = line["kpis"]["token_efficiency"]
    assert got["agent.performance.token_efficiency", LABELS][1] == token_efficiency == 250 / 1250
    assert_same_as_on_the_prometheus_side(server, got)
    assert all(headers[KEY] == "k-789" for headers in captured.headers)
    assert not [key for key in got if "session_id" in dict(key[1])]


def assert_same_as_on_the_prometheus_side(server: Server, got: dict) -> None:
    """Every agent_performance_* series on /metrics (but the live open-sessions gauge) has its OTLP twin
    with the same value, and the OTLP side has nothing more."""
    expected = {}
    for values in server.store.snapshot():
        metric = values.definition
        if metric.otlp_name is None or metric is c.OPEN_SESSIONS:
            continue
        for labels, value in values.series.items():
            key = (metric.otlp_name, frozenset(zip(metric.labels, labels, strict=True)))
            expected[key] = (
                (value.count, value.total, tuple(value.buckets)) if isinstance(value, HistogramValue) else value
            )
    assert expected  # KPIs, sessions, tokens, cost, tool calls, alerts at least
    assert {k: v for k, v in got.items() if k[0] != "agent.performance.open_sessions"} == expected


@pytest.mark.parametrize(
    ("pipeline_exporters", "enabled"), [("[prometheus, feedback]", "true"), ("[prometheus, feedback, otlp]", "false")]
)
def test_no_otlp_exporter_unless_a_pipeline_names_it_and_it_is_enabled(capture, tmp_path, pipeline_exporters, enabled):
    url, captured = capture("grpc")
    text = serve_config(url, "grpc", pipeline_exporters).replace("export_interval: 1h", f"enabled: {enabled}")
    config = parse_config(text, {"TEST_INGESTION_KEY": "k"})
    server = build_server(
        config, tmp_path / "data", SystemClock(), Endpoints("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
    )
    assert server.otlp is None
    assert captured.requests == []
