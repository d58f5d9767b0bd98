"""OTLP metrics export: the catalogue's ``agent.performance.*`` metrics (DESIGN.md section 6, OTLP
column) through the OpenTelemetry SDK's ``MeterProvider`` and OTLP exporter (gRPC or HTTP/protobuf).

Two parts. A pure mapping turns closed sessions, counted calls and feedback conclusions into
:class:`Recording` values (tested on its own); :class:`OtlpMetrics` applies them to SDK instruments.
Recording only updates in-memory aggregates (bounded: label values are capped as on /metrics, and
the SDK caps series per instrument); the SDK's ``PeriodicExportingMetricReader`` exports from its
own thread, each export bounded by the configured timeout, so a slow or unreachable endpoint never
blocks ingestion or session closes. Failed exports are counted in
``kpiloop_export_failures_total{exporter="otlp"}``; kpiloop's self-metrics stay on /metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation
from opentelemetry.sdk import metrics as sdk
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from kpiloop import __version__
from kpiloop.exporters import catalogue as c
from kpiloop.exporters.kpi_metrics import NOT_EVALUATED
from kpiloop.exporters.metrics_store import GaugeCallback, Labels, MetricsStore
from kpiloop.exporters.otlp_metrics_config import OtlpSettings, Temporality
from kpiloop.model import ApiCall, SessionSummary, ToolCall

log = logging.getLogger(__name__)

EXPORTER = "otlp"
"""``exporter`` label of ``kpiloop_export_failures_total``."""
SESSION_ID = "session_id"
"""The opt-in attribute (``include_session_id``) on per-session data points."""
UNKNOWN_MODEL = "unknown"
OTLP_METRICS: tuple[tuple[str, c.MetricDef], ...] = tuple((m.otlp_name, m) for m in c.ALL_METRICS if m.otlp_name)
"""(OTLP name, metric) of every catalogue metric with an OTLP name: the KPI and business metrics."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One recording: ``value`` added to a counter, recorded in a histogram, or set on a gauge."""

    metric: c.MetricDef
    value: float
    attributes: Mapping[str, str]


# --- the pure mapping ---


def summary_recordings(summary: SessionSummary, include_session_id: bool = False) -> list[Recording]:
    """A closed session's KPI values and its count (by alert level), and its alerts, as ``KpiMetrics``
    records them; a reopened session's later closes record nothing (its metrics would double)."""
    if summary.close_count > 1:
        return []
    session = summary.session_id if include_session_id else None
    labels = (summary.agent_type, summary.model)
    found = []
    for kpi, metric in c.KPI_METRICS.items():
        value = summary.cost_per_output_token if kpi == "cost_per_output_token" else summary.kpis.get(kpi)
        if value is not None:
            found.append(_recording(metric, value, labels, session))
    assessment = summary.assessment
    level = assessment.alert_level if assessment is not None else NOT_EVALUATED
    found.append(_recording(c.SESSIONS, 1, (*labels, level), session))
    for alert in assessment.alerts if assessment is not None else ():
        found.append(_recording(c.ALERTS, 1, (summary.agent_type, alert.kpi, alert.severity), session))
    return found


def api_call_recordings(call: ApiCall, cost_usd: float | None, include_session_id: bool = False) -> list[Recording]:
    """A counted API call's tokens by type (zero counts left out) and its cost."""
    session = call.session_id if include_session_id else None
    labels = (call.agent_type, call.model or UNKNOWN_MODEL)
    tokens = (
        ("input", call.input_tokens),
        ("output", call.output_tokens),
        ("cache_read", call.cache_read_tokens),
        ("cache_creation", call.cache_write_5m_tokens + call.cache_write_1h_tokens),
    )
    found = [_recording(c.TOKENS, count, (*labels, kind), session) for kind, count in tokens if count]
    if cost_usd:
        found.append(_recording(c.COST, cost_usd, labels, session))
    return found


def late_cost_recordings(call: ApiCall, cost_usd: float, include_session_id: bool = False) -> list[Recording]:
    """The cost of a call first counted without one."""
    if not cost_usd:
        return []
    session = call.session_id if include_session_id else None
    return [_recording(c.COST, cost_usd, (call.agent_type, call.model or UNKNOWN_MODEL), session)]


def tool_call_recordings(call: ToolCall, include_session_id: bool = False) -> list[Recording]:
    """One tool call by outcome: denied, success or failure."""
    outcome = "denied" if call.denied else "success" if call.ok else "failure"
    return [_recording(c.TOOL_CALLS, 1, (call.agent_type, outcome), call.session_id if include_session_id else None)]


