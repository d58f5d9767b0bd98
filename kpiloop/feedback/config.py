"""Configuration of the feedback stage (``exporters.feedback`` in otel-config.yaml).

Suggestion rules and hard thresholds are data: the defaults are the plan's, and users add,
change or disable them by id in the config file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from kpiloop.model import KPI_DIRECTIONS

Priority = Literal["CRITICAL", "HIGH", "MEDIUM", "LOW"]
Operator = Literal["<", "<=", ">", ">="]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HardThreshold(_Strict):
    """An absolute limit on one KPI (the plan's Component 5)."""

    kpi: str = Field(description="KPI name, e.g. token_efficiency.")
    operator: Operator = Field(description="Fires when `value <operator> threshold`.")
    threshold: float
    severity: Literal["WARNING", "CRITICAL"]
    priority: Priority = Field(description="Priority of the recommendation that goes with it.")
    recommendation: str = ""

    @model_validator(mode="after")
    def _known_kpi(self) -> HardThreshold:
        if self.kpi not in KPI_DIRECTIONS:
            raise ValueError(f"unknown kpi {self.kpi!r}")
        return self


DEFAULT_THRESHOLDS: tuple[HardThreshold, ...] = (
    HardThreshold(kpi="token_efficiency", operator="<", threshold=0.01, severity="CRITICAL", priority="CRITICAL",
                  recommendation="Consider background agents or context pre-loading"),
    HardThreshold(kpi="task_completion_rate", operator="<", threshold=0.70, severity="CRITICAL", priority="CRITICAL",
                  recommendation="Review context compaction logs and task lifecycle"),
    HardThreshold(kpi="error_rate", operator=">", threshold=0.10, severity="CRITICAL", priority="CRITICAL",
                  recommendation="Review error logs"),
    HardThreshold(kpi="active_time_ratio", operator="<", threshold=0.20, severity="WARNING", priority="MEDIUM",
                  recommendation="Recommend timeout/hibernation"),
    HardThreshold(kpi="tool_overhead_ratio", operator=">", threshold=2.0, severity="WARNING", priority="HIGH",
                  recommendation="Recommend workflow restructuring"),
)  # fmt: skip


class RuleCondition(_Strict):
    """``metric <operator> threshold`` or ``metric <operator> other_metric``.

    Metrics are the KPI names plus session counts: ``read_calls``, ``write_calls``,
    ``documents`` (distinct files written when known, else Write calls), ``tool_calls``,
    ``api_requests``, ``management_calls``, ``productive_calls``.
    """

    metric: str
    operator: Operator
    threshold: float | None = None
    other_metric: str | None = None
    agent_type_contains: str | None = Field(default=None, description="Only for agent types containing this.")

    @model_validator(mode="after")
    def _one_right_side(self) -> RuleCondition:
        if (self.threshold is None) == (self.other_metric is None):
            raise ValueError("give exactly one of threshold or other_metric")
        return self


class SuggestionRule(_Strict):
    """One improvement suggestion and when it applies (the plan's Component 2 table)."""

    id: str
    enabled: bool = True
    condition: RuleCondition
    priority: Priority
    category: str
    title: str
    description: str
    implementation: str
    impact: str = Field(description="Expected impact in words, e.g. '~50% reduction in management calls'.")
    target_kpi: str
    direction: Literal["increase", "decrease"]
    magnitude: str
    evidence: str = Field(description="Template quoting the session's numbers, e.g. '{management_calls} of ...'.")


class RuleOverride(BaseModel):
    """A config entry for a rule: a full new rule, or an existing id with the fields to change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    enabled: bool | None = None
    condition: RuleCondition | None = None
    priority: Priority | None = None
    category: str | None = None
    title: str | None = None
    description: str | None = None
    implementation: str | None = None
    impact: str | None = None
    target_kpi: str | None = None
    direction: Literal["increase", "decrease"] | None = None
    magnitude: str | None = None
    evidence: str | None = None


class FeedbackConfig(_Strict):
    """``exporters.feedback``: the local files and the statistics behind alerts and suggestions."""

    data_dir: Path | None = Field(
        default=None, description="Data directory; unset means $KPILOOP_HOME, else ~/.claude/telemetry."
    )
    agents_dir: Path = Field(default=Path("~/.claude/agents"), description="Claude Code subagent files.")
    rules: list[RuleOverride] = Field(default_factory=list, description="Rule changes and additions, by id.")
    hard_thresholds: dict[str, list[HardThreshold]] = Field(
        default_factory=dict,
        description="Per agent type (or 'default'): replaces the plan's thresholds for that agent type.",
    )
    alert_bands: Literal["robust", "plan"] = Field(
        default="robust", description="robust: z 2-3 WARNING, >3 CRITICAL; plan: 1-2 WARNING, >2 CRITICAL."
    )
    baseline_window: int = Field(default=100, ge=5, description="Sessions per agent type and model in a baseline.")
    bootstrap_sessions: int = Field(default=5, ge=1, description="Below this many sessions: bootstrap defaults.")
    min_scale: dict[str, float] = Field(
        default_factory=dict, description="Per-KPI floor of the robust scale (transformed units), overriding defaults."
    )
    cusum_k: float = Field(default=0.5, ge=0, description="CUSUM allowance per session, in robust sd.")
    cusum_h: float = Field(default=8.0, gt=0, description="CUSUM decision level, in robust sd.")
    effectiveness: Literal["sequential", "plan"] = "sequential"
    max_tracked_sessions: int = Field(default=60, ge=3)
    block_on_critical: bool = False
    max_active: int = Field(default=3, ge=0)
    claude_md: Literal["project", "user"] = "project"
