"""Role contracts of the processors: they take events and hand summaries to an injected consumer."""

from __future__ import annotations

from typing import Protocol

from kpiloop.model import SessionSummary


class SummaryConsumer(Protocol):
    """The next stage after the session processor: history, feedback, exporters, a table."""

    def consume(self, summary: SessionSummary) -> None: ...
