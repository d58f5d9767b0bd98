"""The per-session report: the plan's E&N case against the plan's example baseline file and against
a robust baseline, both replayed through the real pipeline and compared with golden files."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import JsonlReplay
from kpiloop.feedback.report import KPI_LABELS, render_report, write_report
from kpiloop.feedback.rules import DEFAULT_RULES
from kpiloop.feedback.suggestions import suggest
from kpiloop.feedback.types import Baseline, KpiBaseline
from kpiloop.model import Alert, Assessment, SessionSummary
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.sample_sessions import EN_SESSION_ID, PlanSession, en_session, write_daily_files
from kpiloop.testing import FakeClock, ListSink

PLAN_FILE = {  # the plan's example baselines/translation-agent.json: mean, std_dev, p50
    "token_efficiency": (0.048, 0.012, 0.047),
    "task_completion_rate": (0.96, 0.03, 0.97),
    "active_time_ratio": (0.68, 0.08, 0.70),
    "tool_overhead_ratio": (0.42, 0.11, 0.40),
    "cache_efficiency": (0.94, 0.04, 0.95),
    "error_rate": (0.01, 0.02, 0.00),
    "quality_relevance": (0.94, 0.02, 0.95),
    "quality_faithfulness": (0.93, 0.03, 0.94),
    "quality_coherence": (0.92, 0.03, 0.93),
    "quality_hallucination": (0.04, 0.02, 0.03),
}

TRENDS: dict[str, list[float | None]] = {
    "token_efficiency": [0.046, 0.049, 0.051, None, 0.044, 0.050, 0.047, 0.043, 0.048, 0.001],
    "active_time_ratio": [0.71, 0.66, 0.74, 0.69, None, 0.70, 0.65, 0.72, 0.68, 0.22],
    "tool_overhead_ratio": [0.38, 0.45, 0.41, 0.40, 0.36, 0.44, 0.39, 0.42, 0.47, 0.43, 1.733],
    "cache_efficiency": [0.95, 0.94, 0.96, 0.93, 0.95, 0.94, 0.97, 0.95, 0.96, 0.983],
}


def replay(session: PlanSession, directory: Path) -> SessionSummary:
    """Replay the session's JSONL files through the real receiver, adapter and session processor."""
    files = write_daily_files(directory, [session])
    sink: ListSink[SessionSummary] = ListSink()
    processor = SessionKpiProcessor(sink, SessionKpiConfig(), FakeClock())
    JsonlReplay([str(path) for path in files], processor, EventAdapter(), print).run()
    processor.close_all()
    (summary,) = sink.items
    return summary


@pytest.fixture
def en(tmp_path) -> SessionSummary:
    return replay(en_session(), tmp_path / "en")


def plan_baseline() -> Baseline:
    kpis = {
        kpi: KpiBaseline(mean=m, std_dev=s, p50=p, status="converged", raw=True) for kpi, (m, s, p) in PLAN_FILE.items()
    }
    return Baseline("translation-agent", None, 12, kpis, method="plan", last_updated="2026-02-14T12:00:00Z")


def plan_assessment() -> Assessment:
    """The E&N session against the plan's file: raw-scale z, three critical regressions."""
    alerts = (
        Alert("token_efficiency", "CRITICAL", "deviation", 0.001, baseline=0.048, z=-3.9),
        Alert("active_time_ratio", "CRITICAL", "deviation", 0.22, baseline=0.68, z=-5.8),
        Alert("tool_overhead_ratio", "CRITICAL", "deviation", 26 / 15, baseline=0.42, z=11.9),
    )
    centres = {kpi: mean for kpi, (mean, _, _) in PLAN_FILE.items()}
    return Assessment("CRITICAL", centres, alerts, baseline_status="plan")


