"""Wire-neutral records: what every decoder (OTLP protobuf, OTLP JSON, the plan's JSONL) produces.

Adapters turn records into events; nothing past the collector sees a record. Attribute values are
plain Python values (str, int, float, bool, list, dict).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from kpiloop.collector.values import as_time_ns

Attributes = Mapping[str, Any]

STATUS_UNSET = 0
STATUS_OK = 1
STATUS_ERROR = 2


@dataclass(slots=True)
class SpanEventRecord:
    """An event inside a span (``gen_ai.evaluation.result`` may arrive this way)."""

    name: str
    time_ns: int
    attributes: Attributes


@dataclass(slots=True)
class SpanRecord:
    """One span: name, interval, attributes, the resource's attributes and the status code."""

    name: str
    start_ns: int
    end_ns: int
    attributes: Attributes
    resource: Attributes
    status_code: int = STATUS_UNSET
    events: list[SpanEventRecord] = field(default_factory=list)


@dataclass(slots=True)
class LogRecord:
    """One log record; ``event_name`` is the OTLP field or the ``event.name`` attribute."""

    time_ns: int
    body: Any
    attributes: Attributes
    resource: Attributes
    event_name: str | None = None


@dataclass(slots=True)
class DataPointRecord:
    """One number data point of a sum or gauge metric."""

    metric: str
    start_ns: int
    time_ns: int
    value: float
    attributes: Attributes
    resource: Attributes
    cumulative: bool = False


R = TypeVar("R", SpanRecord, LogRecord, DataPointRecord)


def check_times(record: R) -> R:
    """``record`` itself once every time in it is in [0, 2^63) ns; InputError otherwise."""
    if isinstance(record, SpanRecord):
        as_time_ns(record.start_ns, "start time")
        as_time_ns(record.end_ns, "end time")
        for event in record.events:
            as_time_ns(event.time_ns, "event time")
    elif isinstance(record, LogRecord):
        as_time_ns(record.time_ns, "time")
    else:
        as_time_ns(record.start_ns, "start time")
        as_time_ns(record.time_ns, "time")
    return record
