"""ASCII trend charts for reports (the plan's Component 4): one KPI over the last sessions.

Pure and deterministic: the same values give the same text. Each session is a column labelled
``s1`` … ``sN`` (oldest first), its value a ``*``; a session without a value leaves its column
empty. The baseline is a dashed row, and the last lines say where the current value stands.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MARKER = "*"
MIN_COLUMN = 4  # room for "s10" and a space


def format_number(value: float) -> str:
    """Three significant digits, thousands grouped above 1,000.

    >>> [format_number(v) for v in (0.001, 0.983, 1.7333, 311.4, 12345.6)]
    ['0.001', '0.983', '1.73', '311', '12,346']
    """
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def trend_chart(
    title: str,
    values: Sequence[float | None],
    baseline: float | None,
    *,
    width: int = 40,
    height: int = 9,
) -> str:
    """The chart as lines of text ending in a newline; ``width`` is the plot's width in characters
    (at least 4 per session), ``height`` its rows (at least 2).

    >>> print(trend_chart("Demo", [1.0, None, 2.5], 2.0, width=12, height=3), end="")
    Demo
    2.5 |         *
        |- - - - - -
    1.0 | *
        +------------
         s1  s2  s3
    Baseline: 2 - - - - -
    Current: 2.5 (trending toward baseline)
    """
    height = max(2, height)
    points = [value for value in values if value is not None]
    if not points:
        return f"{title}\n(no values in the last {len(values)} sessions)\n"
    low, high = _range([*points, *([baseline] if baseline is not None else [])])
    step = max(MIN_COLUMN, width // len(values))
    grid = [[" "] * (step * len(values)) for _ in range(height)]
    if baseline is not None:
        grid[_row(baseline, low, high, height)][::2] = "-" * len(grid[0][::2])
    for index, value in enumerate(values):
        if value is not None:
            grid[_row(value, low, high, height)][index * step + 1] = MARKER
    lines = [title, *_plot_lines(grid, low, high, step, len(values))]
    lines += _legend(values, baseline)
    return "\n".join(line.rstrip() for line in lines) + "\n"


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:
        pad = abs(low) * 0.1 or 0.1
        return low - pad, high + pad
    return low, high


def _row(value: float, low: float, high: float, height: int) -> int:
    return round((high - value) / (high - low) * (height - 1))


def _plot_lines(grid: list[list[str]], low: float, high: float, step: int, count: int) -> list[str]:
    height = len(grid)
    tick = (high - low) / (height - 1)
    decimals = max(0, min(6, 1 - math.floor(math.log10(2 * tick))))
    labels = [f"{high - row * tick:.{decimals}f}" if (height - 1 - row) % 2 == 0 else "" for row in range(height)]
    margin = max(len(label) for label in labels)
    lines = [f"{label:>{margin}} |{''.join(cells)}" for label, cells in zip(labels, grid, strict=True)]
    lines.append(f"{'':>{margin}} +{'-' * (step * count)}")
    lines.append(f"{'':>{margin}}  " + "".join(f"s{index + 1}".ljust(step) for index in range(count)))
    return lines


def _legend(values: Sequence[float | None], baseline: float | None) -> list[str]:
    lines = [f"Baseline: {format_number(baseline)} - - - - -"] if baseline is not None else []
    current = values[-1]
    if current is None:
        return [*lines, "Current: no value"]
    earlier = [value for value in values[:-1] if value is not None]
    return [*lines, f"Current: {format_number(current)} ({_trend(current, earlier, baseline)})"]


def _trend(current: float, earlier: Sequence[float], baseline: float | None) -> str:
    if not earlier:
        return "no earlier value"
    previous = earlier[-1]
    if baseline is None:
        return "rising" if current > previous else "falling" if current < previous else "unchanged"
    before, now = abs(previous - baseline), abs(current - baseline)
    if now < before:
        return "trending toward baseline"
    if now > before:
        return "trending away from baseline"
    return "as far from baseline as before"
