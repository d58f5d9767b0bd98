"""Decode OTLP/JSON export requests (traces, logs, metrics) into records.

OTLP/JSON per the spec: lowerCamelCase keys, trace and span ids in hex, int64 values as strings
or numbers, enums as integers or names, unknown fields ignored. A malformed item becomes an
:class:`InputError` in the output stream (so the caller can count it and keep the rest); a
document that is not an export request at all raises InputError.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator, Mapping
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
from kpiloop.collector.values import as_time_ns, shown
from kpiloop.errors import InputError

_STATUS_NAMES = {"STATUS_CODE_UNSET": STATUS_UNSET, "STATUS_CODE_OK": STATUS_OK, "STATUS_CODE_ERROR": STATUS_ERROR}
_CUMULATIVE = (2, "AGGREGATION_TEMPORALITY_CUMULATIVE")
MAX_DEPTH = 16
_ITEM_ERRORS = (InputError, TypeError, ValueError, AttributeError)
"""What reading one item may raise: the item is rejected, the request goes on."""


def decode_traces(doc: Mapping[str, Any]) -> Iterator[SpanRecord | InputError]:
    """Spans of an ``ExportTraceServiceRequest`` in JSON form."""
    for resource, item in _items(doc, "resourceSpans", "scopeSpans", "spans"):
        try:
            yield _span(item, resource)
        except _ITEM_ERRORS as error:
            yield _as_input_error(error, "span")


def decode_logs(doc: Mapping[str, Any]) -> Iterator[LogRecord | InputError]:
    """Log records of an ``ExportLogsServiceRequest`` in JSON form."""
    for resource, item in _items(doc, "resourceLogs", "scopeLogs", "logRecords"):
        try:
            yield _log(item, resource)
        except _ITEM_ERRORS as error:
            yield _as_input_error(error, "log record")


def decode_metrics(doc: Mapping[str, Any]) -> Iterator[DataPointRecord | InputError]:
    """Number data points (sums and gauges) of an ``ExportMetricsServiceRequest`` in JSON form."""
    for resource, metric in _items(doc, "resourceMetrics", "scopeMetrics", "metrics"):
        try:
            yield from _points(metric, resource)
        except _ITEM_ERRORS as error:
            yield _as_input_error(error, "metric")


def attributes(raw: object) -> dict[str, Any]:
    """``[{"key": k, "value": AnyValue}]`` → ``{k: python value}`` (entries without a key are skipped)."""
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise InputError("attributes must be a list of key/value objects")
    return _key_values(raw, 0)


def any_value(raw: object, depth: int) -> Any:
    """One OTLP ``AnyValue`` as a plain Python value (None for an empty value or an unknown kind).

    A value of the wrong JSON type for its kind raises InputError, so it never reaches an adapter
    as something else (``{"boolValue": "false"}`` is not True, a ``stringValue`` is a string).
    """
    if not isinstance(raw, dict) or not raw:
        return None
    if depth > MAX_DEPTH:
        raise InputError(f"attribute values nested deeper than {MAX_DEPTH} levels", reason="too_deep")
    kind, value = next(iter(raw.items()))
    if kind in _SCALARS:
        return _SCALARS[kind](value)
    if kind == "arrayValue":
        return [any_value(item, depth + 1) for item in _values(value, kind)]
    if kind == "kvlistValue":
        return _key_values(_values(value, kind), depth + 1)
    return None


def _key_values(pairs: list[Any], depth: int) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, dict) or "key" not in pair:
            continue
        key = pair["key"]
        if not isinstance(key, str):
            raise InputError(f"an attribute key must be a string, got {type(key).__name__}")
        result[key] = any_value(pair.get("value"), depth)
    return result


def _values(raw: object, kind: str) -> list[Any]:
    if not isinstance(raw, dict):
        raise InputError(f"{kind} must be an object")
    return _list(raw.get("values"), f"{kind}.values")


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise InputError(f"stringValue must be a string, got {type(value).__name__}")
    return value


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise InputError(f"boolValue must be true or false, got {type(value).__name__}")
    return value


def int64(raw: object, key: str) -> int:
    """An ``int64`` given as a JSON number or a decimal string."""
    value: object = raw
    if isinstance(raw, str) and len(raw) <= _MAX_DIGITS:
        try:
            value = int(raw)
        except ValueError:
            raise InputError(f"{key} must be an integer, got {shown(raw)}") from None
    if isinstance(value, bool) or not isinstance(value, int) or not _INT64_MIN <= value <= _INT64_MAX:
        raise InputError(f"{key} must be a 64-bit integer, got {shown(raw)}", reason="bad_value")
    return value


def double(raw: object, key: str) -> float:
    """A ``double`` given as a JSON number or a string (``"NaN"`` and ``"Infinity"`` included, as
    the proto3 JSON mapping writes them; adapters refuse them where a finite number is needed)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise InputError(f"{key} must be a number, got {shown(raw)}")
    try:
        return float(raw)
    except (ValueError, OverflowError):
        raise InputError(f"{key} must be a number, got {shown(raw)}", reason="bad_value") from None


