"""Claude Code's native telemetry through the adapter, on the captured fixtures."""

from __future__ import annotations

import json
from pathlib import Path

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.line_formats import decode_line
from kpiloop.collector.records import DataPointRecord, LogRecord, SpanRecord
from kpiloop.model import ApiCall, Event, SessionStart, ToolCall

ROOT = next(p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file())
FIXTURES = ROOT.parent / "shared" / "fixtures" / "claude-code"


def events(folder: str, *signals: str) -> list[Event]:
    adapter = EventAdapter()
    found: list[Event] = []
    for signal in signals:
        path = FIXTURES / folder / f"otlp-{signal}.jsonl"
        assert path.is_file(), f"missing fixture {path}: shared/ must sit beside the repository"
        for line in path.read_text(encoding="utf-8").splitlines():
            for item in decode_line(json.loads(line)):
                if isinstance(item, SpanRecord):
                    found += adapter.from_span(item)
                elif isinstance(item, LogRecord):
                    found += adapter.from_log(item)
                elif isinstance(item, DataPointRecord):
                    found += adapter.from_point(item)
    return found


def test_subagent_tool_results_are_named_from_the_subagents_api_requests():
    tools = [e for e in events("H-http-protobuf-subagent", "logs") if isinstance(e, ToolCall)]
    by_agent = sorted((t.tool, t.subagent or "") for t in tools)
    # the main agent calls Agent; the general-purpose subagent writes, reads and runs Bash twice
    assert [name for name, agent in by_agent if agent == "general-purpose"] == ["Bash", "Bash", "Read", "Write"]
    assert [name for name, agent in by_agent if agent == ""] == ["Agent", "Bash", "Bash", "Read"]


def test_subagent_api_requests_carry_the_agent_name():
    calls = [e for e in events("H-http-protobuf-subagent", "logs") if isinstance(e, ApiCall)]
    assert sum(1 for c in calls if c.subagent == "general-purpose") == 5
    assert sum(1 for c in calls if c.subagent is None) == 5


def test_a_startup_only_session_is_seen_through_its_session_count_metric():
    starts = [e for e in events("F2-http-protobuf-multiturn-continue", "metrics") if isinstance(e, SessionStart)]
    expected = json.loads((FIXTURES / "F2-http-protobuf-multiturn-continue" / "expected.json").read_text())
    assert {s.session_id for s in starts} - set(expected), "the empty startup-only session opens too"
    assert {s.start_source for s in starts} <= {"fresh", "resume", "continue", None}
