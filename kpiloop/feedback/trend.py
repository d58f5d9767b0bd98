"""Closed sessions as ``kpiloop weekly`` and ``kpiloop trend`` select them from
``{data_dir}/history/kpis.jsonl``: those that ended in one ISO week (UTC), or an agent type's last N
for one KPI's trend chart.

Each session counts once, by its latest history line: the highest ``revision`` (the later line on a
tie), so a line that ``supersedes`` an earlier revision replaces it. A session ends at ``date`` (its
start) + ``duration_seconds``; sessions are ordered by end time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from kpiloop.feedback.active import parse_time
from kpiloop.feedback.report import KPI_LABELS, REPORT_KPIS, baseline_centre
from kpiloop.feedback.trend_chart import trend_chart
from kpiloop.feedback.types import Baseline
from kpiloop.identity import sanitize_agent_type

HISTORY_FILE = Path("history") / "kpis.jsonl"
_WEEK = re.compile(r"(\d{4})-W(\d{2})")
TREND_KPIS: tuple[str, ...] = REPORT_KPIS
"""KPIs ``kpiloop trend`` charts: the plan's ten and ``cost_per_output_token``."""


@dataclass(frozen=True, slots=True)
class Tokens:
    """Token counts by type (``input`` excludes cached tokens)."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_creation: int = 0

    @property
    def total(self) -> int:
        """input + output + cache_read + cache_creation."""
        return self.input + self.output + self.cache_read + self.cache_creation

    @property
    def hit_rate(self) -> float | None:
        """cache_read / (input + cache_read + cache_creation) (DESIGN.md cache_efficiency); None when that is 0.

        >>> Tokens(input=10, output=5, cache_read=90).hit_rate
        0.9
        """
        prompt = self.input + self.cache_read + self.cache_creation
        return self.cache_read / prompt if prompt else None

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(
            self.input + other.input,
            self.output + other.output,
            self.cache_read + other.cache_read,
            self.cache_creation + other.cache_creation,
        )


@dataclass(frozen=True, slots=True)
class HistorySession:
    """What the weekly summary and trends need of one history line: non-null KPIs only, the
    baseline centres the session was assessed against, and ``flags``: KPI → (severity, kind) of its alert."""

    session_id: str
    agent_type: str
    model: str
    end: datetime
    tokens: Tokens
    cost_usd: float | None
    kpis: Mapping[str, float]
    baselines: Mapping[str, float]
    flags: Mapping[str, tuple[str, str]]


def latest_revisions(lines: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One line per session: the highest ``revision`` (the later line on a tie), in file order of
    the kept lines. Lines without a string ``session_id`` are dropped."""
    kept: dict[str, tuple[int, int, Mapping[str, Any]]] = {}
    for position, line in enumerate(lines):
        session = line.get("session_id")
        revision = line.get("revision")
        rank = revision if isinstance(revision, int) and not isinstance(revision, bool) else 1
        if isinstance(session, str) and (session not in kept or rank >= kept[session][0]):
            kept[session] = (rank, position, line)
    return [line for _, _, line in sorted(kept.values(), key=lambda item: item[1])]


def parse_session(line: Mapping[str, Any]) -> HistorySession:
    """A history line as a :class:`HistorySession`; KeyError/TypeError/ValueError when it is not one."""
    start = parse_time(str(line["date"]))
    if start is None:
        raise ValueError("date is not an ISO 8601 time")
    tokens = line.get("tokens") or {}
    return HistorySession(
        session_id=str(line["session_id"]),
        agent_type=str(sanitize_agent_type(line["agent_type"])),
        model=str(line.get("model") or "unknown"),
        end=start + timedelta(seconds=_number(line.get("duration_seconds")) or 0.0),
        tokens=Tokens(*(_count(tokens.get(key)) for key in ("input", "output", "cache_read", "cache_creation"))),
        cost_usd=_number(line.get("cost_usd")),
        kpis=_numbers({**(line.get("kpis") or {}), "cost_per_output_token": line.get("cost_per_output_token")}),
        baselines=_numbers(line.get("baselines") or {}),
        flags={str(a["kpi"]): (str(a.get("severity")), str(a.get("kind"))) for a in line.get("alerts") or []},
    )


def sessions_of(lines: Iterable[Mapping[str, Any]]) -> tuple[list[HistorySession], int]:
    """Every session (latest revision), ordered by end time; and how many lines could not be read."""
    sessions, skipped = [], 0
    for line in latest_revisions(lines):
        try:
            sessions.append(parse_session(line))
        except (KeyError, TypeError, ValueError, AttributeError):
            skipped += 1
    return sorted(sessions, key=lambda s: (s.end, s.session_id)), skipped


