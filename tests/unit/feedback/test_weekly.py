"""The weekly summary: which sessions belong to a week, the sums and costs (expected values worked
out by hand in the comments), regressions, top performers, optimizations, and the rendered report."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from kpiloop.exporters.history_line import history_line
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.trend import IsoWeek, Tokens, parse_week, week_of, week_sessions
from kpiloop.feedback.types import Baseline, KpiBaseline
from kpiloop.feedback.weekly import build_weekly, session_cost, week_title
from kpiloop.feedback.weekly_render import render_weekly, weekly_report, write_weekly
from kpiloop.model import Alert, Assessment, TokenCounts
from kpiloop.processors.session_kpi_config import DEFAULT_PRICES
from kpiloop.testing import FakeClock, make_summary
from kpiloop.types import AgentType, SessionId

W47 = IsoWeek(2026, 47)  # Monday 2026-11-16 to Sunday 2026-11-22
MONDAY = datetime(2026, 11, 16, tzinfo=UTC)
CONFIG = FeedbackConfig()
SMALL = TokenCounts(input=100, output=10)


def line(
    session_id: str,
    start: datetime,
    *,
    seconds: int = 600,
    agent: str = "coder",
    model: str = "claude-sonnet-4-5",
    tokens: TokenCounts = SMALL,
    cost: float | None = 0.01,
    kpis: dict[str, float | None] | None = None,
    baselines: dict[str, float] | None = None,
    alerts: tuple[Alert, ...] = (),
    revision: int = 1,
) -> dict[str, Any]:
    """A real history line (the writer's mapping) of a session starting at ``start``."""
    start_ns = int(start.timestamp()) * 10**9
    summary = make_summary(
        session_id=SessionId(session_id),
        agent_type=AgentType(agent),
        model=model,
        start_ns=start_ns,
        end_ns=start_ns + seconds * 10**9,
        tokens=tokens,
        cost_usd=cost,
        kpis=kpis or {},
        assessment=Assessment("PASS", baselines or {}, alerts),
    )
    return history_line(summary, revision=revision, supersedes=revision - 1 if revision > 1 else None)


def three_sessions() -> list[dict[str, Any]]:
    """Two coder sessions on claude-sonnet-4-5 ($3 input, $0.30 cache read per million) and one
    reviewer session on claude-opus-4-6 ($5 input, $0.50 cache read)."""
    return [
        line("a1", MONDAY + timedelta(days=1), tokens=TokenCounts(input=1000, output=500, cache_read=9000), cost=0.10),
        line(
            "a2",
            MONDAY + timedelta(days=2),
            tokens=TokenCounts(input=2000, output=1000, cache_read=6000, cache_write_5m=2000),
            cost=0.20,
        ),
        line(
            "r1",
            MONDAY + timedelta(days=3),
            agent="reviewer",
            model="claude-opus-4-6",
            tokens=TokenCounts(input=500, output=200, cache_read=2_000_000, cache_write_1h=300),
            cost=1.50,
        ),
    ]


def build(lines: list[dict[str, Any]], **kwargs: Any) -> Any:
    options: dict[str, Any] = {"baselines": {}, "active_document": {}, "retired": [], "config": CONFIG}
    options.update(kwargs)
    return build_weekly(lines, W47, prices=DEFAULT_PRICES, **options)


# --- the week ---------------------------------------------------------------------------------------


def test_parse_week_and_its_errors():
    assert parse_week("2026-W47") == W47
    assert W47.monday.isoformat() == "2026-11-16"
    assert parse_week("2026-W53").monday.isoformat() == "2026-12-28"  # 2026 has 53 ISO weeks
    for bad in ("2026-47", "2026-W7", "W47", "2025-W53", "2026-W00", ""):
        with pytest.raises(ValueError):
            parse_week(bad)


def test_the_current_week_comes_from_the_injected_clock():
    sunday_night = FakeClock(datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC).timestamp())
    assert week_of(sunday_night.now()) == W47
    sunday_night.advance(1)
    assert week_of(sunday_night.now()) == IsoWeek(2026, 48)
    assert week_of(datetime(2027, 1, 1, tzinfo=UTC).timestamp()) == IsoWeek(2026, 53)


