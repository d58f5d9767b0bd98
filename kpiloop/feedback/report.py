"""The per-session report ``{data_dir}/reports/{session_id}.md`` in the plan's "Performance Delta
Report Format": header, KPI table against the baseline, regressions in robust-sd units, ranked
suggestions, and a trend chart of the last sessions for every KPI that regressed.

Only sanitized identifiers reach the text: the session id, agent type and model id are passed
through :mod:`kpiloop.identity`'s sanitizers again here (telemetry controls them), everything else
is KPI names, numbers and rule templates.

Baselines are shown on the KPI's own scale as ``centre +/- spread``: the median (``p50``; the
mean for a plan-format or bootstrap baseline) and ``std_dev``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from kpiloop.feedback.suggestions import SAFE_NAME, Suggestion
from kpiloop.feedback.trend_chart import format_number, trend_chart
from kpiloop.feedback.types import Baseline, KpiBaseline
from kpiloop.identity import sanitize_agent_type, sanitize_model, sanitize_session_id
from kpiloop.model import KPI_DIRECTIONS, KPI_NAMES, Alert, Assessment, Direction, SessionSummary
from kpiloop.storage import atomic_write

TREND_SESSIONS = 10
REPORT_KPIS: tuple[str, ...] = (*KPI_NAMES, "cost_per_output_token")
KPI_LABELS: Mapping[str, str] = {
    "token_efficiency": "Token Efficiency",
    "task_completion_rate": "Task Completion",
    "active_time_ratio": "Active Time Ratio",
    "tool_overhead_ratio": "Tool Overhead",
    "cache_efficiency": "Cache Efficiency",
    "error_rate": "Error Rate",
    "quality_relevance": "Relevance",
    "quality_faithfulness": "Faithfulness",
    "quality_coherence": "Coherence",
    "quality_hallucination": "Hallucination",
    "cost_per_output_token": "Cost per Output Token",
}
"""How the report names each KPI (the plan's labels)."""

_SEVERITY_ORDER = {"CRITICAL": 0, "WARNING": 1, "INFO": 2}


def render_report(
    summary: SessionSummary,
    baseline: Baseline,
    assessment: Assessment,
    suggestions: Sequence[Suggestion],
    trends: Mapping[str, Sequence[float | None]],
) -> str:
    """The report as Markdown. ``trends`` holds each KPI's values over the agent type's recent
    sessions, oldest first, this session last; only the last 10 are charted."""
    alerts = {alert.kpi: alert for alert in assessment.alerts}
    sections = [
        _header(summary, baseline, assessment),
        _kpi_table(summary, baseline, alerts),
        _regressions(assessment.alerts, baseline),
        _suggestions(suggestions),
        _trends(assessment.alerts, baseline, trends),
        _notes(assessment.alerts, baseline),
    ]
    return "\n".join(section for section in sections if section)


def write_report(data_dir: Path, session_id: str, text: str) -> Path:
    """Write the report atomically to ``{data_dir}/reports/{session_id}.md``; return the path."""
    if not SAFE_NAME.fullmatch(session_id):
        raise ValueError(f"session id {session_id!r} cannot be used in a file name")
    path = data_dir / "reports" / f"{session_id}.md"
    atomic_write(path, text.encode("utf-8"))
    return path


def session_kpis(summary: SessionSummary) -> dict[str, float]:
    """The session's non-null KPIs, in report order."""
    values = {**summary.kpis, "cost_per_output_token": summary.cost_per_output_token}
    return {kpi: value for kpi in REPORT_KPIS if (value := values.get(kpi)) is not None}


def baseline_centre(kpi_baseline: KpiBaseline) -> float:
    """The centre shown and charted: the median on the KPI's scale, or the mean of a raw baseline."""
    if kpi_baseline.raw or kpi_baseline.p50 is None:
        return kpi_baseline.mean
    return kpi_baseline.p50


def _header(summary: SessionSummary, baseline: Baseline, assessment: Assessment) -> str:
    day = datetime.fromtimestamp(summary.start_ns // 1_000_000_000, tz=UTC).strftime("%Y-%m-%d")
    return (
        "# Session Performance Report\n\n"
        f"**Session ID**: {sanitize_session_id(summary.session_id)}\n"
        f"**Agent Type**: {sanitize_agent_type(summary.agent_type)}\n"
        f"**Date**: {day}\n"
        f"**Model**: {sanitize_model(summary.model)}\n"
        f"**Status**: {assessment.alert_level}\n"
        f"**Baseline**: {baseline.status}, {baseline.session_count} sessions\n"
    )


def _kpi_table(summary: SessionSummary, baseline: Baseline, alerts: Mapping[str, Alert]) -> str:
    rows = []
    for kpi, value in session_kpis(summary).items():
        kb = baseline.kpis.get(kpi)
        status = alerts[kpi].severity if kpi in alerts else "PASS"
        if kb is None:
            rows.append([KPI_LABELS[kpi], format_number(value), "n/a", "n/a", status])
            continue
        centre = baseline_centre(kb)
        spread = f"{format_number(centre)} +/- {format_number(kb.std_dev)}"
        rows.append([KPI_LABELS[kpi], format_number(value), spread, _delta(value, centre), status])
    return "## KPI Summary\n\n" + markdown_table(["Metric", "Actual", "Baseline", "Delta", "Status"], rows)


def _delta(value: float, centre: float) -> str:
    """``-0.046 (-97.9%)``: the difference and its share of the centre."""
    delta = value - centre
    text = f"+{format_number(delta)}" if delta > 0 else format_number(delta)
    if delta == 0:
        return "0 (0.0%)" if centre else "0 (n/a)"
    if centre == 0:
        return f"{text} (n/a)"
    pct = delta / abs(centre) * 100
    return f"{text} ({pct:+.1f}%)" if abs(pct) < 100 else f"{text} ({pct:+.0f}%)"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A Markdown table with padded columns, so it also reads well as plain text.

    >>> print(markdown_table(["A", "Bee"], [["x", "y"]]), end="")
    | A | Bee |
    |---|-----|
    | x | y   |
    """
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = [_row(headers, widths), "|" + "|".join("-" * (width + 2) for width in widths) + "|"]
    lines += [_row(row, widths) for row in rows]
    return "\n".join(lines) + "\n"


def _row(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"


def _ordered(alerts: Sequence[Alert], severities: set[str]) -> list[Alert]:
    chosen = [alert for alert in alerts if alert.severity in severities]
    order = {kpi: index for index, kpi in enumerate(REPORT_KPIS)}
    return sorted(chosen, key=lambda a: (_SEVERITY_ORDER[a.severity], order.get(a.kpi, len(order)), a.kpi))


def _regressions(alerts: Sequence[Alert], baseline: Baseline) -> str:
    found = _ordered(alerts, {"CRITICAL", "WARNING"})
    lines = [f"{index}. {describe_alert(alert, baseline)}" for index, alert in enumerate(found, start=1)]
    return "## Regressions Detected\n\n" + ("\n".join(lines) if lines else "None.") + "\n"


def describe_alert(alert: Alert, baseline: Baseline) -> str:
    """One line for an alert: deviations in (robust) standard deviations, thresholds as such."""
    label = KPI_LABELS.get(alert.kpi, alert.kpi)
    head = f"{alert.severity}: {label} - "
    if alert.kind == "deviation" and alert.z is not None:
        kb = baseline.kpis.get(alert.kpi)
        unit = "std dev" if kb is not None and kb.raw else "robust sd"
        side = "below" if KPI_DIRECTIONS.get(alert.kpi) == Direction.HIGHER_IS_BETTER else "above"
        return f"{head}{abs(alert.z):.1f} {unit} {side} baseline"
    if alert.kind == "threshold_unfit":
        default = f"{format_number(alert.value)}; its hard threshold fires on most sessions of this agent type"
    elif alert.kind == "threshold":
        default = f"{format_number(alert.value)} is past its hard threshold"
    else:
        default = format_number(alert.value)
    text = head + (alert.message or default)
    return f"{text}, recommendation priority {alert.priority}" if alert.priority else text


def _suggestions(suggestions: Sequence[Suggestion]) -> str:
    lines = []
    for index, suggestion in enumerate(suggestions, start=1):
        lines.append(f"{index}. [{suggestion.priority}] {suggestion.title}")
        lines.append(f"   - Evidence: {suggestion.evidence}. Expected: {suggestion.impact}.")
    body = "\n".join(lines) if lines else "None."
    return "## Optimization Suggestions (Ranked by Impact)\n\n" + body + "\n"


def _trends(alerts: Sequence[Alert], baseline: Baseline, trends: Mapping[str, Sequence[float | None]]) -> str:
    charts = []
    for alert in _ordered(alerts, {"CRITICAL", "WARNING"}):
        values = list(trends.get(alert.kpi, ()))[-TREND_SESSIONS:]
        if not values:
            continue
        kb = baseline.kpis.get(alert.kpi)
        title = f"{KPI_LABELS.get(alert.kpi, alert.kpi)} Trend (last {len(values)} sessions)"
        chart = trend_chart(title, values, baseline_centre(kb) if kb is not None else None)
        charts.append(f"```\n{chart}```\n")
    return "## Trends\n\n" + "\n".join(charts) if charts else ""


def _notes(alerts: Sequence[Alert], baseline: Baseline) -> str:
    notes = [f"- {describe_alert(alert, baseline)}" for alert in _ordered(alerts, {"INFO"})]
    return "## Notes\n\n" + "\n".join(notes) + "\n" if notes else ""
