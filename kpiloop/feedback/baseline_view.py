"""A baseline as text, for ``kpiloop baselines show``."""

from __future__ import annotations

from kpiloop.feedback.transforms import KPI_SCALES
from kpiloop.feedback.types import Baseline, KpiBaseline
from kpiloop.identity import sanitize_model

HEADER = ("kpi", "centre", "spread", "mean", "p50", "p95", "sessions", "status")


def render_baseline(baseline: Baseline) -> str:
    """Header line plus one aligned row per KPI (centre and spread on the KPI's own scale)."""
    model = sanitize_model(baseline.model) if baseline.model else "any"
    title = (
        f"{baseline.agent_type}  model={model}  method={baseline.method}  "
        f"status={baseline.status}  sessions={baseline.session_count}  updated={baseline.last_updated or '-'}"
    )
    rows = [HEADER, *(_row(kpi, kb) for kpi, kb in sorted(baseline.kpis.items()))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join([title, *lines, ""])


def _row(kpi: str, kb: KpiBaseline) -> tuple[str, ...]:
    centre, spread = _centre_and_spread(kpi, kb)
    status = kb.status + (" (low confidence)" if kb.low_confidence else "")
    return (kpi, _num(centre), _num(spread), _num(kb.mean), _num(kb.p50), _num(kb.p95), str(kb.count), status)


def _centre_and_spread(kpi: str, kb: KpiBaseline) -> tuple[float | None, float | None]:
    """The robust centre and half the ±1-scale band, back on the KPI's own scale; mean ± sd for raw."""
    if kb.raw or kb.center is None or kb.scale is None or kpi not in KPI_SCALES:
        return kb.mean, kb.std_dev
    scale = KPI_SCALES[kpi]
    centre = scale.inverse(kb.center)
    return centre, (scale.inverse(kb.center + kb.scale) - scale.inverse(kb.center - kb.scale)) / 2


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"
