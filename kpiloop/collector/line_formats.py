"""Recognize what one JSONL line is and decode it into records.

One line is an OTLP/JSON export request (as the OTel Collector's file exporter writes them), a
plan-format span (``traces-*.jsonl``), or a plan-format evaluation or log record
(``evaluations-*.jsonl``, ``logs-*.jsonl``). Claude Code transcript lines are recognized by
:func:`kpiloop.collector.transcript.is_transcript_line` before these (the replay decodes them).
Lines of other shapes raise InputError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from kpiloop.collector import otlp_json
from kpiloop.collector.plan_jsonl import is_plan_span, log_from_plan, span_from_plan
from kpiloop.collector.records import DataPointRecord, LogRecord, R, SpanRecord, check_times
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
        yield _plan_record(span_from_plan, doc)
    elif _is_log_like(doc):
        yield _plan_record(log_from_plan, doc)
    else:
        raise InputError(
            "unrecognized line: not OTLP/JSON, a span, an evaluation, a log record or a transcript line", "unrecognized"
        )


def _plan_record(decode: Callable[[Mapping[str, Any]], R], doc: Mapping[str, Any]) -> R | InputError:
    """A plan-format record with its times checked; whatever the plan decoder raises on a value it
    cannot read (a date past year 9999, a name nested a thousand lists deep) is an InputError."""
    try:
        return check_times(decode(doc))
    except InputError as error:
        return error
    except (TypeError, ValueError, OverflowError, RecursionError) as error:
        return InputError(f"unreadable value in a plan-format line: {type(error).__name__}: {error}"[:200], "bad_value")


def _is_log_like(doc: Mapping[str, Any]) -> bool:
    if "gen_ai.evaluation.name" in doc or isinstance(doc.get("attributes"), dict):
        return True
    return "body" in doc and any(key in doc for key in ("timestamp", "time", "timeUnixNano"))
