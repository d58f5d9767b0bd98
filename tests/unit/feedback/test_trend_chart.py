"""ASCII trend charts: layout, gaps for sessions without a value, and the trend sentence."""

from __future__ import annotations

import pytest

from kpiloop.feedback.trend_chart import MARKER, format_number, trend_chart

TOKEN_EFFICIENCY = [0.046, 0.049, 0.051, None, 0.044, 0.050, 0.047, 0.043, 0.048, 0.001]


def plot_rows(chart: str) -> list[str]:
    """The rows between the title and the x axis, without their labels."""
    lines = chart.splitlines()
    axis = next(i for i, line in enumerate(lines) if "+-" in line)
    return [line.split("|", 1)[1] if "|" in line else "" for line in lines[1:axis]]


def marker_columns(chart: str) -> set[int]:
    return {col for row in plot_rows(chart) for col, char in enumerate(row) if char == MARKER}


def test_the_token_efficiency_chart_matches_the_golden_file(golden):
    chart = trend_chart("Token Efficiency Trend (last 10 sessions)", TOKEN_EFFICIENCY, 0.047)
    golden.check("feedback_trend_token_efficiency.txt", chart)


def test_the_chart_is_a_pure_function_of_its_arguments():
    first = trend_chart("T", TOKEN_EFFICIENCY, 0.047)
    assert trend_chart("T", list(TOKEN_EFFICIENCY), 0.047) == first


def test_sessions_are_labelled_s1_to_sn_oldest_first():
    chart = trend_chart("T", TOKEN_EFFICIENCY, 0.047)
    labels = chart.splitlines()[-3].split()
    assert labels == [f"s{i}" for i in range(1, 11)]


def test_a_session_without_a_value_leaves_its_column_empty():
    chart = trend_chart("T", [0.5, None, 0.7, None], 0.6, width=16)
    assert marker_columns(chart) == {1, 9}  # columns of s1 and s3; s2 and s4 are gaps


def test_the_highest_value_is_on_the_top_row_and_the_lowest_on_the_bottom_row():
    rows = plot_rows(trend_chart("T", [0.2, 0.9, 0.5], None, width=12, height=5))
    assert rows[0].index(MARKER) == 5  # s2
    assert rows[-1].index(MARKER) == 1  # s1


def test_the_baseline_is_a_dashed_row_and_named_in_the_legend():
    chart = trend_chart("T", [0.2, 0.9], 0.55, width=8, height=3)
    assert any(row.startswith("- - ") for row in plot_rows(chart))
    assert "Baseline: 0.55 - - - - -" in chart.splitlines()


@pytest.mark.parametrize(
    ("values", "baseline", "sentence"),
    [
        ([0.01, 0.042], 0.047, "Current: 0.042 (trending toward baseline)"),
        ([0.045, 0.001], 0.047, "Current: 0.001 (trending away from baseline)"),
        ([0.040, None, 0.054], 0.047, "Current: 0.054 (as far from baseline as before)"),
        ([0.042], 0.047, "Current: 0.042 (no earlier value)"),
        ([0.02, 0.03], None, "Current: 0.03 (rising)"),
        ([0.03, None], 0.047, "Current: no value"),
    ],
)
def test_the_last_line_says_where_the_current_value_is_heading(values, baseline, sentence):
    assert trend_chart("T", values, baseline).splitlines()[-1] == sentence


def test_without_any_value_the_chart_says_so():
    assert trend_chart("T", [None, None], 0.5) == "T\n(no values in the last 2 sessions)\n"


def test_constant_values_get_a_range_around_them():
    chart = trend_chart("T", [0.5, 0.5, 0.5], 0.5, height=5)
    assert chart.splitlines()[1].startswith("0.550 |")
    assert marker_columns(chart) == {1, 14, 27}


def test_no_line_ends_in_whitespace():
    for line in trend_chart("T", TOKEN_EFFICIENCY, 0.047).splitlines():
        assert line == line.rstrip()


@pytest.mark.parametrize(("value", "text"), [(0.0, "0"), (-0.046, "-0.046"), (0.00012345, "0.000123"), (1e-7, "1e-07")])
def test_format_number(value, text):
    assert format_number(value) == text