def read_history(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of a history file and the number of lines that are not; ``[]`` when missing."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return [], 0
    lines, bad = [], 0
    for chunk in raw.splitlines():
        try:
            line = orjson.loads(chunk)
        except orjson.JSONDecodeError:
            bad += bool(chunk.strip())
            continue
        if isinstance(line, dict):
            lines.append(line)
        else:
            bad += 1
    return lines, bad


@dataclass(frozen=True, slots=True)
class IsoWeek:
    """One ISO 8601 week: Monday 00:00 UTC to the next Monday."""

    year: int
    week: int

    @property
    def monday(self) -> date:
        """The week's Monday."""
        return date.fromisocalendar(self.year, self.week, 1)

    @property
    def start(self) -> datetime:
        """Monday 00:00 UTC (inclusive)."""
        return datetime(self.monday.year, self.monday.month, self.monday.day, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The next Monday 00:00 UTC (exclusive)."""
        return self.start + timedelta(days=7)

    def contains(self, moment: datetime) -> bool:
        """start <= moment < end."""
        return self.start <= moment < self.end

    def __str__(self) -> str:
        return f"{self.year}-W{self.week:02d}"


def parse_week(text: str) -> IsoWeek:
    """``YYYY-Www`` as an :class:`IsoWeek`; ValueError for anything else (or a week the year lacks).

    >>> parse_week("2026-W47").monday
    datetime.date(2026, 11, 16)
    """
    match = _WEEK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"week {text!r} must look like 2026-W47")
    week = IsoWeek(int(match[1]), int(match[2]))
    try:
        week.monday  # noqa: B018 - validates: 2026 has no week 53
    except ValueError:
        raise ValueError(f"{week.year} has no ISO week {week.week}") from None
    return week


def week_of(now: float) -> IsoWeek:
    """The ISO week (UTC) of ``now``, seconds since the epoch.

    >>> str(week_of(1_779_000_000.0))
    '2026-W20'
    """
    year, week, _ = datetime.fromtimestamp(now, tz=UTC).isocalendar()
    return IsoWeek(year, week)


def week_sessions(lines: Iterable[Mapping[str, Any]], week: IsoWeek) -> tuple[list[HistorySession], int]:
    """The sessions (latest revisions) that ended in the week, by end time; and the unreadable lines."""
    sessions, skipped = sessions_of(lines)
    return [s for s in sessions if week.contains(s.end)], skipped


@dataclass(frozen=True, slots=True)
class Trend:
    """One KPI of one agent type over its last sessions (oldest first; None where not computable)."""

    agent_type: str
    kpi: str
    values: tuple[float | None, ...]
    baseline: float | None


def select_trend(
    sessions: Sequence[HistorySession], agent_type: str, kpi: str, last: int, baseline: Baseline | None
) -> Trend:
    """The agent type's last ``last`` sessions' values of ``kpi``; the baseline drawn is the stored
    file's centre (the median, or the mean of a raw baseline, as the per-session report draws it),
    else the centre the latest session was assessed against, else none.

    Raises ValueError for a KPI not in :data:`TREND_KPIS`, LookupError for an agent type without sessions.
    """
    if kpi not in TREND_KPIS:
        raise ValueError(f"unknown KPI {kpi!r}; one of: {', '.join(TREND_KPIS)}")
    mine = [s for s in sessions if s.agent_type == agent_type][-max(last, 1) :]
    if not mine:
        known = sorted({s.agent_type for s in sessions})
        raise LookupError(
            f"no sessions of agent type {agent_type!r} in the history; known: {', '.join(known) or 'none'}"
        )
    centre = baseline_centre(baseline.kpis[kpi]) if baseline is not None and kpi in baseline.kpis else None
    if centre is None:
        centre = mine[-1].baselines.get(kpi)
    return Trend(agent_type, kpi, tuple(s.kpis.get(kpi) for s in mine), centre)


def render_trend(trend: Trend) -> str:
    """The ASCII chart (:func:`kpiloop.feedback.trend_chart.trend_chart`) of a :class:`Trend`."""
    title = f"{KPI_LABELS[trend.kpi]} Trend: {trend.agent_type} (last {len(trend.values)} sessions)"
    return trend_chart(title, trend.values, trend.baseline)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _count(value: object) -> int:
    number = _number(value)
    return int(number) if number is not None and number > 0 else 0


def _numbers(values: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): number for k, v in values.items() if (number := _number(v)) is not None}
