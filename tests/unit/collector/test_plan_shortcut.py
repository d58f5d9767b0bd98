"""The replay shortcut for the plan's token and tool spans: the same sessions as the general path,
line for line, and the general path for every line it does not read exactly."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import JsonlReplay, LineProblem
from kpiloop.collector.plan_shortcut import PlanShortcut
from kpiloop.model import SessionSummary
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import ModelPrice, SessionKpiConfig
from kpiloop.testing import FakeClock, ListSink
from tests.strategies import json_round_trip, plan_lines

SECOND = 1_000_000_000
T0 = 1_770_000_000
SONNET = ModelPrice(input=3.0, output=15.0, cache_read=0.3, cache_write_5m=3.75, cache_write_1h=6.0)
PRICES = {"claude-sonnet-4-5": SONNET}


class Replayed:
    """One replay of ``lines`` into a fresh adapter and processor, with or without the shortcut."""

    def __init__(self, lines: list[bytes], shortcut: bool, max_open: int = 1000) -> None:
        config = SessionKpiConfig(max_open_sessions=max_open, prices=PRICES)
        self.sink: ListSink[SessionSummary] = ListSink()
        self.processor = SessionKpiProcessor(self.sink, config, FakeClock())
        self.adapter = EventAdapter()
        self.problems: list[LineProblem] = []
        fast = PlanShortcut(self.adapter, self.processor) if shortcut else None
        self.replay = JsonlReplay([], self.processor, self.adapter, self.problems.append, shortcut=fast)
        self.replay._replay_stream("lines.jsonl", io.BytesIO(b"".join(lines)))
        self.state = self.processor.export_state()
        self.processor.close_all()
        self.summaries = self.sink.items


def span(name: str, session: str, at: int, attrs: dict[str, Any], **extra: Any) -> bytes:
    doc = {
        "name": name,
        "startTime": [T0 + at, 0],
        "endTime": [T0 + at + 2, 500],
        "attributes": {"session.id": session, "agent.type": "coder", **attrs},
        "status": {"code": 1},
        **extra,
    }
    return orjson.dumps(doc) + b"\n"


def tokens(session: str, at: int, **attrs: Any) -> bytes:
    counts = {"tokens.input": 1000, "tokens.output": 200, "tokens.cache_read": 5000, "tokens.cache_creation": 100}
    return span("hook:token-metrics-extraction", session, at, {**counts, "tokens.model": "claude-sonnet-4-5", **attrs})


def tool(session: str, at: int, name: str = "Read", top: dict[str, Any] | None = None, **attrs: Any) -> bytes:
    """A builtin tool span; ``top`` adds or replaces keys beside the attributes."""
    attributes = {"builtin.tool": name, "builtin.success": True, **attrs}
    return span("hook:builtin-post-tool", session, at, attributes, **(top or {}))


def assert_same(lines: list[bytes], max_open: int = 1000) -> Replayed:
    general = Replayed(lines, shortcut=False, max_open=max_open)
    fast = Replayed(lines, shortcut=True, max_open=max_open)
    assert fast.state == general.state
    assert fast.summaries == general.summaries
    assert fast.replay.stats == general.replay.stats
    assert fast.adapter.stats == general.adapter.stats
    assert fast.processor.stats == general.processor.stats
    assert fast.problems == general.problems
    return fast


def test_a_session_of_token_and_tool_spans_has_the_hand_computed_kpis():
    lines = [tokens("s-1", 0), tool("s-1", 10), tool("s-1", 20, "TaskCreate"), tokens("s-1", 30)]
    lines.append(tool("s-1", 40, "Edit"))
    (summary,) = assert_same(lines).summaries
    assert (summary.tokens.input, summary.tokens.output) == (2000, 400)
    assert (summary.tokens.cache_read, summary.tokens.cache_write_5m) == (10000, 200)
    # per call: (1000 * 3 + 200 * 15 + 5000 * 0.3 + 100 * 3.75) / 1e6 = 0.007875 USD
    assert summary.cost_usd == pytest.approx(2 * 0.007875)
    assert (summary.api_requests, summary.tool_calls, summary.tasks_created) == (2, 3, 1)
    assert summary.tools_by_name == {"Read": 1, "TaskCreate": 1, "Edit": 1}
    # five disjoint spans of 2.0000005 s between T0 and T0 + 42.0000005 s
    assert summary.active_seconds == pytest.approx(5 * 2.0000005)
    assert (summary.start_ns, summary.end_ns) == (T0 * SECOND, (T0 + 42) * SECOND + 500)
    assert summary.agent_type == "coder"
    assert summary.data_completeness.sources == ("plan",)


def test_the_shortcut_counts_the_usual_lines_itself():
    adapter = EventAdapter()
    processor = SessionKpiProcessor(ListSink(), SessionKpiConfig(), FakeClock())
    shortcut = PlanShortcut(adapter, processor)
    usual = (tokens("s-1", 0), tool("s-1", 1), tool("s-1", 2, "TaskUpdate"), tokens("s-1", 3, **{"tokens.input": "12"}))
    assert [shortcut.take(orjson.loads(line)) for line in usual] == [True, True, True, True]
    assert processor.stats.events == 4
    assert processor.open_sessions() == 1


@pytest.mark.parametrize(
    "line",
    [
        tokens("s-1", 0, request_id="req-1"),
        tool("s-1", 0, tool_use_id="toolu-1"),
        tokens("s-1", 0, **{"tokens.input": -5}),
        span("hook:skill-activation-prompt", "s-1", 0, {"context.total_tokens": 5}),
        span("claude_code.interaction", "s-1", 0, {}),
        tool("s-1", 0, top={"events": [{"name": "gen_ai.evaluation.result", "time": [T0, 0]}]}),
        tool("s-1", 0, top={"status": {"code": "2"}}),
        tool("s-1", 0, top={"resourceSpans": []}),
        orjson.dumps({"name": "hook:builtin-post-tool", "startTime": [T0, 0], "duration": [1, 0]}) + b"\n",
        orjson.dumps({"name": "hook:builtin-post-tool", "startTime": "2026-02-12T18:28:00Z", "endTime": [T0, 0]}),
        orjson.dumps({"name": "hook:builtin-post-tool", "startTime": [T0, 5], "endTime": [T0, 0]}),
        orjson.dumps({"name": "hook:builtin-post-tool", "startTime": [T0, 0], "endTime": [T0, 1], "attributes": []}),
        orjson.dumps({"name": "hook:builtin-post-tool", "startTime": [T0, 0], "endTime": [T0, 1], "attributes": {}}),
        orjson.dumps({"name": "hook:builtin-post-tool", "startTime": [2**62, 0], "endTime": [2**62, 1]}),
    ],
    ids=[
        "request-id", "tool-use-id", "negative-tokens", "context-span", "claude-code-span",
        "span-events", "status-as-text", "otlp-json-keys", "duration-only", "iso-start", "ends-before-start",
        "attributes-not-object", "no-session", "time-past-2262",
    ],
)  # fmt: skip
def test_other_shapes_are_left_to_the_general_path(line):
    adapter = EventAdapter()
    processor = SessionKpiProcessor(ListSink(), SessionKpiConfig(), FakeClock())
    shortcut = PlanShortcut(adapter, processor)
    shortcut.take(orjson.loads(tool("s-1", 100)))  # the session is open
    assert shortcut.take(orjson.loads(line)) is False
    assert processor.stats.events == 1  # nothing counted for the line left alone
    assert_same([tool("s-1", 100), line])


def test_a_claude_code_resource_keeps_its_source_through_the_shortcut():
    resource = {"attributes": {"service.name": "claude-code"}}
    fast = assert_same([tool("s-1", 0, top={"resource": resource}), tool("s-1", 5, top={"resource": resource})])
    assert fast.summaries[0].data_completeness.sources == ("claude_code",)


def test_session_ends_reopens_and_evictions_match_the_general_path():
    end = orjson.dumps({"timestamp": T0 + 30, "event_name": "session.end", "attributes": {"session.id": "s-1"}})
    lines = [tokens("s-1", 0), tool("s-2", 1), tool("s-3", 2), end + b"\n", tool("s-1", 40), tokens("s-4", 41)]
    lines += [tool(f"s-{n % 5}", 50 + n, "TaskUpdate" if n % 3 else "Write") for n in range(20)]
    fast = assert_same(lines, max_open=2)
    assert fast.processor.stats.reopened_sessions > 0
    assert len(fast.summaries) > 5  # evicted, ended and reopened sessions each closed at least once


STATUSES = [{"code": 2}, {}, None, {"code": 0}, {"code": 2**60}, [2]]
SESSIONS = st.sampled_from(["s-1", "s-2", "s-3", "s-4"])
SHORTCUT_LINES = st.one_of(
    st.builds(tokens, SESSIONS, st.integers(0, 500)),
    st.builds(tokens, SESSIONS, st.integers(0, 500), **{"tokens.output": st.integers(0, 10**6)}),
    st.builds(tool, SESSIONS, st.integers(0, 500), st.sampled_from(["Read", "Edit", "TaskCreate", "TaskUpdate"])),
    st.builds(tool, SESSIONS, st.integers(0, 500), top=st.fixed_dictionaries({"status": st.sampled_from(STATUSES)})),
    st.builds(tool, SESSIONS, st.integers(0, 500), **{"builtin.success": st.sampled_from([False, "false", None, 1])}),
    st.builds(tokens, SESSIONS, st.integers(0, 500), cost_usd=st.sampled_from([0.25, None, "0.5", -1.0])),
    st.builds(tokens, SESSIONS, st.integers(0, 500), **{"tokens.model": st.sampled_from(["other-model", "", None])}),
)


@settings(derandomize=True, max_examples=200, deadline=None, database=None)
@given(
    st.lists(
        st.one_of(SHORTCUT_LINES, plan_lines().map(lambda doc: orjson.dumps(json_round_trip(doc)) + b"\n")), max_size=40
    ),
    st.integers(1, 5),
)
def test_any_mix_of_lines_gives_the_same_sessions_either_way(lines, max_open):
    assert_same(lines, max_open=max_open)
