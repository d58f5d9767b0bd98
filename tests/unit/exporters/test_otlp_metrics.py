"""The OTLP metrics mapping (pure: summaries and calls → recordings) and OtlpMetrics over the real SDK
with a fake exporter in place of the network one."""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict

import pytest
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
)

from kpiloop.exporters import catalogue as c
from kpiloop.exporters.kpi_metrics import KpiMetrics
from kpiloop.exporters.metrics_store import HistogramValue, MetricsStore
from kpiloop.exporters.otlp_metrics import (
    OtlpMetrics,
    Recording,
    api_call_recordings,
    baseline_recordings,
    incident_recordings,
    late_cost_recordings,
    suggestion_recordings,
    summary_recordings,
    temporality_preference,
    tool_call_recordings,
)
from kpiloop.exporters.otlp_metrics_config import OtlpSettings
from kpiloop.model import Alert, ApiCall, Assessment, DataCompleteness, SessionSummary, ToolCall
from kpiloop.testing import make_summary
from kpiloop.types import AgentType, SessionId

AGENT, MODEL, SESSION = "coder", "claude-sonnet-4-5", "s-1"
T0 = 1_770_920_880 * 10**9


def summary(assessment: Assessment | None = None, close_count: int = 1) -> SessionSummary:
    return make_summary(
        session_id=SessionId(SESSION),
        agent_type=AgentType(AGENT),
        model=MODEL,
        start_ns=T0,
        end_ns=T0 + 60 * 10**9,
        kpis={"token_efficiency": 0.01, "error_rate": 0.2, "task_completion_rate": None, "cache_efficiency": 0.9},
        cost_per_output_token=0.025,
        data_completeness=DataCompleteness(api_calls=True, tool_calls=True),
        close_count=close_count,
        assessment=assessment,
    )


ASSESSED = Assessment(
    alert_level="CRITICAL",
    baselines={},
    alerts=(Alert("error_rate", "CRITICAL", "threshold", 0.2), Alert("token_efficiency", "WARNING", "deviation", 0.01)),
)


def api_call(**fields: object) -> ApiCall:
    defaults: dict = dict(
        session_id=SessionId(SESSION), agent_type=AgentType(AGENT), start_ns=T0, end_ns=T0 + 1, source="genai",
        model=MODEL, input_tokens=100, output_tokens=20, cache_read_tokens=0, cache_write_5m_tokens=3,
        cache_write_1h_tokens=4,
    )  # fmt: skip
    return ApiCall(**{**defaults, **fields})


def tool_call(ok: bool = True, denied: bool = False) -> ToolCall:
    return ToolCall(
        session_id=SessionId(SESSION), agent_type=AgentType(AGENT), start_ns=T0, end_ns=T0, source="genai",
        tool="Bash", ok=ok, denied=denied,
    )  # fmt: skip


A = {"agent_type": AGENT, "model": MODEL}


# --- the pure mapping ---


def test_a_closed_session_records_each_kpi_its_count_and_its_alerts():
    assert summary_recordings(summary(ASSESSED)) == [
        Recording(c.KPI_METRICS["token_efficiency"], 0.01, A),
        Recording(c.KPI_METRICS["cache_efficiency"], 0.9, A),
        Recording(c.KPI_METRICS["error_rate"], 0.2, A),
        Recording(c.KPI_METRICS["cost_per_output_token"], 0.025, A),
        Recording(c.SESSIONS, 1, {**A, "alert_level": "CRITICAL"}),
        Recording(c.ALERTS, 1, {"agent_type": AGENT, "kpi": "error_rate", "severity": "CRITICAL"}),
        Recording(c.ALERTS, 1, {"agent_type": AGENT, "kpi": "token_efficiency", "severity": "WARNING"}),
    ]


def test_a_session_without_feedback_is_counted_with_alert_level_none():
    recordings = summary_recordings(summary())
    assert recordings[-1] == Recording(c.SESSIONS, 1, {**A, "alert_level": "none"})
    assert [r for r in recordings if r.metric is c.ALERTS] == []


def test_a_null_kpi_records_nothing_and_never_a_made_up_zero():
    names = {r.metric.otlp_name for r in summary_recordings(summary())}
    assert "agent.performance.task_completion_rate" not in names
    assert "agent.performance.quality_relevance" not in names