def robust_baseline() -> Baseline:
    """A converged robust baseline of 40 sessions (centre and scale on the transformed scale elided)."""
    kpis = {
        kpi: KpiBaseline(mean=m, std_dev=s, p50=p, center=0.0, scale=0.3, count=40, low_confidence=kpi == "error_rate")
        for kpi, (m, s, p) in PLAN_FILE.items()
    }
    kpis["cost_per_output_token"] = KpiBaseline(mean=0.0007, std_dev=0.0002, p50=0.00065, count=40)
    return Baseline("translation-agent", "claude-opus-4-6", 40, kpis, last_updated="2026-02-14T12:00:00Z")


def robust_assessment() -> Assessment:
    """A deviation of each severity and a hard threshold."""
    alerts = (
        Alert(
            "token_efficiency",
            "CRITICAL",
            "threshold",
            0.001,
            message="token_efficiency 0.001 < 0.01 (hard threshold)",
            priority="CRITICAL",
        ),
        Alert("active_time_ratio", "CRITICAL", "deviation", 0.22, baseline=0.70, z=3.8),
        Alert("tool_overhead_ratio", "WARNING", "deviation", 26 / 15, baseline=0.40, z=2.6),
        Alert("quality_faithfulness", "INFO", "deviation", 0.94, baseline=0.94, z=1.2),
    )
    return Assessment("CRITICAL", {}, alerts, baseline_status="converged")


UNFIT = Alert(
    "token_efficiency",
    "INFO",
    "threshold_unfit",
    0.001,
    message="token_efficiency 0.001 < 0.01 (hard threshold); it fires on most sessions of this agent type, "
    "so it is reported as INFO",
    priority="CRITICAL",
)


def table_rows(report: str) -> dict[str, list[str]]:
    section = report.split("## KPI Summary\n\n", 1)[1].split("\n\n", 1)[0]
    rows = [[cell.strip() for cell in line.strip("|").split("|")] for line in section.splitlines()[2:]]
    return {row[0]: row[1:] for row in rows}


def test_the_en_report_against_the_plans_baseline_file_matches_the_golden_file(en, golden):
    report = render_report(en, plan_baseline(), plan_assessment(), suggest(en, DEFAULT_RULES), TRENDS)
    golden.check("feedback_en_report_plan_baseline.md", report)


def test_the_en_report_against_a_robust_baseline_matches_the_golden_file(en, golden):
    report = render_report(en, robust_baseline(), robust_assessment(), suggest(en, DEFAULT_RULES), TRENDS)
    golden.check("feedback_en_report_robust.md", report)


def test_the_plans_case_is_critical_with_three_critical_regressions_and_cache_efficiency_passing(en):
    report = render_report(en, plan_baseline(), plan_assessment(), suggest(en, DEFAULT_RULES), TRENDS)
    assert "**Status**: CRITICAL" in report
    rows = table_rows(report)
    assert rows["Token Efficiency"] == ["0.001", "0.048 +/- 0.012", "-0.047 (-97.9%)", "CRITICAL"]
    assert rows["Tool Overhead"][1:] == ["0.42 +/- 0.11", "+1.31 (+313%)", "CRITICAL"]
    assert rows["Cache Efficiency"] == ["0.983", "0.94 +/- 0.04", "+0.043 (+4.6%)", "PASS"]
    assert "1. CRITICAL: Token Efficiency - 3.9 std dev below baseline" in report
    assert "3. CRITICAL: Tool Overhead - 11.9 std dev above baseline" in report
    assert "Cache Efficiency -" not in report.split("## Regressions Detected", 1)[1]
    assert "1. [CRITICAL] Use background agents for independent work units" in report
    assert "2. [HIGH] Batch task operations to reduce overhead" in report
    assert "3. [HIGH] Pre-load all source documents at session start" in report


def test_the_table_has_a_row_for_every_non_null_kpi_and_none_for_null_ones(en):
    nulls = ("task_completion_rate", "quality_relevance", "quality_hallucination")
    session = dataclasses.replace(en, kpis={**en.kpis, **dict.fromkeys(nulls)}, cost_per_output_token=None)
    report = render_report(session, plan_baseline(), plan_assessment(), [], {})
    expected = [KPI_LABELS[kpi] for kpi in en.kpis if kpi not in nulls]
    assert list(table_rows(report)) == expected


