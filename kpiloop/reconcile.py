"""``kpiloop reconcile``: what live telemetry recorded for a session, against its Claude Code transcript.

Claude Code writes every API response and tool result to the session's transcript
(``~/.claude/projects/<project>/<session>.jsonl``), whatever happened to its OpenTelemetry export.
Users report sessions whose telemetry silently lacks most of their spend (an exporter that was not
flushed at exit, a collector that was down, a metrics-only export): the transcript shows how much.

The telemetry side is the session's latest history line; the transcript side is the transcript
(and its subagent transcripts) decoded exactly as ``kpiloop replay`` decodes it. The gap of a
measure is transcript − telemetry: positive when telemetry lacks something, and its percentage is
of the transcript's value. The transcript's cost is Claude Code's own running total (its
``cost-state`` line) when the transcript has one, else the price table's.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.transcript import TranscriptReader, is_transcript_line, subagent_transcripts
from kpiloop.errors import InputError
from kpiloop.exporters.history import HISTORY_FILE
from kpiloop.model import SessionSummary
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.types import AgentType, Clock

DEFAULT_TRANSCRIPTS = "~/.claude/projects/*/*.jsonl"
SNIFF_LINES = 64
"""Lines read from the top of a transcript to learn its session id."""
COST_STATE = "cost-state"

COUNTS: tuple[tuple[str, str], ...] = (
    ("input tokens", "input"),
    ("output tokens", "output"),
    ("cache read tokens", "cache_read"),
    ("cache write 5m tokens", "cache_write_5m"),
    ("cache write 1h tokens", "cache_write_1h"),
    ("all tokens", "tokens"),
    ("api requests", "api_requests"),
    ("api errors", "api_errors"),
    ("tool calls", "tool_calls"),
    ("tool failures", "tool_failures"),
    ("tool denials", "tool_denials"),
)
"""The rows of the table (label, :class:`Measures` attribute), cost last."""
VERDICT_ROWS = ("all tokens", "api requests", "api errors", "tool calls", "tool failures", "tool denials")


@dataclass(frozen=True, slots=True)
class Measures:
    """What both sides can tell about a session."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0
    api_requests: int = 0
    api_errors: int = 0
    tool_calls: int = 0
    tool_failures: int = 0
    tool_denials: int = 0
    cost_usd: float | None = None

    @property
    def tokens(self) -> int:
        """Every token of every type."""
        return self.input + self.output + self.cache_read + self.cache_write_5m + self.cache_write_1h


def measures_from_history(line: Mapping[str, Any]) -> Measures:
    """A history line's measures; raises KeyError/TypeError/ValueError for a line without them.

    A line without the 5m/1h split counts all its cache writes as 5-minute ones.
    """
    tokens = line["tokens"]
    hour = int(tokens.get("cache_creation_1h") or 0)
    five = int(tokens["cache_creation_5m"]) if "cache_creation_5m" in tokens else int(tokens["cache_creation"]) - hour
    cost = line.get("cost_usd")
    return Measures(
        input=int(tokens["input"]),
        output=int(tokens["output"]),
        cache_read=int(tokens["cache_read"]),
        cache_write_5m=five,
        cache_write_1h=hour,
        api_requests=int(line["api_requests"]),
        api_errors=int(line.get("api_errors") or 0),
        tool_calls=int(line["tool_calls"]),
        tool_failures=int(line.get("tool_failures") or 0),
        tool_denials=int(line.get("tool_denials") or 0),
        cost_usd=float(cost) if isinstance(cost, int | float) and not isinstance(cost, bool) else None,
    )


def measures_from_summary(summary: SessionSummary, cost_usd: float | None) -> Measures:
    """A transcript's summary as measures, with the given cost."""
    tokens = summary.tokens
    return Measures(
        input=tokens.input,
        output=tokens.output,
        cache_read=tokens.cache_read,
        cache_write_5m=tokens.cache_write_5m,
        cache_write_1h=tokens.cache_write_1h,
        api_requests=summary.api_requests,
        api_errors=summary.api_errors,
        tool_calls=summary.tool_calls,
        tool_failures=summary.tool_failures,
        tool_denials=summary.tool_denials,
        cost_usd=cost_usd,
    )


