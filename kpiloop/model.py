"""The event model and the session summary: the contract between receivers, processors and sinks.

Receivers turn every input vocabulary (the plan's hook spans, Claude Code's native telemetry, OTel
GenAI semantic conventions, hook payloads, transcripts) into these events; the session processor
folds them into one immutable :class:`SessionSummary` per closed session. Times are integer
nanoseconds since the Unix epoch. Changing this module means changing every user of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from kpiloop.fast_init import fast_frozen_init
from kpiloop.types import AgentType, SessionId

Source = Literal["plan", "claude_code", "genai", "hook", "transcript", "otlp"]
"""The vocabulary an event came from; ``claude_code`` sessions get the long idle timeout."""


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Common fields: whose session, which agent type, when (start == end for point events)."""

    session_id: SessionId
    agent_type: AgentType
    start_ns: int
    end_ns: int
    source: Source


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ApiCall(Event):
    """One model request. Token counts are disjoint: ``input`` excludes cached tokens.

    ``cost_usd`` is the source's own figure, or None to price it from the configured table.
    ``ok`` is False only for a request that finally failed (not for a retried attempt).
    """

    model: str = ""
    request_id: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_5m_tokens: int = 0
    cache_write_1h_tokens: int = 0
    cost_usd: float | None = None
    ok: bool = True
    status_code: int | None = None
    attempt: int | None = None
    subagent: str | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class TodoItem:
    """One entry of a TodoWrite list: a stable key (never the text itself) and its status."""

    key: str
    status: str


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCall(Event):
    """One tool use. A permission-rejected tool (``denied``) is not an operation.

    Task bookkeeping is read from the tool's input when the source shows it: ``task_id`` and
    ``task_status`` for TaskCreate/TaskUpdate, ``todos`` (the whole list) for TodoWrite.
    """

    tool: str
    tool_use_id: str | None = None
    ok: bool = True
    denied: bool = False
    error_type: str | None = None
    subagent: str | None = None
    task_id: str | None = None
    task_status: str | None = None
    todos: tuple[TodoItem, ...] | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Evaluation(Event):
    """One evaluation result (LLM judge, rule engine or human) about the session."""

    name: str
    score: float | None = None
    label: str | None = None
    evaluator: str | None = None
    evaluator_type: str | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ContextSnapshot(Event):
    """Context-window use at one moment (the plan's ``hook:skill-activation-prompt`` span)."""

    total_tokens: int | None = None
    utilization_percent: float | None = None
    free_space: int | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class Prompt(Event):
    """A user prompt: its id and length only, never its text."""

    prompt_id: str | None = None
    length: int | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStart(Event):
    """The session started (``source``: startup, resume, clear, compact)."""

    start_source: str | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEnd(Event):
    """An explicit end of the session; it closes the session but does not extend its wall clock."""

    reason: str | None = None


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class MetricSample(Event):
    """Common fields of values that arrive as metric data points.

    ``cumulative`` samples are running totals of one ``series`` (the data point's attribute set);
    the processor turns them into increments. Delta samples are increments already.
    """

    cumulative: bool = False
    series: str = ""


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class UsageMetric(MetricSample):
    """Token or cost usage from metrics (``claude_code.token.usage``, ``claude_code.cost.usage``).

    Used only for sessions that sent no per-request :class:`ApiCall` events: both describe the
    same spend. ``token_type`` is one of input, output, cache_read, cache_write_5m,
    cache_write_1h; None for a cost sample (``value`` in USD).
    """

    model: str = ""
    token_type: str | None = None
    value: float = 0.0


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveTime(MetricSample):
    """Active seconds as the agent itself reports them (``claude_code.active_time.total``)."""

    seconds: float = 0.0


@fast_frozen_init
@dataclass(frozen=True, slots=True, kw_only=True)
class LinesChanged(MetricSample):
    """Lines of code added or removed (``claude_code.lines_of_code.count``)."""

    kind: Literal["added", "removed"] = "added"
    lines: int = 0


class Direction(StrEnum):
    """Which way a KPI gets better; alerting and experiments never guess."""

    HIGHER_IS_BETTER = "higher_is_better"
    LOWER_IS_BETTER = "lower_is_better"


KPI_NAMES: tuple[str, ...] = (
    "token_efficiency",
    "task_completion_rate",
    "active_time_ratio",
    "tool_overhead_ratio",
    "cache_efficiency",
    "error_rate",
    "quality_relevance",
    "quality_faithfulness",
    "quality_coherence",
    "quality_hallucination",
)
"""The plan's ten KPIs, in the plan's order: the keys of a history line's ``kpis``."""

