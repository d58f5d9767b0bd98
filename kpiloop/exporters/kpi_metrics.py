"""Feeds the metrics store: KPI histograms and session counts at close, live token, cost and tool
counters as calls are counted, and kpiloop's own receiver counters."""

from __future__ import annotations

from collections.abc import Mapping

from kpiloop.exporters import catalogue as c
from kpiloop.exporters.catalogue import MetricDef
from kpiloop.exporters.metrics_store import Labels, MetricsStore
from kpiloop.model import KPI_DIRECTIONS, ApiCall, SessionSummary, ToolCall

NOT_EVALUATED = "none"
"""``alert_level`` label of sessions closed without a feedback stage."""


class KpiMetrics:
    """A summary sink, a live observer of counted calls, and the receivers' self-metrics, in one."""

    def __init__(self, store: MetricsStore) -> None:
        self._store = store

    def start(self) -> None:
        """Nothing to start: the store is read by the exporters."""

    def shutdown(self) -> None:
        """Nothing buffered."""

    def consume(self, summary: SessionSummary) -> None:
        """Record a closed session's KPIs and count it; a reopened session's later closes are not
        counted again (its history line supersedes, its metrics would double)."""
        if summary.close_count > 1:
            return
        labels = (summary.agent_type, summary.model)
        for kpi in KPI_DIRECTIONS:
            value = summary.cost_per_output_token if kpi == "cost_per_output_token" else summary.kpis.get(kpi)
            if value is not None:
                self._store.observe(c.KPI_METRICS[kpi], labels, value)
        assessment = summary.assessment
        level = assessment.alert_level if assessment is not None else NOT_EVALUATED
        self._store.add(c.SESSIONS, (*labels, level), 1)
        for alert in assessment.alerts if assessment is not None else ():
            self._store.add(c.ALERTS, (summary.agent_type, alert.kpi, alert.severity), 1)

    def baseline_updated(self, agent_type: str, kpi: str, center: float, scale: float) -> None:
        """Publish a KPI's current baseline (transformed scale, as the feedback stage computes it)."""
        self._store.set(c.BASELINE, (agent_type, kpi, "center"), center)
        self._store.set(c.BASELINE, (agent_type, kpi, "scale"), scale)

    def incident(self, agent_type: str, kpi: str) -> None:
        """Count an incident opened for sustained degradation."""
        self._store.add(c.INCIDENTS, (agent_type, kpi), 1)

    def suggestions_counted(self, agent_type: str, counts: Mapping[str, int]) -> None:
        """Publish how many suggestions of ``agent_type`` are active, promoted and retired."""
        for state, count in counts.items():
            self._store.set(c.SUGGESTIONS, (agent_type, state), count)

    def api_call(self, call: ApiCall, cost_usd: float | None) -> None:
        """Count a call's tokens and cost as soon as the processor counted the call."""
        agent, model = call.agent_type, call.model or "unknown"
        updates: list[tuple[MetricDef, Labels, float]] = [
            (c.TOKENS, (agent, model, kind), count)
            for kind, count in (
                ("input", call.input_tokens),
                ("output", call.output_tokens),
                ("cache_read", call.cache_read_tokens),
                ("cache_creation", call.cache_write_5m_tokens + call.cache_write_1h_tokens),
            )
            if count
        ]
        if cost_usd:
            updates.append((c.COST, (agent, model), cost_usd))
        if updates:
            self._store.add_many(updates)

    def late_cost(self, call: ApiCall, cost_usd: float) -> None:
        """Count the cost of a call first counted without one."""
        if cost_usd:
            self._store.add(c.COST, (call.agent_type, call.model or "unknown"), cost_usd)

    def tool_call(self, call: ToolCall) -> None:
        """Count a tool call by outcome."""
        outcome = "denied" if call.denied else "success" if call.ok else "failure"
        self._store.add(c.TOOL_CALLS, (call.agent_type, outcome), 1)

    def session_empty(self) -> None:
        """Count a session closed with nothing to measure."""
        self._store.add(c.EMPTY_SESSIONS, (), 1)

    def late_event(self) -> None:
        """Count an event that reopened a closed session."""
        self._store.add(c.LATE_EVENTS, (), 1)

    def session_closed(self, seconds: float) -> None:
        """Record how long one close took (summary and every sink)."""
        self._store.observe(c.CLOSE_SECONDS, (), seconds)

    def received(self, receiver: str, signal: str, count: int) -> None:
        """Count items a receiver accepted."""
        if count:
            self._store.add(c.RECEIVED, (receiver, signal), count)

    def refused(self, receiver: str, signal: str, reason: str, count: int) -> None:
        """Count items or requests a receiver refused."""
        if count:
            self._store.add(c.REFUSED, (receiver, signal, reason), count)
