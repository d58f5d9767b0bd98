"""An adapter with a bug, for the receivers' "a bug costs one request, counted" tests."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.records import SpanRecord
from kpiloop.model import Event
from tests.otlp_requests import T0, kvs, traces_request

BOOM = "boom"
"""Spans of this name make the adapter raise."""


class BuggyAdapter(EventAdapter):
    """Raises RuntimeError on a span named :data:`BOOM`; adapts everything else as usual."""

    def from_span(self, span: SpanRecord) -> list[Event]:
        if span.name == BOOM:
            raise RuntimeError("a bug in an adapter")
        return super().from_span(span)


def boom_request() -> ExportTraceServiceRequest:
    """One span the buggy adapter chokes on."""
    span = Span(name=BOOM, start_time_unix_nano=T0, end_time_unix_nano=T0 + 1, attributes=kvs("boom-session"))
    return traces_request(span)
