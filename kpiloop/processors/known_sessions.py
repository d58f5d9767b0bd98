"""Replay idempotence: drop summaries of sessions the history already has, unless forced."""

from __future__ import annotations

from collections.abc import Callable

from kpiloop.model import SessionSummary
from kpiloop.processors.base import SummaryConsumer


class SkipKnownSessions:
    """Passes a summary on only when ``is_known(session_id)`` is false; tells ``on_skip`` otherwise."""

    def __init__(
        self,
        next_consumer: SummaryConsumer,
        is_known: Callable[[str], bool],
        on_skip: Callable[[SessionSummary], None],
    ) -> None:
        self._next = next_consumer
        self._is_known = is_known
        self._on_skip = on_skip

    def consume(self, summary: SessionSummary) -> None:
        """Forward new sessions; report known ones to ``on_skip``."""
        if self._is_known(summary.session_id):
            self._on_skip(summary)
        else:
            self._next.consume(summary)