def test_week_title_in_the_plans_style():
    assert week_title(W47) == "Nov 16-22, 2026"
    assert week_title(IsoWeek(2026, 49)) == "Nov 30 - Dec 6, 2026"
    assert week_title(IsoWeek(2026, 53)) == "Dec 28, 2026 - Jan 3, 2027"


def test_a_session_belongs_to_the_week_its_end_falls_in():
    lines = [
        line("ends-at-monday-midnight", MONDAY - timedelta(hours=1), seconds=3600),  # started the week before
        line("ends-sunday-before", MONDAY - timedelta(hours=1), seconds=3599),
        line("ends-last-second", MONDAY + timedelta(days=7, seconds=-601)),
        line("ends-next-monday", MONDAY + timedelta(days=7, seconds=-600)),
    ]
    sessions, skipped = week_sessions(lines, W47)
    assert [s.session_id for s in sessions] == ["ends-at-monday-midnight", "ends-last-second"]
    assert skipped == 0


def test_only_the_latest_revision_of_a_session_counts():
    first = line("s1", MONDAY, tokens=TokenCounts(input=100))
    second = line("s1", MONDAY, tokens=TokenCounts(input=300), revision=2)
    assert second["supersedes"] == 1
    moved_out = line("s2", MONDAY, tokens=TokenCounts(input=7))
    moved_out_again = line("s2", MONDAY + timedelta(days=8), tokens=TokenCounts(input=7), revision=2)
    summary = build([first, moved_out, second, moved_out_again])
    assert summary.total.sessions == 1
    assert summary.total.tokens.input == 300


def test_unreadable_lines_are_counted_not_fatal():
    summary = build([{"session_id": "no-date", "agent_type": "coder"}, *three_sessions()], skipped_lines=2)
    assert summary.total.sessions == 3
    assert summary.skipped_lines == 3
    assert "3 unreadable history line(s) skipped" in render_weekly(summary)


# --- sums and costs -------------------------------------------------------------------------------


def test_tokens_hit_rate_and_cost_with_and_without_caching():
    summary = build(three_sessions())
    total = summary.total
    # input 1000 + 2000 + 500, output 500 + 1000 + 200, cache read 9000 + 6000 + 2,000,000, writes 2000 + 300
    assert total.tokens == Tokens(input=3500, output=1700, cache_read=2_015_000, cache_creation=2300)
    assert total.tokens.total == 2_022_500
    # cache_read / (input + cache_read + cache_creation) = 2,015,000 / 2,020,800
    assert total.tokens.hit_rate is not None
    assert math.isclose(total.tokens.hit_rate, 2_015_000 / 2_020_800)
    assert math.isclose(total.cost.with_cache, 1.80)
    # + 9000 × (3 − 0.3) / 1e6 = 0.0243, + 6000 × 2.7 / 1e6 = 0.0162, + 2,000,000 × (5 − 0.5) / 1e6 = 9.0
    assert math.isclose(total.cost.without_cache, 1.80 + 0.0243 + 0.0162 + 9.0)
    coder, reviewer = summary.agents
    assert (coder.agent_type, coder.sessions, reviewer.agent_type, reviewer.sessions) == ("coder", 2, "reviewer", 1)
    assert coder.tokens.total == 21_500
    assert coder.tokens.hit_rate == 15_000 / 20_000
    assert math.isclose(coder.cost.without_cache, 0.30 + 0.0405)
    text = render_weekly(summary)
    assert "- **Total Sessions**: 3\n- **Agent Types**: coder (2), reviewer (1)\n" in text
    assert "- **Total Tokens**: 2.02M (2.02M cached, 99.7% hit rate)\n" in text
    assert "- **Estimated Cost**: $1.80 (vs $10.84 without caching)\n" in text
    rows = [[cell.strip() for cell in row.split("|")[1:-1]] for row in text.splitlines() if row.startswith("| ")]
    assert rows == [
        ["Agent Type", "Sessions", "Tokens", "Cached", "Hit Rate", "Cost", "Without Caching"],
        ["coder", "2", "21.5k", "15k", "75.0%", "$0.30", "$0.34"],  # 0.30 + 0.0405
        ["reviewer", "1", "2M", "2M", "100.0%", "$1.50", "$10.50"],  # 2,000,000 / 2,000,800 = 99.96 %
    ]


