"""``kpiloop weekly`` and ``kpiloop trend`` as subprocesses on a history written by the real writer
into ``$KPILOOP_HOME``; expected numbers worked out by hand in the comments."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kpiloop.exporters.history import HistoryWriter
from kpiloop.model import SessionSummary, TokenCounts
from kpiloop.testing import make_summary
from kpiloop.types import AgentType, SessionId

MONDAY = datetime(2026, 11, 16, tzinfo=UTC)  # 2026-W47


def kpiloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpiloop", *args], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )


@pytest.fixture
def data_dir() -> Path:
    """``$KPILOOP_HOME`` with five coder sessions in 2026-W47 (one closed twice), one the week after."""
    home = Path(os.environ["KPILOOP_HOME"])
    writer = HistoryWriter(home)
    writer.start()
    efficiencies = [0.0030, 0.0032, 0.0028, 0.0035, 0.0031]
    for day, efficiency in enumerate(efficiencies):
        writer.consume(session(f"s{day}", MONDAY + timedelta(days=day), efficiency, cache_read=10_000, cost=0.10))
    # s4 closes again with more reads: its second line supersedes the first
    writer.consume(session("s4", MONDAY + timedelta(days=4), 0.0040, cache_read=30_000, cost=0.30))
    writer.consume(session("later", MONDAY + timedelta(days=7), 0.0050, cache_read=10_000, cost=0.10))
    return home


def session(name: str, start: datetime, efficiency: float, cache_read: int, cost: float) -> SessionSummary:
    start_ns = int(start.timestamp()) * 10**9
    return make_summary(
        session_id=SessionId(name),
        agent_type=AgentType("coder"),
        model="claude-sonnet-4-5",  # $3 input, $0.30 cache read per million tokens
        start_ns=start_ns,
        end_ns=start_ns + 3600 * 10**9,
        tokens=TokenCounts(input=1000, output=100, cache_read=cache_read, cache_write_5m=500),
        cost_usd=cost,
        kpis={"token_efficiency": efficiency},
    )


def test_weekly_writes_the_mondays_report(data_dir):
    done = kpiloop("weekly", "--week", "2026-W47")
    assert done.returncode == 0, done.stderr
    path = data_dir / "reports" / "weekly-2026-11-16.md"
    assert path.read_text(encoding="utf-8") == done.stdout
    assert str(path) in done.stderr
    text = done.stdout
    assert text.startswith("# Weekly Performance Summary: Nov 16-22, 2026\n")
    # s0..s4 (s4's second line only); "later" ends in W48
    assert "- **Total Sessions**: 5\n- **Agent Types**: coder (5)\n" in text
    # tokens: 5 × (1000 + 100 + 500) + 4 × 10,000 + 30,000 = 78,000 (70,000 cached);
    # hit rate 70,000 / (5,000 + 70,000 + 2,500) = 90.3 %
    assert "- **Total Tokens**: 78k (70k cached, 90.3% hit rate)\n" in text
    # cost 4 × 0.10 + 0.30 = 0.70; without caching + 70,000 × (3 − 0.3) / 1e6 = 0.189 → 0.889
    assert "- **Estimated Cost**: $0.70 (vs $0.89 without caching)\n" in text
    for heading in ("## Top Performers (vs baseline)", "## Regressions Detected", "## Active Optimizations"):
        assert heading in text
    assert "## Recommendations\n\n1. Keep collecting coder sessions: it has no baseline yet\n" in text


def test_weekly_rejects_a_malformed_week(data_dir):
    done = kpiloop("weekly", "--week", "2026-47")
    assert done.returncode == 2
    assert "must look like 2026-W47" in done.stderr
    assert not (data_dir / "reports").exists()


def test_trend_prints_the_chart_of_the_last_sessions(data_dir):
    done = kpiloop("trend", "coder", "token_efficiency", "--last", "3")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "Token Efficiency Trend: coder (last 3 sessions)"
    assert lines[-2].split() == ["s1", "s2", "s3"]
    assert lines[-1] == "Current: 0.005 (rising)"  # s3 0.0035, s4 0.004 (its second line), "later" 0.005
    assert not any(line.startswith("Baseline") for line in lines)  # no baseline file, none recorded


def test_trend_with_an_unknown_agent_type_or_kpi_fails_clearly(data_dir):
    unknown_agent = kpiloop("trend", "nobody", "token_efficiency")
    assert unknown_agent.returncode == 1
    assert "no sessions of agent type 'nobody'" in unknown_agent.stderr and "known: coder" in unknown_agent.stderr
    unknown_kpi = kpiloop("trend", "coder", "tokens")
    assert unknown_kpi.returncode == 2
    assert "unknown KPI 'tokens'" in unknown_kpi.stderr and "cache_efficiency" in unknown_kpi.stderr
    assert unknown_agent.stdout == unknown_kpi.stdout == ""
