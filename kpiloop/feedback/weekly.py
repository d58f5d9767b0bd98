"""The weekly summary ``{data_dir}/reports/weekly-{monday}.md`` in the plan's "Weekly Performance
Summary" format (Component 3): overview, top performers, regressions, active optimizations and
recommendations of one ISO week (UTC).

A session belongs to the week its *end* falls in: ``date`` (the start) + ``duration_seconds``. Each
session counts once, by its latest history line (the highest ``revision``; a line that
``supersedes`` an earlier one replaces it). Over the week's sessions::

    tokens              = input + output + cache_read + cache_creation
    cache hit rate      = cache_read / (input + cache_read + cache_creation)    (DESIGN.md cache_efficiency,
                                                                                  of the summed tokens)
    cost                = sum of cost_usd                                        (sessions with a cost)
    cost without cache  = cost + cache_read × (price.input − price.cache_read) / 1e6, per session's model

Rendering and writing the report: :mod:`kpiloop.feedback.weekly_render`.

A session whose model has no price (and read from the cache) makes the second figure a lower bound,
and the report says so. Regressions are the WARNING/CRITICAL alerts recorded at close; top
performers compare the week's median of a KPI with the agent type's stored baseline, in robust sd
(the alerts' z, good direction). Text comes from templates and numbers only: agent types and model
names are sanitized, titles stripped to plain words.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from kpiloop.feedback.active import is_enabled, parse_time, suggestions_of
from kpiloop.feedback.alerts import SEVERITY_RANK, bad_direction_z, baseline_value, thresholds_for
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.experiment import decide, effect_text
from kpiloop.feedback.report import KPI_LABELS, REPORT_KPIS
from kpiloop.feedback.trend import HistorySession, IsoWeek, Tokens, week_sessions
from kpiloop.feedback.types import Baseline
from kpiloop.identity import sanitize_agent_type, sanitize_session_id
from kpiloop.processors.pricing import PER_MILLION, find_price
from kpiloop.processors.session_kpi_config import ModelPrice
from kpiloop.types import AgentType

TOP_PERFORMERS = 3
MIN_PERFORMER_SESSIONS = 3
MIN_PERFORMER_Z = 1.0
"""A top performer's weekly median beats the baseline centre by at least this many robust sd."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UNSAFE_TEXT = re.compile(r"[^A-Za-z0-9 .,:;()%/+'&-]+")
_FLAGGED = ("WARNING", "CRITICAL")
_UNKNOWN_MODEL = AgentType("unknown")


def week_title(week: IsoWeek) -> str:
    """The plan's ``Feb 8-14, 2026`` style, locale-independent.

    >>> week_title(IsoWeek(2026, 47)), week_title(IsoWeek(2026, 53))
    ('Nov 16-22, 2026', 'Dec 28, 2026 - Jan 3, 2027')
    """
    first, last = week.monday, week.monday + timedelta(days=6)
    start, stop = f"{_MONTHS[first.month - 1]} {first.day}", f"{_MONTHS[last.month - 1]} {last.day}"
    if first.year != last.year:
        return f"{start}, {first.year} - {stop}, {last.year}"
    if first.month != last.month:
        return f"{start} - {stop}, {last.year}"
    return f"{start}-{last.day}, {last.year}"


@dataclass(frozen=True, slots=True)
class Cost:
    """Cost with and without caching (USD) of the sessions with a cost; ``unpriced``: sanitized model →
    sessions whose cache reads could not be repriced for want of a price (``without_cache`` is then
    a lower bound: their cost is counted as is)."""

    with_cache: float = 0.0
    without_cache: float = 0.0
    sessions_without_cost: int = 0
    unpriced: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Cost) -> Cost:
        unpriced = dict(self.unpriced)
        for model, count in other.unpriced.items():
            unpriced[model] = unpriced.get(model, 0) + count
        return Cost(
            self.with_cache + other.with_cache,
            self.without_cache + other.without_cache,
            self.sessions_without_cost + other.sessions_without_cost,
            unpriced,
        )