def test_a_model_without_a_price_makes_the_cost_without_caching_a_lower_bound():
    odd = line("m1", MONDAY, model="Mystery Model/<b>", tokens=TokenCounts(input=10, cache_read=1000), cost=0.5)
    no_reads = line("m2", MONDAY, model="Mystery Model/<b>", tokens=TokenCounts(input=10), cost=0.25)
    summary = build([odd, no_reads])
    assert summary.total.cost.with_cache == 0.75
    assert summary.total.cost.without_cache == 0.75  # nothing repriced, nothing invented
    assert summary.total.cost.unpriced == {"mystery-model-b": 1}  # m2 read nothing from the cache
    text = render_weekly(summary)
    assert "(vs at least $0.75 without caching)" in text
    assert "no price for model mystery-model-b (1 session(s)): the cost without caching is a lower bound" in text
    assert "Add a price for model mystery-model-b to processors.session_kpi.prices" in text
    assert "<b>" not in text and "Mystery" not in text


def test_sessions_without_a_cost_are_left_out_of_both_figures():
    summary = build([line("c1", MONDAY, cost=None), line("c2", MONDAY, cost=0.4)])
    assert (summary.total.cost.with_cache, summary.total.cost.sessions_without_cost) == (0.4, 1)
    assert "  - no recorded cost for 1 session(s): left out of both figures\n" in render_weekly(summary)


def test_session_cost_formula():
    session = week_sessions([line("x", MONDAY, tokens=TokenCounts(cache_read=2_000_000), cost=2.0)], W47)[0][0]
    cost = session_cost(session, DEFAULT_PRICES)  # claude-sonnet-4: 2M × (3 − 0.3) / 1M = 5.4
    assert math.isclose(cost.without_cache, 7.4)


# --- regressions, performers, optimizations ---------------------------------------------------------------


def error_alert(severity: str, value: float, kind: str = "deviation") -> Alert:
    return Alert("error_rate", severity, kind, value, 0.02, 3.5 if severity == "CRITICAL" else 2.5)  # type: ignore[arg-type]


def test_regressions_count_flagged_sessions_and_the_longest_run():
    values = [0.05, 0.20, 0.30, 0.01, 0.08]
    flags = [error_alert("WARNING", 0.05), error_alert("CRITICAL", 0.20), error_alert("CRITICAL", 0.30), None, None]
    flags[4] = error_alert("WARNING", 0.08)
    lines = [
        line(
            f"e{i}",
            MONDAY + timedelta(hours=i),
            kpis={"error_rate": value},
            baselines={"error_rate": 0.02 + i / 100},
            alerts=(flag,) if flag else (),
        )
        for i, (value, flag) in enumerate(zip(values, flags, strict=True))
    ]
    (regression,) = build(lines).regressions
    assert (regression.severity, regression.flagged, regression.sessions, regression.consecutive) == (
        "CRITICAL",
        4,
        5,
        3,
    )
    assert math.isclose(regression.value, (0.08 + 0.20) / 2)  # median of the flagged 0.05, 0.20, 0.30, 0.08
    assert math.isclose(regression.baseline, (0.03 + 0.04) / 2)  # flagged sessions' baselines .02 .03 .04 .06
    assert regression.threshold is None


def test_a_threshold_regression_names_its_threshold_and_critical_ones_come_first():
    lines = [
        line("t1", MONDAY, kpis={"error_rate": 0.2}, alerts=(error_alert("CRITICAL", 0.2, "threshold"),)),
        line(
            "t2",
            MONDAY,
            kpis={"active_time_ratio": 0.1},
            alerts=(Alert("active_time_ratio", "WARNING", "threshold", 0.1),),
        ),
    ]
    summary = build(lines)
    assert [(r.kpi, r.threshold) for r in summary.regressions] == [
        ("error_rate", "> 0.1"),
        ("active_time_ratio", "< 0.2"),
    ]
    text = render_weekly(summary)
    assert "1. **coder** - Error Rate: CRITICAL in 1 of 1 sessions (median 0.2; hard threshold > 0.1)" in text
    assert "1. Investigate coder error rate: CRITICAL in 1 of 1 sessions" in text