@dataclass(frozen=True, slots=True)
class Gap:
    """One measure on both sides; ``gap`` = transcript − telemetry (None when a side has no value)."""

    label: str
    telemetry: float | None
    transcript: float | None

    @property
    def gap(self) -> float | None:
        """How much more the transcript shows than telemetry recorded."""
        if self.telemetry is None or self.transcript is None:
            return None
        return self.transcript - self.telemetry

    @property
    def percent(self) -> float | None:
        """The gap as a percentage of the transcript's value; None when that is 0 or unknown."""
        gap = self.gap
        if gap is None or not self.transcript:
            return None
        return 100.0 * gap / self.transcript

    @property
    def closed(self) -> bool:
        """No gap (cost to a relative 1e-6, counts exactly)."""
        gap = self.gap
        if gap is None:
            return self.telemetry is None and self.transcript is None
        return math.isclose(self.telemetry or 0.0, self.transcript or 0.0, rel_tol=1e-6, abs_tol=1e-9)


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """One session: its telemetry (latest history line) and its transcript."""

    session_id: str
    revision: int
    telemetry: Measures
    transcript: Measures
    files: tuple[str, ...]
    cost_from_cli: bool

    def gaps(self) -> list[Gap]:
        """Every row: token counts, requests, tools, then cost."""
        rows = [Gap(label, getattr(self.telemetry, key), getattr(self.transcript, key)) for label, key in COUNTS]
        return [*rows, Gap("cost usd", self.telemetry.cost_usd, self.transcript.cost_usd)]

    @property
    def complete(self) -> bool:
        """Telemetry has every token, request and tool call the transcript shows (cost not judged)."""
        return all(gap.closed for gap in self.gaps()[: len(COUNTS)])


@dataclass
class TranscriptSessions:
    """What the transcripts showed, per session id."""

    summaries: dict[str, SessionSummary] = field(default_factory=dict)
    cli_costs: dict[str, float] = field(default_factory=dict)
    problems: int = 0


def reconcile(
    data_dir: Path, session_id: str | None, pattern: str, config: SessionKpiConfig, clock: Clock
) -> list[Reconciliation]:
    """Compare ``session_id`` (every session in history with a transcript when None) with the
    transcripts matching ``pattern``. Raises LookupError naming what is missing for one session."""
    history = latest_history(data_dir / HISTORY_FILE, session_id)
    if session_id is not None and session_id not in history:
        raise LookupError(f"no history line for session {session_id!r} in {data_dir / HISTORY_FILE}")
    files = files_by_session(transcript_files(pattern), set(history))
    if session_id is not None and session_id not in files:
        raise LookupError(f"no transcript of session {session_id!r} matches {pattern}")
    wanted = sorted(files)
    seen = read_transcripts([path for sid in wanted for path in files[sid]], config, clock)
    results = []
    for sid in wanted:
        summary = seen.summaries.get(sid)
        if summary is None:
            continue  # the transcript holds no measurement for it (an empty session)
        revision, telemetry = history[sid]
        cli_cost = seen.cli_costs.get(sid)
        transcript = measures_from_summary(summary, cli_cost if cli_cost is not None else summary.cost_usd)
        results.append(Reconciliation(sid, revision, telemetry, transcript, tuple(files[sid]), cli_cost is not None))
    return results


def latest_history(path: Path, session_id: str | None = None) -> dict[str, tuple[int, Measures]]:
    """(revision, measures) of each session's latest line in the history file (only ``session_id``'s
    when given); lines that are not history lines are skipped."""
    latest: dict[str, tuple[int, Measures]] = {}
    if not path.is_file():
        return latest
    with open(path, "rb") as handle:
        for raw in handle:
            entry = _history_entry(raw, session_id)
            if entry is None:
                continue
            sid, revision, measures = entry
            if sid not in latest or revision >= latest[sid][0]:
                latest[sid] = (revision, measures)
    return latest


def _history_entry(raw: bytes, session_id: str | None) -> tuple[str, int, Measures] | None:
    try:
        line = orjson.loads(raw)
        sid = str(line["session_id"])
        if session_id is not None and sid != session_id:
            return None
        return sid, int(line.get("revision") or 1), measures_from_history(line)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError):
        return None


def transcript_files(pattern: str) -> list[str]:
    """Files matching ``pattern`` (``~`` expanded, sorted) and the subagent transcripts beside them."""
    expanded = os.path.expanduser(pattern)
    matches = sorted(glob.glob(expanded)) if glob.has_magic(expanded) else [expanded]
    files: list[str] = []
    for match in (m for m in matches if Path(m).is_file()):
        files.extend(p for p in (match, *subagent_transcripts(match)) if p not in files)
    return files


