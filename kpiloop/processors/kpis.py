"""KPI formulas: pure functions of plain numbers (DESIGN.md section 4).

Every function returns ``None`` when its KPI cannot be computed (an empty denominator, no data):
a missing value is never reported as 0 or 1.
"""

from __future__ import annotations

from collections.abc import Sequence


def token_efficiency(output: int, uncached_input: int, cache_read: int, cache_write: int) -> float | None:
    """output / (uncached_input + output + cache_read + cache_write), in [0, 1]; None with no tokens.

    Cache writes are tokens the session paid for, so they count (the plan left them out).

    >>> token_efficiency(10_000, 169_830, 9_820_170, 0)
    0.001
    >>> token_efficiency(0, 0, 0, 0) is None
    True
    """
    total = uncached_input + output + cache_read + cache_write
    return output / total if total else None


def cache_efficiency(cache_read: int, uncached_input: int, cache_write: int) -> float | None:
    """cache_read / (uncached_input + cache_read + cache_write), in [0, 1]; None when no input.

    A cache miss that wrote the cache is still a miss (the plan left writes out).

    >>> cache_efficiency(90, 10, 0)
    0.9
    """
    total = uncached_input + cache_read + cache_write
    return cache_read / total if total else None


def task_completion_rate(
    tasks_created: int, tasks_completed: int | None, task_creates: int, task_updates: int
) -> float | None:
    """Tasks completed / tasks created when task status is visible (TaskUpdate status, TodoWrite
    lists); else min(TaskUpdate calls / TaskCreate calls, 1); None when the session made no tasks.

    >>> task_completion_rate(12, 10, 12, 14)
    0.8333333333333334
    >>> task_completion_rate(12, None, 12, 14)
    1.0
    >>> task_completion_rate(0, None, 0, 3) is None
    True
    """
    if tasks_completed is not None and tasks_created > 0:
        return min(tasks_completed / tasks_created, 1.0)
    if task_creates > 0:
        return min(task_updates / task_creates, 1.0)
    return None


def active_time_ratio(active_seconds: float, wall_seconds: float) -> float | None:
    """Union of API-call and tool intervals / wall clock, in [0, 1]; None for a zero-length session.

    >>> active_time_ratio(6811.2, 30960.0)
    0.22
    """
    if wall_seconds <= 0:
        return None
    return min(active_seconds / wall_seconds, 1.0)


def tool_overhead_ratio(management: int, productive: int, tool_calls: int) -> float | None:
    """management / max(productive, 1); None when the session executed no tool at all.

    >>> tool_overhead_ratio(26, 15, 41)
    1.7333333333333334
    >>> tool_overhead_ratio(4, 0, 4)
    4.0
    """
    if tool_calls == 0:
        return None
    return management / max(productive, 1)


def error_rate(tool_failures: int, api_errors: int, tool_calls: int, api_calls: int) -> float | None:
    """(failed tool calls + failed API calls) / (tool calls + API calls); None with no operations.

    Denied tools are not operations; a span with UNSET status is not a failure.

    >>> error_rate(1, 0, 4, 5)
    0.1111111111111111
    """
    operations = tool_calls + api_calls
    return (tool_failures + api_errors) / operations if operations else None


def cost_per_output_token(cost_usd: float | None, output_tokens: int) -> float | None:
    """cost_usd / output tokens, in USD per token; None without a cost or without output.

    >>> cost_per_output_token(0.5, 1000)
    0.0005
    """
    if cost_usd is None or output_tokens == 0:
        return None
    return cost_usd / output_tokens


def median(values: Sequence[float]) -> float | None:
    """The middle value; the mean of the two middle values for an even count; None when empty.

    >>> median([0.96, 0.94, 0.95]), median([1.0, 2.0, 3.0, 4.0])
    (0.95, 2.5)
    """
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def mean(values: Sequence[float]) -> float | None:
    """The arithmetic mean; None when empty.

    >>> mean([0.02, 0.03, 0.04])
    0.03
    """
    return sum(values) / len(values) if values else None