def test_info_alerts_are_not_regressions_but_unfit_thresholds_are_recommended_for_refitting():
    unfit = Alert("token_efficiency", "INFO", "threshold_unfit", 0.003)
    summary = build([line("u1", MONDAY, kpis={"token_efficiency": 0.003}, alerts=(unfit,))])
    assert summary.regressions == ()
    assert summary.recommendations == (
        "Set a hard threshold for coder token efficiency that fits it (the current one fires on most sessions)",
        "Keep collecting coder sessions: it has no baseline yet",
    )


def robust_baseline(agent: str, model: str | None, kpis: dict[str, KpiBaseline], sessions: int = 40) -> Baseline:
    return Baseline(agent_type=agent, model=model, session_count=sessions, kpis=kpis)


def test_top_performers_beat_the_stored_baseline_by_a_robust_sd():
    cache = KpiBaseline(mean=0.8, std_dev=0.05, p50=0.8, center=math.log(0.8 / 0.2), scale=0.5)
    tokens = KpiBaseline(mean=0.003, std_dev=0.001, p50=0.003, center=math.log(0.003), scale=0.25)
    baseline = robust_baseline("coder", "claude-sonnet-4-5", {"cache_efficiency": cache, "token_efficiency": tokens})
    lines = [
        line(f"p{i}", MONDAY, kpis={"cache_efficiency": c, "token_efficiency": t})
        for i, (c, t) in enumerate([(0.90, 0.0031), (0.92, 0.0032), (0.95, 0.0033)])
    ]
    other_model = line("p9", MONDAY, model="claude-opus-4-6", kpis={"cache_efficiency": 0.1})
    summary = build([*lines, other_model], baselines={"coder": baseline})
    (top,) = summary.performers
    # median 0.92: (logit 0.92 − logit 0.8) / 0.5 = (ln 11.5 − ln 4) / 0.5; token efficiency's
    # ln(0.0032 / 0.003) / 0.25 = 0.26 sd is below the 1 sd bar
    assert (top.agent_type, top.kpi, top.value, top.sessions) == ("coder", "cache_efficiency", 0.92, 3)
    assert math.isclose(top.z, (math.log(11.5) - math.log(4)) / 0.5)
    assert math.isclose(top.baseline, 0.8)
    text = render_weekly(summary)
    assert (
        "1. **coder** - Cache Efficiency 0.92 vs baseline 0.8 (+15.0%, 2.1 robust sd better; median of 3 sessions)"
        in text
    )


def test_no_top_performers_from_bootstrap_baselines_or_too_few_sessions():
    raw = KpiBaseline(mean=0.5, std_dev=0.1, status="bootstrap", raw=True)
    bootstrap = robust_baseline("coder", None, {"active_time_ratio": raw}, sessions=2)
    lines = [line(f"b{i}", MONDAY, kpis={"active_time_ratio": 0.9}) for i in range(4)]
    assert build(lines, baselines={"coder": bootstrap}).performers == ()
    good = KpiBaseline(mean=0.5, std_dev=0.1, p50=0.5, center=0.0, scale=0.5)
    assert (
        build(lines[:2], baselines={"coder": robust_baseline("coder", None, {"active_time_ratio": good})}).performers
        == ()
    )


def suggestion(identifier: str, results: list[tuple[str, float]], **extra: Any) -> dict[str, Any]:
    return {
        "id": identifier,
        "agent_type": "coder",
        "title": "Use **background** agents `now`",
        "expected_impact": {"kpi": "token_efficiency", "direction": "increase", "magnitude": 0.5},
        "tracking": {
            "impact_results": [
                {"session": f"s{i}", "arm": arm, "kpi_before": None, "kpi_after": value}
                for i, (arm, value) in enumerate(results)
            ]
        },
        **extra,
    }


