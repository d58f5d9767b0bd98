"""A plain-text table of closed sessions and their KPIs (``kpiloop replay``'s closing summary)."""

from __future__ import annotations

from dataclasses import dataclass

from kpiloop.identity import sanitize_model
from kpiloop.model import SessionSummary

RECORDED = "recorded"
SKIPPED = "in history, skipped"
KPI_COLUMNS = (
    ("tok.eff", "token_efficiency"),
    ("cache", "cache_efficiency"),
    ("tasks", "task_completion_rate"),
    ("active", "active_time_ratio"),
    ("overhead", "tool_overhead_ratio"),
    ("errors", "error_rate"),
    ("relev", "quality_relevance"),
    ("faith", "quality_faithfulness"),
    ("coher", "quality_coherence"),
    ("halluc", "quality_hallucination"),
)
HEADER = (
    "session",
    "agent",
    "model",
    "duration",
    "api",
    "tools",
    *(c for c, _ in KPI_COLUMNS),
    "cost $",
    "alert",
    "status",
)


@dataclass(frozen=True, slots=True)
class Row:
    """One closed session and what happened to it."""

    summary: SessionSummary
    status: str


class SummaryTable:
    """Collects closed sessions; :meth:`render` prints them one per row."""

    def __init__(self) -> None:
        self.rows: list[Row] = []

    def start(self) -> None:
        """Nothing to start."""

    def shutdown(self) -> None:
        """Nothing to flush."""

    def consume(self, summary: SessionSummary) -> None:
        """A session recorded in history."""
        self.rows.append(Row(summary, RECORDED))

    def skipped(self, summary: SessionSummary) -> None:
        """A session the history already had."""
        self.rows.append(Row(summary, SKIPPED))

    def render(self) -> str:
        """The table as aligned text, or a one-line note when there are no sessions."""
        if not self.rows:
            return "no sessions with API calls, tool calls or evaluations in the input"
        cells = [HEADER, *(_cells(row) for row in self.rows)]
        widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)) for line in cells]
        return "\n".join(line.rstrip() for line in lines)


def _cells(row: Row) -> tuple[str, ...]:
    s = row.summary
    kpis = tuple(format_kpi(s.kpis.get(name)) for _, name in KPI_COLUMNS)
    cost = "-" if s.cost_usd is None else f"{s.cost_usd:.4f}"
    alert = s.assessment.alert_level if s.assessment is not None else "-"
    return (
        s.session_id[:36],
        s.agent_type,
        sanitize_model(s.model) if s.model else "-",
        format_duration(s.duration_seconds),
        str(s.api_requests),
        str(s.tool_calls),
        *kpis,
        cost,
        alert,
        row.status,
    )


def format_kpi(value: float | None) -> str:
    """Three significant digits, ``-`` for a KPI that could not be computed.

    >>> format_kpi(0.98300), format_kpi(1.7333), format_kpi(None), format_kpi(0.0)
    ('0.983', '1.73', '-', '0')
    """
    if value is None:
        return "-"
    return f"{value:.3g}"


def format_duration(seconds: float) -> str:
    """``8h36m``, ``12m05s`` or ``42s``.

    >>> format_duration(30960), format_duration(725), format_duration(42.4)
    ('8h36m', '12m05s', '42s')
    """
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