@dataclass(frozen=True, slots=True)
class AgentWeek:
    """One agent type's week (or the whole week's, ``agent_type`` "all")."""

    agent_type: str
    sessions: int
    tokens: Tokens
    cost: Cost


@dataclass(frozen=True, slots=True)
class Performer:
    """An agent type whose weekly median of ``kpi`` beat its baseline by ``z`` robust sd."""

    agent_type: str
    kpi: str
    value: float
    baseline: float
    z: float
    sessions: int


@dataclass(frozen=True, slots=True)
class Regression:
    """WARNING/CRITICAL alerts of one agent type and KPI in the week: ``flagged`` of ``sessions``
    (those with a value), the longest run of flagged sessions (in end order), and the median value and
    median baseline (the centre each was assessed against) of the flagged sessions."""

    agent_type: str
    kpi: str
    severity: str
    flagged: int
    sessions: int
    consecutive: int
    value: float
    baseline: float | None
    threshold: str | None


@dataclass(frozen=True, slots=True)
class Optimization:
    """An active suggestion's experiment, or one promoted or retired during the week."""

    suggestion_id: str
    agent_type: str
    title: str
    status: str


@dataclass(frozen=True, slots=True)
class WeeklySummary:
    """Everything the weekly report shows."""

    week: IsoWeek
    total: AgentWeek
    agents: tuple[AgentWeek, ...]
    performers: tuple[Performer, ...]
    regressions: tuple[Regression, ...]
    optimizations: tuple[Optimization, ...]
    recommendations: tuple[str, ...]
    skipped_lines: int = 0


def session_cost(session: HistorySession, prices: Mapping[str, ModelPrice]) -> Cost:
    """One session's :class:`Cost`: cost_usd, and cost_usd + cache_read × (input − cache read price) / 1e6.

    >>> end = IsoWeek(2026, 47).start
    >>> s = HistorySession("s", "a", "claude-x", end, Tokens(cache_read=1_000_000), 1.0, {}, {}, {})
    >>> price = ModelPrice(input=3, output=15, cache_read=0.3, cache_write_5m=3.75, cache_write_1h=6)
    >>> session_cost(s, {"claude-x": price}).without_cache
    3.7
    """
    if session.cost_usd is None:
        return Cost(sessions_without_cost=1)
    price = find_price(session.model, prices)
    if price is None and session.tokens.cache_read:
        return Cost(session.cost_usd, session.cost_usd, unpriced={model_name(session.model): 1})
    saved = session.tokens.cache_read * (price.input - price.cache_read) / PER_MILLION if price else 0.0
    return Cost(session.cost_usd, session.cost_usd + saved)


def model_name(model: str) -> str:
    """A model id as the report may show it (sanitized like an agent type).

    >>> model_name("Claude Opus 4.6 <b>")
    'claude-opus-4.6-b'
    """
    return str(sanitize_agent_type(model, _UNKNOWN_MODEL))


def agent_week(agent_type: str, sessions: Sequence[HistorySession], prices: Mapping[str, ModelPrice]) -> AgentWeek:
    """Sessions, summed tokens and costs of ``sessions``."""
    tokens = sum((s.tokens for s in sessions), Tokens())
    cost = sum((session_cost(s, prices) for s in sessions), Cost())
    return AgentWeek(agent_type, len(sessions), tokens, cost)


def by_agent(sessions: Sequence[HistorySession]) -> dict[str, list[HistorySession]]:
    """Sessions grouped by agent type, most sessions first (then by name)."""
    groups: dict[str, list[HistorySession]] = {}
    for session in sessions:
        groups.setdefault(session.agent_type, []).append(session)
    return dict(sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])))


def find_regressions(groups: Mapping[str, Sequence[HistorySession]], config: FeedbackConfig) -> list[Regression]:
    """Every agent type and KPI with a WARNING/CRITICAL alert in the week; CRITICAL first, then most flagged."""
    found = [
        r
        for agent, sessions in groups.items()
        for kpi in REPORT_KPIS
        if (r := _regression(agent, kpi, sessions, config))
    ]
    order = {kpi: index for index, kpi in enumerate(REPORT_KPIS)}
    return sorted(found, key=lambda r: (-SEVERITY_RANK[r.severity], -r.flagged, r.agent_type, order[r.kpi]))


