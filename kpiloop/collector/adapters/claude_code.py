"""Claude Code's native telemetry (CLI 2.1.x; captured payloads in ``shared/fixtures/claude-code``).

- Logs (body ``claude_code.<name>``, attribute ``event.name``): ``api_request`` (uncached
  ``input_tokens``, cache reads and writes, ``cost_usd``, ``duration_ms``, ``request_id``, subagent
  ``agent.name``), ``api_error`` (a request that finally failed), ``tool_result`` (``success`` as
  the string "true"/"false"), ``tool_decision`` (``reject`` = a denial), ``user_prompt``.
  ``api_retries_exhausted`` accompanies the final ``api_error`` and is not a second error.
- Metrics: ``claude_code.token.usage`` (by ``type``), ``cost.usage``, ``active_time.total``,
  ``lines_of_code.count``; delta or cumulative. The processor uses token and cost metrics only
  for sessions without per-request events.
- Beta traces: ``claude_code.llm_request`` spans (the same calls as ``api_request``, deduplicated
  by request id) and ``claude_code.tool`` spans with a ``claude_code.tool.execution`` child; a
  tool is counted once both are seen (a permission-rejected tool has no execution span).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import replace

import orjson

from kpiloop.collector.adapters.common import Origin, model_of
from kpiloop.collector.adapters.genai import genai_span_events, is_genai_span
from kpiloop.collector.records import STATUS_ERROR, DataPointRecord, LogRecord, SpanRecord
from kpiloop.collector.values import as_bool, as_count, as_optional_float, as_str, start_before
from kpiloop.model import (
    ActiveTime,
    ApiCall,
    Event,
    LinesChanged,
    Prompt,
    SessionStart,
    TodoItem,
    ToolCall,
    UsageMetric,
)

PREFIX = "claude_code."
TOKEN_TYPES = {
    "input": "input",
    "output": "output",
    "cacheRead": "cache_read",
    "cacheCreation": "cache_write_5m",
}
MAX_PENDING_TOOLS = 4096
_SERIES_KEYS = ("type", "model", "decision", "language", "tool_name")


def log_events(name: str, log: LogRecord, origin: Origin) -> list[Event]:
    """Events for one Claude Code log event (``name`` without the ``claude_code.`` prefix)."""
    if name == "api_request":
        return [_api_call(log, origin, ok=True)]
    if name == "api_error":
        return [_api_call(log, origin, ok=False)]
    if name == "tool_result":
        return [_tool_result(log, origin)]
    if name == "tool_decision" and (as_str(log.attributes.get("decision")) or "").lower() == "reject":
        return [_denial(log, origin)]
    if name == "user_prompt":
        return [_prompt(log, origin)]
    return []


def metric_events(point: DataPointRecord, origin: Origin) -> list[Event]:
    """Events for one Claude Code metric data point."""
    name = point.metric.removeprefix(PREFIX)
    value = as_optional_float(point.value, point.metric) or 0.0
    model = model_of(point.attributes.get("model"))
    if name == "token.usage":
        token_type = TOKEN_TYPES.get(as_str(point.attributes.get("type")) or "")
        return [] if token_type is None else [_usage(point, origin, model, token_type, value)]
    if name == "cost.usage":
        return [_usage(point, origin, model, None, value)]
    if name == "session.count" and value > 0:
        start = point.start_ns or point.time_ns
        return [
            SessionStart(
                session_id=origin.session_id, agent_type=origin.agent_type, start_ns=start, end_ns=start,
                source="claude_code", start_source=as_str(point.attributes.get("start_type")),
            )
        ]  # fmt: skip
    at, series = point.time_ns, _series(point)
    if name == "active_time.total":
        return [
            ActiveTime(
                session_id=origin.session_id, agent_type=origin.agent_type, start_ns=at, end_ns=at,
                source="claude_code", cumulative=point.cumulative, series=series, seconds=value,
            )
        ]  # fmt: skip
    if name == "lines_of_code.count":
        return [
            LinesChanged(
                session_id=origin.session_id, agent_type=origin.agent_type, start_ns=at, end_ns=at,
                source="claude_code", cumulative=point.cumulative, series=series,
                kind="removed" if point.attributes.get("type") == "removed" else "added", lines=round(value),
            )
        ]  # fmt: skip
    return []


def _usage(point: DataPointRecord, origin: Origin, model: str, token_type: str | None, value: float) -> UsageMetric:
    return UsageMetric(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=point.time_ns,
        end_ns=point.time_ns,
        source="claude_code",
        cumulative=point.cumulative,
        series=_series(point),
        model=model,
        token_type=token_type,
        value=value,
    )


class ClaudeCodeCorrelator:
    """What Claude Code spreads over several records: pairs each ``claude_code.tool`` span with its
    execution child by tool-use id, and names subagents whose tool results carry only ``agent_id``."""

    def __init__(self) -> None:
        self._tools: OrderedDict[str, tuple[SpanRecord | None, SpanRecord | None]] = OrderedDict()
        self._agent_names: OrderedDict[str, str] = OrderedDict()

    def log_events(self, name: str, log: LogRecord, origin: Origin) -> list[Event]:
        """:func:`log_events`, with subagent names filled in from earlier API requests."""
        agent_id, agent_name = as_str(log.attributes.get("agent_id")), as_str(log.attributes.get("agent.name"))
        if agent_id and agent_name:
            self._agent_names[agent_id] = agent_name
            while len(self._agent_names) > MAX_PENDING_TOOLS:
                self._agent_names.popitem(last=False)
        events = log_events(name, log, origin)
        subagent = self._agent_names.get(agent_id) if agent_id else None
        if subagent is None:
            return events
        return [replace(e, subagent=subagent) if isinstance(e, ToolCall) and not e.subagent else e for e in events]

    def events(self, span: SpanRecord, origin: Origin) -> list[Event]:
        """Events for one ``claude_code.*`` span (often none until its pair arrives)."""
        if span.name == "claude_code.llm_request":
            if "input_tokens" not in span.attributes and is_genai_span(span):
                return genai_span_events(span, origin)  # only the GenAI attributes were sent
            return [self._llm_request(span, origin)]
        tool_use_id = as_str(span.attributes.get("tool_use_id"))
        if tool_use_id is None or span.name not in ("claude_code.tool", "claude_code.tool.execution"):
            return []
        parent, execution = self._tools.pop(tool_use_id, (None, None))
        if span.name == "claude_code.tool":
            parent = span
        else:
            execution = span
        if parent is None or execution is None:
            self._remember(tool_use_id, parent, execution)
            return []
        return [_traced_tool(parent, execution, tool_use_id, origin)]

    def _remember(self, tool_use_id: str, parent: SpanRecord | None, execution: SpanRecord | None) -> None:
        self._tools[tool_use_id] = (parent, execution)
        while len(self._tools) > MAX_PENDING_TOOLS:
            self._tools.popitem(last=False)

    def _llm_request(self, span: SpanRecord, origin: Origin) -> ApiCall:
        attrs = span.attributes
        write = as_count(attrs.get("cache_creation_tokens"), "cache_creation_tokens")
        return ApiCall(
            session_id=origin.session_id,
            agent_type=origin.agent_type,
            start_ns=span.start_ns,
            end_ns=span.end_ns,
            source="claude_code",
            model=model_of(attrs.get("model"), attrs.get("gen_ai.response.model")),
            request_id=as_str(attrs.get("request_id") or attrs.get("gen_ai.response.id")),
            input_tokens=as_count(attrs.get("input_tokens"), "input_tokens"),
            output_tokens=as_count(attrs.get("output_tokens"), "output_tokens"),
            cache_read_tokens=as_count(attrs.get("cache_read_tokens"), "cache_read_tokens"),
            cache_write_5m_tokens=write,
            cost_usd=as_optional_float(attrs.get("cost_usd"), "cost_usd"),
            ok=span.status_code != STATUS_ERROR and as_bool(attrs.get("success")) is not False,
            attempt=_optional_count(attrs.get("attempt"), "attempt"),
        )


def _api_call(log: LogRecord, origin: Origin, ok: bool) -> ApiCall:
    attrs = log.attributes
    write_total = as_count(attrs.get("cache_creation_tokens"), "cache_creation_tokens")
    write_1h = as_count(attrs.get("cache_creation_1h_tokens"), "cache_creation_1h_tokens")
    agent = attrs.get("agent.name")
    return ApiCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=start_before(log.time_ns, attrs.get("duration_ms"), "duration_ms"),
        end_ns=log.time_ns,
        source="claude_code",
        model=model_of(attrs.get("model")),
        request_id=as_str(attrs.get("request_id")),
        input_tokens=as_count(attrs.get("input_tokens"), "input_tokens"),
        output_tokens=as_count(attrs.get("output_tokens"), "output_tokens"),
        cache_read_tokens=as_count(attrs.get("cache_read_tokens"), "cache_read_tokens"),
        cache_write_5m_tokens=max(0, write_total - write_1h),
        cache_write_1h_tokens=write_1h,
        cost_usd=as_optional_float(attrs.get("cost_usd"), "cost_usd"),
        ok=ok,
        status_code=_optional_count(attrs.get("status_code"), "status_code"),
        attempt=_optional_count(attrs.get("attempt"), "attempt"),
        subagent=as_str(agent) if agent else None,
    )


def _tool_result(log: LogRecord, origin: Origin) -> ToolCall:
    attrs = log.attributes
    tool = as_str(attrs.get("tool_name")) or "unknown"
    task_id, task_status, todos = _task_fields(tool, attrs.get("tool_input"))
    return ToolCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=start_before(log.time_ns, attrs.get("duration_ms"), "duration_ms"),
        end_ns=log.time_ns,
        source="claude_code",
        tool=tool,
        tool_use_id=as_str(attrs.get("tool_use_id")),
        ok=as_bool(attrs.get("success")) is not False,
        error_type=as_str(attrs.get("error_type") or attrs.get("error")),
        task_id=task_id,
        task_status=task_status,
        todos=todos,
    )


def _denial(log: LogRecord, origin: Origin) -> ToolCall:
    return ToolCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=log.time_ns,
        end_ns=log.time_ns,
        source="claude_code",
        tool=as_str(log.attributes.get("tool_name")) or "unknown",
        tool_use_id=as_str(log.attributes.get("tool_use_id")),
        ok=False,
        denied=True,
    )


def _prompt(log: LogRecord, origin: Origin) -> Prompt:
    return Prompt(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=log.time_ns,
        end_ns=log.time_ns,
        source="claude_code",
        prompt_id=as_str(log.attributes.get("prompt.id")),
        length=_optional_count(log.attributes.get("prompt_length"), "prompt_length"),
    )


def _traced_tool(parent: SpanRecord, execution: SpanRecord, tool_use_id: str, origin: Origin) -> ToolCall:
    success = as_bool(execution.attributes.get("success"))
    return ToolCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=parent.start_ns,
        end_ns=parent.end_ns,
        source="claude_code",
        tool=as_str(parent.attributes.get("tool_name")) or "unknown",
        tool_use_id=tool_use_id,
        ok=execution.status_code != STATUS_ERROR and success is not False,
    )


def _task_fields(tool: str, raw_input: object) -> tuple[str | None, str | None, tuple[TodoItem, ...] | None]:
    """Task id and status (TaskUpdate) or the todo list (TodoWrite) from a logged ``tool_input``."""
    if tool not in ("TaskUpdate", "TodoWrite") or not isinstance(raw_input, str):
        return None, None, None
    try:
        tool_input = orjson.loads(raw_input)
    except orjson.JSONDecodeError:
        return None, None, None
    if not isinstance(tool_input, dict):
        return None, None, None
    if tool == "TaskUpdate":
        return as_str(tool_input.get("taskId")), as_str(tool_input.get("status")), None
    todos = tool_input.get("todos")
    if not isinstance(todos, list):
        return None, None, None
    items = tuple(
        TodoItem(key=todo_key(t.get("content")), status=as_str(t.get("status")) or "")
        for t in todos
        if isinstance(t, dict)
    )
    return None, None, items


def todo_key(content: object) -> str:
    """A todo item's identity: a hash of its text (``kpiloop hook event`` hashes it the same way)."""
    text = content if isinstance(content, str) else repr(content) if isinstance(content, int | float | None) else ""
    return hashlib.sha256(text.encode(errors="replace")).hexdigest()[:16]


def _series(point: DataPointRecord) -> str:
    return "|".join(f"{key}={as_str(point.attributes.get(key)) or ''}" for key in _SERIES_KEYS) + f"|{point.metric}"


def _optional_count(value: object, key: str) -> int | None:
    return None if value is None or value == "" else as_count(value, key)