def _base64(text: object) -> bytes:
    """Standard or URL-safe base64, padded or not: what the proto3 JSON mapping accepts."""
    if not isinstance(text, str):
        raise InputError(f"bytesValue must be a base64 string, got {type(text).__name__}")
    standard = text.replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)
    except ValueError:
        raise InputError(f"bytesValue is not base64: {text!r:.40}") from None


def nanos(raw: object, key: str) -> int:
    """A ``fixed64`` nanosecond timestamp given as a string or a number; absent reads as 0."""
    if raw is None or raw == "":
        return 0
    if isinstance(raw, str) and raw.isascii() and raw.isdigit() and len(raw) <= _MAX_DIGITS:
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise InputError(f"{key} must be an integer number of nanoseconds, got {shown(raw)}")
    return as_time_ns(raw, key)


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_MAX_DIGITS = 40
_SCALARS: dict[str, Callable[[object], Any]] = {
    "stringValue": _string,
    "intValue": lambda value: int64(value, "intValue"),
    "doubleValue": lambda value: double(value, "doubleValue"),
    "boolValue": _bool,
    "bytesValue": _base64,
}


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
    status = item.get("status") or {}
    if not isinstance(status, dict):
        raise InputError("status must be an object")
    return SpanRecord(
        name=_name(item.get("name"), "name"),
        start_ns=nanos(item.get("startTimeUnixNano"), "startTimeUnixNano"),
        end_ns=nanos(item.get("endTimeUnixNano"), "endTimeUnixNano"),
        attributes=attributes(item.get("attributes")),
        resource=resource,
        status_code=_status_code(status.get("code", STATUS_UNSET)),
        events=[
            SpanEventRecord(
                _name(e.get("name"), "events.name"),
                nanos(e.get("timeUnixNano"), "timeUnixNano"),
                attributes(e.get("attributes")),
            )
            for e in _objects(item.get("events"), "events")
        ],
    )


def _name(raw: object, key: str) -> str:
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise InputError(f"{key} must be a string, got {type(raw).__name__}")
    return raw


def _status_code(raw: object) -> int:
    if isinstance(raw, str) and raw in _STATUS_NAMES:
        return _STATUS_NAMES[raw]
    return int64(raw, "status.code")


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
    name = _name(metric.get("name"), "name")
    for kind in ("sum", "gauge"):
        body = metric.get(kind)
        if not isinstance(body, dict):
            continue
        cumulative = body.get("aggregationTemporality") in _CUMULATIVE
        for point in _list(body.get("dataPoints"), "dataPoints"):
            try:
                yield _point(name, point, resource, cumulative)
            except _ITEM_ERRORS as error:
                yield _as_input_error(error, "data point")


def _point(name: str, point: Mapping[str, Any], resource: dict[str, Any], cumulative: bool) -> DataPointRecord:
    return DataPointRecord(
        metric=name,
        start_ns=nanos(point.get("startTimeUnixNano"), "startTimeUnixNano"),
        time_ns=nanos(point.get("timeUnixNano"), "timeUnixNano"),
        value=double(point["asDouble"], "asDouble")
        if "asDouble" in point
        else float(int64(point.get("asInt", 0), "asInt")),
        attributes=attributes(point.get("attributes")),
        resource=resource,
        cumulative=cumulative,
    )


def _as_input_error(error: Exception, what: str) -> InputError:
    reason = error.reason if isinstance(error, InputError) else "malformed"
    return InputError(f"malformed {what}: {error}", reason)
