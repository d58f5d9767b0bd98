"""Per-agent-type baselines: robust centre and scale on a transformed scale, kept in the plan's files.

For each KPI, over the last ``baseline_window`` sessions of one agent type and model, leaving out
sessions where the KPI is null and sessions that had a CRITICAL deviation on that KPI::

    t_i    = T(x_i)                             T = log or logit, clamped (transforms.KPI_SCALES)
    center = median(t_i)
    scale  = max(1.4826 · median(|t_i − center|), min_scale)

``mean``, ``std_dev`` (population: √(Σ(x − mean)² / n)), ``p50``, ``p95`` and ``p99`` (linear
interpolation between order statistics, numpy's default) are on the KPI's own scale, as in the
plan's files. Below ``bootstrap_sessions`` sessions the plan's bootstrap defaults stand in, with
``status: bootstrap`` (no deviation alerts). A plan-format file (no ``method``) is read as raw
mean/std_dev baselines (``method: plan``).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import statistics
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.transforms import KPI_SCALES, KpiScale, scale_for
from kpiloop.feedback.types import Baseline, BaselineStatus, KpiBaseline, SessionRecord
from kpiloop.model import KPI_DIRECTIONS
from kpiloop.storage import atomic_write, quarantine
from kpiloop.types import Clock, SystemClock

logger = logging.getLogger(__name__)

MAD_TO_SD = 1.4826
"""1 / Φ⁻¹(3/4): makes the median absolute deviation a consistent estimate of a normal sd."""

LOW_CONFIDENCE_RATIO = 0.5
"""A baseline is low-confidence when its scale, on the KPI's own scale, exceeds this share of its centre."""

BOOTSTRAP_DEFAULTS: Mapping[str, tuple[float, float]] = {
    "token_efficiency": (0.03, 0.02),
    "task_completion_rate": (0.90, 0.10),
    "active_time_ratio": (0.50, 0.15),
}
"""The plan's conservative defaults (mean, std_dev) for an agent type with too few sessions."""

_STATUSES: tuple[BaselineStatus, ...] = ("bootstrap", "converged", "plan")
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")


def percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation at rank h = q·(n − 1) of sorted values (numpy's default method).

    >>> percentile([1.0, 2.0, 3.0, 4.0], 0.5)
    2.5
    """
    h = q * (len(ordered) - 1)
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def robust_center_scale(transformed: Sequence[float], min_scale: float) -> tuple[float, float]:
    """center = median(t), scale = max(1.4826 · median(|t − center|), min_scale).

    >>> robust_center_scale([0.0, 1.0, 2.0, 3.0, 100.0], 0.1)
    (2.0, 1.4826)
    """
    center = statistics.median(transformed)
    mad = statistics.median([abs(t - center) for t in transformed])
    return center, max(MAD_TO_SD * mad, min_scale)


def own_scale_spread(kpi_scale: KpiScale, center: float, scale: float) -> float:
    """The robust scale mapped back to the KPI's own scale: (T⁻¹(c + s) − T⁻¹(c − s)) / 2."""
    return (kpi_scale.inverse(center + scale) - kpi_scale.inverse(center - scale)) / 2.0


def kpi_baseline(kpi: str, values: Sequence[float], min_scale_overrides: dict[str, float] | None = None) -> KpiBaseline:
    """One KPI's robust baseline from its window values (at least one, all finite)."""
    kpi_scale = scale_for(kpi, min_scale_overrides)
    center, scale = robust_center_scale([kpi_scale.forward(v) for v in values], kpi_scale.min_scale)
    ordered = sorted(values)
    mean = math.fsum(values) / len(values)
    std_dev = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))
    spread = own_scale_spread(kpi_scale, center, scale)
    return KpiBaseline(
        mean=mean,
        std_dev=std_dev,
        p50=percentile(ordered, 0.50),
        p95=percentile(ordered, 0.95),
        p99=percentile(ordered, 0.99),
        center=center,
        scale=scale,
        count=len(values),
        status="converged",
        low_confidence=spread > LOW_CONFIDENCE_RATIO * abs(kpi_scale.inverse(center)),
    )


def window_values(kpi: str, window: Sequence[SessionRecord]) -> list[float]:
    """The KPI's finite values in the window, without sessions that had a CRITICAL deviation on it."""
    values = (r.kpis.get(kpi) for r in window if kpi not in r.critical_kpis)
    return [v for v in values if v is not None and math.isfinite(v)]


def bootstrap_kpis() -> dict[str, KpiBaseline]:
    """The plan's bootstrap defaults as raw baselines with ``status: bootstrap``."""
    return {
        kpi: KpiBaseline(mean=mean, std_dev=sd, status="bootstrap", raw=True)
        for kpi, (mean, sd) in BOOTSTRAP_DEFAULTS.items()
    }


