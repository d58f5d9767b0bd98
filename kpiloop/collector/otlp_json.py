"""Decode OTLP/JSON export requests (traces, logs, metrics) into records.

OTLP/JSON per the spec: lowerCamelCase keys, trace and span ids in hex, int64 values as strings
or numbers, enums as integers or names, unknown fields ignored. A malformed item becomes an
:class:`InputError` in the output stream (so the caller can count it and keep the rest); a
document that is not an export request at all raises InputError.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from typing import Any

from kpiloop.collector.records import (
    STATUS_ERROR,
    STATUS_OK,
    STATUS_UNSET,
    DataPointRecord,
    LogRecord,
    SpanEventRecord,
    SpanRecord,
)
from kpiloop.errors import InputError

_STATUS_NAMES = {"STATUS_CODE_UNSET": STATUS_UNSET, "STATUS_CODE_OK": STATUS_OK, "STATUS_CODE_ERROR": STATUS_ERROR}
_CUMULATIVE = (2, "AGGREGATION_TEMPORALITY_CUMULATIVE")
MAX_DEPTH = 16


def decode_traces(doc: Mapping[str, Any]) -> Iterator[SpanRecord | InputError]:
    """Spans of an ``ExportTraceServiceRequest`` in JSON form."""
    for resource, item in _items(doc, "resourceSpans", "scopeSpans", "spans"):
        try:
            yield _span(item, resource)
        except (InputError, TypeError, ValueError, AttributeError) as error:
            yield _as_input_error(error, "span")


def decode_logs(doc: Mapping[str, Any]) -> Iterator[LogRecord | InputError]:
    """Log records of an ``ExportLogsServiceRequest`` in JSON form."""
    for resource, item in _items(doc, "resourceLogs", "scopeLogs", "logRecords"):
        try:
            yield _log(item, resource)
        except (InputError, TypeError, ValueError, AttributeError) as error:
            yield _as_input_error(error, "log record")


def decode_metrics(doc: Mapping[str, Any]) -> Iterator[DataPointRecord | InputError]:
    """Number data points (sums and gauges) of an ``ExportMetricsServiceRequest`` in JSON form."""
    for resource, metric in _items(doc, "resourceMetrics", "scopeMetrics", "metrics"):
        try:
            yield from _points(metric, resource)
        except (InputError, TypeError, ValueError, AttributeError) as error:
            yield _as_input_error(error, "metric")


def attributes(raw: object) -> dict[str, Any]:
    """``[{"key": k, "value": AnyValue}]`` → ``{k: python value}``."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise InputError("attributes must be a list of key/value objects")
    return {kv["key"]: any_value(kv.get("value"), 0) for kv in raw if isinstance(kv, dict) and "key" in kv}


def any_value(raw: object, depth: int) -> Any:
    """One OTLP ``AnyValue`` as a plain Python value (None for an empty value)."""
    if not isinstance(raw, dict) or not raw:
        return None
    if depth > MAX_DEPTH:
        raise InputError(f"attribute values nested deeper than {MAX_DEPTH} levels", reason="too_deep")
    kind, value = next(iter(raw.items()))
    if kind == "stringValue":
        return value
    if kind == "intValue":
        return int(value)
    if kind == "doubleValue":
        return float(value)
    if kind == "boolValue":
        return bool(value)
    if kind == "arrayValue":
        return [any_value(v, depth + 1) for v in value.get("values", [])]
    if kind == "kvlistValue":
        return {kv["key"]: any_value(kv.get("value"), depth + 1) for kv in value.get("values", [])}
    if kind == "bytesValue":
        return _base64(value)
    return None


def _base64(text: str) -> bytes:
    """Standard or URL-safe base64, padded or not: what the proto3 JSON mapping accepts."""
    standard = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)


def nanos(raw: object, key: str) -> int:
    """A ``fixed64`` nanosecond timestamp given as a string or a number; absent reads as 0."""
    if raw is None or raw == "":
        return 0
    try:
        value = int(str(raw))
    except (TypeError, ValueError):
        raise InputError(f"{key} must be an integer number of nanoseconds, got {raw!r:.40}") from None
    if value < 0:
        raise InputError(f"{key} must not be negative")
    return value


