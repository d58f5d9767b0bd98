"""Configuration of the session KPI processor (``processors.session_kpi`` in otel-config.yaml)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from kpiloop.durations import Duration
from kpiloop.identity import sanitize_agent_type


class ModelPrice(BaseModel):
    """USD per million tokens of one model family."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0, description="USD per million uncached input tokens.")
    output: float = Field(ge=0, description="USD per million output tokens.")
    cache_read: float = Field(ge=0, description="USD per million cache-read input tokens.")
    cache_write_5m: float = Field(ge=0, description="USD per million tokens written to the 5-minute cache.")
    cache_write_1h: float = Field(ge=0, description="USD per million tokens written to the 1-hour cache.")


def _price(inp: float, out: float, read: float, w5: float, w1: float) -> ModelPrice:
    return ModelPrice(input=inp, output=out, cache_read=read, cache_write_5m=w5, cache_write_1h=w1)


DEFAULT_PRICES: dict[str, ModelPrice] = {
    "claude-opus-4-5": _price(5, 25, 0.5, 6.25, 10),
    "claude-opus-4-6": _price(5, 25, 0.5, 6.25, 10),
    "claude-opus-4-1": _price(15, 75, 1.5, 18.75, 30),
    "claude-opus-4": _price(15, 75, 1.5, 18.75, 30),
    "claude-sonnet-4": _price(3, 15, 0.3, 3.75, 6),
    "claude-3-7-sonnet": _price(3, 15, 0.3, 3.75, 6),
    "claude-haiku-4-5": _price(1, 5, 0.1, 1.25, 2),
    "claude-3-5-haiku": _price(0.8, 4, 0.08, 1, 1.6),
}
"""Anthropic list prices, matched by the longest prefix of the model id (dated ids match)."""


class ToolSets(BaseModel):
    """Which tools count as task bookkeeping and which as productive work."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    management: frozenset[str] = Field(
        default=frozenset({"TaskCreate", "TaskUpdate", "TaskDelete", "TodoWrite"}),
        description="Task-bookkeeping tools (the numerator of tool_overhead_ratio).",
    )
    productive: frozenset[str] = Field(
        default=frozenset({"Read", "Write", "Edit", "MultiEdit", "Bash", "Grep", "Glob", "NotebookEdit"}),
        description="Tools that do the work (the denominator of tool_overhead_ratio).",
    )


class SessionKpiConfig(BaseModel):
    """Settings of the streaming session processor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_timeout: Duration = Field(default=1800.0, gt=0, description="Close a session idle this long (arrival time).")
    end_signal_idle_timeout: Duration = Field(
        default=86400.0,
        gt=0,
        description="Idle timeout for sessions that end with an explicit signal (Claude Code, hook-started).",
    )
    default_agent_type: str = Field(default="default", description="Agent type when the telemetry names none.")
    tool_sets: ToolSets = Field(default_factory=ToolSets, description="Tool classification for tool_overhead_ratio.")
    prices: dict[str, ModelPrice] = Field(
        default_factory=lambda: dict(DEFAULT_PRICES),
        description="USD per million tokens by model-id prefix; replaces the built-in table when given.",
    )
    max_open_sessions: int = Field(default=10_000, ge=1, description="Open sessions kept; the least recent closes.")
    max_closed_sessions: int = Field(
        default=1000, ge=0, description="Closed sessions remembered so late data reopens them (0: none)."
    )
    dedup_window: int = Field(
        default=128, ge=1, description="Recent request and tool-use ids kept per session (copies arrive seconds apart)."
    )
    reorder_window: int = Field(default=64, ge=1, description="Out-of-order intervals merged exactly per session.")

    @field_validator("default_agent_type")
    @classmethod
    def _sanitized(cls, value: str) -> str:
        return str(sanitize_agent_type(value))
