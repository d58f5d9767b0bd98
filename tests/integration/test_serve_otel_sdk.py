"""A session sent with the real OpenTelemetry Python SDK exporters (gRPC, HTTP/protobuf) and as raw
OTLP/JSON to a real kpiloop server; exact KPIs checked in the history file and on /metrics."""

from __future__ import annotations

import math
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

from kpiloop.config import KpiloopConfig
from kpiloop.pipeline import Endpoints, Server, build_server
from kpiloop.types import SystemClock
from tests.otlp_requests import json_kv

S = 1_000_000_000
T0 = 1_770_000_000 * S
SESSION = "sdk-session-1"
AGENT = "sdk-agent"
MODEL = "claude-sonnet-4-5"
TOKEN_SPANS = [  # (start s, end s, input, output, cache_read, cache_creation)
    (0, 10, 1000, 200, 8000, 800),
    (20, 30, 500, 300, 9000, 0),
]
TOOL_SPANS = [  # (start s, end s, tool, success)
    (10, 12, "Read", True),
    (12, 15, "Edit", True),
    (15, 16, "TaskCreate", True),
    (30, 40, "Bash", False),
]
EVALUATIONS = [("relevance", 0.8), ("relevance", 0.9), ("hallucination", 0.1)]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    endpoints = Endpoints("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")
    running = build_server(KpiloopConfig(), tmp_path / "data", SystemClock(), endpoints)
    running.start()
    try:
        yield running
    finally:
        running.shutdown()


def send_with_sdk(server: Server, protocol: str, end_as: str) -> None:
    resource = Resource.create({"service.name": "my-agent", "agent.type": AGENT})
    span_exporter: SpanExporter
    log_exporter: LogRecordExporter
    if protocol == "grpc":
        target = f"127.0.0.1:{server.grpc.port}"
        span_exporter, log_exporter = GrpcSpanExporter(target, insecure=True), GrpcLogExporter(target, insecure=True)
    else:
        base = f"http://127.0.0.1:{server.http.port}"
        span_exporter = HttpSpanExporter(f"{base}/v1/traces")
        log_exporter = HttpLogExporter(f"{base}/v1/logs")
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
    tracer, logger = tracer_provider.get_tracer("test"), logger_provider.get_logger("test")
    for start, end, inp, out, read, write in TOKEN_SPANS:
        span = tracer.start_span("hook:token-metrics-extraction", start_time=T0 + start * S)
        for key, value in (("input", inp), ("output", out), ("cache_read", read), ("cache_creation", write)):
            span.set_attribute(f"tokens.{key}", value)
        span.set_attribute("tokens.model", MODEL)
        span.set_attribute("session.id", SESSION)
        span.set_status(Status(StatusCode.OK))
        span.end(end_time=T0 + end * S)
    for start, end, tool, success in TOOL_SPANS:
        span = tracer.start_span("hook:builtin-post-tool", start_time=T0 + start * S)
        span.set_attributes({"builtin.tool": tool, "builtin.success": success, "session.id": SESSION})
        span.end(end_time=T0 + end * S)  # status left UNSET: not a failure by itself
    for name, score in EVALUATIONS:
        attributes: dict[str, str | float] = {
            "gen_ai.evaluation.name": name,
            "gen_ai.evaluation.score.value": score,
            "session.id": SESSION,
        }
        logger.emit(timestamp=T0 + 100 * S, event_name="gen_ai.evaluation.result", attributes=attributes)
    if end_as == "span":
        tracer.start_span("session.end", start_time=T0 + 60 * S, attributes={"session.id": SESSION}).end(
            end_time=T0 + 60 * S
        )
    else:
        logger.emit(timestamp=T0 + 60 * S, event_name="session.end", attributes={"session.id": SESSION})
    tracer_provider.shutdown()
    logger_provider.shutdown()


def otlp_json_requests() -> tuple[dict, dict]:
    kv = json_kv

    def span(name: str, start: int, end: int, attrs: dict) -> dict:
        return {
            "traceId": "5b8efff798038103d269b633813fc60c",
            "spanId": f"{start + 1:016x}",
            "name": name,
            "startTimeUnixNano": str(T0 + start * S),
            "endTimeUnixNano": str(T0 + end * S),
            "attributes": [kv(k, v) for k, v in {**attrs, "session.id": SESSION}.items()],
            "status": {"code": "STATUS_CODE_OK"},
        }

    spans = [
        span(
            "hook:token-metrics-extraction",
            s,
            e,
            {
                "tokens.input": i,
                "tokens.output": o,
                "tokens.cache_read": r,
                "tokens.cache_creation": w,
                "tokens.model": MODEL,
            },
        )
        for s, e, i, o, r, w in TOKEN_SPANS
    ] + [span("hook:builtin-post-tool", s, e, {"builtin.tool": t, "builtin.success": ok}) for s, e, t, ok in TOOL_SPANS]
    resource = {"attributes": [kv("service.name", "my-agent"), kv("agent.type", AGENT)]}
    traces = {"resourceSpans": [{"resource": resource, "scopeSpans": [{"scope": {"name": "t"}, "spans": spans}]}]}
    records = [
        {
            "timeUnixNano": str(T0 + 100 * S),
            "eventName": "gen_ai.evaluation.result",
            "attributes": [
                kv("gen_ai.evaluation.name", n),
                kv("gen_ai.evaluation.score.value", v),
                kv("session.id", SESSION),
            ],
        }
        for n, v in EVALUATIONS
    ] + [{"timeUnixNano": str(T0 + 60 * S), "eventName": "session.end", "attributes": [kv("session.id", SESSION)]}]
    logs = {"resourceLogs": [{"resource": resource, "scopeLogs": [{"scope": {"name": "t"}, "logRecords": records}]}]}
    return traces, logs


