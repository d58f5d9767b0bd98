"""A thread-safe store of the catalogue's metric values; exporters read snapshots of it.

Counters and histograms accumulate; gauges are set or computed by callbacks at read time. Label
values are capped per metric and label (``MAX_LABEL_VALUES``; the rest become ``other``), so a
flood of agent types or models cannot blow up a time-series database.

Label tuples whose every value is already admitted are remembered per metric, so the cap costs one
set lookup per update. A tuple is remembered only when capping leaves it unchanged, which makes it
one of the metric's series: the memo never holds more entries than the series do, whatever values
a sender makes up.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterable, Mapping
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
        self._admitted: dict[str, set[Labels]] = {m.prom_name: set() for m in metrics}
        self._callbacks: dict[str, GaugeCallback] = {}

    def add(self, metric: MetricDef, labels: Labels, amount: float) -> None:
        """Increase a counter (or move a gauge) by ``amount``."""
        with self._lock:
            self._add(metric, labels, amount)

    def add_many(self, updates: Iterable[tuple[MetricDef, Labels, float]]) -> None:
        """:meth:`add` each ``(metric, labels, amount)`` under one lock."""
        with self._lock:
            for metric, labels, amount in updates:
                self._add(metric, labels, amount)

    def set(self, metric: MetricDef, labels: Labels, value: float) -> None:
        """Set a gauge."""
        with self._lock:
            self._values[metric.prom_name].series[self._key(metric, labels)] = value

    def observe(self, metric: MetricDef, labels: Labels, value: float) -> None:
        """Record one value in a histogram."""
        with self._lock:
            series = self._values[metric.prom_name].series
            key = self._key(metric, labels)
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

    def _add(self, metric: MetricDef, labels: Labels, amount: float) -> None:
        name = metric.prom_name
        series = self._values[name].series
        key = labels if labels in self._admitted[name] else self._capped(metric, labels)  # _key, inlined: hot
        current = series.get(key, 0.0)
        assert not isinstance(current, HistogramValue)
        series[key] = current + amount

    def _key(self, metric: MetricDef, labels: Labels) -> Labels:
        return labels if labels in self._admitted[metric.prom_name] else self._capped(metric, labels)

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
        key = tuple(capped)
        if key == labels:  # every value admitted, for good: capping this tuple again changes nothing
            self._admitted[metric.prom_name].add(labels)
        return key


def _copy(value: float | HistogramValue) -> float | HistogramValue:
    if isinstance(value, HistogramValue):
        return HistogramValue(list(value.buckets), value.total, value.count)
    return value