def test_a_reopened_session_closing_again_records_nothing():
    assert summary_recordings(summary(ASSESSED, close_count=2)) == []


def test_no_session_id_unless_opted_in():
    everything = [
        *summary_recordings(summary(ASSESSED)),
        *api_call_recordings(api_call(), 0.5),
        *late_cost_recordings(api_call(), 0.1),
        *tool_call_recordings(tool_call()),
        *baseline_recordings(AGENT, "error_rate", -2.0, 0.5),
        *incident_recordings(AGENT, "error_rate"),
    ]
    assert all("session_id" not in r.attributes for r in everything)
    assert all(set(r.attributes) == set(r.metric.labels) for r in everything)


def test_session_id_opted_in_goes_on_every_per_session_recording():
    per_session = [
        *summary_recordings(summary(ASSESSED), include_session_id=True),
        *api_call_recordings(api_call(), 0.5, include_session_id=True),
        *late_cost_recordings(api_call(), 0.1, include_session_id=True),
        *tool_call_recordings(tool_call(), include_session_id=True),
    ]
    assert len(per_session) == 7 + 4 + 1 + 1
    assert all(r.attributes["session_id"] == SESSION for r in per_session)
    assert all(set(r.attributes) == {*r.metric.labels, "session_id"} for r in per_session)


def test_an_api_call_counts_tokens_by_type_and_its_cost():
    assert api_call_recordings(api_call(), 0.0042) == [
        Recording(c.TOKENS, 100, {**A, "type": "input"}),
        Recording(c.TOKENS, 20, {**A, "type": "output"}),
        Recording(c.TOKENS, 7, {**A, "type": "cache_creation"}),  # 5-minute + 1-hour writes; no zero cache_read
        Recording(c.COST, 0.0042, A),
    ]


def test_an_api_call_without_model_or_cost():
    recordings = api_call_recordings(api_call(model="", cache_write_5m_tokens=0, cache_write_1h_tokens=0), None)
    unknown = {"agent_type": AGENT, "model": "unknown"}
    assert recordings == [
        Recording(c.TOKENS, 100, {**unknown, "type": "input"}),
        Recording(c.TOKENS, 20, {**unknown, "type": "output"}),
    ]


def test_a_late_cost_and_a_zero_late_cost():
    assert late_cost_recordings(api_call(), 0.3) == [Recording(c.COST, 0.3, A)]
    assert late_cost_recordings(api_call(), 0.0) == []


@pytest.mark.parametrize(("ok", "denied", "outcome"), [(True, False, "success"), (False, False, "failure"),
                                                       (True, True, "denied"), (False, True, "denied")])  # fmt: skip
def test_a_tool_call_by_outcome(ok, denied, outcome):
    assert tool_call_recordings(tool_call(ok, denied)) == [
        Recording(c.TOOL_CALLS, 1, {"agent_type": AGENT, "outcome": outcome})
    ]


def test_feedback_conclusions():
    assert baseline_recordings(AGENT, "error_rate", -2.5, 0.75) == [
        Recording(c.BASELINE, -2.5, {"agent_type": AGENT, "kpi": "error_rate", "stat": "center"}),
        Recording(c.BASELINE, 0.75, {"agent_type": AGENT, "kpi": "error_rate", "stat": "scale"}),
    ]
    assert incident_recordings(AGENT, "error_rate") == [
        Recording(c.INCIDENTS, 1, {"agent_type": AGENT, "kpi": "error_rate"})
    ]


def test_every_recording_is_of_an_otlp_metric_of_the_catalogue():
    recordings = [*summary_recordings(summary(ASSESSED)), *api_call_recordings(api_call(), 1.0)]
    assert all(r.metric.otlp_name and r.metric.otlp_name.startswith("agent.performance.") for r in recordings)


