"""The history writer: one line per closed session in ``{data_dir}/history/kpis.jsonl``.

Appends are locked and whole-line, so a server and a replay (or several) can share a data dir.
The writer keeps an index of each session's latest revision, refreshed from the file under the
lock before every append, so a re-closed session is written as a new revision that supersedes
the one before, whoever wrote it.

A line that cannot be written (disk full, data dir unwritable) is not dropped: the error is logged
and counted, the session waits in memory (up to :data:`MAX_UNWRITTEN`) and is written, in close
order, at the next close or at shutdown once the file takes writes again.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from pathlib import Path

import orjson

from kpiloop.exporters.history_line import history_line
from kpiloop.model import SessionSummary
from kpiloop.storage import LineTail, append_unlocked, file_lock, repair_tail

log = logging.getLogger(__name__)

HISTORY_FILE = Path("history") / "kpis.jsonl"
MAX_UNWRITTEN = 1000
"""Closed sessions kept in memory while the history cannot be written; past this the oldest is dropped (logged)."""

Appender = Callable[[Path, bytes], None]
"""Appends bytes to a file whose lock the caller holds (:func:`kpiloop.storage.append_unlocked`)."""


class HistoryWriter:
    """Appends history lines; also answers whether a session is already recorded."""

    def __init__(
        self, data_dir: Path, append: Appender = append_unlocked, on_failure: Callable[[], None] | None = None
    ) -> None:
        """``append`` writes the bytes (injectable to test a full disk); ``on_failure`` is told of
        each failed write (a self-metric)."""
        self.path = data_dir / HISTORY_FILE
        self._append = append
        self._on_failure = on_failure
        self._revisions: dict[str, int] = {}
        self._tail = LineTail(self.path)
        self._unwritten: deque[SessionSummary] = deque()
        self.malformed_lines = 0
        self.write_failures = 0
        self.dropped_lines = 0

    def start(self) -> None:
        """Create the history folder, repair a torn last line, and index the lines already there.

        A data dir that cannot be used is logged, not raised: sessions are still measured and their
        lines written once it can be.
        """
        try:
            with file_lock(self.path):
                repair_tail(self.path)
                self._refresh()
        except OSError as error:
            log.error("cannot use the history file %s: %s; closed sessions wait in memory", self.path, error)
        if self.malformed_lines:
            log.warning("%s: skipped %d unreadable line(s)", self.path, self.malformed_lines)

    def shutdown(self) -> None:
        """Write the lines still waiting; log every session whose line could not be written."""
        if self.flush():
            ids = ", ".join(summary.session_id for summary in self._unwritten)
            log.error("%d closed session(s) were never written to %s: %s", len(self._unwritten), self.path, ids)

    def contains(self, session_id: str) -> bool:
        """True when the history already has a line for ``session_id``."""
        return session_id in self._revisions

    def session_ids(self) -> frozenset[str]:
        """Every session the history had when last read."""
        return frozenset(self._revisions)

    @property
    def unwritten(self) -> int:
        """Closed sessions waiting in memory because their line could not be written yet."""
        return len(self._unwritten)

    def consume(self, summary: SessionSummary) -> None:
        """Append the summary's line as the session's next revision (or keep it for later, logged)."""
        if len(self._unwritten) >= MAX_UNWRITTEN:
            lost = self._unwritten.popleft()
            self.dropped_lines += 1
            log.error("dropped the unwritten history line of session %s: %d waiting", lost.session_id, MAX_UNWRITTEN)
        self._unwritten.append(summary)
        self.flush()

    def flush(self) -> int:
        """Write the waiting lines in close order; returns how many still wait."""
        if not self._unwritten:
            return 0
        try:
            with file_lock(self.path):
                self._refresh()
                while self._unwritten:
                    self._write(self._unwritten[0])
                    self._unwritten.popleft()
        except OSError as error:
            self.write_failures += 1
            if self._on_failure is not None:
                self._on_failure()
            log.error(
                "could not write the history line of session %s to %s: %s; %d line(s) kept in memory, retried "
                "at the next close",
                self._unwritten[0].session_id,
                self.path,
                error,
                len(self._unwritten),
            )
        return len(self._unwritten)

    def _write(self, summary: SessionSummary) -> None:
        previous = self._revisions.get(summary.session_id)
        revision = (previous or 0) + 1
        line = history_line(summary, revision=revision, supersedes=previous)
        self._append(self.path, orjson.dumps(line) + b"\n")
        self._revisions[summary.session_id] = revision
        self._tail.offset = self.path.stat().st_size

    def _refresh(self) -> None:
        for raw in self._tail.new_lines():
            self._index(raw)

    def _index(self, raw: bytes) -> None:
        try:
            entry = orjson.loads(raw)
            session_id, revision = entry["session_id"], int(entry.get("revision") or 1)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            self.malformed_lines += 1
            return
        self._revisions[session_id] = max(revision, self._revisions.get(session_id, 0))
