"""Saving and restoring open sessions, the live observer, and end markers for closed sessions."""

from __future__ import annotations

import orjson

from kpiloop.model import ApiCall, ToolCall
from kpiloop.processors.session_kpi import CLOSE_END_OF_INPUT, SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.testing import FakeClock, ListSink
from kpiloop.types import SessionId

from .test_session_kpi import SONNET, api, end, evaluation, make, prompt, tool


class RecordingObserver:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []
        self.tools: list[tuple[str, bool, bool]] = []
        self.empty = 0
        self.late = 0
        self.closes: list[float] = []

    def api_call(self, call: ApiCall, cost_usd: float | None) -> None:
        self.calls.append((call.request_id or "", cost_usd))

    def late_cost(self, call: ApiCall, cost_usd: float) -> None:
        self.calls.append((f"late:{call.request_id}", cost_usd))

    def tool_call(self, call: ToolCall) -> None:
        self.tools.append((call.tool, call.ok, call.denied))

    def session_empty(self) -> None:
        self.empty += 1

    def late_event(self) -> None:
        self.late += 1

    def session_closed(self, seconds: float) -> None:
        self.closes.append(seconds)


def feed_half(processor: SessionKpiProcessor) -> None:
    processor.consume(api(0, 10, request_id="r1", input_tokens=100, output_tokens=10, cache_read_tokens=900))
    processor.consume(tool("Read", 10, 12, tool_use_id="t1"))
    processor.consume(tool("TaskCreate", 12, 13, tool_use_id="t2"))
    processor.consume(evaluation("relevance", 0.9, 50))
    processor.consume(api(0, 10, sid="other", output_tokens=5))


def feed_rest(processor: SessionKpiProcessor) -> None:
    processor.consume(api(20, 30, request_id="r1", input_tokens=100, output_tokens=10))  # duplicate of r1
    processor.consume(api(20, 30, request_id="r2", input_tokens=50, output_tokens=20))
    processor.consume(tool("Read", 10, 12, tool_use_id="t1"))  # duplicate of t1
    processor.consume(tool("Bash", 30, 40, tool_use_id="t3", ok=False))
    processor.consume(evaluation("relevance", 0.7, 60))


def test_a_restored_processor_continues_exactly_where_the_saved_one_stopped():
    whole, whole_sink, _ = make()
    feed_half(whole)
    feed_rest(whole)
    whole.close_all()

    first, _, _ = make()
    feed_half(first)
    saved = orjson.loads(orjson.dumps(first.export_state()))  # through JSON, as on disk
    second, second_sink, _ = make()
    assert second.import_state(saved) == 2
    assert second.open_sessions() == 2
    feed_rest(second)
    second.close_all()

    assert second_sink.items == whole_sink.items
    summary = {s.session_id: s for s in second_sink.items}[SessionId("s1")]
    # r1 + r2: output 30 / (150 input + 30 output + 900 cache read)
    assert summary.kpis["token_efficiency"] == 30 / 1080
    assert (summary.api_requests, summary.tool_calls, summary.tool_failures) == (2, 3, 1)
    assert summary.kpis["quality_relevance"] == (0.9 + 0.7) / 2


def test_restored_sessions_restart_their_idle_timers():
    first, _, clock = make()
    first.consume(api(0, 1, output_tokens=1))
    clock.advance(29 * 60)
    second, sink, second_clock = make()
    second_clock.advance(29 * 60)
    second.import_state(first.export_state())
    second_clock.advance(29 * 60)
    assert second.expire() == 0  # 29 min since the restart, not 58 since the last event
    second_clock.advance(60)
    assert second.expire() == 1
    assert len(sink.items) == 1


def test_closed_sessions_are_restored_so_late_data_still_reopens_them():
    first, first_sink, _ = make()
    first.consume(api(0, 1, output_tokens=1))
    first.consume(end(2))
    second, sink, _ = make()
    second.import_state(first.export_state())
    second.consume(api(10, 11, output_tokens=2))
    second.close_all()
    assert [(s.close_count, s.tokens.output) for s in first_sink.items + sink.items] == [(1, 1), (2, 3)]


def test_an_unusable_saved_session_is_skipped():
    processor, _, _ = make()
    assert processor.import_state({"open": [{"session_id": "x"}], "closed": []}) == 0
    assert processor.open_sessions() == 0