def test_cost_per_output_token_gets_a_row_when_known(en):
    report = render_report(en, robust_baseline(), robust_assessment(), [], {})
    assert table_rows(report)["Cost per Output Token"] == [
        "0.000601",
        "0.00065 +/- 0.0002",
        "-4.91e-05 (-7.6%)",
        "PASS",
    ]


def test_a_kpi_without_baseline_shows_na(en):
    baseline = dataclasses.replace(plan_baseline(), kpis={})
    rows = table_rows(render_report(en, baseline, Assessment("PASS", {}), [], {}))
    assert rows["Token Efficiency"] == ["0.001", "n/a", "n/a", "PASS"]


def test_a_robust_baseline_shows_the_median_and_regressions_in_robust_sd(en):
    report = render_report(en, robust_baseline(), robust_assessment(), [], TRENDS)
    rows = table_rows(report)
    assert rows["Active Time Ratio"] == ["0.22", "0.7 +/- 0.08", "-0.48 (-68.6%)", "CRITICAL"]
    assert rows["Token Efficiency"][-1] == "CRITICAL"
    assert rows["Error Rate"] == ["0", "0 +/- 0.02", "0 (n/a)", "PASS"]
    regressions = report.split("## Regressions Detected\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert regressions == [
        "1. CRITICAL: Token Efficiency - token_efficiency 0.001 < 0.01 (hard threshold), "
        "recommendation priority CRITICAL",
        "2. CRITICAL: Active Time Ratio - 3.8 robust sd below baseline",
        "3. WARNING: Tool Overhead - 2.6 robust sd above baseline",
    ]


def test_info_findings_are_notes_not_regressions(en):
    assessment = robust_assessment()
    assessment = dataclasses.replace(assessment, alerts=(UNFIT, *assessment.alerts[1:]))
    report = render_report(en, robust_baseline(), assessment, [], TRENDS)
    assert "Token Efficiency" not in report.split("## Regressions Detected", 1)[1].split("##", 1)[0]
    notes = report.split("## Notes\n\n", 1)[1].splitlines()
    assert notes == [
        "- INFO: Token Efficiency - token_efficiency 0.001 < 0.01 (hard threshold); it fires on most sessions of "
        "this agent type, so it is reported as INFO, recommendation priority CRITICAL",
        "- INFO: Faithfulness - 1.2 robust sd below baseline",
    ]
    assert table_rows(report)["Token Efficiency"][-1] == "INFO"


def test_trend_charts_only_for_kpis_that_regressed_last_ten_sessions(en):
    report = render_report(en, robust_baseline(), robust_assessment(), [], TRENDS)
    trends = report.split("## Trends\n\n", 1)[1]
    assert "Active Time Ratio Trend (last 10 sessions)" in trends
    assert "Tool Overhead Trend (last 10 sessions)" in trends  # 11 values given, the last 10 charted
    assert "Faithfulness Trend" not in trends  # INFO only
    assert "Cache Efficiency Trend" not in trends


def test_a_clean_session_has_no_regressions_suggestions_or_charts(en):
    report = render_report(en, plan_baseline(), Assessment("PASS", {}), [], TRENDS)
    assert "## Regressions Detected\n\nNone.\n" in report
    assert "## Optimization Suggestions (Ranked by Impact)\n\nNone.\n" in report
    assert "## Trends" not in report
    assert "**Status**: PASS" in report


def test_write_report_writes_where_the_plan_puts_it(tmp_path):
    path = write_report(tmp_path, EN_SESSION_ID, "# report\n")
    assert path == tmp_path / "reports" / f"{EN_SESSION_ID}.md"
    assert path.read_text() == "# report\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    with pytest.raises(ValueError, match="file name"):
        write_report(tmp_path, "../x", "")
