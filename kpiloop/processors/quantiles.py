"""Scores of one evaluation name: exact up to a limit, then a relative-error quantile sketch."""

from __future__ import annotations

import math
from typing import Any

from kpiloop.processors.kpis import median


class LogSketch:
    """A DDSketch-style quantile sketch: any quantile within ``relative_accuracy`` of the value of
    that rank, in memory logarithmic in the value range. Zero and negative values are kept apart."""

    def __init__(self, relative_accuracy: float = 0.005) -> None:
        self._relative_accuracy = relative_accuracy
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)
        self._positive: dict[int, int] = {}
        self._negative: dict[int, int] = {}
        self._zeros = 0
        self.count = 0

    def add(self, value: float) -> None:
        """Count one value."""
        self.count += 1
        if value == 0:
            self._zeros += 1
            return
        store = self._positive if value > 0 else self._negative
        key = math.ceil(math.log(abs(value)) / self._log_gamma)
        store[key] = store.get(key, 0) + 1

    def quantile(self, q: float) -> float | None:
        """The value at rank ``q * (count - 1)``; None when empty."""
        if self.count == 0:
            return None
        rank = q * (self.count - 1)
        seen = 0
        for key in sorted(self._negative, reverse=True):
            seen += self._negative[key]
            if seen > rank:
                return -self._value(key)
        seen += self._zeros
        if seen > rank:
            return 0.0
        for key in sorted(self._positive):
            seen += self._positive[key]
            if seen > rank:
                return self._value(key)
        return self._value(max(self._positive))

    def _value(self, key: int) -> float:
        return 2 * self._gamma**key / (self._gamma + 1)

    def to_state(self) -> dict[str, Any]:
        """Plain data for :meth:`from_state` (bucket keys as strings, as JSON needs)."""
        return {
            "relative_accuracy": self._relative_accuracy,
            "positive": {str(k): v for k, v in self._positive.items()},
            "negative": {str(k): v for k, v in self._negative.items()},
            "zeros": self._zeros,
            "count": self.count,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> LogSketch:
        """Rebuild from :meth:`to_state` output."""
        sketch = cls(float(data["relative_accuracy"]))
        sketch._positive = {int(k): int(v) for k, v in data["positive"].items()}
        sketch._negative = {int(k): int(v) for k, v in data["negative"].items()}
        sketch._zeros, sketch.count = int(data["zeros"]), int(data["count"])
        return sketch


class ScoreDigest:
    """Count, exact mean, and median of a stream of scores.

    The median is exact (the mean of the two middle values for an even count) for up to
    ``exact_limit`` scores, then comes from a :class:`LogSketch` within its relative accuracy.
    """

    def __init__(self, exact_limit: int = 64) -> None:
        self._exact_limit = exact_limit
        self._values: list[float] = []
        self._sketch: LogSketch | None = None
        self._sum = 0.0
        self.count = 0

    def add(self, value: float) -> None:
        """Record one score."""
        self.count += 1
        self._sum += value
        if self._sketch is not None:
            self._sketch.add(value)
            return
        self._values.append(value)
        if len(self._values) > self._exact_limit:
            self._sketch = LogSketch()
            for kept in self._values:
                self._sketch.add(kept)
            self._values = []

    def mean(self) -> float | None:
        """Exact arithmetic mean; None when empty."""
        return self._sum / self.count if self.count else None

    def median(self) -> float | None:
        """Exact median up to the limit, sketched beyond; None when empty."""
        if self._sketch is not None:
            return self._sketch.quantile(0.5)
        return median(self._values)

    def to_state(self) -> dict[str, Any]:
        """Plain data for :meth:`from_state`."""
        return {
            "exact_limit": self._exact_limit,
            "values": list(self._values),
            "sketch": None if self._sketch is None else self._sketch.to_state(),
            "sum": self._sum,
            "count": self.count,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> ScoreDigest:
        """Rebuild from :meth:`to_state` output."""
        digest = cls(int(data["exact_limit"]))
        digest._values = [float(v) for v in data["values"]]
        digest._sketch = None if data["sketch"] is None else LogSketch.from_state(data["sketch"])
        digest._sum, digest.count = float(data["sum"]), int(data["count"])
        return digest
