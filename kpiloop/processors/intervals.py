"""Streaming length of a union of intervals, in bounded memory."""

from __future__ import annotations

import bisect
from typing import Any


class IntervalUnion:
    """Total length of the union of added ``[start, end]`` intervals.

    Keeps at most ``window`` disjoint intervals in a sorted buffer; when it overflows, the
    earliest one is folded into a running total and becomes the *frontier*. An interval that
    arrives later but starts before the frontier is clipped to it, so the result is exact as long
    as intervals arrive less than ``window`` merged intervals out of order, and otherwise never
    counts a moment twice.

    >>> union = IntervalUnion()
    >>> for start, end in [(0, 10), (5, 15), (20, 30)]:
    ...     union.add(start, end)
    >>> union.total()
    25
    """

    def __init__(self, window: int = 64) -> None:
        self._window = window
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._folded = 0
        self._frontier: int | None = None

    def add(self, start: int, end: int) -> None:
        """Add one interval; empty and inverted intervals add nothing."""
        if self._frontier is not None:
            start = max(start, self._frontier)
        if end <= start:
            return
        left = bisect.bisect_left(self._ends, start)
        right = bisect.bisect_right(self._starts, end)
        if left < right:
            start = min(start, self._starts[left])
            end = max(end, self._ends[right - 1])
        self._starts[left:right] = [start]
        self._ends[left:right] = [end]
        if len(self._starts) > self._window:
            self._fold_earliest()

    def total(self) -> int:
        """Length of the union so far."""
        return self._folded + sum(e - s for s, e in zip(self._starts, self._ends, strict=True))

    def to_state(self) -> dict[str, Any]:
        """A JSON-ready copy, for persisting an open session."""
        return {
            "window": self._window,
            "starts": list(self._starts),
            "ends": list(self._ends),
            "folded": self._folded,
            "frontier": self._frontier,
        }

    @classmethod
    def from_state(cls, data: dict[str, Any]) -> IntervalUnion:
        """Rebuild from :meth:`to_state` output."""
        union = cls(int(data["window"]))
        union._starts = [int(x) for x in data["starts"]]
        union._ends = [int(x) for x in data["ends"]]
        union._folded = int(data["folded"])
        union._frontier = None if data["frontier"] is None else int(data["frontier"])
        return union

    def _fold_earliest(self) -> None:
        start, end = self._starts.pop(0), self._ends.pop(0)
        self._folded += end - start
        self._frontier = end