def files_by_session(paths: Iterable[str], wanted: set[str]) -> dict[str, list[str]]:
    """The transcripts of each wanted session (a subagent transcript carries its parent's session id)."""
    found: dict[str, list[str]] = {}
    for path in paths:
        session_id = file_session(path)
        if session_id is not None and session_id in wanted:
            found.setdefault(session_id, []).append(path)
    return found


def file_session(path: str) -> str | None:
    """The first ``sessionId`` among the first lines of a transcript; None for other files."""
    try:
        with open(path, "rb") as handle:
            for number, raw in enumerate(handle):
                if number >= SNIFF_LINES:
                    break
                session_id = _line_session(raw)
                if session_id is not None:
                    return session_id
    except OSError:
        return None
    return None


def _line_session(raw: bytes) -> str | None:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    session_id = doc.get("sessionId") if is_transcript_line(doc) else None
    return session_id if isinstance(session_id, str) and session_id else None


def read_transcripts(paths: Sequence[str], config: SessionKpiConfig, clock: Clock) -> TranscriptSessions:
    """Decode transcripts as ``kpiloop replay`` does and close every session they showed."""
    processor = SessionKpiProcessor(_Discard(), config, clock)
    reader = TranscriptReader(EventAdapter(AgentType(config.default_agent_type)))
    seen = TranscriptSessions()
    for path, doc in _transcript_lines(paths, seen):
        if doc.get("type") == COST_STATE:
            _note_cost(seen.cli_costs, doc)
            continue
        try:
            events = reader.events(doc, path)
        except InputError:
            seen.problems += 1
            continue
        for event in events:
            processor.consume(event)
    seen.summaries = {summary.session_id: summary for summary in processor.close_all()}
    return seen


def _transcript_lines(paths: Sequence[str], seen: TranscriptSessions) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for path in paths:
        with open(path, "rb") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                try:
                    doc = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    seen.problems += 1
                    continue
                if is_transcript_line(doc):
                    yield path, doc


def _note_cost(costs: dict[str, float], doc: Mapping[str, Any]) -> None:
    """Claude Code's running session total: the largest ``totalCostUSD`` seen (it only grows)."""
    session_id, total = doc.get("sessionId"), doc.get("totalCostUSD")
    if isinstance(session_id, str) and isinstance(total, int | float) and not isinstance(total, bool):
        if math.isfinite(total) and total >= 0:
            costs[session_id] = max(float(total), costs.get(session_id, 0.0))


class _Discard:
    """The processor's next stage: summaries are taken from ``close_all``."""

    def consume(self, summary: SessionSummary) -> None:
        """Nothing to do."""


def render(result: Reconciliation) -> str:
    """The comparison table of one session, with a one-line verdict."""
    files = ", ".join(result.files)
    head = f"session {result.session_id} (history revision {result.revision}; transcript: {files})"
    rows = [("", "telemetry", "transcript", "gap", "gap %")]
    rows += [_cells(gap, money=gap.label == "cost usd") for gap in result.gaps()]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = [head]
    for label, *numbers in rows:
        cells = (cell.rjust(width) for cell, width in zip(numbers, widths[1:], strict=True))
        lines.append("  ".join([label.ljust(widths[0]), *cells]))
    cost_note = "Claude Code's cost-state total" if result.cost_from_cli else "priced from the price table"
    lines.append(f"(gap = transcript - telemetry; transcript cost: {cost_note})")
    lines.append(verdict(result))
    return "\n".join(line.rstrip() for line in lines)


def verdict(result: Reconciliation) -> str:
    """One line: no gap, or what telemetry is missing (or has more of) than the transcript."""
    if result.complete:
        return "no gap: telemetry recorded everything the transcript shows"
    rows = [gap for gap in result.gaps() if gap.label in VERDICT_ROWS and not gap.closed]
    detail = "; ".join(f"{gap.label} {_signed(gap.gap)} ({_percent(gap.percent)})" for gap in rows)
    return f"GAP (transcript - telemetry): {detail or 'token types differ'}"


def _cells(gap: Gap, money: bool) -> tuple[str, str, str, str, str]:
    show = _money if money else _count
    return gap.label, show(gap.telemetry), show(gap.transcript), show(gap.gap), _percent(gap.percent)


def _count(value: float | None) -> str:
    return "-" if value is None else f"{round(value):,}"


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{round(value):+,}"


def _money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.6f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"
