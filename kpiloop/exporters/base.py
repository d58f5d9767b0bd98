"""Role contract of the exporters: each one consumes summaries and has a lifecycle."""

from __future__ import annotations

from typing import Protocol

from kpiloop.model import SessionSummary


class SummaryExporter(Protocol):
    """A sink for closed sessions: ``start()``, ``consume(summary)``*, ``shutdown()`` (idempotent)."""

    def start(self) -> None: ...

    def consume(self, summary: SessionSummary) -> None: ...

    def shutdown(self) -> None: ...
