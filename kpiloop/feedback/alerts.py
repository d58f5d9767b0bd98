"""One-sided alerts of a closed session: deviations from the baseline and hard thresholds.

Deviation: the robust z in the KPI's bad direction (positive = worse, DESIGN.md section 5)::

    z = ±(T(value) − center) / scale          robust baselines (T = the KPI's log/logit transform)
    z = ±(value − mean) / std_dev             raw baselines (a plan-format file)

with + for lower-is-better KPIs and − for higher-is-better ones, so an improvement has z ≤ 0 and
never alerts. Bands ``robust``: 1 < z ≤ 2 INFO, 2 < z ≤ 3 WARNING, z > 3 CRITICAL; ``plan``:
1 < z ≤ 2 WARNING, z > 2 CRITICAL. A hard threshold alerts with its own severity, or as INFO
(``threshold_unfit``) when it fires on most sessions of the agent type. At most one alert per KPI.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from kpiloop.feedback.config import DEFAULT_THRESHOLDS, FeedbackConfig, HardThreshold
from kpiloop.feedback.transforms import KPI_SCALES
from kpiloop.feedback.types import Baseline, KpiBaseline, SessionRecord
from kpiloop.model import KPI_DIRECTIONS, Alert, AlertLevel, Direction, Severity

SEVERITY_RANK: Mapping[str, int] = {"INFO": 1, "WARNING": 2, "CRITICAL": 3}
"""Order of severities; the most severe alert of a KPI is the one kept."""

_BANDS: Mapping[str, tuple[tuple[float, Severity], ...]] = {
    "robust": ((3.0, "CRITICAL"), (2.0, "WARNING"), (1.0, "INFO")),
    "plan": ((2.0, "CRITICAL"), (1.0, "WARNING")),
}

UNFIT_WINDOW = 20
"""Recent sessions of the agent type looked at to decide whether a hard threshold fits it."""

UNFIT_MIN_KNOWN = 10
"""Known values of the KPI in that window needed before a threshold can be called unfit."""


def bad_direction_z(kpi: str, value: float | None, kb: KpiBaseline) -> float | None:
    """Robust z of ``value`` in the KPI's bad direction (positive = worse than the baseline).

    None when the value is None or not finite, the baseline is ``bootstrap``, or its scale is 0.

    >>> bad_direction_z("error_rate", 0.5, KpiBaseline(mean=0.1, std_dev=0.2, raw=True))
    2.0
    """
    direction = KPI_DIRECTIONS.get(kpi)
    if value is None or direction is None or not math.isfinite(value) or kb.status == "bootstrap":
        return None
    sign = 1.0 if direction is Direction.LOWER_IS_BETTER else -1.0
    if kb.raw:
        return sign * (value - kb.mean) / kb.std_dev if kb.std_dev > 0 else None
    if kb.center is None or kb.scale is None or kb.scale <= 0 or kpi not in KPI_SCALES:
        return None
    return sign * (KPI_SCALES[kpi].forward(value) - kb.center) / kb.scale


def deviation_severity(z: float | None, bands: str) -> Severity | None:
    """The severity band ``z`` falls in (``robust`` or ``plan`` bands), None below the lowest.

    >>> deviation_severity(3.8, "robust"), deviation_severity(1.5, "plan"), deviation_severity(-9.0, "robust")
    ('CRITICAL', 'WARNING', None)
    """
    if z is None:
        return None
    for bound, severity in _BANDS[bands]:
        if z > bound:
            return severity
    return None


def baseline_value(kpi: str, kb: KpiBaseline) -> float:
    """The baseline's centre on the KPI's own scale: T⁻¹(center) when robust, else the mean."""
    if kb.raw or kb.center is None or kpi not in KPI_SCALES:
        return kb.mean
    return KPI_SCALES[kpi].inverse(kb.center)


def deviation_alert(kpi: str, value: float, kb: KpiBaseline, bands: str) -> Alert | None:
    """A ``deviation`` alert when ``value`` is worse than the baseline by more than the lowest band."""
    z = bad_direction_z(kpi, value, kb)
    severity = deviation_severity(z, bands)
    if z is None or severity is None:
        return None
    side = "above" if KPI_DIRECTIONS[kpi] is Direction.LOWER_IS_BETTER else "below"
    unit = "sd" if kb.raw else "robust sd"
    message = f"{kpi} is {z:.1f} {unit} {side} baseline"
    return Alert(kpi, severity, "deviation", value, baseline_value(kpi, kb), z, message)


def threshold_fires(threshold: HardThreshold, value: float | None) -> bool:
    """True when ``value <operator> threshold`` holds (never for a None value)."""
    if value is None or not math.isfinite(value):
        return False
    limit = threshold.threshold
    match threshold.operator:
        case "<":
            return value < limit
        case "<=":
            return value <= limit
        case ">":
            return value > limit
        case ">=":
            return value >= limit


def fired_thresholds(
    kpis: Mapping[str, float | None], thresholds: Sequence[HardThreshold]
) -> tuple[HardThreshold, ...]:
    """The thresholds the session's KPI values cross."""
    return tuple(t for t in thresholds if threshold_fires(t, kpis.get(t.kpi)))


