"""Recognize what one JSONL line is and decode it into records.

One line is an OTLP/JSON export request (as the OTel Collector's file exporter writes them), a
plan-format span (``traces-*.jsonl``), or a plan-format evaluation or log record
(``evaluations-*.jsonl``, ``logs-*.jsonl``). Claude Code transcript lines are recognized by
:func:`kpiloop.collector.transcript.is_transcript_line` before these (the replay decodes them).
Lines of other shapes raise InputError.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from kpiloop.collector import otlp_json
from kpiloop.collector.plan_jsonl import is_plan_span, log_from_plan, span_from_plan
from kpiloop.collector.records import DataPointRecord, LogRecord, SpanRecord
from kpiloop.errors import InputError

Record = SpanRecord | LogRecord | DataPointRecord


def decode_line(doc: Any) -> Iterator[Record | InputError]:
    """The records of one parsed JSONL line; malformed items come out as InputError."""
    if not isinstance(doc, Mapping):
        raise InputError("a line must hold a JSON object", reason="not_an_object")
    if "resourceSpans" in doc:
        yield from otlp_json.decode_traces(doc)
    elif "resourceLogs" in doc:
        yield from otlp_json.decode_logs(doc)
    elif "resourceMetrics" in doc:
        yield from otlp_json.decode_metrics(doc)
    elif is_plan_span(doc):
        yield span_from_plan(doc)
    elif _is_log_like(doc):
        yield log_from_plan(doc)
    else:
        raise InputError(
            "unrecognized line: not OTLP/JSON, a span, an evaluation, a log record or a transcript line", "unrecognized"
        )


def _is_log_like(doc: Mapping[str, Any]) -> bool:
    if "gen_ai.evaluation.name" in doc or isinstance(doc.get("attributes"), dict):
        return True
    return "body" in doc and any(key in doc for key in ("timestamp", "time", "timeUnixNano"))
