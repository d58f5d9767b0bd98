"""Log records sent by ``kpiloop hook event`` (event name ``kpiloop.hook``): Claude Code hook payloads
reduced to ids, names and durations. They give tool KPIs to users without native telemetry, and
are deduplicated against native telemetry by ``tool_use_id``."""

from __future__ import annotations

from kpiloop.collector.adapters.common import Origin
from kpiloop.collector.records import LogRecord
from kpiloop.collector.values import as_bool, as_count, as_str, start_before
from kpiloop.model import Event, Prompt, SessionStart, TodoItem, ToolCall

HOOK_EVENT = "kpiloop.hook"
TOOL_HOOKS = frozenset({"PostToolUse", "PostToolUseFailure", "PermissionDenied"})


def hook_events(log: LogRecord, origin: Origin) -> list[Event]:
    """Events for one forwarded hook payload (none for hooks that carry no measurement)."""
    hook = log.attributes.get("hook.event")
    at = log.time_ns
    if hook in TOOL_HOOKS:
        return [_tool_call(log, origin, str(hook))]
    if hook == "UserPromptSubmit":
        return [
            Prompt(
                session_id=origin.session_id, agent_type=origin.agent_type, start_ns=at, end_ns=at, source="hook",
                prompt_id=as_str(log.attributes.get("prompt.id")),
                length=as_count(log.attributes.get("prompt_length"), "prompt_length"),
            )
        ]  # fmt: skip
    if hook == "SessionStart":
        return [
            SessionStart(
                session_id=origin.session_id, agent_type=origin.agent_type, start_ns=at, end_ns=at, source="hook",
                start_source=as_str(log.attributes.get("source")),
            )
        ]  # fmt: skip
    return []


def _tool_call(log: LogRecord, origin: Origin, hook: str) -> ToolCall:
    attrs = log.attributes
    return ToolCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=start_before(log.time_ns, attrs.get("duration_ms"), "duration_ms"),
        end_ns=log.time_ns,
        source="hook",
        tool=as_str(attrs.get("tool_name")) or "unknown",
        tool_use_id=as_str(attrs.get("tool_use_id")),
        ok=hook == "PostToolUse" and as_bool(attrs.get("success")) is not False,
        denied=hook == "PermissionDenied",
        error_type=as_str(attrs.get("error_type")),
        subagent=as_str(attrs.get("subagent.type")),
        task_id=as_str(attrs.get("task.id")),
        task_status=as_str(attrs.get("task.status")),
        todos=_todos(attrs.get("todos")),
    )


def _todos(value: object) -> tuple[TodoItem, ...] | None:
    if not isinstance(value, list):
        return None
    items = (entry.rpartition(":") for entry in value if isinstance(entry, str))  # "<hash>:<status>"
    return tuple(TodoItem(key=key[:64], status=status[:64]) for key, _, status in items)
