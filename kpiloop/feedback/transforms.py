"""The scale each KPI's baseline is computed on: log for unbounded ratios and tiny fractions,
logit for 0–1 rates, clamped so 0 and 1 stay finite. Robust centre and scale live on this scale;
``min_scale`` keeps KPIs that are almost always 0 or 1 from alerting on a single event."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class KpiScale:
    """How one KPI is transformed: ``kind``, clamp bounds on the KPI's own scale, minimum scale."""

    kind: Literal["log", "logit"]
    low: float
    high: float
    min_scale: float

    def forward(self, value: float) -> float:
        """KPI value → transformed value (clamped first).

        >>> (
        ...     round(KPI_SCALES["cache_efficiency"].forward(0.5), 6),
        ...     round(KPI_SCALES["tool_overhead_ratio"].forward(1.0), 6),
        ... )
        (0.0, 0.0)
        """
        clamped = min(max(value, self.low), self.high)
        if self.kind == "log":
            return math.log(clamped)
        return math.log(clamped / (1.0 - clamped))

    def inverse(self, transformed: float) -> float:
        """Transformed value → KPI value."""
        if self.kind == "log":
            return math.exp(transformed)
        return 1.0 / (1.0 + math.exp(-transformed))


KPI_SCALES: dict[str, KpiScale] = {
    "token_efficiency": KpiScale("log", 1e-6, 1.0, 0.25),
    "tool_overhead_ratio": KpiScale("log", 0.01, 1e6, 0.25),
    "cost_per_output_token": KpiScale("log", 1e-9, 1.0, 0.25),
    # Mostly 1.0, so one unfinished task (5/6) is ~5 logit units away: 4.0 keeps that a WARNING at
    # most (at 1.5, 6-15 % of healthy sessions went CRITICAL in tests/unit/feedback/test_simulation.py).
    "task_completion_rate": KpiScale("logit", 0.001, 0.999, 4.0),
    "active_time_ratio": KpiScale("logit", 0.001, 0.999, 0.5),
    "cache_efficiency": KpiScale("logit", 0.001, 0.999, 0.5),
    "error_rate": KpiScale("logit", 0.001, 0.999, 2.5),
    "quality_relevance": KpiScale("logit", 0.001, 0.999, 0.5),
    "quality_faithfulness": KpiScale("logit", 0.001, 0.999, 0.5),
    "quality_coherence": KpiScale("logit", 0.001, 0.999, 0.5),
    "quality_hallucination": KpiScale("logit", 0.001, 0.999, 0.5),
}
"""Transform of every KPI kpiloop baselines (DESIGN.md section 5)."""


def scale_for(kpi: str, min_scale_overrides: dict[str, float] | None = None) -> KpiScale:
    """The KPI's scale with a configured ``min_scale`` applied."""
    scale = KPI_SCALES[kpi]
    override = (min_scale_overrides or {}).get(kpi)
    if override is None:
        return scale
    return KpiScale(scale.kind, scale.low, scale.high, override)