def test_the_mapping_records_what_the_prometheus_side_records():
    """Same inputs through KpiMetrics (/metrics) and the mapping (OTLP): the same totals per series."""
    store = MetricsStore()
    kpi_metrics = KpiMetrics(store)
    recordings: list[Recording] = []
    calls = [(api_call(), 0.5), (api_call(output_tokens=0, model=""), None), (api_call(input_tokens=3), 0.25)]
    for call, cost in calls:
        kpi_metrics.api_call(call, cost)
        recordings += api_call_recordings(call, cost)
    for tool in (tool_call(), tool_call(ok=False), tool_call(denied=True)):
        kpi_metrics.tool_call(tool)
        recordings += tool_call_recordings(tool)
    for closed in (summary(ASSESSED), summary(), summary(ASSESSED, close_count=2)):
        kpi_metrics.consume(closed)
        recordings += summary_recordings(closed)
    kpi_metrics.late_cost(api_call(), 0.125)
    recordings += late_cost_recordings(api_call(), 0.125)
    kpi_metrics.baseline_updated(AGENT, "error_rate", -1.0, 0.5)
    recordings += baseline_recordings(AGENT, "error_rate", -1.0, 0.5)
    kpi_metrics.incident(AGENT, "error_rate")
    recordings += incident_recordings(AGENT, "error_rate")
    for counts in ({"active": 3, "promoted": 0, "retired": 1}, {"active": 2, "promoted": 1, "retired": 1}):
        kpi_metrics.suggestions_counted(AGENT, counts)
        recordings += suggestion_recordings(AGENT, counts)

    from_mapping: dict[tuple[str, tuple[str, ...]], float] = defaultdict(float)
    for r in recordings:
        key = (r.metric.prom_name, tuple(r.attributes[label] for label in r.metric.labels))
        from_mapping[key] = r.value if r.metric.kind == "gauge" else from_mapping[key] + r.value
    from_store = {}
    for values in store.snapshot():
        for labels, value in values.series.items():
            total = value.total if isinstance(value, HistogramValue) else value
            from_store[values.definition.prom_name, labels] = total
    assert dict(from_mapping) == from_store


# --- OtlpMetrics over the SDK, with a fake exporter ---


class FakeExporter(MetricExporter):
    """Keeps every export; answers with ``result`` (or raises ``error``)."""

    def __init__(self, result: MetricExportResult = MetricExportResult.SUCCESS, error: Exception | None = None):
        super().__init__()
        self.exports: list[MetricsData] = []
        self.result, self.error = result, error
        self.shutdowns = 0

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        self.exports.append(metrics_data)
        if self.error is not None:
            raise self.error
        return self.result

    def force_flush(self, timeout_millis=10_000):
        return True

    def shutdown(self, timeout_millis=30_000, **kwargs):
        self.shutdowns += 1


def settings(include_session_id: bool = False) -> OtlpSettings:
    return OtlpSettings(
        endpoint="http://127.0.0.1:1",
        protocol="grpc",
        headers={},
        insecure=True,
        timeout=2.0,
        export_interval=3600.0,
        include_session_id=include_session_id,
    )


def points(data: MetricsData) -> dict[tuple[str, frozenset], object]:
    """(metric name, attributes) → value (sums, gauges) or (count, sum, bucket counts) (histograms)."""
    found: dict[tuple[str, frozenset], object] = {}
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset((point.attributes or {}).items()))
                    if isinstance(point, HistogramDataPoint):
                        found[key] = (point.count, point.sum, tuple(point.bucket_counts))
                    else:
                        assert isinstance(point, NumberDataPoint)
                        found[key] = point.value
    return found


def failures(store: MetricsStore) -> dict[tuple[str, ...], float]:
    (values,) = [v for v in store.snapshot() if v.definition is c.EXPORT_FAILURES]
    return {labels: float(value) for labels, value in values.series.items()}  # type: ignore[arg-type]


@pytest.fixture
def started():
    made: list[OtlpMetrics] = []

    def start(exporter: FakeExporter, include_session_id: bool = False, store: MetricsStore | None = None):
        otlp = OtlpMetrics(settings(include_session_id), store or MetricsStore(), exporter)
        otlp.start()
        made.append(otlp)
        return otlp

    yield start
    for otlp in made:
        otlp.shutdown()


