"""OpenTelemetry GenAI semantic conventions: model-call spans carrying ``gen_ai.usage.*`` and
``execute_tool`` spans. There ``gen_ai.usage.input_tokens`` *includes* cached tokens; the event
model's ``input_tokens`` does not, so cache reads and writes are subtracted."""

from __future__ import annotations

from kpiloop.collector.adapters.common import Origin, model_of
from kpiloop.collector.records import STATUS_ERROR, SpanRecord
from kpiloop.collector.values import as_count, as_optional_float, as_str
from kpiloop.model import ApiCall, Event, ToolCall

INPUT = "gen_ai.usage.input_tokens"
OUTPUT = "gen_ai.usage.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
CACHE_WRITE = "gen_ai.usage.cache_creation.input_tokens"
CACHE_WRITE_ALIAS = "gen_ai.usage.cache_write.input_tokens"
"""What Claude Code's beta ``claude_code.llm_request`` spans send instead of :data:`CACHE_WRITE`."""
TOOL_OPERATION = "execute_tool"


def is_genai_span(span: SpanRecord) -> bool:
    """A model call with usage attributes, or a tool execution."""
    attrs = span.attributes
    return INPUT in attrs or OUTPUT in attrs or attrs.get("gen_ai.operation.name") == TOOL_OPERATION


def genai_span_events(span: SpanRecord, origin: Origin) -> list[Event]:
    """One :class:`ApiCall` or :class:`ToolCall` for a GenAI span."""
    if span.attributes.get("gen_ai.operation.name") == TOOL_OPERATION:
        return [_tool_call(span, origin)]
    return [_api_call(span, origin)]


def _api_call(span: SpanRecord, origin: Origin) -> ApiCall:
    attrs = span.attributes
    cache_read = as_count(attrs.get(CACHE_READ), CACHE_READ)
    write_key = CACHE_WRITE if attrs.get(CACHE_WRITE) not in (None, "") else CACHE_WRITE_ALIAS
    cache_write = as_count(attrs.get(write_key), write_key)
    input_total = as_count(attrs.get(INPUT), INPUT)
    return ApiCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        source=origin.source,
        model=model_of(attrs.get("gen_ai.response.model"), attrs.get("gen_ai.request.model")),
        request_id=as_str(attrs.get("gen_ai.response.id")),
        input_tokens=max(0, input_total - cache_read - cache_write),
        output_tokens=as_count(attrs.get(OUTPUT), OUTPUT),
        cache_read_tokens=cache_read,
        cache_write_5m_tokens=cache_write,
        cost_usd=as_optional_float(attrs.get("gen_ai.usage.cost"), "gen_ai.usage.cost"),
        ok=span.status_code != STATUS_ERROR and "error.type" not in attrs,
    )


def _tool_call(span: SpanRecord, origin: Origin) -> ToolCall:
    attrs = span.attributes
    return ToolCall(
        session_id=origin.session_id,
        agent_type=origin.agent_type,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        source=origin.source,
        tool=as_str(attrs.get("gen_ai.tool.name")) or "unknown",
        tool_use_id=as_str(attrs.get("gen_ai.tool.call.id")),
        ok=span.status_code != STATUS_ERROR and "error.type" not in attrs,
        error_type=as_str(attrs.get("error.type")),
    )
