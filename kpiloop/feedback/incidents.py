"""Incident reports ``{data_dir}/incidents/{agent}-{kpi}-{timestamp}.md`` in the plan's format
(Component 5), opened when the CUSUM of a KPI's bad-direction deviations passes its decision level."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kpiloop.feedback.suggestions import SAFE_NAME
from kpiloop.feedback.trend_chart import format_number
from kpiloop.feedback.types import SessionRecord
from kpiloop.model import KPI_DIRECTIONS, Direction
from kpiloop.storage import atomic_write

RECOMMENDED_ACTIONS: tuple[str, ...] = (
    "Review session telemetry for common failure patterns",
    "Check for recent changes to agent config or prompts",
    "Verify infrastructure health (API latency, rate limits)",
    "Consider rolling back recent optimization suggestions",
)
"""The plan's four recommended actions."""


def render_incident(
    agent_type: str,
    kpi: str,
    records: Sequence[SessionRecord],
    detected_iso: str,
    cusum_value: float,
    *,
    threshold: float = 8.0,
) -> str:
    """The incident report as Markdown: ``records`` (oldest first) are the sessions leading up to
    it, compared with the baseline centre each was assessed against; ``threshold`` is the CUSUM
    decision level ``h`` it passed."""
    direction = KPI_DIRECTIONS.get(kpi)
    worse = "lower" if direction == Direction.HIGHER_IS_BETTER else "higher"
    lines = [
        f"# Performance Incident: {agent_type} - {kpi}",
        "",
        f"**Detected**: {detected_iso}",
        f"**Pattern**: sustained degradation (CUSUM S={cusum_value:.1f} > h={threshold:g}, {worse} is worse)",
        "",
        "## Session History",
        "",
        "| Session | Date | Actual | Baseline | Delta |",
        "|---------|------|--------|----------|-------|",
    ]
    lines += [_history_row(record, kpi) for record in records]
    lines += ["", "## Recommended Actions", ""]
    lines += [f"{index}. {action}" for index, action in enumerate(RECOMMENDED_ACTIONS, start=1)]
    return "\n".join(lines) + "\n"


def write_incident(data_dir: Path, agent_type: str, kpi: str, timestamp: str | int, text: str) -> Path:
    """Write the report atomically to ``{data_dir}/incidents/{agent}-{kpi}-{timestamp}.md``."""
    parts = [agent_type, kpi, str(timestamp)]
    for part in parts:
        if not SAFE_NAME.fullmatch(part):
            raise ValueError(f"{part!r} cannot be used in an incident file name")
    path = data_dir / "incidents" / f"{'-'.join(parts)}.md"
    atomic_write(path, text.encode("utf-8"))
    return path


def _history_row(record: SessionRecord, kpi: str) -> str:
    actual, baseline = record.kpis.get(kpi), record.baselines.get(kpi)
    cells = [record.session_id, record.date, _fixed(actual), _fixed(baseline), _delta(actual, baseline)]
    return "| " + " | ".join(cells) + " |"


def _fixed(value: float | None) -> str:
    """Three decimals as the plan prints them; tiny values in three significant digits."""
    if value is None:
        return "n/a"
    return f"{value:.3f}" if value == 0 or abs(value) >= 0.001 else format_number(value)


def _delta(actual: float | None, baseline: float | None) -> str:
    """Percent change from the baseline, or n/a.

    >>> _delta(0.001, 0.047), _delta(0.5, 0.0), _delta(None, 0.4)
    ('-97.9%', 'n/a', 'n/a')
    """
    if actual is None or baseline is None or baseline == 0:
        return "n/a"
    return f"{(actual - baseline) / abs(baseline) * 100:+.1f}%"