def compute_baseline(
    agent_type: str,
    model: str,
    records: Sequence[SessionRecord],
    config: FeedbackConfig,
    now_iso: str,
    previous: Baseline | None = None,
) -> Baseline:
    """The baseline of ``records`` (one agent type and model, oldest → newest, latest revisions).

    Each KPI with at least ``bootstrap_sessions`` usable values in the last ``baseline_window``
    records gets a robust baseline; a KPI with fewer (and every KPI while the agent type has fewer
    records) falls back to the plan's bootstrap default when there is one, else is left out.
    The CUSUM state is carried over from ``previous`` when it is for the same model (or any model).
    """
    window = records[-config.baseline_window :] if len(records) >= config.bootstrap_sessions else ()
    fallback = bootstrap_kpis()
    kpis: dict[str, KpiBaseline] = {}
    for kpi in KPI_DIRECTIONS:
        values = window_values(kpi, window) if kpi in KPI_SCALES else []
        if len(values) >= config.bootstrap_sessions:
            kpis[kpi] = kpi_baseline(kpi, values, config.min_scale)
        elif kpi in fallback:
            kpis[kpi] = fallback[kpi]
    carry = previous is not None and previous.model in (None, model)
    return Baseline(
        agent_type=agent_type,
        model=model,
        session_count=len(records),
        kpis=kpis,
        method="robust",
        last_updated=now_iso,
        bootstrap_threshold=config.bootstrap_sessions,
        window=config.baseline_window,
        cusum=dict(previous.cusum) if carry and previous is not None else {},
    )


def choose_baseline(
    stored: Baseline | None,
    agent_type: str,
    model: str,
    records: Sequence[SessionRecord],
    config: FeedbackConfig,
    now_iso: str,
) -> Baseline:
    """The baseline a NEW session of ``agent_type`` on ``model`` is compared against.

    ``records`` are the agent type's earlier sessions of any model, oldest → newest. A plan-format
    file (``method: plan``) is used as-is while fewer than ``bootstrap_sessions`` records exist;
    otherwise the baseline is computed from the records of ``model`` alone, so a stored baseline of
    another model gives way to a fresh one (bootstrap while that model has few sessions).
    """
    if stored is not None and stored.method == "plan" and len(records) < config.bootstrap_sessions:
        return stored
    same_model = [r for r in records if r.model == model]
    return compute_baseline(agent_type, model, same_model, config, now_iso, previous=stored)


def baseline_to_json(baseline: Baseline) -> dict[str, Any]:
    """The plan's baseline file, plus ``method``, ``model``, ``window``, ``cusum`` and robust fields per KPI."""
    return {
        "agent_type": baseline.agent_type,
        "version": baseline.version,
        "last_updated": baseline.last_updated,
        "session_count": baseline.session_count,
        "method": baseline.method,
        "model": baseline.model,
        "window": baseline.window,
        "baselines": {kpi: _kpi_to_json(kpi, kb) for kpi, kb in baseline.kpis.items()},
        "bootstrap_threshold": baseline.bootstrap_threshold,
        "cusum": dict(baseline.cusum),
    }


def _kpi_to_json(kpi: str, kb: KpiBaseline) -> dict[str, Any]:
    robust = not kb.raw and kpi in KPI_SCALES
    return {
        "mean": kb.mean,
        "std_dev": kb.std_dev,
        "p50": kb.p50,
        "p95": kb.p95,
        "p99": kb.p99,
        "status": kb.status,
        "center": kb.center if robust else None,
        "scale": kb.scale if robust else None,
        "transform": KPI_SCALES[kpi].kind if robust else None,
        "count": kb.count,
        "low_confidence": kb.low_confidence,
    }


def baseline_from_json(data: object) -> Baseline:
    """Read a baseline file written by :func:`baseline_to_json` or in the plan's own format.

    A file without ``method`` is plan-format: ``method: plan``, every KPI raw (z from
    mean/std_dev). KPIs kpiloop does not know are skipped. Raises ValueError on a malformed file.
    """
    doc = _mapping(data, "baseline file")
    method = _text(doc, "method", "plan")
    model = doc.get("model")
    if model is not None and not isinstance(model, str):
        raise ValueError("model must be a string or null")
    entries = _mapping(doc.get("baselines"), "baselines")
    kpis = {str(k): _kpi_from_json(str(k), v, method) for k, v in entries.items() if k in KPI_DIRECTIONS}
    cusum = _mapping(doc.get("cusum", {}), "cusum")
    return Baseline(
        agent_type=_text(doc, "agent_type", None),
        model=model,
        session_count=_integer(doc, "session_count", 0),
        kpis=kpis,
        method=method,
        last_updated=_text(doc, "last_updated", ""),
        version=_text(doc, "version", "1.0.0"),
        bootstrap_threshold=_integer(doc, "bootstrap_threshold", 5),
        window=_integer(doc, "window", 100),
        cusum={str(k): _finite(v, f"cusum.{k}") for k, v in cusum.items()},
    )


