"""A thread-safe store of the catalogue's metric values; exporters read snapshots of it.

Counters and histograms accumulate; gauges are set or computed by callbacks at read time. Label
values are capped per metric and label (``MAX_LABEL_VALUES``; the rest become ``other``), so a
flood of agent types or models cannot blow up a time-series database.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kpiloop.exporters.catalogue import ALL_METRICS, MAX_LABEL_VALUES, OTHER, MetricDef

Labels = tuple[str, ...]
GaugeCallback = Callable[[], Mapping[Labels, float]]


@dataclass
class HistogramValue:
    """Bucket counts (non-cumulative, one per bound plus +Inf), sum and count."""

    buckets: list[int]
    total: float = 0.0
    count: int = 0


@dataclass
class MetricValues:
    """All series of one metric."""

    definition: MetricDef
    series: dict[Labels, float | HistogramValue] = field(default_factory=dict)


class MetricsStore:
    """Holds every metric of the catalogue, registered up front so each appears before any data."""

    def __init__(self, metrics: tuple[MetricDef, ...] = ALL_METRICS) -> None:
        self._lock = threading.Lock()
        self._values = {m.prom_name: MetricValues(m) for m in metrics}
        self._seen: dict[tuple[str, int], set[str]] = {}
        self._callbacks: dict[str, GaugeCallback] = {}

    def add(self, metric: MetricDef, labels: Labels, amount: float) -> None:
        """Increase a counter (or move a gauge) by ``amount``."""
        with self._lock:
            key = self._capped(metric, labels)
            series = self._values[metric.prom_name].series
            current = series.get(key, 0.0)
            assert not isinstance(current, HistogramValue)
            series[key] = current + amount

    def set(self, metric: MetricDef, labels: Labels, value: float) -> None:
        """Set a gauge."""
        with self._lock:
            self._values[metric.prom_name].series[self._capped(metric, labels)] = value

    def observe(self, metric: MetricDef, labels: Labels, value: float) -> None:
        """Record one value in a histogram."""
        with self._lock:
            series = self._values[metric.prom_name].series
            key = self._capped(metric, labels)
            histogram = series.get(key)
            if not isinstance(histogram, HistogramValue):
                histogram = HistogramValue([0] * (len(metric.buckets) + 1))
                series[key] = histogram
            histogram.buckets[bisect.bisect_left(metric.buckets, value)] += 1
            histogram.total += value
            histogram.count += 1

    def gauge_callback(self, metric: MetricDef, callback: GaugeCallback) -> None:
        """Compute a gauge's series at read time (open sessions, queue depth)."""
        with self._lock:
            self._callbacks[metric.prom_name] = callback

    def snapshot(self) -> list[MetricValues]:
        """A consistent copy of every metric, callbacks evaluated."""
        with self._lock:
            copies = [
                MetricValues(v.definition, {k: _copy(s) for k, s in v.series.items()}) for v in self._values.values()
            ]
            callbacks = dict(self._callbacks)
        for values in copies:
            callback = callbacks.get(values.definition.prom_name)
            if callback is not None:
                values.series = dict(callback())
        return copies

    def _capped(self, metric: MetricDef, labels: Labels) -> Labels:
        if len(labels) != len(metric.labels):
            raise ValueError(f"{metric.prom_name} takes labels {metric.labels}, got {labels}")
        capped = []
        for position, value in enumerate(labels):
            seen = self._seen.setdefault((metric.prom_name, position), set())
            if value not in seen and len(seen) >= MAX_LABEL_VALUES:
                value = OTHER
            seen.add(value)
            capped.append(value)
        return tuple(capped)


def _copy(value: float | HistogramValue) -> float | HistogramValue:
    if isinstance(value, HistogramValue):
        return HistogramValue(list(value.buckets), value.total, value.count)
    return value
