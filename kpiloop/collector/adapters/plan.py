"""The plan's hook spans: ``hook:token-metrics-extraction`` (one API call each),
``hook:builtin-post-tool`` and ``hook:mcp-post-tool`` (tool calls), ``hook:skill-activation-prompt``
(context snapshots).

How a span's attributes read is kept apart from building its event (:func:`token_fields`,
:func:`tool_fields`), so the replay shortcut for plan-format lines reads them the same way.
"""

from __future__ import annotations

from kpiloop.collector.adapters.common import Origin, model_of
from kpiloop.collector.records import STATUS_ERROR, Attributes, SpanRecord
from kpiloop.collector.values import as_bool, as_count, as_optional_float, as_str
from kpiloop.model import ApiCall, ContextSnapshot, Event, ToolCall

TOKEN_SPAN = "hook:token-metrics-extraction"
BUILTIN_TOOL_SPAN = "hook:builtin-post-tool"
MCP_TOOL_SPAN = "hook:mcp-post-tool"
CONTEXT_SPAN = "hook:skill-activation-prompt"
PLAN_SPANS = frozenset({TOKEN_SPAN, BUILTIN_TOOL_SPAN, MCP_TOOL_SPAN, CONTEXT_SPAN})

TokenFields = tuple[str, str | None, int, int, int, int, float | None]
"""A token span's model, request id, input, output, cache-read and cache-creation tokens, and cost."""
ToolFields = tuple[str, str | None, bool, str | None]
"""A tool span's tool name, tool-use id, success and error type."""


def plan_span_events(span: SpanRecord, origin: Origin) -> list[Event]:
    """Events for one of the plan's hook spans (an empty list for other names)."""
    if span.name == TOKEN_SPAN:
        ok = span.status_code != STATUS_ERROR
        return [api_call(origin, span.start_ns, span.end_ns, token_fields(span.attributes), ok)]
    if span.name in (BUILTIN_TOOL_SPAN, MCP_TOOL_SPAN):
        tool = tool_fields(span.name, span.attributes, span.status_code)
        return [tool_call(origin, span.start_ns, span.end_ns, tool)]
    if span.name == CONTEXT_SPAN:
        return [_context(span, origin)]
    return []


def token_fields(attrs: Attributes) -> TokenFields:
    """What a token span says of its API call; raises InputError for unusable values."""
    return (
        model_of(attrs.get("tokens.model")),
        as_str(attrs.get("request_id")),
        as_count(attrs.get("tokens.input"), "tokens.input"),
        as_count(attrs.get("tokens.output"), "tokens.output"),
        as_count(attrs.get("tokens.cache_read"), "tokens.cache_read"),
        as_count(attrs.get("tokens.cache_creation"), "tokens.cache_creation"),
        as_optional_float(attrs.get("cost_usd"), "cost_usd"),
    )


def api_call(origin: Origin, start_ns: int, end_ns: int, fields: TokenFields, ok: bool) -> ApiCall:
    """The :class:`ApiCall` of a token span (``ok`` unless its status is ERROR)."""
    model, request_id, uncached, output, read, write, cost = fields
    return ApiCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=start_ns,
        end_ns=end_ns,
        source=origin.source,
        model=model,
        request_id=request_id,
        input_tokens=uncached,
        output_tokens=output,
        cache_read_tokens=read,
        cache_write_5m_tokens=write,
        cost_usd=cost,
        ok=ok,
    )


def tool_fields(name: str, attrs: Attributes, status_code: int) -> ToolFields:
    """What a builtin or MCP tool span says of its call: failed when its status is ERROR, its
    success attribute false or its error flag true."""
    if name == MCP_TOOL_SPAN:
        server = as_str(attrs.get("mcp.server")) or "unknown"
        tool = f"mcp__{server}__{as_str(attrs.get('mcp.tool')) or 'unknown'}"
        success = as_bool(attrs.get("mcp.success"))
        has_error = as_bool(attrs.get("mcp.has_error"))
    else:
        tool = as_str(attrs.get("builtin.tool")) or "unknown"
        success = as_bool(attrs.get("builtin.success"))
        has_error = as_bool(attrs.get("builtin.has_error"))
    failed = status_code == STATUS_ERROR or success is False or has_error is True
    error_type = as_str(attrs.get("builtin.error_type") or attrs.get("error.type"))
    return tool, as_str(attrs.get("tool_use_id")), not failed, error_type


def tool_call(origin: Origin, start_ns: int, end_ns: int, fields: ToolFields) -> ToolCall:
    """The :class:`ToolCall` of a builtin or MCP tool span."""
    tool, tool_use_id, ok, error_type = fields
    return ToolCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=start_ns,
        end_ns=end_ns,
        source=origin.source,
        tool=tool,
        tool_use_id=tool_use_id,
        ok=ok,
        error_type=error_type,
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
