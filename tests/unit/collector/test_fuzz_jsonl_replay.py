"""Property-based fuzzing of the JSONL replay: line recognition, the plan's formats, Claude Code
transcripts and the whole replay pipeline. A bad line is reported and skipped, never raised; what is
kept never carries NaN, infinite, negative or over-2^63 numbers into a KPI or the history."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import LineProblem
from kpiloop.collector.line_formats import decode_line
from kpiloop.collector.transcript import TranscriptReader
from kpiloop.config import KpiloopConfig
from kpiloop.errors import InputError
from kpiloop.model import Event
from kpiloop.pipeline import build_replay_pipeline
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.testing import FakeClock, ListSink
from kpiloop.types import AgentType
from tests.strategies import (
    NON_UTF8,
    adapt_and_summarize,
    assert_sane_event,
    assert_sane_history_line,
    assert_sane_summary,
    deep_json,
    hostile_values,
    json_round_trip,
    otlp_json_requests,
    plan_lines,
    transcript_lines,
)

FUZZ = settings(derandomize=True, max_examples=150, deadline=None, database=None)
DEEP_NAME = b'{"name": ' + deep_json(1000) + b', "startTime": [1770920880, 0], "attributes": {"session.id": "s-1"}}'
DEEP_TODOS = (
    b'{"timestamp": 1770920880, "event_name": "kpiloop.hook", "attributes": {"session.id": "s-1", '
    b'"hook.event": "PostToolUse", "todos": [' + deep_json(1000) + b"]}}"
)


def decode(doc: Any) -> list[object]:
    try:
        return list(decode_line(doc))
    except InputError as error:
        assert str(error)
        return []


@FUZZ
@given(doc=plan_lines() | hostile_values())
@example(doc={"name": "hook:token-metrics-extraction", "startTime": "0001-01-01T00:00:00+01:00"})
@example(doc={"name": "x", "startTime": "9999-12-31T23:59:59-23:59", "attributes": {"session.id": "s-1"}})
@example(doc={"name": "x", "startTime": "²"})
@example(doc={"timestamp": "1" * 5000, "session.id": "s-1", "body": "x"})
@example(
    doc={"name": "chat", "startTime": [2**53, 0], "attributes": {"session.id": "s", "gen_ai.usage.input_tokens": 1}}
)
def test_plan_lines_decode_item_by_item_into_sane_kpis(doc: Any) -> None:
    adapt_and_summarize(decode(json_round_trip(doc)))


@pytest.mark.parametrize("signal", ["traces", "logs", "metrics"])
@settings(derandomize=True, max_examples=40, deadline=None, database=None)
@given(data=st.data())
def test_otlp_json_lines_decode_item_by_item(signal: str, data: st.DataObject) -> None:
    adapt_and_summarize(decode(json_round_trip(data.draw(otlp_json_requests(signal)))))


@pytest.mark.parametrize("line", [DEEP_NAME, DEEP_TODOS], ids=["deep-name", "deep-todos"])
def test_values_nested_a_thousand_levels_are_refused_not_recursed_into(line: bytes) -> None:
    adapt_and_summarize(decode(orjson.loads(line)))


@FUZZ
@given(docs=st.lists(transcript_lines(), min_size=1, max_size=6))
@example(docs=[{"type": "assistant", "sessionId": "s-1", "timestamp": "0001-01-01T00:00:00+01:00"}])
@example(docs=[{"type": "assistant", "sessionId": "s-1", "timestamp": "1" * 5000}])
@example(
    docs=[
        {
            "type": "assistant",
            "sessionId": "s-1",
            "timestamp": "2026-02-12T18:28:00Z",
            "message": {"id": "m", "content": [{"type": "tool_use", "id": "t", "name": "TodoWrite", "input": {}}]},
        }
    ]
)
def test_transcript_lines_give_sane_events_or_input_errors(docs: list[dict[str, Any]]) -> None:
    reader = TranscriptReader(EventAdapter())
    sink: ListSink[Any] = ListSink()
    processor = SessionKpiProcessor(sink, SessionKpiConfig(), FakeClock())
    for doc in docs:
        try:
            events: list[Event] = reader.events(json_round_trip(doc), "session.jsonl")
        except InputError:
            continue
        for event in events:
            assert_sane_event(event)
            processor.consume(event)
    processor.close_all()
    for summary in sink.items:
        assert_sane_summary(summary)


def test_a_tool_input_nested_past_orjsons_limit_is_dropped_not_raised() -> None:
    deep: Any = {}
    for _ in range(300):
        deep = {"k": deep}
    line = {
        "type": "assistant",
        "sessionId": "s-1",
        "timestamp": "2026-02-12T18:28:00Z",
        "message": {"id": "m", "content": [{"type": "tool_use", "id": "t", "name": "TodoWrite", "input": deep}]},
    }
    TranscriptReader(EventAdapter()).events(line, "session.jsonl")


line_bytes = st.one_of(
    plan_lines().map(lambda doc: orjson.dumps(json_round_trip(doc))),
    transcript_lines().map(lambda doc: orjson.dumps(json_round_trip(doc))),
    hostile_values(6).map(lambda doc: orjson.dumps(json_round_trip(doc))),
    NON_UTF8,
    st.binary(max_size=40),
    st.sampled_from((DEEP_NAME, DEEP_TODOS, deep_json(2000), b"{", b"   ", b"[1,2]")),
)


@settings(derandomize=True, max_examples=25, deadline=None, database=None)
@given(lines=st.lists(line_bytes, min_size=1, max_size=12))
def test_a_replay_of_hostile_lines_reports_them_and_writes_a_sane_history(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hostile.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines) + b"\n")
        problems: list[LineProblem] = []
        pipeline = build_replay_pipeline(
            KpiloopConfig(), [str(path)], Path(folder) / "data", FakeClock(), problems.append, agent_type=AgentType("a")
        )
        pipeline.run()
        assert all(problem.message and problem.line >= 1 for problem in problems)
        history = Path(folder) / "data" / "history" / "kpis.jsonl"
        for raw in history.read_bytes().splitlines() if history.exists() else []:
            assert_sane_history_line(orjson.loads(raw))
