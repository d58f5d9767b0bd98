"""Test doubles shipped with kpiloop: a list sink and a settable clock (fakes, not mocks)."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from kpiloop.model import DataCompleteness, SessionSummary, TokenCounts
from kpiloop.types import AgentType, SessionId

T = TypeVar("T")


class ListSink(Generic[T]):
    """A consumer that keeps what it is given, in order."""

    def __init__(self) -> None:
        self.items: list[T] = []

    def consume(self, item: T) -> None:
        """Keep ``item``."""
        self.items.append(item)

    def reset(self) -> None:
        """Forget everything kept."""
        self.items.clear()

    def start(self) -> None:
        """Nothing to start."""

    def shutdown(self) -> None:
        """Nothing to stop."""


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self._now = now

    def now(self) -> float:
        """The current fake time in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self._now += seconds


def make_summary(**fields: Any) -> SessionSummary:
    """A closed session with plausible defaults; a test gives only the fields it is about."""
    start = 1_770_920_880 * 10**9  # 2026-02-12T18:28:00Z
    defaults: dict[str, Any] = {
        "session_id": SessionId("s-1"),
        "agent_type": AgentType("coder"),
        "model": "claude-sonnet-4-5",
        "start_ns": start,
        "end_ns": start + 60 * 10**9,
        "tokens": TokenCounts(input=90, output=10, cache_read=900, cache_write_5m=5, cache_write_1h=5),
        "cost_usd": 0.25,
        "api_requests": 2,
        "api_errors": 0,
        "tool_calls": 3,
        "tool_failures": 1,
        "tool_denials": 1,
        "tools_by_name": {"Read": 2, "Bash": 1},
        "management_tool_calls": 0,
        "productive_tool_calls": 3,
        "tasks_created": 0,
        "tasks_completed": None,
        "task_updates": 0,
        "active_seconds": 30.0,
        "reported_active_seconds": None,
        "prompts": 1,
        "lines_added": 0,
        "lines_removed": 0,
        "subagents": {},
        "quality": {},
        "kpis": {},
        "cost_per_output_token": None,
        "data_completeness": DataCompleteness(),
        "close_reason": "session_end",
    }
    return SessionSummary(**(defaults | fields))