def test_active_and_closed_optimizations_with_their_progress():
    results = [("treated", 0.004), ("control", 0.003), ("treated", 0.005), ("control", 0.003)]
    document = {"suggestions": [suggestion("opt-background-agents", results), suggestion("opt-off", [], enabled=False)]}
    retired = [
        {"id": "opt-batch", "agent_type": "coder", "title": "Batch task ops", "state": "retired",
         "reason": "INEFFECTIVE", "retired_at": "2026-11-18T09:00:00Z"},
        {"id": "opt-old", "agent_type": "coder", "title": "Old", "state": "retired",
         "reason": "HARMFUL", "retired_at": "2026-11-08T09:00:00Z"},
    ]  # fmt: skip
    first, disabled, closed = build([], active_document=document, retired=retired).optimizations
    assert first.title == "Use background agents now"  # no Markdown from the file
    assert first.status.startswith("4/60 sessions tracked, 2 treated, 2 control; TRACKING; token_efficiency x")
    assert disabled.status == "0/60 sessions tracked, 0 treated, 0 control; DISABLED"
    assert (closed.suggestion_id, closed.status) == ("opt-batch", "retired on 2026-11-18: INEFFECTIVE")


# --- the report -----------------------------------------------------------------------------------


def golden_week() -> dict[str, Any]:
    """A week with every section filled: two agent types, a regression, a top performer, an
    unpriced model, a session without a cost, active and retired suggestions."""
    cache = KpiBaseline(mean=0.8, std_dev=0.05, p50=0.8, center=math.log(4.0), scale=0.5)
    lines = three_sessions()
    lines += [
        line(f"g{i}", MONDAY + timedelta(days=4, hours=i), kpis={"cache_efficiency": v, "error_rate": e},
             baselines={"cache_efficiency": 0.8, "error_rate": 0.02},
             alerts=(error_alert("CRITICAL", e),) if e > 0.1 else ())
        for i, (v, e) in enumerate([(0.93, 0.0), (0.95, 0.15), (0.91, 0.2), (0.96, 0.0)])
    ]  # fmt: skip
    lines.append(line("q1", MONDAY + timedelta(days=5), agent="scraper", model="homebrew-llm", cost=None))
    lines.append(line("q2", MONDAY + timedelta(days=5), agent="scraper", model="homebrew-llm",
                      tokens=TokenCounts(input=100, cache_read=400), cost=0.05))  # fmt: skip
    document = {"suggestions": [suggestion("opt-background-agents", [("treated", 0.004), ("control", 0.003)])]}
    retired = [{"id": "opt-batch", "agent_type": "coder", "title": "Batch task operations", "state": "retired",
                "reason": "INEFFECTIVE", "retired_at": "2026-11-18T09:00:00Z"}]  # fmt: skip
    baselines = {
        "coder": robust_baseline("coder", "claude-sonnet-4-5", {"cache_efficiency": cache}),
        "reviewer": None,
        "scraper": robust_baseline("scraper", "homebrew-llm", {}, sessions=3),
    }
    return {"lines": lines, "baselines": baselines, "active_document": document, "retired": retired}


def test_the_weekly_report_matches_the_golden_file(golden):
    week = golden_week()
    summary = build(week.pop("lines"), **week)
    golden.check("weekly-report.md", render_weekly(summary))


def test_an_empty_week_still_has_every_section():
    text = render_weekly(build([]))
    for heading in (
        "# Weekly Performance Summary: Nov 16-22, 2026",
        "## Overview",
        "## Top Performers (vs baseline)",
        "## Regressions Detected",
        "## Active Optimizations",
        "## Recommendations",
    ):
        assert heading in text
    assert "- **Total Tokens**: 0 (0 cached, n/a hit rate)" in text


def test_weekly_report_reads_the_data_dir_and_writes_the_mondays_file(tmp_path):
    history = tmp_path / "history" / "kpis.jsonl"
    history.parent.mkdir()
    history.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in three_sessions()) + b"not json\n")
    text, path = weekly_report(tmp_path, W47, CONFIG, DEFAULT_PRICES)
    assert path == tmp_path / "reports" / "weekly-2026-11-16.md"
    assert path.read_text(encoding="utf-8") == text
    assert "- **Total Sessions**: 3" in text and "1 unreadable history line(s) skipped" in text
    assert write_weekly(tmp_path, W47, "x") == path