def post_json(server: Server, path: str, body: dict) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http.port}{path}",
        data=orjson.dumps(body),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert orjson.loads(response.read()) == {}  # no partial_success: every item was usable
        return int(response.status)


def wait_for_history(server: Server, lines: int = 1, timeout: float = 15.0) -> list[dict]:
    path = server.data_dir / "history" / "kpis.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(found := path.read_bytes().splitlines()) >= lines:
            return [orjson.loads(line) for line in found]
        time.sleep(0.05)
    raise AssertionError(f"no history line after {timeout} s")


def scrape(server: Server) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.prometheus.port}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples


def assert_the_session(server: Server) -> None:
    (line,) = wait_for_history(server)
    assert (line["session_id"], line["agent_type"], line["model"]) == (SESSION, AGENT, MODEL)
    assert line["duration_seconds"] == 40.0  # first start 0 s → last end 40 s; session.end does not extend it
    assert line["tokens"] == {
        "input": 1500, "output": 500, "cache_read": 17000, "cache_creation": 800,
        "cache_creation_5m": 800, "cache_creation_1h": 0,
    }  # fmt: skip
    kpis = line["kpis"]
    assert kpis["token_efficiency"] == 500 / (1500 + 500 + 17000 + 800)
    assert kpis["cache_efficiency"] == 17000 / (1500 + 17000 + 800)
    assert kpis["active_time_ratio"] == 36 / 40  # union 0–16 s and 20–40 s
    assert kpis["tool_overhead_ratio"] == 1 / 3  # TaskCreate / (Read, Edit, Bash)
    assert kpis["error_rate"] == 1 / 6  # failed Bash / (4 tools + 2 API calls)
    assert kpis["task_completion_rate"] == 0.0  # 1 TaskCreate, no TaskUpdate
    assert math.isclose(kpis["quality_relevance"], 0.85)  # median of 0.8 and 0.9
    assert math.isclose(kpis["quality_hallucination"], 0.1)
    assert kpis["quality_faithfulness"] is None
    # claude-sonnet-4 prices per million: input 3, output 15, cache read 0.30, 5-minute cache write 3.75
    assert math.isclose(line["cost_usd"], (1500 * 3 + 500 * 15 + 17000 * 0.3 + 800 * 3.75) / 1e6, rel_tol=1e-12)
    assert line["close_reason"] == "session_end"
    # the plan's hard thresholds: task completion 0 < 0.70 and error rate 1/6 > 0.10 are CRITICAL
    assert line["alert_level"] == "CRITICAL"
    assert {a["kpi"] for a in line["alerts"] if a["severity"] == "CRITICAL"} == {"task_completion_rate", "error_rate"}
    metrics = scrape(server)
    labels = f'agent_type="{AGENT}",model="{MODEL}"'
    assert metrics[f"agent_performance_token_efficiency_sum{{{labels}}}"] == kpis["token_efficiency"]
    assert metrics[f"agent_performance_token_efficiency_count{{{labels}}}"] == 1.0
    assert metrics[f'agent_performance_tokens_total{{{labels},type="output"}}'] == 500.0
    assert metrics[f'agent_performance_tool_calls_total{{agent_type="{AGENT}",outcome="failure"}}'] == 1.0
    assert metrics[f'agent_performance_tool_calls_total{{agent_type="{AGENT}",outcome="success"}}'] == 3.0
    sessions = f'agent_performance_sessions_total{{agent_type="{AGENT}",alert_level="CRITICAL",model="{MODEL}"}}'
    assert metrics[sessions] == 1.0  # labels in sorted order, as prometheus_client writes them
    alerts = f'agent_performance_alerts_total{{agent_type="{AGENT}",kpi="error_rate",severity="CRITICAL"}}'
    assert metrics[alerts] == 1.0
    assert math.isclose(metrics[f"agent_performance_cost_usd_total{{{labels}}}"], line["cost_usd"])


@pytest.mark.parametrize(("protocol", "end_as"), [("grpc", "span"), ("grpc", "log"), ("http", "span"), ("http", "log")])
def test_a_session_from_the_otel_sdk(server, protocol, end_as):
    send_with_sdk(server, protocol, end_as)
    assert_the_session(server)


def test_a_session_as_raw_otlp_json(server):
    traces, logs = otlp_json_requests()
    assert post_json(server, "/v1/traces", traces) == 200
    assert post_json(server, "/v1/logs", logs) == 200
    assert_the_session(server)
    received = scrape(server)
    assert received['kpiloop_received_items_total{receiver="otlp_http",signal="traces"}'] == 6.0
    assert received['kpiloop_received_items_total{receiver="otlp_http",signal="logs"}'] == 4.0