def test_an_end_for_a_closed_session_does_not_reopen_it():
    processor, sink, _ = make()
    processor.consume(api(0, 1, output_tokens=1))
    processor.consume(end(2, source="hook"))
    processor.consume(end(2, source="claude_code"))  # the same end arriving over a second path
    processor.close_all()
    assert len(sink.items) == 1
    assert (processor.stats.stray_ends, processor.stats.reopened_sessions) == (1, 0)


def test_a_session_first_closed_empty_counts_its_first_real_close_as_one():
    processor, sink, _ = make()
    processor.consume(prompt(0))
    processor.close_all()
    processor.consume(api(5, 6, output_tokens=3))
    processor.close_all()
    assert [s.close_count for s in sink.items] == [1]


def test_an_evaluation_only_session_is_dated_by_its_evaluations():
    processor, sink, _ = make()
    processor.consume(evaluation("relevance", 0.8, 100))
    processor.consume(evaluation("coherence", 0.6, 130))
    processor.close_all()
    (summary,) = sink.items
    assert summary.start_ns > 0 and summary.duration_seconds == 30.0
    assert summary.kpis["active_time_ratio"] == 0.0  # no API or tool interval within 30 s


def test_the_observer_sees_each_counted_call_once():
    observer = RecordingObserver()
    sink: ListSink = ListSink()
    processor = SessionKpiProcessor(sink, SessionKpiConfig(), FakeClock(), observer)
    processor.consume(api(0, 1, request_id="a", model=SONNET, input_tokens=1_000_000))
    processor.consume(api(0, 1, request_id="a", model=SONNET, input_tokens=1_000_000))
    processor.consume(tool("Bash", 1, 2, tool_use_id="b", ok=False))
    processor.consume(tool("Write", 1, 2, tool_use_id="c", denied=True))
    processor.consume(prompt(0, sid="empty"))
    processor.close_all()
    processor.consume(api(9, 10, request_id="late", model=SONNET))
    assert observer.calls == [("a", 3.0), ("late", 0.0)]  # 1M uncached input tokens at $3 per million
    assert observer.tools == [("Bash", False, False), ("Write", True, True)]
    assert (observer.empty, observer.late) == (1, 1)
    assert len(observer.closes) == 1 and observer.closes[0] >= 0  # the empty session emits nothing


def test_open_sessions_by_agent_type():
    processor, _, _ = make()
    processor.consume(api(0, 1, agent="coder"))
    processor.consume(api(0, 1, sid="s2", agent="coder"))
    processor.consume(api(0, 1, sid="s3", agent="writer"))
    assert processor.open_by_agent() == {"coder": 2, "writer": 1}
    processor.close_all(CLOSE_END_OF_INPUT)
    assert processor.open_by_agent() == {}


def test_a_duplicate_from_another_signal_fills_in_the_cost_and_subagent_it_lacked():
    observer = RecordingObserver()
    sink: ListSink = ListSink()
    processor = SessionKpiProcessor(sink, SessionKpiConfig(), FakeClock(), observer)
    # a beta-trace span first: an unpriced model, no subagent name
    processor.consume(api(0, 1, request_id="r", model="claude-opus-9", output_tokens=10, source="claude_code"))
    # then the api_request log of the same request, with the CLI's own cost and the subagent
    processor.consume(
        api(0, 1, request_id="r", model="claude-opus-9", output_tokens=10, cost_usd=0.25, subagent="general-purpose")
    )
    processor.close_all()
    (summary,) = sink.items
    assert (summary.api_requests, summary.tokens.output, summary.cost_usd) == (1, 10, 0.25)
    assert summary.subagents["general-purpose"].api_requests == 1
    assert summary.subagents["general-purpose"].cost_usd == 0.25
    assert observer.calls == [("r", None), ("late:r", 0.25)]


def test_a_late_duplicate_does_not_reopen_a_closed_session():
    processor, sink, _ = make()
    processor.consume(api(0, 1, request_id="r", output_tokens=5, cost_usd=0.1))
    processor.consume(tool("Read", 1, 2, tool_use_id="t"))
    processor.consume(end(3))
    processor.consume(api(0, 1, request_id="r", output_tokens=5, cost_usd=0.1))  # a hook retry, say
    processor.consume(tool("Read", 1, 2, tool_use_id="t"))
    processor.close_all()
    assert len(sink.items) == 1
    assert (processor.stats.duplicate_late_events, processor.stats.reopened_sessions) == (2, 0)
    processor.consume(tool("Bash", 5, 6, tool_use_id="new"))  # new data still reopens
    processor.close_all()
    assert [s.tool_calls for s in sink.items] == [1, 2]
