"""Incident reports in the plan's format, and where they are written."""

from __future__ import annotations

import pytest

from kpiloop.feedback.incidents import RECOMMENDED_ACTIONS, render_incident, write_incident
from kpiloop.feedback.types import SessionRecord

DETECTED = "2026-02-14T12:00:00Z"


def record(session_id: str, date: str, actual: float | None, baseline: float | None) -> SessionRecord:
    return SessionRecord(
        session_id=session_id,
        date=date,
        agent_type="translation-agent",
        model="claude-opus-4-6",
        kpis={"token_efficiency": actual, "active_time_ratio": 0.7},
        baselines={} if baseline is None else {"token_efficiency": baseline},
    )


RECORDS = [
    record("a1b2c3d4", "2026-02-12T09:00:00Z", 0.046, 0.047),
    record("b2c3d4e5", "2026-02-12T14:30:00Z", 0.031, 0.047),
    record("c3d4e5f6", "2026-02-13T10:05:00Z", None, 0.047),
    record("d1d142a6", "2026-02-13T18:28:00Z", 0.001, 0.046),
    record("e5f6a7b8", "2026-02-14T11:40:00Z", 0.012, None),
]


def test_the_incident_report_matches_the_golden_file(golden):
    text = render_incident("translation-agent", "token_efficiency", RECORDS, DETECTED, 9.34)
    golden.check("feedback_incident_token_efficiency.md", text)


def test_the_report_has_the_plans_sections():
    text = render_incident("translation-agent", "tool_overhead_ratio", [], DETECTED, 8.5, threshold=6.0)
    assert text.startswith("# Performance Incident: translation-agent - tool_overhead_ratio\n\n")
    assert f"**Detected**: {DETECTED}\n" in text
    assert "**Pattern**: sustained degradation (CUSUM S=8.5 > h=6, higher is worse)\n" in text
    assert "| Session | Date | Actual | Baseline | Delta |\n" in text
    assert text.endswith("".join(f"{i}. {action}\n" for i, action in enumerate(RECOMMENDED_ACTIONS, start=1)))


def test_history_rows_compare_each_session_with_the_baseline_it_was_assessed_against():
    text = render_incident("translation-agent", "token_efficiency", RECORDS, DETECTED, 9.34)
    assert "| d1d142a6 | 2026-02-13T18:28:00Z | 0.001 | 0.046 | -97.8% |" in text
    assert "| c3d4e5f6 | 2026-02-13T10:05:00Z | n/a | 0.047 | n/a |" in text
    assert "| e5f6a7b8 | 2026-02-14T11:40:00Z | 0.012 | n/a | n/a |" in text


def test_write_incident_names_the_file_after_agent_kpi_and_timestamp(tmp_path):
    path = write_incident(tmp_path, "translation-agent", "token_efficiency", "20260214T120000Z", "# x\n")
    assert path == tmp_path / "incidents" / "translation-agent-token_efficiency-20260214T120000Z.md"
    assert path.read_text() == "# x\n"
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert write_incident(tmp_path, "a", "error_rate", 1771070400000, "").name == "a-error_rate-1771070400000.md"


@pytest.mark.parametrize(("agent", "timestamp"), [("../etc", "1"), ("agent", "2026-02-14T12:00:00Z"), ("", "1")])
def test_write_incident_refuses_names_that_are_not_file_names(tmp_path, agent, timestamp):
    with pytest.raises(ValueError, match="file name"):
        write_incident(tmp_path, agent, "token_efficiency", timestamp, "")
