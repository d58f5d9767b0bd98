"""The JSONL replay receiver: stream files (or stdin) line by line into the pipeline.

All paths of one replay are one input, read in the order given (globs sorted); a Claude Code
session transcript brings the subagent transcripts kept beside it. Memory does not grow with file
size: each line is decoded, adapted and handed on before the next is read. A malformed line is
reported with file:line and skipped; it never stops the replay. Transcript lines without a
measurement are skipped silently.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.base import EventConsumer
from kpiloop.collector.line_formats import decode_line
from kpiloop.collector.plan_shortcut import PlanShortcut
from kpiloop.collector.records import DataPointRecord, LogRecord, SpanRecord
from kpiloop.collector.transcript import TranscriptReader, is_transcript_line, subagent_transcripts
from kpiloop.errors import InputError
from kpiloop.model import Event

STDIN = "-"


@dataclass(frozen=True, slots=True)
class LineProblem:
    """One line (or one item in it) that could not be used."""

    file: str
    line: int
    message: str


@dataclass
class ReplayStats:
    """What a replay read."""

    files: int = 0
    lines: int = 0
    bytes: int = 0
    records: int = 0
    events: int = 0
    problems: int = 0


def expand_paths(patterns: Sequence[str]) -> list[str]:
    """Files for the given paths and globs, in the order given (each glob sorted); ``-`` is stdin.

    Raises FileNotFoundError naming a path or pattern that matched nothing.
    """
    paths: list[str] = []
    for pattern in patterns:
        if pattern == STDIN:
            paths.append(STDIN)
            continue
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        matches = [m for m in matches if Path(m).is_file()]
        if not matches:
            raise FileNotFoundError(f"no such file: {pattern}")
        for match in matches:
            paths.append(match)
            paths.extend(p for p in subagent_transcripts(match) if p not in paths and p not in matches)
    return paths


class JsonlReplay:
    """Reads JSONL files and feeds their events to ``consumer``; with a ``shortcut``, the plan's
    token and tool spans in their usual shape go to the session processor directly (same result)."""

    def __init__(
        self,
        paths: Sequence[str],
        consumer: EventConsumer,
        adapter: EventAdapter,
        on_problem: Callable[[LineProblem], None],
        on_progress: Callable[[int], None] | None = None,
        shortcut: PlanShortcut | None = None,
    ) -> None:
        self._paths = list(paths)
        self._shortcut = shortcut
        self._consumer = consumer
        self._adapter = adapter
        self._on_problem = on_problem
        self._on_progress = on_progress
        self._transcripts = TranscriptReader(adapter)
        self.stats = ReplayStats()

    def start(self) -> None:
        """Replay runs to completion in :meth:`run`; nothing to start."""

    def shutdown(self) -> None:
        """Nothing held open between runs."""

    def run(self) -> ReplayStats:
        """Replay every path; return what was read."""
        for path in self._paths:
            self.stats.files += 1
            if path == STDIN:
                self._replay_stream(STDIN, sys.stdin.buffer)
            else:
                with open(path, "rb") as handle:
                    self._replay_stream(path, handle)
        return self.stats

    def _replay_stream(self, name: str, stream: BinaryIO) -> None:
        for number, raw in enumerate(stream, start=1):
            self.stats.lines += 1
            self.stats.bytes += len(raw)
            if not raw.isspace():  # a line from a file is never empty: it has at least its newline
                self._replay_line(name, number, raw)
            if self._on_progress is not None and number % 1024 == 0:
                self._on_progress(self.stats.bytes)
        if self._on_progress is not None:
            self._on_progress(self.stats.bytes)

    def _replay_line(self, name: str, number: int, raw: bytes) -> None:
        try:
            doc = orjson.loads(raw)
            if is_transcript_line(doc):
                self.stats.records += 1
                self._consume(self._transcripts.events(doc, name))
                return
            if self._shortcut is not None and type(doc) is dict and self._shortcut.take(doc):
                self.stats.records += 1
                self.stats.events += 1
                return
            for item in decode_line(doc):
                self._replay_item(name, number, item)
        except orjson.JSONDecodeError as error:
            self._problem(name, number, f"invalid JSON: {error}")
        except InputError as error:
            self._adapter.reject(error)
            self._problem(name, number, str(error))

    def _replay_item(self, name: str, number: int, item: SpanRecord | LogRecord | DataPointRecord | InputError) -> None:
        try:
            if isinstance(item, InputError):
                raise item
            self.stats.records += 1
            events = list(self._events(item))
        except InputError as error:
            self._adapter.reject(error)
            self._problem(name, number, str(error))
            return
        self._consume(events)

    def _consume(self, events: Iterable[Event]) -> None:
        for event in events:
            self.stats.events += 1
            self._consumer.consume(event)

    def _events(self, item: SpanRecord | LogRecord | DataPointRecord) -> Iterable[Event]:
        if isinstance(item, SpanRecord):
            return self._adapter.from_span(item)
        if isinstance(item, LogRecord):
            return self._adapter.from_log(item)
        return self._adapter.from_point(item)

    def _problem(self, name: str, number: int, message: str) -> None:
        self.stats.problems += 1
        self._on_problem(LineProblem(name, number, message))