def threshold_alert(threshold: HardThreshold, value: float, unfit: frozenset[str]) -> Alert:
    """A ``threshold`` alert with the threshold's severity, or INFO ``threshold_unfit`` for an unfit KPI."""
    message = f"{threshold.kpi} {value:.3g} {threshold.operator} {threshold.threshold:g} (hard threshold)"
    if threshold.kpi in unfit:
        message += "; it fires on most sessions of this agent type, so it is reported as INFO"
        return Alert(threshold.kpi, "INFO", "threshold_unfit", value, message=message, priority=threshold.priority)
    return Alert(threshold.kpi, threshold.severity, "threshold", value, message=message, priority=threshold.priority)


def evaluate_alerts(
    kpis: Mapping[str, float | None],
    baseline: Baseline,
    thresholds: Sequence[HardThreshold],
    unfit: frozenset[str],
    config: FeedbackConfig,
) -> tuple[Alert, ...]:
    """All alerts of one session, at most one per KPI (the most severe; a deviation wins a tie).

    Null KPIs and improvements never alert; a bootstrap baseline raises no deviation alerts.
    """
    candidates: dict[str, list[Alert]] = {}
    for kpi, value in kpis.items():
        kb = baseline.kpis.get(kpi)
        alert = deviation_alert(kpi, value, kb, config.alert_bands) if value is not None and kb else None
        if alert is not None:
            candidates.setdefault(kpi, []).append(alert)
    for threshold in fired_thresholds(kpis, thresholds):
        value = kpis[threshold.kpi]
        if value is not None:
            candidates.setdefault(threshold.kpi, []).append(threshold_alert(threshold, value, unfit))
    order = {kpi: i for i, kpi in enumerate(KPI_DIRECTIONS)}
    kept = (max(found, key=lambda a: SEVERITY_RANK[a.severity]) for found in candidates.values())
    return tuple(sorted(kept, key=lambda a: order.get(a.kpi, len(order))))


def alert_level(alerts: Sequence[Alert]) -> AlertLevel:
    """CRITICAL if any alert is CRITICAL, else WARNING if any is WARNING, else PASS (INFO only)."""
    severities = {a.severity for a in alerts}
    if "CRITICAL" in severities:
        return "CRITICAL"
    return "WARNING" if "WARNING" in severities else "PASS"


def thresholds_for(agent_type: str, config: FeedbackConfig) -> tuple[HardThreshold, ...]:
    """The agent type's configured thresholds, else the ``default`` entry, else the plan's."""
    for key in (agent_type, "default"):
        if key in config.hard_thresholds:
            return tuple(config.hard_thresholds[key])
    return DEFAULT_THRESHOLDS


def unfit_thresholds(recent: Sequence[SessionRecord], thresholds: Sequence[HardThreshold]) -> frozenset[str]:
    """KPIs whose threshold fired on more than half of the known values in the last 20 sessions.

    A KPI needs at least 10 known (non-null) values among those sessions before it can be unfit.
    """
    window = recent[-UNFIT_WINDOW:]
    unfit: set[str] = set()
    for threshold in thresholds:
        values = [v for r in window if (v := r.kpis.get(threshold.kpi)) is not None]
        fired = sum(1 for v in values if threshold_fires(threshold, v))
        if len(values) >= UNFIT_MIN_KNOWN and 2 * fired > len(values):
            unfit.add(threshold.kpi)
    return frozenset(unfit)