KPI_DIRECTIONS: Mapping[str, Direction] = {
    "token_efficiency": Direction.HIGHER_IS_BETTER,
    "task_completion_rate": Direction.HIGHER_IS_BETTER,
    "active_time_ratio": Direction.HIGHER_IS_BETTER,
    "tool_overhead_ratio": Direction.LOWER_IS_BETTER,
    "cache_efficiency": Direction.HIGHER_IS_BETTER,
    "error_rate": Direction.LOWER_IS_BETTER,
    "quality_relevance": Direction.HIGHER_IS_BETTER,
    "quality_faithfulness": Direction.HIGHER_IS_BETTER,
    "quality_coherence": Direction.HIGHER_IS_BETTER,
    "quality_hallucination": Direction.LOWER_IS_BETTER,
    "cost_per_output_token": Direction.LOWER_IS_BETTER,
}
"""Direction of every KPI kpiloop computes (the ten plus ``cost_per_output_token``)."""


@dataclass(frozen=True, slots=True)
class TokenCounts:
    """Disjoint token totals by type."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write_5m: int = 0
    cache_write_1h: int = 0

    @property
    def cache_creation(self) -> int:
        """All cache writes, 5-minute and 1-hour."""
        return self.cache_write_5m + self.cache_write_1h

    @property
    def total(self) -> int:
        """Every token the session moved: input + output + cache read + cache writes."""
        return self.input + self.output + self.cache_read + self.cache_creation


@dataclass(frozen=True, slots=True)
class SubagentUsage:
    """Spend of one subagent (by name) inside its parent session."""

    api_requests: int = 0
    tokens: TokenCounts = field(default_factory=TokenCounts)
    cost_usd: float | None = 0.0
    tool_calls: int = 0


@dataclass(frozen=True, slots=True)
class QualityStat:
    """Aggregate of one evaluation name's scores: count, median and mean."""

    count: int
    median: float
    mean: float


@dataclass(frozen=True, slots=True)
class DataCompleteness:
    """Which signals the session's data contained, so readers can tell 0 from 'not measured'."""

    api_calls: bool = False
    tool_calls: bool = False
    evaluations: bool = False
    task_status: bool = False
    usage_from_metrics: bool = False
    cost_from_source: bool = False
    session_end: bool = False
    sources: tuple[str, ...] = ()


Severity = Literal["INFO", "WARNING", "CRITICAL"]
AlertLevel = Literal["PASS", "WARNING", "CRITICAL"]


@dataclass(frozen=True, slots=True)
class Alert:
    """One KPI finding of a closed session (at most one per KPI).

    ``kind``: ``deviation`` (robust z against the agent type's baseline, bad direction only),
    ``threshold`` (a hard threshold), or ``threshold_unfit`` (a threshold that fires on most
    sessions of this agent type, reported as INFO). ``z`` is in robust standard deviations.
    """

    kpi: str
    severity: Severity
    kind: str
    value: float
    baseline: float | None = None
    z: float | None = None
    message: str = ""
    priority: str | None = None


@dataclass(frozen=True, slots=True)
class Assessment:
    """What feedback concluded about a closed session, carried into its history line and metrics."""

    alert_level: AlertLevel
    baselines: Mapping[str, float]
    alerts: tuple[Alert, ...] = ()
    optimizations_active: tuple[str, ...] = ()
    baseline_status: str = "bootstrap"


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """Everything known about one closed session; immutable, produced once per close.

    A reopened session (late data, a resumed conversation) closes again with a cumulative
    summary whose ``close_count`` is greater than 1; sinks mark it as superseding the earlier one.
    """

    session_id: SessionId
    agent_type: AgentType
    model: str
    start_ns: int
    end_ns: int
    tokens: TokenCounts
    cost_usd: float | None
    api_requests: int
    api_errors: int
    tool_calls: int
    tool_failures: int
    tool_denials: int
    tools_by_name: Mapping[str, int]
    management_tool_calls: int
    productive_tool_calls: int
    tasks_created: int
    tasks_completed: int | None
    task_updates: int
    active_seconds: float
    reported_active_seconds: float | None
    prompts: int
    lines_added: int
    lines_removed: int
    subagents: Mapping[str, SubagentUsage]
    quality: Mapping[str, QualityStat]
    kpis: Mapping[str, float | None]
    cost_per_output_token: float | None
    data_completeness: DataCompleteness
    close_reason: str
    close_count: int = 1
    end_reason: str | None = None
    assessment: Assessment | None = None

    @property
    def duration_seconds(self) -> float:
        """Wall clock from the first event's start to the last event's end."""
        return max(0, self.end_ns - self.start_ns) / 1e9

    @property
    def empty(self) -> bool:
        """True when the session had no API call, tool use or evaluation (no KPIs, no history)."""
        used = self.api_requests or self.tool_calls or self.tool_denials or self.tokens.total
        return not used and not self.quality and not self.data_completeness.evaluations
