"""The SigNoz dashboard dashboards/signoz-kpiloop.json against kpiloop's real OTLP export.

SigNoz (v0.88.0 and later) keeps OTLP metric names, so the dashboard's names are not the Prometheus
exposition names of kpiloop's /metrics (``agent.performance.sessions`` there is
``agent_performance_sessions_total`` here): scraping /metrics cannot check it. Instead:

1. kpiloop's OTLP exporter (``OtlpMetrics``) sends one session's metrics — every KPI, tokens, cost, tool
   calls, an alert, an incident, baselines, suggestions, open sessions — to a real gRPC OTLP receiver,
   and every metric the dashboard references must arrive, with data, as the OTLP kind its SigNoz name
   implies (``.bucket``/``.sum``/``.count`` → histogram; otherwise the catalogue's sum or gauge).
2. The two captured exports are turned into the series SigNoz's ``signozclickhousemetrics`` exporter
   writes (name as sent; histograms as ``<name>.bucket`` with ``le``, ``<name>.sum``, ``<name>.count``;
   ``__temporality__``; point and resource attributes as labels), pushed into a real Prometheus (Debian's
   ``prometheus`` binary, remote-write receiver), and every PromQL query of the dashboard is run: all
   evaluate without error or warning, every panel over OTLP metrics returns data, and the KPI medians
   and means, baselines, sessions, tokens, cache hit rate, cost, tool calls, alerts, incidents,
   suggestions and open sessions equal the values computed by hand. SigNoz runs the same PromQL engine
   over its ClickHouse tables. Prometheus 2.42 predates the quoted-name syntax ``{"a.b", ...}``, so
   each selector is run in its equivalent ``{__name__="a.b", ...}`` form.

The kpiloop health row's ``kpiloop_*`` series come only from scraping /metrics (not OTLP): those queries
must evaluate, and are empty here.
"""

from __future__ import annotations

import math
import re
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from kpiloop.exporters import catalogue as c
from kpiloop.exporters.metrics_store import MetricsStore
from kpiloop.exporters.otlp_metrics import OtlpMetrics
from kpiloop.feedback.transforms import KPI_SCALES
from kpiloop.model import Alert, ApiCall, Assessment, DataCompleteness, SessionSummary, TokenCounts
from kpiloop.testing import make_summary
from kpiloop.types import AgentType, SessionId
from tests.integration.test_otlp_metrics_export import settings, start_grpc_capture, tool_call
from tests.integration.test_prometheus_dashboards import Prometheus

ROOT = Path(__file__).parents[2]
DASHBOARD = ROOT / "dashboards" / "signoz-kpiloop.json"
AGENT, MODEL, SESSION = "export-agent", "claude-sonnet-4-5", "export-session-1"
TEMPLATE = {"{{.agent_type}}": AGENT, "{{.model}}": MODEL}
KPIS = {
    "token_efficiency": 0.25, "task_completion_rate": 0.75, "active_time_ratio": 2 / 3, "tool_overhead_ratio": 0.4,
    "cache_efficiency": 0.6, "error_rate": 0.25, "quality_relevance": 0.8, "quality_faithfulness": 0.9,
    "quality_coherence": 0.7, "quality_hallucination": 0.05,
}  # fmt: skip
COST, OUTPUT = 0.012, 500
COST_PER_OUTPUT_TOKEN = COST / OUTPUT
TOKENS = {"input": 1000, "output": OUTPUT, "cache_read": 3000, "cache_creation": 1000}
SUGGESTIONS = {"active": 2, "promoted": 1, "retired": 0}
WINDOW_MS = 5 * 60 * 1000
"""The dashboard's rate window (``[5m]``)."""
DAY_MS = 24 * 3600 * 1000
QUOTED_NAME = re.compile(r'\{\s*"([^"]+)"')
Series = dict[tuple[tuple[str, str], ...], float]
"""SigNoz-shaped series (sorted labels, ``__name__`` included) → value."""
Exports = tuple[list[ExportMetricsServiceRequest], list[ExportMetricsServiceRequest]]
"""The OTLP requests of the first export, and of the second."""


def summary() -> SessionSummary:
    """A closed CRITICAL session with every KPI, its cost per output token and one CRITICAL alert."""
    return make_summary(
        session_id=SessionId(SESSION), agent_type=AgentType(AGENT), model=MODEL,
        tokens=TokenCounts(input=TOKENS["input"], output=OUTPUT), cost_usd=COST, kpis=dict(KPIS),
        cost_per_output_token=COST_PER_OUTPUT_TOKEN,
        data_completeness=DataCompleteness(api_calls=True, tool_calls=True),
        assessment=Assessment("CRITICAL", {}, (Alert("error_rate", "CRITICAL", "threshold", 0.25),)),
    )  # fmt: skip