def baseline_recordings(agent_type: str, kpi: str, center: float, scale: float) -> list[Recording]:
    """A KPI's current baseline: two gauge values (stat center and scale)."""
    return [
        _recording(c.BASELINE, center, (agent_type, kpi, "center")),
        _recording(c.BASELINE, scale, (agent_type, kpi, "scale")),
    ]


def incident_recordings(agent_type: str, kpi: str) -> list[Recording]:
    """One incident opened for sustained degradation."""
    return [_recording(c.INCIDENTS, 1, (agent_type, kpi))]


def suggestion_recordings(agent_type: str, counts: Mapping[str, int]) -> list[Recording]:
    """How many suggestions of ``agent_type`` are in each state: one gauge value per state."""
    return [_recording(c.SUGGESTIONS, count, (agent_type, state)) for state, count in counts.items()]


def _recording(metric: c.MetricDef, value: float, labels: Sequence[str], session: str | None = None) -> Recording:
    attributes = dict(zip(metric.labels, labels, strict=True))
    if session is not None:
        attributes[SESSION_ID] = session
    return Recording(metric, value, attributes)


# --- the SDK part ---


class OtlpMetrics:
    """A summary sink, live observer and feedback observer that exports over OTLP.

    ``start()`` builds the MeterProvider and its export thread; ``shutdown()`` makes a last export
    (bounded by the timeout) and is safe to call twice or without ``start()``. Counter and histogram
    recordings made before ``start()`` or after ``shutdown()`` are not kept; gauge values are.
    """

    def __init__(self, settings: OtlpSettings, store: MetricsStore, exporter: MetricExporter | None = None) -> None:
        self._settings = settings
        self._store = store
        self._exporter = exporter
        self._provider: MeterProvider | None = None
        self._instruments: dict[str, Counter | Histogram] = {}
        self._gauges: dict[str, dict[Labels, float]] = {}
        self._callbacks: dict[str, GaugeCallback] = {}
        self._seen: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()
        self._stopped = False

    def start(self) -> None:
        """Create the provider, the instruments and the periodic export thread."""
        if self._provider is not None or self._stopped:
            return
        self._store.add(c.EXPORT_FAILURES, (EXPORTER,), 0)
        exporter = CountingExporter(
            self._exporter or build_otlp_exporter(self._settings), self._settings.temporality, self._export_failed
        )
        reader = PeriodicExportingMetricReader(
            exporter,
            export_interval_millis=self._settings.export_interval * 1000,
            export_timeout_millis=self._settings.timeout * 1000,
        )
        resource = Resource({"service.name": "kpiloop", "service.version": __version__})
        self._provider = MeterProvider(metric_readers=[reader], resource=resource, shutdown_on_exit=False)
        meter = self._provider.get_meter("kpiloop", __version__)
        self._instruments = {m.prom_name: _instrument(meter, n, m) for n, m in OTLP_METRICS if m.kind != "gauge"}
        for name, metric in OTLP_METRICS:
            if metric.kind == "gauge":
                meter.create_observable_gauge(name, [partial(self._observe, metric)], metric.unit, metric.description)

    def shutdown(self) -> None:
        """Export what is left (waiting at most the timeout) and stop the export thread."""
        self._stopped = True
        provider, self._provider, self._instruments = self._provider, None, {}
        if provider is not None:
            provider.shutdown(timeout_millis=(self._settings.timeout + 1) * 1000)

    def force_flush(self, timeout: float = 10.0) -> bool:
        """Export now, waiting at most ``timeout`` seconds (tests and the last export use it)."""
        provider = self._provider
        return provider.force_flush(timeout_millis=timeout * 1000) if provider is not None else False

    def gauge_callback(self, metric: c.MetricDef, callback: GaugeCallback) -> None:
        """Compute a gauge's series at export time (open sessions), as ``MetricsStore.gauge_callback``."""
        with self._lock:
            self._callbacks[metric.prom_name] = callback

    def consume(self, summary: SessionSummary) -> None:
        """Record a closed session's KPIs, count and alerts."""
        self._apply(summary_recordings(summary, self._settings.include_session_id))

    def api_call(self, call: ApiCall, cost_usd: float | None) -> None:
        """Count a call's tokens and cost as soon as the processor counted the call."""
        self._apply(api_call_recordings(call, cost_usd, self._settings.include_session_id))

    def late_cost(self, call: ApiCall, cost_usd: float) -> None:
        """Count the cost of a call first counted without one."""
        self._apply(late_cost_recordings(call, cost_usd, self._settings.include_session_id))

    def tool_call(self, call: ToolCall) -> None:
        """Count a tool call by outcome."""
        self._apply(tool_call_recordings(call, self._settings.include_session_id))

    def baseline_updated(self, agent_type: str, kpi: str, center: float, scale: float) -> None:
        """Publish a KPI's current baseline."""
        self._apply(baseline_recordings(agent_type, kpi, center, scale))

    def incident(self, agent_type: str, kpi: str) -> None:
        """Count an incident opened for sustained degradation."""
        self._apply(incident_recordings(agent_type, kpi))

    def suggestions_counted(self, agent_type: str, counts: Mapping[str, int]) -> None:
        """Publish how many suggestions of ``agent_type`` are in each state."""
        self._apply(suggestion_recordings(agent_type, counts))

    def session_empty(self) -> None:
        """A self-metric: on /metrics only."""

    def late_event(self) -> None:
        """A self-metric: on /metrics only."""

    def session_closed(self, seconds: float) -> None:
        """A self-metric: on /metrics only."""

    def _apply(self, recordings: Iterable[Recording]) -> None:
        instruments = self._instruments
        for recording in recordings:
            metric = recording.metric
            labels = self._capped(metric, recording.attributes)
            attributes = dict(zip(metric.labels, labels, strict=True))
            if SESSION_ID in recording.attributes:
                attributes[SESSION_ID] = recording.attributes[SESSION_ID]
            instrument = instruments.get(metric.prom_name)
            if metric.kind == "gauge":
                with self._lock:
                    self._gauges.setdefault(metric.prom_name, {})[labels] = recording.value
            elif isinstance(instrument, Histogram):
                instrument.record(recording.value, attributes)
            elif instrument is not None:
                instrument.add(recording.value, attributes)

    def _capped(self, metric: c.MetricDef, attributes: Mapping[str, str]) -> Labels:
        """The catalogue labels' values, each label capped at MAX_LABEL_VALUES (the rest become ``other``)."""
        capped = []
        with self._lock:
            for label in metric.labels:
                value, seen = attributes[label], self._seen.setdefault((metric.prom_name, label), set())
                if value not in seen and len(seen) >= c.MAX_LABEL_VALUES:
                    value = c.OTHER
                seen.add(value)
                capped.append(value)
        return tuple(capped)

    def _observe(self, metric: c.MetricDef, options: CallbackOptions) -> Iterable[Observation]:
        with self._lock:
            callback = self._callbacks.get(metric.prom_name)
            series = dict(self._gauges.get(metric.prom_name, {}))
        if callback is not None:
            series = dict(callback())
        return [Observation(value, dict(zip(metric.labels, labels, strict=True))) for labels, value in series.items()]

    def _export_failed(self) -> None:
        self._store.add(c.EXPORT_FAILURES, (EXPORTER,), 1)


