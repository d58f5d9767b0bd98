"""Decode the plan's telemetry lines into records.

- ``traces-*.jsonl``: one OpenTelemetry JS ``ReadableSpan`` per line (``name``, ``startTime`` /
  ``endTime`` / ``duration`` as ``[seconds, nanos]``, ``attributes`` as an object, ``status.code``
  with UNSET=0, OK=1, ERROR=2, optional ``resource.attributes`` and ``events``).
- ``evaluations-*.jsonl``: records with ``gen_ai.evaluation.*`` keys at the top level or under
  ``attributes``, a ``timestamp``, and ``session.id``.
- ``logs-*.jsonl``: records with a ``timestamp``, a ``body`` (or ``message``) and ``attributes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from kpiloop.collector.records import STATUS_UNSET, LogRecord, SpanEventRecord, SpanRecord
from kpiloop.collector.values import MAX_COUNT, MAX_TIME_NS, as_count
from kpiloop.errors import InputError

_MAGNITUDES = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))
_TIME_KEYS = ("timestamp", "time", "timeUnixNano", "observedTimestamp", "date")


def is_plan_span(doc: Mapping[str, Any]) -> bool:
    """A ReadableSpan line: a name and a start time."""
    return "name" in doc and "startTime" in doc


def span_from_plan(doc: Mapping[str, Any]) -> SpanRecord:
    """One ReadableSpan JSON object as a :class:`SpanRecord`."""
    start = to_nanos(doc.get("startTime"), "startTime")
    end_time, duration = doc.get("endTime"), doc.get("duration")
    if end_time is not None:
        end = to_nanos(end_time, "endTime")
    else:
        end = start + (to_nanos(duration, "duration") if duration is not None else 0)
    if end < start:
        raise InputError(f"span {doc.get('name')!r} ends before it starts", reason="bad_value")
    status = doc.get("status") or {}
    events = doc.get("events")
    return SpanRecord(
        name=str(doc["name"]),
        start_ns=start,
        end_ns=end,
        attributes=_object(doc.get("attributes"), "attributes"),
        resource=resource_of(doc),
        status_code=as_count(status.get("code", STATUS_UNSET), "status.code") if isinstance(status, dict) else 0,
        events=_span_events(events) if events else [],
    )


def _span_events(events: Any) -> list[SpanEventRecord]:
    return [
        SpanEventRecord(
            str(e.get("name", "")),
            to_nanos(e.get("time"), "events.time"),
            _object(e.get("attributes"), "attributes"),
        )
        for e in events
        if isinstance(e, dict)
    ]


def log_from_plan(doc: Mapping[str, Any]) -> LogRecord:
    """An evaluation or log line as a :class:`LogRecord`; top-level dotted keys join the attributes."""
    attrs = dict(_object(doc.get("attributes"), "attributes"))
    for key, value in doc.items():
        if "." in key and key not in attrs:
            attrs[key] = value
    time_value = next((doc[k] for k in _TIME_KEYS if doc.get(k) is not None), None)
    body = doc.get("body", doc.get("message"))
    name = doc.get("event_name", doc.get("eventName", doc.get("name")))
    return LogRecord(
        time_ns=to_nanos(time_value, "timestamp") if time_value is not None else 0,
        body=body,
        attributes=attrs,
        resource=resource_of(doc),
        event_name=name if isinstance(name, str) and name else None,
    )


def to_nanos(value: object, key: str) -> int:
    """A time as integer nanoseconds since the epoch.

    Accepts ``[seconds, nanos]`` (JS HrTime), an ISO 8601 string, or a number in seconds,
    milliseconds, microseconds or nanoseconds (told apart by magnitude).

    >>> to_nanos([1739370000, 5], "t")
    1739370000000000005
    >>> to_nanos("2026-02-12T18:28:00Z", "t")
    1770920880000000000
    >>> to_nanos(1739370000123, "t")
    1739370000123000000
    >>> to_nanos(1739370000123456789, "t")
    1739370000123456789
    """
    if isinstance(value, list) and len(value) == 2:
        usual = hr_time_ns(value)  # the usual HrTime, without the checks' calls
        if usual is not None:
            return usual
        seconds, nanos = value
        return as_count(seconds, key) * 1_000_000_000 + as_count(nanos, key)
    if isinstance(value, str):
        try:
            return _iso_nanos(value)
        except ValueError:
            pass
        if value.strip().isdigit():
            value = int(value)  # exact: nanoseconds exceed a float's integer precision
    number: float
    if isinstance(value, float):
        number = _non_negative(value, key)
    elif isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**64:
        number = value
    else:
        number = as_count(value, key)
    for limit, scale in _MAGNITUDES:
        if number < limit:
            return round(number * scale)
    return int(number)


def hr_time_ns(value: object) -> int | None:
    """A ``[seconds, nanos]`` time in nanoseconds, when it is one of integers in range; else None.

    >>> hr_time_ns([1770000000, 5]), hr_time_ns("2026-02-12T18:28:00Z"), hr_time_ns([-1, 0])
    (1770000000000000005, None, None)
    """
    if type(value) is list and len(value) == 2:
        seconds, nanos = value
        if type(seconds) is int and type(nanos) is int and 0 <= seconds <= MAX_COUNT and 0 <= nanos <= MAX_COUNT:
            time_ns: int = seconds * 1_000_000_000 + nanos
            return time_ns if time_ns <= MAX_TIME_NS else None
    return None


def _non_negative(value: float, key: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise InputError(f"{key} must be a non-negative time, got {value!r}", reason="bad_value")
    return value


def _iso_nanos(text: str) -> int:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError("naive timestamp")
    whole = int(moment.replace(microsecond=0).timestamp())
    return whole * 1_000_000_000 + moment.microsecond * 1000


def _object(value: object, key: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InputError(f"{key} must be an object")
    return value


def resource_of(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    """A plan-format line's resource attributes (``resource.attributes`` or ``resource._attributes``); {} for none."""
    resource = doc.get("resource")
    if isinstance(resource, dict):
        inner = resource.get("attributes", resource.get("_attributes"))
        return inner if isinstance(inner, dict) else {}
    return {}
