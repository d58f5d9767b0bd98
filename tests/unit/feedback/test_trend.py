"""Sessions as read from the history (latest revision, end order) and the data of ``kpiloop trend``."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from kpiloop.exporters.history_line import history_line
from kpiloop.feedback.trend import latest_revisions, read_history, render_trend, select_trend, sessions_of
from kpiloop.feedback.types import Baseline, KpiBaseline
from kpiloop.model import Assessment
from kpiloop.testing import make_summary
from kpiloop.types import AgentType, SessionId

START = datetime(2026, 11, 16, 9, tzinfo=UTC)


def line(session_id: str, hours: float, value: float | None, *, agent: str = "coder", seconds: int = 60,
         revision: int = 1, baseline: float | None = None) -> dict[str, Any]:  # fmt: skip
    start_ns = int((START + timedelta(hours=hours)).timestamp()) * 10**9
    summary = make_summary(
        session_id=SessionId(session_id),
        agent_type=AgentType(agent),
        start_ns=start_ns,
        end_ns=start_ns + seconds * 10**9,
        kpis={"token_efficiency": value},
        assessment=Assessment("PASS", {} if baseline is None else {"token_efficiency": baseline}),
    )
    return history_line(summary, revision=revision, supersedes=revision - 1 if revision > 1 else None)


def test_sessions_are_ordered_by_end_and_superseded_lines_replaced():
    lines = [
        line("long", 0, 0.1, seconds=5 * 3600),  # starts first, ends last
        line("short", 1, 0.2),
        line("short", 1, 0.3, revision=2),
        {"session_id": "broken"},
    ]
    sessions, skipped = sessions_of(lines)
    assert [(s.session_id, s.kpis["token_efficiency"]) for s in sessions] == [("short", 0.3), ("long", 0.1)]
    assert skipped == 1


def test_the_highest_revision_wins_even_when_an_older_line_comes_later():
    newer, older = line("s", 0, 0.5, revision=2), line("s", 0, 0.4, revision=1)
    assert latest_revisions([newer, older]) == [newer]


def test_select_trend_takes_the_last_sessions_of_the_agent_type():
    lines = [line(f"s{i}", i, 0.001 * i if i != 3 else None) for i in range(1, 6)]
    lines.append(line("other", 10, 0.9, agent="reviewer"))
    sessions, _ = sessions_of(lines)
    trend = select_trend(sessions, "coder", "token_efficiency", 3, None)
    assert trend.values == (None, 0.004, 0.005)
    assert trend.baseline is None


def test_the_baseline_drawn_is_the_stored_files_centre_else_the_last_sessions():
    sessions, _ = sessions_of([line("s1", 0, 0.002, baseline=0.004), line("s2", 1, 0.003, baseline=0.005)])
    assert select_trend(sessions, "coder", "token_efficiency", 30, None).baseline == 0.005
    stored = Baseline(
        agent_type="coder",
        model=None,
        session_count=40,
        kpis={
            "token_efficiency": KpiBaseline(mean=0.0031, std_dev=0.001, p50=0.003, center=math.log(0.003), scale=0.25)
        },
    )
    assert select_trend(sessions, "coder", "token_efficiency", 30, stored).baseline == 0.003  # the median


def test_unknown_kpi_and_unknown_agent_type_are_errors():
    sessions, _ = sessions_of([line("s1", 0, 0.002)])
    with pytest.raises(ValueError, match="unknown KPI 'tokens'.*token_efficiency"):
        select_trend(sessions, "coder", "tokens", 30, None)
    with pytest.raises(LookupError, match="no sessions of agent type 'nobody'.*known: coder"):
        select_trend(sessions, "nobody", "token_efficiency", 30, None)


def test_render_trend_titles_the_chart():
    sessions, _ = sessions_of([line("s1", 0, 0.002), line("s2", 1, 0.0045, baseline=0.003)])
    text = render_trend(select_trend(sessions, "coder", "token_efficiency", 30, None))
    assert text.startswith("Token Efficiency Trend: coder (last 2 sessions)\n")
    assert "Baseline: 0.003 - - - - -\nCurrent: 0.0045 (trending away from baseline)\n" in text


def test_read_history_skips_lines_that_are_not_objects(tmp_path):
    path = tmp_path / "kpis.jsonl"
    assert read_history(path) == ([], 0)
    path.write_bytes(orjson.dumps(line("s1", 0, 0.1)) + b"\n[1]\n{broken\n\n")
    lines, bad = read_history(path)
    assert [x["session_id"] for x in lines] == ["s1"]
    assert bad == 2
