"""A shortcut for the plan's token and tool spans in replay: from the parsed line straight into its
session, without the :class:`~kpiloop.collector.records.SpanRecord` and event objects in between.

The general path (``decode_line`` → :class:`EventAdapter` → :meth:`SessionKpiProcessor.consume`)
costs about nine times the JSON parse per span, and a replay of the plan's ``traces-*.jsonl`` is
almost all ``hook:token-metrics-extraction`` and ``hook:builtin-post-tool`` /
``hook:mcp-post-tool`` lines. The shortcut reads a line only in the shape where it reaches the
same result as the general path with the same readers (:func:`token_fields`, :func:`tool_fields`,
the adapter's origin cache): times as ``[seconds, nanos]`` with an ``endTime``, an attributes
object, an integer status code, no span events, no request or tool-use id. It leaves every other
line, and every line with a value the general path would refuse, to the general path, which
decodes it and reports any problem. ``tests/unit/collector/test_plan_shortcut.py`` replays the
same lines both ways and compares the summaries.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.adapters.common import Origin
from kpiloop.collector.adapters.plan import (
    BUILTIN_TOOL_SPAN,
    MCP_TOOL_SPAN,
    TOKEN_SPAN,
    TokenFields,
    ToolFields,
    api_call,
    token_fields,
    tool_call,
    tool_fields,
)
from kpiloop.collector.plan_jsonl import hr_time_ns, resource_of
from kpiloop.collector.records import STATUS_ERROR
from kpiloop.collector.values import MAX_COUNT
from kpiloop.errors import InputError
from kpiloop.processors.session_kpi import SessionKpiProcessor

SHORTCUT_SPANS = frozenset({TOKEN_SPAN, BUILTIN_TOOL_SPAN, MCP_TOOL_SPAN})
_NO_ATTRIBUTES: Mapping[str, Any] = {}


class PlanShortcut:
    """Counts plan-format token and tool spans in ``processor`` without building records or events
    (or with the event only, for a session's first span), resolving origins with ``adapter``."""

    def __init__(self, adapter: EventAdapter, processor: SessionKpiProcessor) -> None:
        self._adapter = adapter
        self._processor = processor

    def take(self, doc: dict[str, Any]) -> bool:
        """Count the span ``doc`` when the shortcut reads it; False, having counted nothing, when it
        is for the general path."""
        name = doc.get("name")
        if type(name) is not str or name not in SHORTCUT_SPANS:
            return False
        if "resourceSpans" in doc or "resourceLogs" in doc or "resourceMetrics" in doc:  # OTLP/JSON, whatever else
            return False
        start, end = hr_time_ns(doc.get("startTime")), hr_time_ns(doc.get("endTime"))
        attrs, code = doc.get("attributes"), status_code(doc.get("status"))
        if start is None or end is None or end < start or type(attrs) is not dict or code is None or doc.get("events"):
            return False
        resource = resource_of(doc) if "resource" in doc else _NO_ATTRIBUTES
        origin = self._adapter.plan_origin(attrs, resource)
        if origin is None:
            return False
        if name != TOKEN_SPAN:
            return self._tool_use(origin, start, end, tool_fields(name, attrs, code))  # reads any value
        try:
            fields = token_fields(attrs)
        except InputError:
            return False
        return self._request(origin, start, end, fields, code)

    def _request(self, origin: Origin, start: int, end: int, fields: TokenFields, code: int) -> bool:
        model, request_id, uncached, output, read, write, cost = fields
        if request_id is not None:  # deduplication is the event's path
            return False
        ok = code != STATUS_ERROR
        if not self._processor.fold_request(origin, model, (uncached, output, read, write, 0), cost, ok, start, end):
            self._processor.consume(api_call(origin, start, end, fields, ok))
        return True

    def _tool_use(self, origin: Origin, start: int, end: int, fields: ToolFields) -> bool:
        tool, tool_use_id, ok, _ = fields
        if tool_use_id is not None:  # deduplication is the event's path
            return False
        if not self._processor.fold_tool_use(origin, tool, ok, start, end):
            self._processor.consume(tool_call(origin, start, end, fields))
        return True


def status_code(status: object) -> int | None:
    """A span's status code as the general path reads it (no status or no code: UNSET, 0), when it
    is an integer in range; else None.

    >>> status_code({"code": 2}), status_code(None), status_code({}), status_code({"code": "2"})
    (2, 0, 0, None)
    """
    if not status:
        return 0
    if type(status) is not dict:
        return 0
    code = status.get("code", 0)
    return code if type(code) is int and 0 <= code <= MAX_COUNT else None
