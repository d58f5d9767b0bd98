"""The history writer: one line per closed session in ``{data_dir}/history/kpis.jsonl``.

Appends are locked and whole-line, so a server and a replay (or several) can share a data dir.
The writer keeps an index of each session's latest revision, refreshed from the file under the
lock before every append, so a re-closed session is written as a new revision that supersedes
the one before, whoever wrote it.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from kpiloop.exporters.history_line import history_line
from kpiloop.model import SessionSummary
from kpiloop.storage import LineTail, append_unlocked, file_lock

HISTORY_FILE = Path("history") / "kpis.jsonl"


class HistoryWriter:
    """Appends history lines; also answers whether a session is already recorded."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / HISTORY_FILE
        self._revisions: dict[str, int] = {}
        self._tail = LineTail(self.path)
        self.malformed_lines = 0

    def start(self) -> None:
        """Create the history folder and index the lines already there."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._refresh()

    def shutdown(self) -> None:
        """Nothing is buffered: every line is on disk when ``consume`` returns."""

    def contains(self, session_id: str) -> bool:
        """True when the history already has a line for ``session_id``."""
        return session_id in self._revisions

    def session_ids(self) -> frozenset[str]:
        """Every session the history had when last read."""
        return frozenset(self._revisions)

    def consume(self, summary: SessionSummary) -> None:
        """Append the summary's line as the session's next revision."""
        with file_lock(self.path):
            self._refresh()
            previous = self._revisions.get(summary.session_id)
            revision = (previous or 0) + 1
            line = history_line(summary, revision=revision, supersedes=previous)
            append_unlocked(self.path, orjson.dumps(line) + b"\n")
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
