"""Role contracts of the processors: they take events and hand summaries to an injected consumer."""

from __future__ import annotations

from typing import Protocol

from kpiloop.model import ApiCall, SessionSummary, ToolCall


class SummaryConsumer(Protocol):
    """The next stage after the session processor: history, feedback, exporters, a table."""

    def consume(self, summary: SessionSummary) -> None: ...


class LiveObserver(Protocol):
    """Told about each call as soon as the processor counted it (after deduplication): live metrics."""

    def api_call(self, call: ApiCall, cost_usd: float | None) -> None: ...

    def late_cost(self, call: ApiCall, cost_usd: float) -> None: ...

    def tool_call(self, call: ToolCall) -> None: ...

    def session_empty(self) -> None: ...

    def session_closed(self, seconds: float) -> None: ...

    def late_event(self) -> None: ...