def _regression(agent: str, kpi: str, sessions: Sequence[HistorySession], config: FeedbackConfig) -> Regression | None:
    known = [s for s in sessions if kpi in s.kpis]
    marks = [s.flags.get(kpi, ("", ""))[0] in _FLAGGED for s in known]
    flagged = [s for s, mark in zip(known, marks, strict=True) if mark]
    if not flagged:
        return None
    baselines = [s.baselines[kpi] for s in flagged if kpi in s.baselines]
    threshold = None
    if any(s.flags[kpi][1] == "threshold" for s in flagged):
        limits = [t for t in thresholds_for(agent, config) if t.kpi == kpi]
        threshold = f"{limits[0].operator} {limits[0].threshold:g}" if limits else None
    return Regression(
        agent_type=agent,
        kpi=kpi,
        severity=max((s.flags[kpi][0] for s in flagged), key=SEVERITY_RANK.__getitem__),
        flagged=len(flagged),
        sessions=len(known),
        consecutive=_longest_run(marks),
        value=statistics.median(s.kpis[kpi] for s in flagged),
        baseline=statistics.median(baselines) if baselines else None,
        threshold=threshold,
    )


def _longest_run(marks: Sequence[bool]) -> int:
    """The longest run of True.

    >>> _longest_run([True, False, True, True, False])
    2
    """
    best = run = 0
    for mark in marks:
        run = run + 1 if mark else 0
        best = max(best, run)
    return best


def find_performers(
    groups: Mapping[str, Sequence[HistorySession]], baselines: Mapping[str, Baseline]
) -> list[Performer]:
    """Per agent type, the KPI whose weekly median beats the stored baseline by the most robust sd
    (z = −bad-direction z of the median, :func:`kpiloop.feedback.alerts.bad_direction_z`), if at
    least :data:`MIN_PERFORMER_Z`; sessions of the baseline's model only, at least
    :data:`MIN_PERFORMER_SESSIONS` of them; bootstrap baselines never. The best :data:`TOP_PERFORMERS`."""
    best = []
    for agent, sessions in groups.items():
        baseline = baselines.get(agent)
        mine = [s for s in sessions if baseline is not None and baseline.model in (None, s.model)]
        candidates = [p for kpi in REPORT_KPIS if baseline and (p := _performer(agent, kpi, mine, baseline))]
        if candidates:
            best.append(max(candidates, key=lambda p: p.z))
    return sorted(best, key=lambda p: (-p.z, p.agent_type))[:TOP_PERFORMERS]


def _performer(agent: str, kpi: str, sessions: Sequence[HistorySession], baseline: Baseline) -> Performer | None:
    kb = baseline.kpis.get(kpi)
    values = [s.kpis[kpi] for s in sessions if kpi in s.kpis]
    if kb is None or len(values) < MIN_PERFORMER_SESSIONS:
        return None
    median = statistics.median(values)
    bad_z = bad_direction_z(kpi, median, kb)
    if bad_z is None or -bad_z < MIN_PERFORMER_Z:
        return None
    return Performer(agent, kpi, median, baseline_value(kpi, kb), -bad_z, len(values))


def active_optimizations(document: Mapping[str, Any], config: FeedbackConfig) -> list[Optimization]:
    """active.json's suggestions with their experiment's progress (``sessions/max tracked``), state and effect."""
    found = []
    for entry in suggestions_of(document):
        decision = decide(entry, config)
        kpi = str((entry.get("expected_impact") or {}).get("kpi", ""))
        state = decision.effectiveness if is_enabled(entry) else "DISABLED"
        status = (
            f"{decision.sessions}/{config.max_tracked_sessions} sessions tracked, "
            f"{decision.treated} treated, {decision.control} control; {state}"
        )
        if decision.estimate is not None and decision.interval is not None:
            status += f"; {effect_text(kpi, decision)}"
        elif decision.relative is not None:
            status += f"; {decision.relative * 100:+.1f}% avg improvement vs baseline"
        found.append(_optimization(entry, status))
    return found