class CountingExporter(MetricExporter):
    """Hands exports to the OTLP exporter, counts the ones that fail, and never raises into the reader."""

    def __init__(self, inner: MetricExporter, temporality: Temporality, on_failure: Callable[[], None]) -> None:
        super().__init__(preferred_temporality=temporality_preference(temporality))
        self._inner = inner
        self._on_failure = on_failure

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Export once (the OTLP exporter retries within its timeout); count a failure."""
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            log.exception("OTLP metrics export failed")
            result = MetricExportResult.FAILURE
        if result is not MetricExportResult.SUCCESS:
            self._on_failure()
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing buffered here; ask the OTLP exporter."""
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the OTLP exporter down (aborting its retries)."""
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def temporality_preference(temporality: Temporality) -> dict[type, AggregationTemporality]:
    """Aggregation temporality per SDK instrument type, as ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE``
    defines it: delta makes counters and histograms report increments; lowmemory, all but observable counters."""
    delta = AggregationTemporality.DELTA
    if temporality == "delta":
        return {sdk.Counter: delta, sdk.ObservableCounter: delta, sdk.Histogram: delta}
    if temporality == "lowmemory":
        return {sdk.Counter: delta, sdk.Histogram: delta}
    return {}


def build_otlp_exporter(settings: OtlpSettings) -> MetricExporter:
    """The SDK's OTLP metric exporter for ``settings`` (no connection is made until the first export)."""
    headers = dict(settings.headers)
    if settings.protocol == "grpc":
        return GrpcMetricExporter(
            endpoint=settings.endpoint, insecure=settings.insecure, headers=headers, timeout=settings.timeout
        )
    return HttpMetricExporter(endpoint=settings.endpoint, headers=headers, timeout=settings.timeout)


def _instrument(meter: Meter, name: str, metric: c.MetricDef) -> Counter | Histogram:
    if metric.kind == "histogram":
        return meter.create_histogram(
            name, metric.unit, metric.description, explicit_bucket_boundaries_advisory=metric.buckets
        )
    return meter.create_counter(name, metric.unit, metric.description)
