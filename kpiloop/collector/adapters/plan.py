"""The plan's hook spans: ``hook:token-metrics-extraction`` (one API call each),
``hook:builtin-post-tool`` and ``hook:mcp-post-tool`` (tool calls), ``hook:skill-activation-prompt``
(context snapshots)."""

from __future__ import annotations

from kpiloop.collector.adapters.common import Origin, model_of
from kpiloop.collector.records import STATUS_ERROR, SpanRecord
from kpiloop.collector.values import as_bool, as_count, as_optional_float, as_str
from kpiloop.model import ApiCall, ContextSnapshot, Event, ToolCall

TOKEN_SPAN = "hook:token-metrics-extraction"
BUILTIN_TOOL_SPAN = "hook:builtin-post-tool"
MCP_TOOL_SPAN = "hook:mcp-post-tool"
CONTEXT_SPAN = "hook:skill-activation-prompt"
PLAN_SPANS = frozenset({TOKEN_SPAN, BUILTIN_TOOL_SPAN, MCP_TOOL_SPAN, CONTEXT_SPAN})


def plan_span_events(span: SpanRecord, origin: Origin) -> list[Event]:
    """Events for one of the plan's hook spans (an empty list for other names)."""
    if span.name == TOKEN_SPAN:
        return [_api_call(span, origin)]
    if span.name in (BUILTIN_TOOL_SPAN, MCP_TOOL_SPAN):
        return [_tool_call(span, origin)]
    if span.name == CONTEXT_SPAN:
        return [_context(span, origin)]
    return []


def _api_call(span: SpanRecord, origin: Origin) -> ApiCall:
    attrs = span.attributes
    return ApiCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        source=origin.source,
        model=model_of(attrs.get("tokens.model")),
        request_id=as_str(attrs.get("request_id")),
        input_tokens=as_count(attrs.get("tokens.input"), "tokens.input"),
        output_tokens=as_count(attrs.get("tokens.output"), "tokens.output"),
        cache_read_tokens=as_count(attrs.get("tokens.cache_read"), "tokens.cache_read"),
        cache_write_5m_tokens=as_count(attrs.get("tokens.cache_creation"), "tokens.cache_creation"),
        cost_usd=as_optional_float(attrs.get("cost_usd"), "cost_usd"),
        ok=span.status_code != STATUS_ERROR,
    )


def _tool_call(span: SpanRecord, origin: Origin) -> ToolCall:
    attrs = span.attributes
    if span.name == MCP_TOOL_SPAN:
        server = as_str(attrs.get("mcp.server")) or "unknown"
        tool = f"mcp__{server}__{as_str(attrs.get('mcp.tool')) or 'unknown'}"
        success = as_bool(attrs.get("mcp.success"))
        has_error = as_bool(attrs.get("mcp.has_error"))
    else:
        tool = as_str(attrs.get("builtin.tool")) or "unknown"
        success = as_bool(attrs.get("builtin.success"))
        has_error = as_bool(attrs.get("builtin.has_error"))
    failed = span.status_code == STATUS_ERROR or success is False or has_error is True
    return ToolCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        source=origin.source,
        tool=tool,
        tool_use_id=as_str(attrs.get("tool_use_id")),
        ok=not failed,
        error_type=as_str(attrs.get("builtin.error_type") or attrs.get("error.type")),
    )


def _context(span: SpanRecord, origin: Origin) -> ContextSnapshot:
    attrs = span.attributes
    return ContextSnapshot(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        source=origin.source,
        total_tokens=as_count(attrs.get("context.total_tokens"), "context.total_tokens"),
        utilization_percent=as_optional_float(attrs.get("context.utilization_percent"), "context.utilization_percent"),
        free_space=as_count(attrs.get("context.free_space"), "context.free_space"),
    )
