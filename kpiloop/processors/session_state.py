"""The streaming state of one open session: ``update(event)`` as data arrives, ``summary()`` at close.

Memory does not grow with the number of events: counters and sums, a bounded interval union,
bounded windows of recent ids for deduplication, bounded name tables (the rest folded into
``other``), and score digests.
"""

from __future__ import annotations

from typing import Any

from kpiloop.model import (
    ActiveTime,
    ApiCall,
    DataCompleteness,
    Evaluation,
    Event,
    LinesChanged,
    MetricSample,
    Prompt,
    QualityStat,
    SessionEnd,
    SessionStart,
    SessionSummary,
    ToolCall,
    UsageMetric,
)
from kpiloop.processors import kpis
from kpiloop.processors.base import LiveObserver
from kpiloop.processors.intervals import IntervalUnion
from kpiloop.processors.pricing import PriceTable, tokens_cost
from kpiloop.processors.quantiles import ScoreDigest
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.processors.trackers import (
    MAX_NAMES,
    OTHER,
    TASK_TOOLS,
    RecentCalls,
    RecentIds,
    SeenCall,
    TaskTracker,
    bump,
)
from kpiloop.processors.usage import CallTokens, Usage, call_tokens
from kpiloop.types import AgentType, SessionId

QUALITY_KPIS = {
    "relevance": "quality_relevance",
    "faithfulness": "quality_faithfulness",
    "coherence": "quality_coherence",
    "hallucination": "quality_hallucination",
}
JUDGE_TYPES = (None, "llm")