def test_recordings_reach_the_exporter_with_exact_values(started):
    exporter = FakeExporter()
    otlp = started(exporter)
    otlp.consume(summary(ASSESSED))
    otlp.api_call(api_call(), 0.5)
    otlp.tool_call(tool_call(ok=False))
    otlp.baseline_updated(AGENT, "error_rate", -2.0, 0.5)
    otlp.gauge_callback(c.OPEN_SESSIONS, lambda: {(AGENT,): 3.0})
    assert otlp.force_flush()
    got = points(exporter.exports[-1])
    attrs = frozenset(A.items())
    buckets = [0] * (len(c.KPI_BUCKETS["error_rate"]) + 1)
    buckets[c.KPI_BUCKETS["error_rate"].index(0.2)] = 1  # upper bounds are inclusive, as Prometheus' le
    assert got["agent.performance.error_rate", attrs] == (1, 0.2, tuple(buckets))
    assert got["agent.performance.sessions", frozenset({**A, "alert_level": "CRITICAL"}.items())] == 1
    assert got["agent.performance.tokens", frozenset({**A, "type": "cache_creation"}.items())] == 7
    assert got["agent.performance.cost", attrs] == 0.5
    assert got["agent.performance.tool_calls", frozenset({"agent_type": AGENT, "outcome": "failure"}.items())] == 1
    center = frozenset({"agent_type": AGENT, "kpi": "error_rate", "stat": "center"}.items())
    assert got["agent.performance.baseline", center] == -2.0
    assert got["agent.performance.open_sessions", frozenset({"agent_type": AGENT}.items())] == 3.0
    assert not any("session_id" in dict(key[1]) for key in got)


def test_session_id_attribute_when_opted_in(started):
    exporter = FakeExporter()
    otlp = started(exporter, include_session_id=True)
    otlp.consume(summary())
    otlp.force_flush()
    got = points(exporter.exports[-1])
    assert got["agent.performance.sessions", frozenset({**A, "alert_level": "none", "session_id": SESSION}.items())]


def test_label_values_are_capped_as_on_the_prometheus_side(started):
    exporter = FakeExporter()
    otlp = started(exporter)
    for index in range(c.MAX_LABEL_VALUES + 5):
        otlp.tool_call(dataclasses.replace(tool_call(), agent_type=AgentType(f"agent-{index}")))
    otlp.force_flush()
    got = {dict(k[1])["agent_type"]: v for k, v in points(exporter.exports[-1]).items() if k[0].endswith("tool_calls")}
    assert len(got) == c.MAX_LABEL_VALUES + 1
    assert got["other"] == 5


@pytest.mark.parametrize(
    "exporter", [FakeExporter(MetricExportResult.FAILURE), FakeExporter(error=ConnectionError("down"))],
    ids=["failure", "exception"],
)  # fmt: skip
def test_failed_exports_are_counted_and_never_raise(started, exporter):
    store = MetricsStore()
    otlp = started(exporter, store=store)
    assert failures(store) == {("otlp",): 0.0}  # the series exists from the start
    otlp.tool_call(tool_call())
    otlp.force_flush()
    otlp.force_flush()
    assert failures(store) == {("otlp",): 2.0}


def test_nothing_is_kept_before_start_or_after_shutdown_and_shutdown_is_idempotent():
    exporter = FakeExporter()
    otlp = OtlpMetrics(settings(), MetricsStore(), exporter)
    otlp.shutdown()  # never started
    otlp = OtlpMetrics(settings(), MetricsStore(), exporter)
    otlp.tool_call(tool_call())
    otlp.start()
    otlp.start()
    otlp.force_flush()
    assert not any(name.endswith("tool_calls") for data in exporter.exports for name, _ in points(data))
    threads = {t.name for t in threading.enumerate()}
    assert "OtelPeriodicExportingMetricReader" in threads
    otlp.shutdown()
    otlp.shutdown()
    otlp.tool_call(tool_call())
    assert exporter.shutdowns == 1
    assert otlp.force_flush() is False


def test_temporality_preferences():
    from opentelemetry.sdk import metrics as sdk

    assert temporality_preference("cumulative") == {}
    delta = temporality_preference("delta")
    assert delta[sdk.Counter] is delta[sdk.Histogram] is AggregationTemporality.DELTA
    assert sdk.UpDownCounter not in delta
    assert sdk.ObservableCounter not in temporality_preference("lowmemory")