def api_call() -> ApiCall:
    return ApiCall(
        session_id=SessionId(SESSION), agent_type=AgentType(AGENT), start_ns=0, end_ns=1, source="genai", model=MODEL,
        input_tokens=TOKENS["input"], output_tokens=TOKENS["output"], cache_read_tokens=TOKENS["cache_read"],
        cache_write_5m_tokens=TOKENS["cache_creation"],
    )  # fmt: skip


def baseline_center(kpi: str, value: float) -> float:
    """The centre whose back-transform (exp, or the logistic function) is ``value``."""
    return math.log(value) if KPI_SCALES[kpi].kind == "log" else math.log(value / (1 - value))


def record_one_session(otlp: OtlpMetrics) -> None:
    """Counters and histograms of one session: tokens, cost, tool calls, KPIs, its alert, an incident."""
    otlp.api_call(api_call(), COST)
    otlp.tool_call(tool_call(ok=True))
    otlp.tool_call(tool_call(ok=False))
    otlp.consume(summary())
    otlp.incident(AGENT, "error_rate")


@pytest.fixture(scope="module")
def exports() -> Exports:
    """Two real OTLP exports (cumulative): after one session, and after the same session again."""
    url, captured, stop = start_grpc_capture()
    otlp = OtlpMetrics(settings(url, "grpc"), MetricsStore())
    otlp.start()
    try:
        for kpi, value in (*KPIS.items(), ("cost_per_output_token", COST_PER_OUTPUT_TOKEN)):
            otlp.baseline_updated(AGENT, kpi, baseline_center(kpi, value), 0.5)
        otlp.suggestions_counted(AGENT, SUGGESTIONS)
        otlp.gauge_callback(c.OPEN_SESSIONS, lambda: {(AGENT,): 2.0})
        record_one_session(otlp)
        assert otlp.force_flush()
        first = len(captured.requests)
        record_one_session(otlp)
        assert otlp.force_flush()
    finally:
        otlp.shutdown()
        stop()
    return captured.requests[:first], captured.requests[first:]


def dashboard_queries() -> list[tuple[str, str]]:
    """(widget title, PromQL) of every panel query of the SigNoz dashboard."""
    widgets = orjson.loads(DASHBOARD.read_bytes())["widgets"]
    return [(w["title"], q["query"]) for w in widgets if w["panelTypes"] != "row" for q in w["query"]["promql"]]


def referenced_names() -> set[str]:
    return {name for _, query in dashboard_queries() for name in QUOTED_NAME.findall(query)}


def for_prometheus(query: str) -> str:
    """The query with the dashboard variables set and ``{"a.b", ...}`` written ``{__name__="a.b", ...}``."""
    for variable, value in TEMPLATE.items():
        query = query.replace(variable, value)
    assert "{{" not in query and "$" not in query, query
    return QUOTED_NAME.sub(lambda m: '{__name__="' + m[1] + '"', query)


# --- 1. every referenced metric arrives over OTLP ---


def test_every_metric_the_signoz_dashboard_references_is_exported_over_otlp(exports: Exports) -> None:
    kinds: dict[str, set[str]] = {}
    points: dict[str, int] = {}
    for request in exports[1]:
        for resource_metrics in request.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data") or "none"
                    kinds.setdefault(metric.name, set()).add(kind)
                    points[metric.name] = points.get(metric.name, 0) + len(getattr(metric, kind).data_points)
    by_otlp_name = {m.otlp_name: m for m in c.ALL_METRICS if m.otlp_name}
    names = referenced_names()
    otlp_names = {name for name in names if name.startswith("agent.performance.")}
    assert otlp_names, "the dashboard references no OTLP metric"
    assert {re.sub(r"\.(bucket|sum|count)$", "", n) for n in otlp_names} == set(by_otlp_name)
    for name in sorted(otlp_names):
        parts = re.fullmatch(r"(.+?)(\.bucket|\.sum|\.count)?", name)
        assert parts is not None
        base, suffix = parts.groups()
        definition = by_otlp_name[base]
        expected = "histogram" if suffix else {"counter": "sum", "gauge": "gauge"}[definition.kind]
        assert definition.kind == "histogram" if suffix else definition.kind != "histogram", name
        assert kinds.get(base) == {expected}, (name, kinds.get(base))
        assert points[base] > 0, name