class SessionState:
    """Everything kpiloop keeps about one open session."""

    def __init__(
        self,
        session_id: SessionId,
        config: SessionKpiConfig,
        observer: LiveObserver | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        self.session_id = session_id
        self.observer = observer
        self.agent_type = AgentType(config.default_agent_type)
        self._default_agent = self.agent_type
        self._config = config
        self._prices = prices if prices is not None else PriceTable(config.prices)
        self.sources: set[str] = set()
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.first_eval_ns: int | None = None
        self.last_eval_ns: int | None = None
        self.last_arrival = 0.0
        self.close_count = 0
        self.end_reason: str | None = None
        self.saw_start_hook = False
        self.unpriced_models: set[str] = set()
        self._calls = Usage()
        self._metric_usage = Usage()
        self._subagents: dict[str, Usage] = {}
        self._cumulative: dict[str, float] = {}
        self.api_errors = 0
        self.tool_calls = 0
        self.tool_failures = 0
        self.tool_denials = 0
        self.tools_by_name: dict[str, int] = {}
        self.tasks = TaskTracker()
        self._active = IntervalUnion(config.reorder_window)
        self._quality: dict[str, ScoreDigest] = {}
        self.evaluations = 0
        self.prompts = 0
        self.reported_active: float | None = None
        self.lines_added = 0
        self.lines_removed = 0
        self._requests = RecentCalls(config.dedup_window)
        self._tool_uses = RecentIds(config.dedup_window)

    def update(self, event: Event, arrival: float) -> None:
        """Fold one event into the session."""
        self.arrive(event.source, event.agent_type, arrival)
        if isinstance(event, ApiCall):
            self._api_call(event)
            return
        if isinstance(event, ToolCall):
            self._tool_call(event)
            return
        if isinstance(event, Evaluation):
            self._evaluation(event)
            return
        if isinstance(event, SessionEnd):
            self.end_reason = event.reason or "session.end"
            return
        if isinstance(event, MetricSample):
            self._metric(event)
            self.extend(event.end_ns, event.end_ns)
            return
        if isinstance(event, Prompt):
            self.prompts += 1
        elif isinstance(event, SessionStart):
            self.saw_start_hook = True
        self.extend(event.start_ns, event.end_ns)

    def arrive(self, source: str, agent_type: AgentType, arrival: float) -> None:
        """Note an item from ``source`` arriving at ``arrival`` (clock seconds); the session takes
        the first agent type other than the default."""
        self.last_arrival = arrival
        self.sources.add(source)
        if self.agent_type == self._default_agent:
            self.agent_type = agent_type

    def extend(self, start_ns: int, end_ns: int) -> None:
        """Widen the session's first start and last end to cover ``[start_ns, end_ns]`` (times ≤ 0 are unknown)."""
        if start_ns <= 0:
            return
        if self.first_ns is None or start_ns < self.first_ns:
            self.first_ns = start_ns
        if self.last_ns is None or end_ns > self.last_ns:
            self.last_ns = end_ns

    def add_request(
        self, model: str, tokens: CallTokens, source_cost: float | None, ok: bool, start_ns: int, end_ns: int
    ) -> float | None:
        """Count one API call new to the session in its totals (a subagent's share is the caller's to
        add); return its cost (``source_cost`` when the source sent one, else priced; None when unpriced)."""
        cost = tokens_cost(model, tokens, source_cost, self._prices.find)
        if cost is None:
            self.unpriced_models.add(model or "unknown")
        self._calls.add_tokens(model, tokens, cost, source_cost is not None)
        if not ok:
            self.api_errors += 1
        self._active.add(start_ns, end_ns)
        self.extend(start_ns, end_ns)
        return cost

    def add_tool_use(self, tool: str, ok: bool, start_ns: int, end_ns: int) -> None:
        """Count one executed (not denied) tool call that is new to the session; task status, if
        the call shows any, is the caller's to note."""
        self.tool_calls += 1
        self.tool_failures += not ok
        bump(self.tools_by_name, tool)
        if tool in TASK_TOOLS:
            self.tasks.count_call(tool)
        self._active.add(start_ns, end_ns)
        self.extend(start_ns, end_ns)

    def _api_call(self, call: ApiCall) -> None:
        if call.request_id is not None:
            seen = self._requests.get(call.request_id)
            if seen is not None:
                self._merge_duplicate(call, seen)
                self.extend(call.start_ns, call.end_ns)
                return
        cost = self.add_request(call.model, call_tokens(call), call.cost_usd, call.ok, call.start_ns, call.end_ns)
        if call.request_id is not None:
            self._requests.remember(call.request_id, SeenCall(cost is not None, call.subagent))
        if self.observer is not None:
            self.observer.api_call(call, cost)
        if call.subagent:
            self._subagent(call.subagent).add_call(call, cost)

    def adds_nothing(self, event: Event) -> bool:
        """True for a copy of a call already counted that carries nothing new (no cost or subagent
        the first copy lacked): such an event must not reopen a closed session."""
        if isinstance(event, ApiCall):
            seen = self._requests.get(event.request_id)
            if seen is None:
                return False
            new_cost = not seen.cost_known and event.cost_usd is not None
            return not new_cost and not (seen.subagent is None and event.subagent)
        if isinstance(event, ToolCall):
            return event.tool_use_id is not None and event.tool_use_id in self._tool_uses
        return False

    def _merge_duplicate(self, call: ApiCall, seen: SeenCall) -> None:
        """The same request from another signal: take the source's cost or subagent name when the
        copy counted first lacked them (a beta-trace span before its ``api_request`` log)."""
        cost_known, subagent, cost = seen.cost_known, seen.subagent, call.cost_usd
        if not cost_known and cost is not None:
            cost_known = True
            self._calls.correct_cost(cost)
            if seen.subagent:
                self._subagent(seen.subagent).correct_cost(cost)
            if self.observer is not None:
                self.observer.late_cost(call, cost)
        if subagent is None and call.subagent:
            subagent = call.subagent
            self._subagent(subagent).add_call(call, cost if cost is not None else self._prices.cost(call))
        self._requests.remember(call.request_id, SeenCall(cost_known, subagent))

    def _tool_call(self, call: ToolCall) -> None:
        if call.tool_use_id is not None and self._tool_uses.seen_before(call.tool_use_id):
            self.extend(call.start_ns, call.end_ns)
            return
        if self.observer is not None:
            self.observer.tool_call(call)
        if call.denied:
            self.tool_denials += 1
            self.extend(call.start_ns, call.end_ns)
            return
        self.add_tool_use(call.tool, call.ok, call.start_ns, call.end_ns)
        if call.subagent:
            self._subagent(call.subagent).tool_calls += 1
        if call.todos is not None or call.tool in TASK_TOOLS:
            self.tasks.note_status(call)

    def _evaluation(self, evaluation: Evaluation) -> None:
        self.evaluations += 1
        at = evaluation.end_ns
        if at > 0:
            self.first_eval_ns = at if self.first_eval_ns is None else min(self.first_eval_ns, at)
            self.last_eval_ns = at if self.last_eval_ns is None else max(self.last_eval_ns, at)
        if evaluation.score is None or evaluation.evaluator_type not in JUDGE_TYPES:
            return
        name = evaluation.name.lower().removeprefix("quality_")
        if name not in self._quality and len(self._quality) >= MAX_NAMES:
            return
        self._quality.setdefault(name, ScoreDigest()).add(evaluation.score)

    def _subagent(self, name: str) -> Usage:
        if name not in self._subagents and len(self._subagents) >= MAX_NAMES:
            name = OTHER
        return self._subagents.setdefault(name, Usage())

    def _metric(self, sample: MetricSample) -> None:
        value = _sample_value(sample)
        if sample.cumulative:
            previous = self._cumulative.get(sample.series, 0.0)
            self._cumulative[sample.series] = value
            value = value - previous if value >= previous else value
        if isinstance(sample, UsageMetric):
            self._metric_usage.add_metric(sample, value)
        elif isinstance(sample, ActiveTime):
            self.reported_active = (self.reported_active or 0.0) + value
        elif isinstance(sample, LinesChanged) and sample.kind == "added":
            self.lines_added += round(value)
        elif isinstance(sample, LinesChanged):
            self.lines_removed += round(value)

    def usage(self) -> Usage:
        """Spend from per-request events, or from metrics when the session sent no requests."""
        return self._calls if self._calls.requests else self._metric_usage

    def is_empty(self) -> bool:
        """No API call, tool use, evaluation or usage at all."""
        usage = self.usage()
        used = usage.tokens_total() or usage.requests or usage.cost_usd()
        return not (used or self.tool_calls or self.tool_denials or self.evaluations)

    def summary(self, close_reason: str) -> SessionSummary:
        """The immutable summary of everything seen so far."""
        usage = self.usage()
        tokens = usage.token_counts()
        first, last = self._wall_clock()
        wall = max(0, last - first) / 1e9
        active = self._active.total() / 1e9
        management, productive = self._tool_split()
        quality = {name: QualityStat(d.count, d.median() or 0.0, d.mean() or 0.0) for name, d in self._quality.items()}
        return SessionSummary(
            session_id=self.session_id,
            agent_type=self.agent_type,
            model=usage.primary_model(),
            start_ns=first,
            end_ns=last,
            tokens=tokens,
            cost_usd=usage.cost_usd(),
            api_requests=usage.requests,
            api_errors=self.api_errors,
            tool_calls=self.tool_calls,
            tool_failures=self.tool_failures,
            tool_denials=self.tool_denials,
            tools_by_name=dict(self.tools_by_name),
            management_tool_calls=management,
            productive_tool_calls=productive,
            tasks_created=self.tasks.created(),
            tasks_completed=self.tasks.completed(),
            task_updates=self.tasks.updates,
            active_seconds=active,
            reported_active_seconds=self.reported_active,
            prompts=self.prompts,
            lines_added=self.lines_added,
            lines_removed=self.lines_removed,
            subagents={name: sub.subagent_usage() for name, sub in self._subagents.items()},
            quality=quality,
            kpis=self._kpis(usage, wall, active, management, productive),
            cost_per_output_token=kpis.cost_per_output_token(usage.cost_usd(), tokens.output),
            data_completeness=self._completeness(usage),
            close_reason=close_reason,
            close_count=self.close_count,
            end_reason=self.end_reason,
        )

    def _wall_clock(self) -> tuple[int, int]:
        """First start and last end of the session's activity; evaluation times only when it had none."""
        first = self.first_ns if self.first_ns is not None else self.first_eval_ns
        last = self.last_ns if self.last_ns is not None else self.last_eval_ns
        if first is None:
            return 0, 0
        return first, max(first, last or first)

    def _tool_split(self) -> tuple[int, int]:
        sets = self._config.tool_sets
        management = sum(n for tool, n in self.tools_by_name.items() if tool in sets.management)
        productive = sum(n for tool, n in self.tools_by_name.items() if tool in sets.productive)
        return management, productive

    def _kpis(
        self, usage: Usage, wall: float, active: float, management: int, productive: int
    ) -> dict[str, float | None]:
        t = usage.token_counts()
        values: dict[str, float | None] = {
            "token_efficiency": kpis.token_efficiency(t.output, t.input, t.cache_read, t.cache_creation),
            "task_completion_rate": kpis.task_completion_rate(
                self.tasks.created(), self.tasks.completed(), self.tasks.creates, self.tasks.updates
            ),
            "active_time_ratio": kpis.active_time_ratio(active, wall),
            "tool_overhead_ratio": kpis.tool_overhead_ratio(management, productive, self.tool_calls),
            "cache_efficiency": kpis.cache_efficiency(t.cache_read, t.input, t.cache_creation),
            "error_rate": kpis.error_rate(self.tool_failures, self.api_errors, self.tool_calls, usage.requests),
        }
        for name, kpi in QUALITY_KPIS.items():
            digest = self._quality.get(name)
            if digest is None:
                values[kpi] = None
            else:
                values[kpi] = digest.mean() if name == "hallucination" else digest.median()
        return values

    def _completeness(self, usage: Usage) -> DataCompleteness:
        return DataCompleteness(
            api_calls=self._calls.requests > 0,
            tool_calls=self.tool_calls + self.tool_denials > 0,
            evaluations=self.evaluations > 0,
            task_status=self.tasks.status_visible,
            usage_from_metrics=usage is self._metric_usage and self._metric_usage.tokens_total() > 0,
            cost_from_source=usage.cost_from_source,
            session_end=self.end_reason is not None,
            sources=tuple(sorted(self.sources)),
        )


def _sample_value(sample: MetricSample) -> float:
    if isinstance(sample, UsageMetric):
        return sample.value
    if isinstance(sample, ActiveTime):
        return sample.seconds
    if isinstance(sample, LinesChanged):
        return float(sample.lines)
    return 0.0


def encode_state(state: SessionState) -> dict[str, Any]:
    """A session's state as plain JSON data (see :func:`decode_state`)."""
    return {
        "session_id": state.session_id,
        "agent_type": state.agent_type,
        "sources": sorted(state.sources),
        "first_ns": state.first_ns,
        "last_ns": state.last_ns,
        "first_eval_ns": state.first_eval_ns,
        "last_eval_ns": state.last_eval_ns,
        "close_count": state.close_count,
        "end_reason": state.end_reason,
        "saw_start_hook": state.saw_start_hook,
        "unpriced_models": sorted(state.unpriced_models),
        "calls": state._calls.to_state(),
        "metric_usage": state._metric_usage.to_state(),
        "subagents": {name: usage.to_state() for name, usage in state._subagents.items()},
        "cumulative": dict(state._cumulative),
        "counts": [state.api_errors, state.tool_calls, state.tool_failures, state.tool_denials],
        "tools_by_name": dict(state.tools_by_name),
        "tasks": state.tasks.to_state(),
        "active": state._active.to_state(),
        "quality": {name: digest.to_state() for name, digest in state._quality.items()},
        "evaluations": state.evaluations,
        "prompts": state.prompts,
        "reported_active": state.reported_active,
        "lines": [state.lines_added, state.lines_removed],
        "requests": state._requests.to_state(),
        "tool_uses": state._tool_uses.to_state(),
    }


def decode_state(
    data: dict[str, Any],
    config: SessionKpiConfig,
    observer: LiveObserver | None = None,
    prices: PriceTable | None = None,
) -> SessionState:
    """Rebuild a session's state from :func:`encode_state` output; raises KeyError/ValueError if unusable."""
    state = SessionState(SessionId(str(data["session_id"])), config, observer, prices)
    state.agent_type = AgentType(str(data["agent_type"]))
    state.sources = set(data["sources"])
    state.first_ns, state.last_ns = data["first_ns"], data["last_ns"]
    state.first_eval_ns, state.last_eval_ns = data["first_eval_ns"], data["last_eval_ns"]
    state.close_count, state.end_reason = int(data["close_count"]), data["end_reason"]
    state.saw_start_hook = bool(data["saw_start_hook"])
    state.unpriced_models = set(data["unpriced_models"])
    state._calls = Usage.from_state(data["calls"])
    state._metric_usage = Usage.from_state(data["metric_usage"])
    state._subagents = {name: Usage.from_state(usage) for name, usage in data["subagents"].items()}
    state._cumulative = {str(k): float(v) for k, v in data["cumulative"].items()}
    state.api_errors, state.tool_calls, state.tool_failures, state.tool_denials = map(int, data["counts"])
    state.tools_by_name = {str(k): int(v) for k, v in data["tools_by_name"].items()}
    state.tasks = TaskTracker.from_state(data["tasks"])
    state._active = IntervalUnion.from_state(data["active"])
    state._quality = {name: ScoreDigest.from_state(digest) for name, digest in data["quality"].items()}
    state.evaluations, state.prompts = int(data["evaluations"]), int(data["prompts"])
    state.reported_active = data["reported_active"]
    state.lines_added, state.lines_removed = map(int, data["lines"])
    state._requests = RecentCalls.from_state(config.dedup_window, data["requests"])
    state._tool_uses = RecentIds.from_state(config.dedup_window, data["tool_uses"])
    return state
