"""The metric catalogue (DESIGN.md section 6): every metric kpiloop publishes, once.

Each entry names the OTLP metric and its Prometheus twin, its kind, labels, unit and (for
histograms) bucket bounds. Exporters read this table; nothing else invents a metric name. KPI and
business metrics are ``agent_performance_*``; kpiloop's self-metrics are ``kpiloop_*`` (Prometheus
only). ``session_id`` is never a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kpiloop.model import KPI_DIRECTIONS

Kind = Literal["histogram", "counter", "gauge"]

RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
SMALL_RATIO_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5, 1.0)
ERROR_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)
OVERHEAD_BUCKETS = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
COST_PER_TOKEN_BUCKETS = (1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2e-4, 5e-4, 1e-3, 1e-2)
CLOSE_SECONDS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

KPI_BUCKETS: dict[str, tuple[float, ...]] = {
    "token_efficiency": SMALL_RATIO_BUCKETS,
    "task_completion_rate": RATIO_BUCKETS,
    "active_time_ratio": RATIO_BUCKETS,
    "tool_overhead_ratio": OVERHEAD_BUCKETS,
    "cache_efficiency": RATIO_BUCKETS,
    "error_rate": ERROR_BUCKETS,
    "quality_relevance": RATIO_BUCKETS,
    "quality_faithfulness": RATIO_BUCKETS,
    "quality_coherence": RATIO_BUCKETS,
    "quality_hallucination": ERROR_BUCKETS,
    "cost_per_output_token": COST_PER_TOKEN_BUCKETS,
}

MAX_LABEL_VALUES = 100
"""Distinct values kept per label of one metric; later values are folded into ``other``."""
OTHER = "other"


@dataclass(frozen=True, slots=True)
class MetricDef:
    """One metric of the catalogue."""

    otlp_name: str | None
    prom_name: str
    kind: Kind
    labels: tuple[str, ...]
    description: str
    unit: str = "1"
    buckets: tuple[float, ...] = ()


def _kpi_metric(kpi: str) -> MetricDef:
    unit = "USD" if kpi == "cost_per_output_token" else "1"
    direction = KPI_DIRECTIONS[kpi].value.replace("_", " ")
    return MetricDef(
        f"agent.performance.{kpi}",
        f"agent_performance_{kpi}",
        "histogram",
        ("agent_type", "model"),
        f"Per-session {kpi.replace('_', ' ')} at session close ({direction}).",
        unit,
        KPI_BUCKETS[kpi],
    )


KPI_METRICS: dict[str, MetricDef] = {kpi: _kpi_metric(kpi) for kpi in KPI_DIRECTIONS}

SESSIONS = MetricDef(
    "agent.performance.sessions", "agent_performance_sessions_total", "counter",
    ("agent_type", "model", "alert_level"), "Sessions closed, by alert level of the session.",
)  # fmt: skip
TOKENS = MetricDef(
    "agent.performance.tokens", "agent_performance_tokens_total", "counter",
    ("agent_type", "model", "type"), "Tokens used, live, by type (input, output, cache_read, cache_creation).",
)  # fmt: skip
COST = MetricDef(
    "agent.performance.cost", "agent_performance_cost_usd_total", "counter",
    ("agent_type", "model"), "Cost of API calls in USD, live.", "USD",
)  # fmt: skip
TOOL_CALLS = MetricDef(
    "agent.performance.tool_calls", "agent_performance_tool_calls_total", "counter",
    ("agent_type", "outcome"), "Tool calls, live, by outcome (success, failure, denied).",
)  # fmt: skip
ALERTS = MetricDef(
    "agent.performance.alerts", "agent_performance_alerts_total", "counter",
    ("agent_type", "kpi", "severity"), "KPI alerts raised at session close.",
)  # fmt: skip
INCIDENTS = MetricDef(
    "agent.performance.incidents", "agent_performance_incidents_total", "counter",
    ("agent_type", "kpi"), "Incidents opened for sustained KPI degradation.",
)  # fmt: skip
BASELINE = MetricDef(
    "agent.performance.baseline", "agent_performance_baseline", "gauge",
    ("agent_type", "kpi", "stat"), "Current baseline of a KPI (stat: center, scale).",
)  # fmt: skip
SUGGESTIONS = MetricDef(
    "agent.performance.suggestions", "agent_performance_suggestions", "gauge",
    ("agent_type", "state"), "Improvement suggestions by state (active, promoted, retired).",
)  # fmt: skip
OPEN_SESSIONS = MetricDef(
    "agent.performance.open_sessions", "agent_performance_open_sessions", "gauge",
    ("agent_type",), "Sessions open now.",
)  # fmt: skip

RECEIVED = MetricDef(
    None, "kpiloop_received_items_total", "counter", ("receiver", "signal"),
    "Spans, log records and data points accepted by a receiver.",
)  # fmt: skip
REFUSED = MetricDef(
    None, "kpiloop_refused_items_total", "counter", ("receiver", "signal", "reason"),
    "Items or requests refused, by reason.",
)  # fmt: skip
QUEUE_DEPTH = MetricDef(None, "kpiloop_queue_depth", "gauge", (), "Events waiting in the ingest queue.")
CLOSE_SECONDS = MetricDef(
    None, "kpiloop_session_close_seconds", "histogram", (), "Time to close a session and run its sinks.", "s",
    CLOSE_SECONDS_BUCKETS,
)  # fmt: skip
EMPTY_SESSIONS = MetricDef(
    None, "kpiloop_empty_sessions_total", "counter", (), "Sessions closed with no API call, tool call or evaluation."
)
LATE_EVENTS = MetricDef(
    None, "kpiloop_late_events_total", "counter", (), "Events that reopened an already closed session."
)
EXPORT_FAILURES = MetricDef(
    None, "kpiloop_export_failures_total", "counter", ("exporter",),
    "Metric exports that failed (endpoint down, too slow or refusing), by exporter.",
)  # fmt: skip

BUSINESS_METRICS = (SESSIONS, TOKENS, COST, TOOL_CALLS, ALERTS, INCIDENTS, BASELINE, SUGGESTIONS, OPEN_SESSIONS)
HISTORY_WRITE_FAILURES = MetricDef(
    None, "kpiloop_history_write_failures_total", "counter", (),
    "Failed appends of a closed session to history/kpis.jsonl (disk full, data dir unwritable); retried.",
)  # fmt: skip
HISTORY_UNWRITTEN = MetricDef(
    None, "kpiloop_history_unwritten_sessions", "gauge", (),
    "Closed sessions whose history line waits in memory because history/kpis.jsonl takes no writes.",
)  # fmt: skip

SELF_METRICS = (
    RECEIVED, REFUSED, QUEUE_DEPTH, CLOSE_SECONDS, EMPTY_SESSIONS, LATE_EVENTS, EXPORT_FAILURES,
    HISTORY_WRITE_FAILURES, HISTORY_UNWRITTEN,
)  # fmt: skip
ALL_METRICS: tuple[MetricDef, ...] = (*KPI_METRICS.values(), *BUSINESS_METRICS, *SELF_METRICS)
