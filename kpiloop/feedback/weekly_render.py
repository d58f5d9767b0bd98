"""Rendering the weekly summary (:mod:`kpiloop.feedback.weekly`) as Markdown in the plan's
"Weekly Performance Summary" format, and writing ``{data_dir}/reports/weekly-{monday}.md``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from kpiloop.feedback.active import load_active, load_retired
from kpiloop.feedback.baselines import BaselineStore
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.report import KPI_LABELS, markdown_table
from kpiloop.feedback.trend import HISTORY_FILE, IsoWeek, read_history, week_sessions
from kpiloop.feedback.trend_chart import format_number
from kpiloop.feedback.weekly import (
    AgentWeek,
    Cost,
    Optimization,
    Performer,
    Regression,
    WeeklySummary,
    build_weekly,
    week_title,
)
from kpiloop.processors.session_kpi_config import ModelPrice
from kpiloop.storage import atomic_write


def render_weekly(summary: WeeklySummary) -> str:
    """The report as Markdown, in the plan's section order."""
    sections = [
        f"# Weekly Performance Summary: {week_title(summary.week)}\n\n"
        f"**Week**: {summary.week} ({summary.week.monday} to {summary.week.monday + timedelta(days=6)}, "
        "UTC; sessions by end time)\n",
        _overview(summary),
        _numbered("Top Performers (vs baseline)", [_performer_line(p) for p in summary.performers]),
        _numbered("Regressions Detected", [_regression_line(r) for r in summary.regressions]),
        _active(summary.optimizations),
        _numbered("Recommendations", list(summary.recommendations)),
    ]
    if summary.skipped_lines:
        sections.append(f"## Notes\n\n- {summary.skipped_lines} unreadable history line(s) skipped\n")
    return "\n".join(sections)


def _overview(summary: WeeklySummary) -> str:
    total = summary.total
    agents = ", ".join(f"{a.agent_type} ({a.sessions})" for a in summary.agents) or "none"
    lines = [
        "## Overview",
        "",
        f"- **Total Sessions**: {total.sessions}",
        f"- **Agent Types**: {agents}",
        f"- **Total Tokens**: {format_tokens(total.tokens.total)} ({format_tokens(total.tokens.cache_read)} cached, "
        f"{_percent(total.tokens.hit_rate)} hit rate)",
        f"- **Estimated Cost**: {format_usd(total.cost.with_cache)} (vs {_without(total.cost)} without caching)",
        *_cost_notes(total.cost),
    ]
    text = "\n".join(lines) + "\n"
    return text + ("\n" + _agent_table(summary.agents) if summary.agents else "")


def _cost_notes(cost: Cost) -> list[str]:
    notes = []
    if cost.sessions_without_cost:
        notes.append(f"  - no recorded cost for {cost.sessions_without_cost} session(s): left out of both figures")
    for model, count in sorted(cost.unpriced.items()):
        notes.append(f"  - no price for model {model} ({count} session(s)): the cost without caching is a lower bound")
    return notes


def _agent_table(agents: Sequence[AgentWeek]) -> str:
    headers = ["Agent Type", "Sessions", "Tokens", "Cached", "Hit Rate", "Cost", "Without Caching"]
    rows = [
        [
            a.agent_type,
            str(a.sessions),
            format_tokens(a.tokens.total),
            format_tokens(a.tokens.cache_read),
            _percent(a.tokens.hit_rate),
            format_usd(a.cost.with_cache),
            _without(a.cost),
        ]
        for a in agents
    ]
    return markdown_table(headers, rows)


def _performer_line(p: Performer) -> str:
    return (
        f"**{p.agent_type}** - {KPI_LABELS[p.kpi]} {format_number(p.value)} vs baseline {format_number(p.baseline)} "
        f"({_change(p.value, p.baseline)}, {p.z:.1f} robust sd better; median of {p.sessions} sessions)"
    )


def _regression_line(r: Regression) -> str:
    details = [f"median {format_number(r.value)}"]
    if r.baseline is not None:
        details[0] += f" vs baseline {format_number(r.baseline)}, {_change(r.value, r.baseline)}"
    if r.threshold is not None:
        details.append(f"hard threshold {r.threshold}")
    run = f", {r.consecutive} consecutive" if r.consecutive > 1 else ""
    return (
        f"**{r.agent_type}** - {KPI_LABELS[r.kpi]}: {r.severity} in {r.flagged} of {r.sessions} sessions{run} "
        f"({'; '.join(details)})"
    )


def _active(optimizations: Sequence[Optimization]) -> str:
    lines = [f"- **{o.suggestion_id}** ({o.agent_type}): {o.title} ({o.status})" for o in optimizations]
    return "## Active Optimizations\n\n" + ("\n".join(lines) if lines else "None.") + "\n"


def _numbered(heading: str, items: Sequence[str]) -> str:
    lines = [f"{index}. {item}" for index, item in enumerate(items, start=1)]
    return f"## {heading}\n\n" + ("\n".join(lines) if lines else "None.") + "\n"


def format_tokens(count: int) -> str:
    """Three significant digits with k/M/B, as the plan's ``12.4M``.

    >>> [format_tokens(n) for n in (0, 950, 1234, 12_400_000, 3_000_000_000)]
    ['0', '950', '1.23k', '12.4M', '3B']
    """
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.3g}{suffix}"
    return str(count)


def format_usd(amount: float) -> str:
    """Dollars with cents and thousands grouped.

    >>> format_usd(1234.5)
    '$1,234.50'
    """
    return f"${amount:,.2f}"


def _without(cost: Cost) -> str:
    return ("at least " if cost.unpriced else "") + format_usd(cost.without_cache)


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{share * 100:.1f}%"


def _change(value: float, base: float) -> str:
    """(value − base) / |base| in percent, as the per-session report prints it."""
    if base == 0:
        return "n/a"
    pct = (value - base) / abs(base) * 100
    return f"{pct:+.1f}%" if abs(pct) < 100 else f"{pct:+.0f}%"


def write_weekly(data_dir: Path, week: IsoWeek, text: str) -> Path:
    """Write the report atomically to ``{data_dir}/reports/weekly-{monday}.md``; return the path."""
    path = data_dir / "reports" / f"weekly-{week.monday.isoformat()}.md"
    atomic_write(path, text.encode("utf-8"))
    return path


def weekly_report(
    data_dir: Path, week: IsoWeek, config: FeedbackConfig, prices: Mapping[str, ModelPrice]
) -> tuple[str, Path]:
    """Read the data dir's files, build, render and write the week's report; the text and its path."""
    lines, bad = read_history(data_dir / HISTORY_FILE)
    store = BaselineStore(data_dir)
    baselines = {s.agent_type: store.load(s.agent_type) for s in week_sessions(lines, week)[0]}
    summary = build_weekly(lines, week, baselines, load_active(data_dir), load_retired(data_dir), config, prices, bad)
    text = render_weekly(summary)
    return text, write_weekly(data_dir, week, text)
