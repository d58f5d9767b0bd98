"""Streaming length of a union of intervals, in bounded memory."""

from __future__ import annotations

import bisect
from array import array
from typing import Any

MAX_NS = 2**63 - 1
"""Latest representable time: year 2262 in nanoseconds since the epoch."""


class IntervalUnion:
    """Total length of the union of added ``[start, end]`` intervals.

    Keeps at most ``window`` disjoint intervals in a sorted buffer (two flat arrays of 64-bit
    nanoseconds, 16 bytes an interval); when it overflows, the
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
        self._starts = array("q")
        self._ends = array("q")
        self._folded = 0
        self._frontier: int | None = None

    def add(self, start: int, end: int) -> None:
        """Add one interval; empty and inverted intervals add nothing. Times are clamped to
        ``[0, MAX_NS]`` (nothing real lies outside, and the buffer holds 64-bit values)."""
        if start < 0 or end > MAX_NS:
            start, end = min(max(start, 0), MAX_NS), min(max(end, 0), MAX_NS)
        if self._frontier is not None:
            start = max(start, self._frontier)
        if end <= start:
            return
        if not self._ends or start > self._ends[-1]:  # the usual case: after everything so far
            self._starts.append(start)
            self._ends.append(end)
        else:
            self._merge(start, end)
        if len(self._starts) > self._window:
            self._fold_earliest()

    def _merge(self, start: int, end: int) -> None:
        """Replace the buffered intervals that ``[start, end]`` touches with their union, in place."""
        left = bisect.bisect_left(self._ends, start)
        right = bisect.bisect_right(self._starts, end)
        if left == right:
            self._starts.insert(left, start)
            self._ends.insert(left, end)
            return
        self._starts[left] = min(start, self._starts[left])
        self._ends[left] = max(end, self._ends[right - 1])
        del self._starts[left + 1 : right]
        del self._ends[left + 1 : right]

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
        union._starts = array("q", (int(x) for x in data["starts"]))
        union._ends = array("q", (int(x) for x in data["ends"]))
        union._folded = int(data["folded"])
        union._frontier = None if data["frontier"] is None else int(data["frontier"])
        return union

    def _fold_earliest(self) -> None:
        start, end = self._starts.pop(0), self._ends.pop(0)
        self._folded += end - start
        self._frontier = end
