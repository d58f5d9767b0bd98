"""Decode OTLP protobuf export requests (bytes) into records.

Used by both OTLP receivers: gRPC hands the raw request bytes over (so an undecodable request is
answered ``INVALID_ARGUMENT`` rather than the ``INTERNAL`` a generated servicer would give) and
HTTP passes the body. :func:`parse_*` raise InputError for bytes that are not a valid request;
``decode_*`` turn a parsed request into records, item by item.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, TypeVar

from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import AGGREGATION_TEMPORALITY_CUMULATIVE, Metric

from kpiloop.collector.records import DataPointRecord, LogRecord, SpanEventRecord, SpanRecord, check_times
from kpiloop.errors import InputError

MAX_DEPTH = 16
_SCALARS = frozenset({"string_value", "bool_value", "int_value", "double_value"})
M = TypeVar("M", bound=Message)


def parse_traces(data: bytes) -> ExportTraceServiceRequest:
    """Parse an ``ExportTraceServiceRequest``; InputError when the bytes are not one."""
    return _parse(ExportTraceServiceRequest(), data, "ExportTraceServiceRequest")


def parse_logs(data: bytes) -> ExportLogsServiceRequest:
    """Parse an ``ExportLogsServiceRequest``; InputError when the bytes are not one."""
    return _parse(ExportLogsServiceRequest(), data, "ExportLogsServiceRequest")


def parse_metrics(data: bytes) -> ExportMetricsServiceRequest:
    """Parse an ``ExportMetricsServiceRequest``; InputError when the bytes are not one."""
    return _parse(ExportMetricsServiceRequest(), data, "ExportMetricsServiceRequest")


def decode_traces(request: ExportTraceServiceRequest) -> Iterator[SpanRecord | InputError]:
    """Every span of the request as a record (an InputError for a span that cannot be read)."""
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                try:
                    yield check_times(
                        SpanRecord(
                            name=span.name,
                            start_ns=span.start_time_unix_nano,
                            end_ns=span.end_time_unix_nano,
                            attributes=attributes(span.attributes),
                            resource=resource,
                            status_code=span.status.code,
                            events=[
                                SpanEventRecord(e.name, e.time_unix_nano, attributes(e.attributes)) for e in span.events
                            ],
                        )
                    )
                except InputError as error:
                    yield error


def decode_logs(request: ExportLogsServiceRequest) -> Iterator[LogRecord | InputError]:
    """Every log record of the request as a record."""
    for resource_logs in request.resource_logs:
        resource = attributes(resource_logs.resource.attributes)
        for scope_logs in resource_logs.scope_logs:
            for log in scope_logs.log_records:
                try:
                    yield check_times(
                        LogRecord(
                            time_ns=log.time_unix_nano or log.observed_time_unix_nano,
                            body=any_value(log.body, 0) if log.HasField("body") else None,
                            attributes=attributes(log.attributes),
                            resource=resource,
                            event_name=log.event_name or None,
                        )
                    )
                except InputError as error:
                    yield error


def decode_metrics(request: ExportMetricsServiceRequest) -> Iterator[DataPointRecord | InputError]:
    """Every number data point (sums and gauges) of the request as a record."""
    for resource_metrics in request.resource_metrics:
        resource = attributes(resource_metrics.resource.attributes)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                yield from _points(metric, resource)


def count_items(request: ExportTraceServiceRequest | ExportLogsServiceRequest | ExportMetricsServiceRequest) -> int:
    """Spans, log records or data points in a request (what partial_success counts against)."""
    if isinstance(request, ExportTraceServiceRequest):
        return sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    if isinstance(request, ExportLogsServiceRequest):
        return sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
    return sum(_point_count(m) for r in request.resource_metrics for s in r.scope_metrics for m in s.metrics)


def attributes(pairs: Any) -> dict[str, Any]:
    """Repeated ``KeyValue`` → ``{key: python value}``; the same values :func:`any_value` gives."""
    result: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        # Scalars (nearly every attribute) are read here: a call to any_value per attribute was a
        # tenth of the decoding; arrays, kvlists, bytes and unset values still go through it.
        result[pair.key] = getattr(value, kind) if kind in _SCALARS else any_value(value, 0)
    return result


def any_value(value: AnyValue, depth: int) -> Any:
    """One ``AnyValue`` as a plain Python value (None when unset)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if depth > MAX_DEPTH:
        raise InputError(f"attribute values nested deeper than {MAX_DEPTH} levels", reason="too_deep")
    if kind == "array_value":
        return [any_value(item, depth + 1) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def _points(metric: Metric, resource: dict[str, Any]) -> Iterator[DataPointRecord | InputError]:
    kind = metric.WhichOneof("data")
    if kind not in ("sum", "gauge"):
        return
    body = metric.sum if kind == "sum" else metric.gauge
    cumulative = kind == "sum" and metric.sum.aggregation_temporality == AGGREGATION_TEMPORALITY_CUMULATIVE
    for point in body.data_points:
        try:
            value = point.as_double if point.WhichOneof("value") == "as_double" else float(point.as_int)
            yield check_times(
                DataPointRecord(
                    metric=metric.name,
                    start_ns=point.start_time_unix_nano,
                    time_ns=point.time_unix_nano,
                    value=value,
                    attributes=attributes(point.attributes),
                    resource=resource,
                    cumulative=cumulative,
                )
            )
        except InputError as error:
            yield error


def _point_count(metric: Metric) -> int:
    kind = metric.WhichOneof("data")
    return len(getattr(metric, kind).data_points) if kind else 0


def _parse(message: M, data: bytes, name: str) -> M:
    try:
        message.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise InputError(f"request body is not a valid {name}: {error}", reason="undecodable") from None
    return message