# --- 2. every panel evaluates on a real Prometheus over SigNoz-shaped series ---


def go_float(bound: float) -> str:
    """A bucket bound as Go's ``strconv.FormatFloat(bound, 'f', -1, 64)`` writes the ``le`` label."""
    text = format(Decimal(repr(bound)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def attribute(value: AnyValue) -> str:
    return str(getattr(value, value.WhichOneof("value") or "string_value"))


def signoz_series(requests: list[ExportMetricsServiceRequest]) -> Series:
    """The series SigNoz's signozclickhousemetrics exporter writes for these OTLP requests (the last
    value of each: cumulative)."""
    series: Series = {}

    def put(name: str, labels: dict[str, str], value: float) -> None:
        series[tuple(sorted({**labels, "__name__": name}.items()))] = float(value)

    for request in requests:
        for resource_metrics in request.resource_metrics:
            resource = {a.key: attribute(a.value) for a in resource_metrics.resource.attributes}
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    kind = metric.WhichOneof("data")
                    for point in getattr(metric, kind or "gauge").data_points:
                        labels = {**resource, **{a.key: attribute(a.value) for a in point.attributes}}
                        if kind == "histogram":
                            labels["__temporality__"] = "Cumulative"
                            put(metric.name + ".count", labels, point.count)
                            put(metric.name + ".sum", labels, point.sum)
                            cumulative = 0
                            for bound, count in zip(point.explicit_bounds, point.bucket_counts, strict=False):
                                cumulative += count
                                put(metric.name + ".bucket", {**labels, "le": go_float(bound)}, cumulative)
                            put(metric.name + ".bucket", {**labels, "le": "+Inf"}, point.count)
                        else:
                            temporality = "Cumulative" if kind == "sum" else "Unspecified"
                            value = point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                            put(metric.name, {**labels, "__temporality__": temporality}, value)
    return series


def _varint(number: int) -> bytes:
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def write_request(series: Series, timestamp_ms: int) -> bytes:
    """A Prometheus remote-write ``WriteRequest`` (prompb): one sample per series at ``timestamp_ms``."""
    body = b""
    for labels, value in series.items():
        encoded = b"".join(_field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in labels)
        sample = _varint(1 << 3 | 1) + struct.pack("<d", value) + _varint(2 << 3 | 0) + _varint(timestamp_ms)
        body += _field(1, encoded + _field(2, sample))
    return body


def snappy(data: bytes) -> bytes:
    """Snappy block format made of literals only: valid input for any snappy decoder, no library needed."""
    out = bytearray(_varint(len(data)))
    for start in range(0, len(data), 65536):
        chunk = data[start : start + 65536]
        size = len(chunk) - 1
        if size < 60:
            out.append(size << 2)
        elif size < 256:
            out += bytes([60 << 2, size])
        else:
            out += bytes([61 << 2]) + size.to_bytes(2, "little")
        out += chunk
    return bytes(out)


class RemoteWritePrometheus(Prometheus):
    """The dashboards test's Prometheus, with no scrape target and the remote-write receiver on."""

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir, None, ("--web.enable-remote-write-receiver",))

    def write(self, series: Series, timestamp_ms: int) -> None:
        request = urllib.request.Request(
            f"{self.url}/api/v1/write",
            data=snappy(write_request(series, timestamp_ms)),
            headers={
                "Content-Encoding": "snappy",
                "Content-Type": "application/x-protobuf",
                "X-Prometheus-Remote-Write-Version": "0.1.0",
            },
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 204, response.status


Running = tuple[RemoteWritePrometheus, int]
"""The Prometheus holding the SigNoz series, and the evaluation time (ms)."""


@pytest.fixture(scope="module")
def prometheus(exports: Exports, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A real Prometheus holding the SigNoz series of both exports; and the evaluation time ``now``.

    The first export's values are written 24 h and 5 min before ``now``, the second's at ``now``: each
    window of the dashboard ([5m], [24h]) then starts and ends on a sample, so rate() and increase()
    need no extrapolation and equal the second export minus the first — one session's worth — exactly.
    """
    server = RemoteWritePrometheus(tmp_path_factory.mktemp("prometheus"))
    try:
        now = int(time.time()) * 1000
        first, second = (signoz_series(requests) for requests in exports)
        assert set(first) == set(second), "both exports carry the same series"
        server.write(first, now - DAY_MS)
        server.write(first, now - WINDOW_MS)
        server.write(second, now)
        yield server, now
    finally:
        server.stop()


def by(samples: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s["metric"].get(label, "") for label in labels): float(s["value"][1]) for s in samples}


def expected_median(kpi: str, value: float) -> float:
    """histogram_quantile(0.5) of one observation: linear interpolation inside its bucket."""
    bounds = c.KPI_BUCKETS[kpi]
    index = next(i for i, bound in enumerate(bounds) if value <= bound)
    lower = bounds[index - 1] if index else 0.0
    return lower + (bounds[index] - lower) * 0.5


def test_every_signoz_panel_query_evaluates_and_otlp_panels_have_data(prometheus: Running) -> None:
    server, now = prometheus
    queries = dashboard_queries()
    assert len(queries) > 50
    for title, query in queries:
        result = server.query(for_prometheus(query), now)
        if "kpiloop_" not in query:
            assert result, f"{title}: no data for {query}"
            assert all(math.isfinite(float(s["value"][1])) for s in result), (title, query, result)


def test_signoz_panels_give_the_values_computed_by_hand(prometheus: Running) -> None:
    server, now = prometheus
    queries = {(title, i): q for i, (title, q) in enumerate(dashboard_queries())}
    by_title: dict[str, list[str]] = {}
    for (title, _), query in queries.items():
        by_title.setdefault(title, []).append(query)

    def run(title: str, index: int = 0) -> list[dict[str, Any]]:
        return server.query(for_prometheus(by_title[title][index]), now)

    window_s = WINDOW_MS / 1000
    assert by(run("Sessions closed by alert level"), "alert_level") == {("CRITICAL",): pytest.approx(1 / window_s)}
    assert by(run("Sessions closed (last 24 h)")) == {(): pytest.approx(1.0)}
    assert by(run("Open sessions"), "agent_type") == {(AGENT,): 2.0}
    for kpi, value in (*KPIS.items(), ("cost_per_output_token", COST_PER_OUTPUT_TOKEN)):
        title = f"{kpi}: median, p10/p90, mean vs baseline"
        assert by(run(title, 0), "agent_type", "model") == {(AGENT, MODEL): pytest.approx(expected_median(kpi, value))}
        assert by(run(title, 3), "agent_type", "model") == {(AGENT, MODEL): pytest.approx(value)}, kpi
        assert by(run(title, 4), "agent_type") == {(AGENT,): pytest.approx(value)}, kpi
        distribution = by(run(f"{kpi}: distribution"), "le")
        assert distribution[("+Inf",)] == pytest.approx(1.0) and min(distribution.values()) == 0.0, kpi
        scale = KPI_SCALES[kpi].kind
        baseline = by(run(f"{kpi}: baseline ({scale} scale)"), "stat", "agent_type")
        assert baseline == {("center", AGENT): pytest.approx(baseline_center(kpi, value)), ("scale", AGENT): 0.5}
    tokens = by(run("Tokens by type"), "type")
    assert tokens == {(kind,): pytest.approx(count / window_s) for kind, count in TOKENS.items()}
    hit_rate = TOKENS["cache_read"] / (TOKENS["input"] + TOKENS["cache_read"] + TOKENS["cache_creation"])
    assert by(run("Cache hit rate"), "agent_type", "model") == {(AGENT, MODEL): pytest.approx(hit_rate)}
    assert by(run("Cache hit rate (last 24 h)")) == {(): pytest.approx(hit_rate)}
    assert by(run("Cost (USD per 5 min)"), "agent_type", "model") == {(AGENT, MODEL): pytest.approx(COST)}
    assert by(run("Cost (last 24 h)")) == {(): pytest.approx(COST)}
    outcomes = by(run("Tool calls by outcome"), "outcome")
    assert outcomes == {("success",): pytest.approx(1 / window_s), ("failure",): pytest.approx(1 / window_s)}
    alerts = by(run("KPI alerts by KPI and severity"), "kpi", "severity")
    assert alerts == {("error_rate", "CRITICAL"): pytest.approx(1.0)}
    assert by(run("Incidents opened (last 24 h)"), "agent_type", "kpi") == {(AGENT, "error_rate"): pytest.approx(1.0)}
    suggestions = by(run("Improvement suggestions by state"), "agent_type", "state")
    assert suggestions == {(AGENT, state): float(count) for state, count in SUGGESTIONS.items()}
