"""The pure KPI formulas (DESIGN.md section 4): hand-computed values and empty denominators."""

from __future__ import annotations

import pytest

from kpiloop.processors import kpis


@pytest.mark.parametrize(
    ("output", "uncached_input", "cache_read", "cache_write", "expected"),
    [
        (100, 200, 600, 100, 0.1),  # 100 / (200 + 100 + 600 + 100) = 100 / 1000
        (50, 0, 0, 50, 0.5),  # cache writes are tokens too: 50 / (50 + 50)
        (0, 10, 0, 0, 0.0),  # no output is 0, not "missing"
        (7, 0, 0, 0, 1.0),  # output only
        (10_000, 169_830, 9_820_170, 0, 0.001),  # the docstring's Claude Code-like session
    ],
)
def test_token_efficiency(output, uncached_input, cache_read, cache_write, expected):
    assert kpis.token_efficiency(output, uncached_input, cache_read, cache_write) == pytest.approx(expected)


def test_token_efficiency_without_tokens_is_none():
    assert kpis.token_efficiency(0, 0, 0, 0) is None


@pytest.mark.parametrize(
    ("cache_read", "uncached_input", "cache_write", "expected"),
    [
        (90, 10, 0, 0.9),  # 90 / (10 + 90)
        (60, 10, 30, 0.6),  # a miss that wrote the cache is still a miss: 60 / (10 + 60 + 30)
        (0, 5, 5, 0.0),
        (42, 0, 0, 1.0),
    ],
)
def test_cache_efficiency(cache_read, uncached_input, cache_write, expected):
    assert kpis.cache_efficiency(cache_read, uncached_input, cache_write) == pytest.approx(expected)


def test_cache_efficiency_without_input_is_none():
    # Output tokens alone do not make a cache ratio: the function does not even take them.
    assert kpis.cache_efficiency(0, 0, 0) is None


@pytest.mark.parametrize(
    ("tasks_created", "tasks_completed", "task_creates", "task_updates", "expected"),
    [
        (4, 3, 4, 0, 0.75),  # status visible: 3 / 4, the update count is irrelevant
        (4, 3, 4, 40, 0.75),
        (3, 0, 3, 5, 0.0),  # visible status with nothing completed is 0, not the fallback 1.0
        (2, 5, 2, 0, 1.0),  # completed more than created (resumed session): clamped to 1
        (0, None, 4, 2, 0.5),  # no status: min(2 / 4, 1)
        (0, None, 2, 5, 1.0),  # no status: min(5 / 2, 1)
        (12, None, 12, 14, 1.0),  # tasks_created without status is ignored; fallback on calls
    ],
)
def test_task_completion_rate(tasks_created, tasks_completed, task_creates, task_updates, expected):
    got = kpis.task_completion_rate(tasks_created, tasks_completed, task_creates, task_updates)
    assert got == pytest.approx(expected)


@pytest.mark.parametrize(
    ("tasks_created", "tasks_completed", "task_creates", "task_updates"),
    [
        (0, None, 0, 0),
        (0, None, 0, 3),  # updates without creates: no tasks, not 1.0
        (0, 2, 0, 2),  # status seen but nothing created in this session
        (0, 0, 0, 0),
    ],
)
def test_task_completion_rate_without_tasks_is_none(tasks_created, tasks_completed, task_creates, task_updates):
    assert kpis.task_completion_rate(tasks_created, tasks_completed, task_creates, task_updates) is None


@pytest.mark.parametrize(
    ("active", "wall", "expected"),
    [
        (30.0, 120.0, 0.25),
        (0.0, 10.0, 0.0),
        (150.0, 100.0, 1.0),  # clamped: never more active than the wall clock
        (100.0, 100.0, 1.0),
        (6811.2, 30960.0, 0.22),
    ],
)
def test_active_time_ratio(active, wall, expected):
    assert kpis.active_time_ratio(active, wall) == pytest.approx(expected)


@pytest.mark.parametrize("wall", [0.0, -1.0])
def test_active_time_ratio_without_wall_clock_is_none(wall):
    assert kpis.active_time_ratio(5.0, wall) is None


@pytest.mark.parametrize(
    ("management", "productive", "tool_calls", "expected"),
    [
        (3, 6, 9, 0.5),  # 3 / 6
        (26, 15, 41, 26 / 15),
        (4, 0, 4, 4.0),  # no productive tool: management / max(0, 1), no division by zero
        (2, 1, 3, 2.0),
        (0, 0, 5, 0.0),  # tools that are neither (e.g. WebFetch): no overhead
        (0, 3, 3, 0.0),
    ],
)
def test_tool_overhead_ratio(management, productive, tool_calls, expected):
    assert kpis.tool_overhead_ratio(management, productive, tool_calls) == pytest.approx(expected)


def test_tool_overhead_ratio_without_tools_is_none():
    assert kpis.tool_overhead_ratio(0, 0, 0) is None


@pytest.mark.parametrize(
    ("tool_failures", "api_errors", "tool_calls", "api_calls", "expected"),
    [
        (1, 0, 4, 5, 1 / 9),  # 1 / (4 + 5)
        (0, 2, 0, 4, 0.5),  # API calls only
        (2, 0, 8, 0, 0.25),  # tools only
        (3, 1, 3, 1, 1.0),
        (0, 0, 10, 10, 0.0),
        (1, 1, 2, 2, 0.5),  # (1 + 1) / (2 + 2)
    ],
)
def test_error_rate(tool_failures, api_errors, tool_calls, api_calls, expected):
    assert kpis.error_rate(tool_failures, api_errors, tool_calls, api_calls) == pytest.approx(expected)


def test_error_rate_without_operations_is_none():
    assert kpis.error_rate(0, 0, 0, 0) is None


@pytest.mark.parametrize(
    ("cost", "output", "expected"),
    [
        (0.5, 1000, 0.0005),
        (0.0, 10, 0.0),  # free is a value, not missing
        (0.0228, 800, 0.0000285),
    ],
)
def test_cost_per_output_token(cost, output, expected):
    assert kpis.cost_per_output_token(cost, output) == pytest.approx(expected)


@pytest.mark.parametrize(("cost", "output"), [(None, 10), (1.0, 0), (None, 0)])
def test_cost_per_output_token_missing_is_none(cost, output):
    assert kpis.cost_per_output_token(cost, output) is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.96, 0.94, 0.95], 0.95),
        ([1.0, 2.0, 3.0, 4.0], 2.5),  # even count: mean of the two middle values
        ([4.0, 1.0, 3.0, 2.0], 2.5),  # order does not matter
        ([0.2, 0.9], pytest.approx(0.55)),
        ([7.0], 7.0),
        ([-3.0, 0.0, 5.0, 100.0], 2.5),
    ],
)
def test_median(values, expected):
    assert kpis.median(values) == expected


def test_median_does_not_reorder_its_input():
    values = [3.0, 1.0, 2.0]
    kpis.median(values)
    assert values == [3.0, 1.0, 2.0]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.02, 0.03, 0.04], 0.03),
        ([0.0, 0.0, 0.9], 0.3),  # a mean, so one bad score moves it (the median would be 0)
        ([5.0], 5.0),
        ([-1.0, 1.0], 0.0),
    ],
)
def test_mean(values, expected):
    assert kpis.mean(values) == pytest.approx(expected)


@pytest.mark.parametrize("function", [kpis.median, kpis.mean])
def test_median_and_mean_of_nothing_are_none(function):
    assert function([]) is None