def _kpi_from_json(kpi: str, data: object, method: str) -> KpiBaseline:
    entry = _mapping(data, f"baselines.{kpi}")
    status = entry.get("status", "plan" if method == "plan" else "converged")
    if status not in _STATUSES:
        raise ValueError(f"baselines.{kpi}.status must be one of {_STATUSES}")
    center, scale = _optional(entry, "center", kpi), _optional(entry, "scale", kpi)
    std_dev = _finite(entry.get("std_dev"), f"baselines.{kpi}.std_dev")
    if std_dev < 0 or (scale is not None and scale < 0):
        raise ValueError(f"baselines.{kpi}: std_dev and scale must not be negative")
    raw = method == "plan" or center is None or scale is None or kpi not in KPI_SCALES
    return KpiBaseline(
        mean=_finite(entry.get("mean"), f"baselines.{kpi}.mean"),
        std_dev=std_dev,
        p50=_optional(entry, "p50", kpi),
        p95=_optional(entry, "p95", kpi),
        p99=_optional(entry, "p99", kpi),
        center=None if raw else center,
        scale=None if raw else scale,
        count=_integer(entry, "count", 0),
        status=status,
        low_confidence=entry.get("low_confidence") is True,
        raw=raw,
    )


def _mapping(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be an object")
    return value


def _finite(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number")
    return float(value)


def _optional(entry: Mapping[str, object], key: str, kpi: str) -> float | None:
    value = entry.get(key)
    return None if value is None else _finite(value, f"baselines.{kpi}.{key}")


def _integer(doc: Mapping[str, object], key: str, default: int) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key} must be a non-negative integer")
    return value


def _text(doc: Mapping[str, object], key: str, default: str | None) -> str:
    value = doc.get(key, default)
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


class BaselineStore:
    """Baseline files under ``{data_dir}/baselines/``: ``{agent_type}.json`` and ``archive/``."""

    def __init__(self, data_dir: Path, clock: Clock | None = None) -> None:
        self._dir = data_dir / "baselines"
        self._clock: Clock = clock if clock is not None else SystemClock()

    def path(self, agent_type: str) -> Path:
        """``{data_dir}/baselines/{agent_type}.json``; agent types are ``[A-Za-z0-9._-]`` names."""
        if not _SAFE_NAME.fullmatch(agent_type) or agent_type in (".", ".."):
            raise ValueError(f"unsafe agent type {agent_type!r}")
        return self._dir / f"{agent_type}.json"

    def agent_types(self) -> list[str]:
        """Agent types with a baseline file, sorted."""
        if not self._dir.is_dir():
            return []
        return sorted(path.stem for path in self._dir.glob("*.json") if _SAFE_NAME.fullmatch(path.stem))

    def load(self, agent_type: str) -> Baseline | None:
        """The stored baseline, or None when there is none or it cannot be used.

        A corrupt file (not JSON, or not a baseline) is logged and moved aside as
        ``{agent_type}.json.corrupt-{UTC time}`` (:func:`kpiloop.storage.quarantine`), never
        overwritten: the next close rebuilds the baseline from the history (its CUSUM state starts
        again at 0). A file that cannot be read (permissions, I/O error) is logged and left alone.
        """
        path = self.path(agent_type)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring unreadable baseline file %s: %s", path, exc)
            return None
        try:
            return baseline_from_json(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            logger.warning("ignoring unreadable baseline file %s: %s; it is rebuilt from the history", path, exc)
            quarantine(path, "corrupt baseline")
            return None

    def save(self, baseline: Baseline) -> Path:
        """Write the baseline atomically; returns its path."""
        path = self.path(baseline.agent_type)
        text = json.dumps(baseline_to_json(baseline), indent=2, allow_nan=False) + "\n"
        atomic_write(path, text.encode("utf-8"))
        return path

    def archive(self, agent_type: str) -> Path | None:
        """Move the current file to ``archive/{agent_type}-{model}-{UTC timestamp}.json``; None if none."""
        path = self.path(agent_type)
        if not path.exists():
            return None
        stored = self.load(agent_type)
        model = re.sub(r"[^A-Za-z0-9._-]", "_", (stored.model if stored else None) or "unknown")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self._clock.now()))
        target = self._dir / "archive" / f"{agent_type}-{model}-{stamp}.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        suffix = 1
        while target.exists():
            suffix += 1
            target = target.with_name(f"{agent_type}-{model}-{stamp}-{suffix}.json")
        os.replace(path, target)
        return target

    def reset(self, agent_type: str, kpi: str | None = None) -> bool:
        """Forget the whole file (``kpi`` None) or one KPI's entry and CUSUM state; False if nothing to reset."""
        path = self.path(agent_type)
        if kpi is None:
            existed = path.exists()
            path.unlink(missing_ok=True)
            return existed
        stored = self.load(agent_type)
        if stored is None or (kpi not in stored.kpis and kpi not in stored.cusum):
            return False
        kpis = {k: v for k, v in stored.kpis.items() if k != kpi}
        cusum = {k: v for k, v in stored.cusum.items() if k != kpi}
        self.save(replace(stored, kpis=kpis, cusum=cusum))
        return True