def _items(doc: Mapping[str, Any], outer: str, scope: str, inner: str) -> Iterator[tuple[dict[str, Any], Any]]:
    if not isinstance(doc, Mapping):
        raise InputError("an OTLP export request must be a JSON object")
    for resource_block in _objects(doc.get(outer), outer):
        resource = _resource_attributes(resource_block.get("resource"))
        for scope_block in _objects(resource_block.get(scope), scope):
            for item in _list(scope_block.get(inner), inner):
                yield resource, item


def _list(raw: object, key: str) -> list[Any]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise InputError(f"{key} must be a list")
    return raw


def _objects(raw: object, key: str) -> Iterator[dict[str, Any]]:
    for entry in _list(raw, key):
        if not isinstance(entry, dict):
            raise InputError(f"{key} entries must be objects")
        yield entry


def _resource_attributes(raw: object) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InputError("resource must be an object")
    try:
        return attributes(raw.get("attributes"))
    except (TypeError, ValueError, AttributeError) as error:
        raise _as_input_error(error, "resource") from None


def _span(item: Mapping[str, Any], resource: dict[str, Any]) -> SpanRecord:
    status_code = _status_code((item.get("status") or {}).get("code", STATUS_UNSET))
    return SpanRecord(
        name=str(item.get("name", "")),
        start_ns=nanos(item.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=nanos(item.get("endTimeUnixNano"), "endTimeUnixNano"),
        attributes=attributes(item.get("attributes")),
        resource=resource,
        status_code=status_code,
        events=[
            SpanEventRecord(
                str(e.get("name", "")), nanos(e.get("timeUnixNano"), "timeUnixNano"), attributes(e.get("attributes"))
            )
            for e in item.get("events") or []
        ],
    )


def _status_code(raw: object) -> int:
    if isinstance(raw, str) and raw in _STATUS_NAMES:
        return _STATUS_NAMES[raw]
    return int(str(raw))


def _log(item: Mapping[str, Any], resource: dict[str, Any]) -> LogRecord:
    time_ns = nanos(item.get("timeUnixNano"), "timeUnixNano") or nanos(
        item.get("observedTimeUnixNano"), "observedTimeUnixNano"
    )
    event_name = item.get("eventName")
    return LogRecord(
        time_ns=time_ns,
        body=any_value(item.get("body"), 0),
        attributes=attributes(item.get("attributes")),
        resource=resource,
        event_name=event_name if isinstance(event_name, str) and event_name else None,
    )


def _points(metric: Mapping[str, Any], resource: dict[str, Any]) -> Iterator[DataPointRecord | InputError]:
    name = str(metric.get("name", ""))
    for kind in ("sum", "gauge"):
        body = metric.get(kind)
        if not isinstance(body, dict):
            continue
        cumulative = body.get("aggregationTemporality") in _CUMULATIVE
        for point in body.get("dataPoints") or []:
            try:
                yield _point(name, point, resource, cumulative)
            except (InputError, TypeError, ValueError, AttributeError) as error:
                yield _as_input_error(error, "data point")


def _point(name: str, point: Mapping[str, Any], resource: dict[str, Any], cumulative: bool) -> DataPointRecord:
    return DataPointRecord(
        metric=name,
        start_ns=nanos(point.get("startTimeUnixNano"), "startTimeUnixNano"),
        time_ns=nanos(point.get("timeUnixNano"), "timeUnixNano"),
        value=float(point["asDouble"]) if "asDouble" in point else float(int(point.get("asInt", 0))),
        attributes=attributes(point.get("attributes")),
        resource=resource,
        cumulative=cumulative,
    )


def _as_input_error(error: Exception, what: str) -> InputError:
    if isinstance(error, InputError):
        return error
    return InputError(f"malformed {what}: {error}")