def closed_optimizations(retired: Iterable[Mapping[str, Any]], week: IsoWeek) -> list[Optimization]:
    """Suggestions promoted or retired during the week (retired.jsonl ``retired_at``)."""
    found = []
    for record in retired:
        when = parse_time(str(record.get("retired_at", "")))
        state = record.get("state")
        if when is None or not week.contains(when) or state not in ("promoted", "retired"):
            continue
        reason = _plain(str(record.get("reason", "")))
        found.append(_optimization(record, f"{state} on {when:%Y-%m-%d}: {reason}"))
    return found


def _optimization(entry: Mapping[str, Any], status: str) -> Optimization:
    return Optimization(
        suggestion_id=str(sanitize_session_id(entry.get("id")) or "unnamed"),
        agent_type=str(sanitize_agent_type(entry.get("agent_type"))),
        title=_plain(str(entry.get("title", ""))),
        status=status,
    )


def recommendations(
    regressions: Sequence[Regression],
    sessions: Sequence[HistorySession],
    total: AgentWeek,
    baselines: Mapping[str, Baseline | None],
) -> list[str]:
    """Templated next steps: investigate CRITICAL regressions, watch runs of 3+ flagged sessions,
    refit thresholds that do not fit, add missing prices, wait for bootstrap baselines."""
    found = []
    for r in regressions:
        label = KPI_LABELS[r.kpi].lower()
        if r.severity == "CRITICAL":
            found.append(f"Investigate {r.agent_type} {label}: CRITICAL in {r.flagged} of {r.sessions} sessions")
        elif r.consecutive >= 3:
            found.append(f"Watch {r.agent_type} {label}: flagged in {r.consecutive} consecutive sessions")
    unfit = sorted(
        {(s.agent_type, kpi) for s in sessions for kpi, (_, kind) in s.flags.items() if kind == "threshold_unfit"}
    )
    for agent, kpi in unfit:
        label = KPI_LABELS.get(kpi, kpi).lower()
        found.append(f"Set a hard threshold for {agent} {label} that fits it (the current one fires on most sessions)")
    for model in sorted(total.cost.unpriced):
        found.append(f"Add a price for model {model} to processors.session_kpi.prices")
    for agent, baseline in baselines.items():
        if baseline is None:
            found.append(f"Keep collecting {agent} sessions: it has no baseline yet")
        elif baseline.status == "bootstrap":
            have, need = baseline.session_count, baseline.bootstrap_threshold
            found.append(f"Keep collecting {agent} sessions: its baseline is bootstrap ({have} of {need} sessions)")
    return found


def build_weekly(
    lines: Iterable[Mapping[str, Any]],
    week: IsoWeek,
    baselines: Mapping[str, Baseline | None],
    active_document: Mapping[str, Any],
    retired: Iterable[Mapping[str, Any]],
    config: FeedbackConfig,
    prices: Mapping[str, ModelPrice],
    skipped_lines: int = 0,
) -> WeeklySummary:
    """The week's :class:`WeeklySummary` from history lines, stored baselines (by agent type) and the
    optimizations files; ``skipped_lines``: lines the caller could not decode, added to the count."""
    sessions, skipped = week_sessions(lines, week)
    groups = by_agent(sessions)
    total = agent_week("all", sessions, prices)
    regressions = find_regressions(groups, config)
    known = {agent: baseline for agent, baseline in baselines.items() if baseline is not None}
    mine = {agent: baselines.get(agent) for agent in groups}
    return WeeklySummary(
        week=week,
        total=total,
        agents=tuple(agent_week(agent, group, prices) for agent, group in groups.items()),
        performers=tuple(find_performers(groups, known)),
        regressions=tuple(regressions),
        optimizations=tuple(active_optimizations(active_document, config) + closed_optimizations(retired, week)),
        recommendations=tuple(recommendations(regressions, sessions, total, mine)),
        skipped_lines=skipped + skipped_lines,
    )


def _plain(text: str) -> str:
    """Plain words only (no Markdown or control characters), at most 120 characters."""
    return " ".join(_UNSAFE_TEXT.sub(" ", text).split())[:120]
