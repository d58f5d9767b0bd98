from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import JsonlReplay, LineProblem, ReplayStats, expand_paths
from kpiloop.model import ApiCall, Evaluation, Event, SessionEnd, ToolCall
from kpiloop.testing import ListSink

T0 = 1_770_920_880
SECOND = 1_000_000_000


def plan_span(name: str, attributes: dict[str, Any], start: int = T0) -> dict[str, Any]:
    return {
        "name": name,
        "startTime": [start, 0],
        "endTime": [start + 1, 0],
        "attributes": {"session.id": "s-1", "agent.type": "coder", **attributes},
        "status": {"code": 1},
    }


def token_span(tokens_input: object = 10, start: int = T0) -> dict[str, Any]:
    return plan_span("hook:token-metrics-extraction", {"tokens.input": tokens_input, "tokens.output": 2}, start)


def tool_span(tool: str = "Read") -> dict[str, Any]:
    return plan_span("hook:builtin-post-tool", {"builtin.tool": tool, "builtin.success": True})


def evaluation_line() -> dict[str, Any]:
    return {
        "timestamp": "2026-02-12T18:30:00Z",
        "name": "gen_ai.evaluation.result",
        "attributes": {"gen_ai.evaluation.name": "relevance", "gen_ai.evaluation.score.value": 0.9},
        "session.id": "s-1",
    }


def otlp_traces(*spans: dict[str, Any]) -> dict[str, Any]:
    resource = {"attributes": [{"key": "session.id", "value": {"stringValue": "s-otlp"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": list(spans)}]}]}


def otlp_span(
    name: str, attributes: dict[str, Any] | None = None, start: str = "1770920880000000000"
) -> dict[str, Any]:
    attrs = [{"key": key, "value": value} for key, value in (attributes or {}).items()]
    return {"name": name, "startTimeUnixNano": start, "endTimeUnixNano": "1770920881000000000", "attributes": attrs}


def otlp_session_end_log() -> dict[str, Any]:
    record = {
        "timeUnixNano": "1770920900000000000",
        "eventName": "session.end",
        "attributes": [{"key": "session.id", "value": {"stringValue": "s-otlp"}}],
    }
    return {"resourceLogs": [{"scopeLogs": [{"logRecords": [record]}]}]}


def line(doc: object) -> str:
    return json.dumps(doc)


def write(path: Path, *lines: str, end: str = "\n") -> Path:
    path.write_text(end.join(lines) + end, encoding="utf-8")
    return path


class Replay:
    """A replay wired to a ListSink that records the problems it reports."""

    def __init__(self, *paths: str | Path) -> None:
        self.sink: ListSink[Event] = ListSink()
        self.adapter = EventAdapter()
        self.problems: list[LineProblem] = []
        self.progress: list[int] = []
        self.replay = JsonlReplay(
            [str(p) for p in paths], self.sink, self.adapter, self.problems.append, self.progress.append
        )

    def run(self) -> ReplayStats:
        self.replay.start()
        stats = self.replay.run()
        self.replay.shutdown()
        return stats

    def where(self) -> list[tuple[str, int]]:
        return [(p.file, p.line) for p in self.problems]


def test_malformed_lines_are_reported_with_file_and_line_and_the_replay_continues(tmp_path: Path) -> None:
    path = write(
        tmp_path / "traces-2026-02-12.jsonl",
        line(token_span(10)),
        '{"name": "hook:token-metrics-extraction", "startTime": [1, 0',
        line({"foo": 1}),
        line([1, 2, 3]),
        line(token_span("abc")),
        line(tool_span("Edit")),
    )
    replay = Replay(path)
    stats = replay.run()

    assert replay.where() == [(str(path), 2), (str(path), 3), (str(path), 4), (str(path), 5)]
    messages = [p.message for p in replay.problems]
    assert messages[0].startswith("invalid JSON")
    assert "unrecognized line" in messages[1]
    assert "JSON object" in messages[2]
    assert "tokens.input" in messages[3]
    assert [type(e) for e in replay.sink.items] == [ApiCall, ToolCall]
    tool = replay.sink.items[1]
    assert isinstance(tool, ToolCall) and tool.tool == "Edit"
    assert (stats.files, stats.lines, stats.records, stats.events, stats.problems) == (1, 6, 3, 2, 4)
    assert stats.bytes == path.stat().st_size
    assert replay.adapter.stats.rejected == {"unrecognized": 1, "not_an_object": 1, "bad_value": 1}


def test_blank_lines_are_skipped_but_counted_and_numbering_stays_true(tmp_path: Path) -> None:
    path = write(tmp_path / "t.jsonl", "", "   \t", line(token_span(1)), "", "{oops")
    replay = Replay(path)
    stats = replay.run()
    assert replay.where() == [(str(path), 5)]
    assert len(replay.sink.items) == 1
    assert (stats.lines, stats.records, stats.problems) == (5, 1, 1)


def test_crlf_line_endings_and_a_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_bytes(f"{line(token_span(1))}\r\n\r\n{line(token_span(2))}".encode())
    replay = Replay(path)
    replay.run()
    assert replay.problems == []
    assert [e.input_tokens for e in replay.sink.items if isinstance(e, ApiCall)] == [1, 2]


def test_otlp_and_plan_lines_mixed_in_one_file(tmp_path: Path) -> None:
    usage: dict[str, Any] = {
        "gen_ai.usage.input_tokens": {"intValue": "100"},
        "gen_ai.usage.cache_read.input_tokens": {"intValue": 60},
        "gen_ai.usage.output_tokens": {"intValue": "5"},
    }
    path = write(
        tmp_path / "mixed.jsonl",
        line(token_span(10)),
        line(otlp_traces(otlp_span("chat", usage), otlp_span("bad", start="soon"), otlp_span("ignored"))),
        line(evaluation_line()),
        line(otlp_session_end_log()),
    )
    replay = Replay(path)
    stats = replay.run()

    assert replay.where() == [(str(path), 2)]
    assert "startTimeUnixNano" in replay.problems[0].message
    events = replay.sink.items
    assert [type(e) for e in events] == [ApiCall, ApiCall, Evaluation, SessionEnd]
    plan_call, genai_call, evaluation, end = events
    assert isinstance(plan_call, ApiCall) and (plan_call.session_id, plan_call.source) == ("s-1", "plan")
    assert isinstance(genai_call, ApiCall)
    assert (genai_call.session_id, genai_call.source, genai_call.input_tokens) == ("s-otlp", "genai", 40)
    assert isinstance(evaluation, Evaluation)
    assert (evaluation.name, evaluation.score, evaluation.start_ns) == ("relevance", 0.9, (T0 + 120) * SECOND)
    assert isinstance(end, SessionEnd) and end.session_id == "s-otlp"
    assert (stats.records, stats.events, stats.problems) == (5, 4, 1)
    assert replay.adapter.stats.rejected == {"malformed": 1}
    assert replay.adapter.stats.ignored == 1


def test_several_files_in_order_with_their_own_line_numbers(tmp_path: Path) -> None:
    first = write(tmp_path / "a.jsonl", line(token_span(1)), "not json")
    second = write(tmp_path / "b.jsonl", "not json either", line(token_span(2)), line(token_span(-1)))
    replay = Replay(second, first)
    stats = replay.run()
    assert replay.where() == [(str(second), 1), (str(second), 3), (str(first), 2)]
    assert [e.input_tokens for e in replay.sink.items if isinstance(e, ApiCall)] == [2, 1]
    assert stats.files == 2
    assert replay.progress[-1] == first.stat().st_size + second.stat().st_size


def test_progress_is_reported_every_1024_lines_and_at_the_end(tmp_path: Path) -> None:
    path = write(tmp_path / "big.jsonl", *[""] * 1999, line(token_span(1)))
    replay = Replay(path)
    replay.run()
    assert len(replay.progress) == 2
    assert replay.progress[0] == 1024
    assert replay.progress[-1] == path.stat().st_size


def test_records_without_a_session_produce_no_events_and_no_problem(tmp_path: Path) -> None:
    span = token_span(3)
    del span["attributes"]["session.id"]
    path = write(tmp_path / "t.jsonl", line(span))
    replay = Replay(path)
    stats = replay.run()
    assert replay.sink.items == []
    assert replay.problems == []
    assert (stats.records, replay.adapter.stats.unattributed) == (1, 1)


class FakeStdin:
    """Stands in for sys.stdin: JsonlReplay reads the binary ``buffer``."""

    def __init__(self, data: bytes) -> None:
        self.buffer = io.BytesIO(data)


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    data = f"{line(token_span(4))}\n{{broken\n{line(tool_span())}\n".encode()
    monkeypatch.setattr(sys, "stdin", FakeStdin(data))
    replay = Replay("-")
    stats = replay.run()
    assert replay.where() == [("-", 2)]
    assert [type(e) for e in replay.sink.items] == [ApiCall, ToolCall]
    assert (stats.files, stats.lines, stats.bytes) == (1, 3, len(data))


@pytest.mark.parametrize(
    "request_doc",
    [
        {"resourceSpans": [{"scopeSpans": ["not an object"]}]},
        {"resourceLogs": [{"resource": {"attributes": [{"key": "n", "value": {"intValue": "x"}}]}}]},
        {"resourceMetrics": 7},
    ],
)
def test_an_otlp_request_of_the_wrong_shape_is_one_problem_not_a_crash(tmp_path: Path, request_doc: object) -> None:
    path = write(tmp_path / "t.jsonl", line(request_doc), line(token_span(1)))
    replay = Replay(path)
    replay.run()
    assert replay.where() == [(str(path), 1)]
    assert len(replay.sink.items) == 1


# expand_paths


def test_expand_paths_sorts_each_glob_and_keeps_the_given_order(tmp_path: Path) -> None:
    for name in ("traces-2026-02-13.jsonl", "traces-2026-02-12.jsonl", "notes.txt", "evaluations-2026-02-12.jsonl"):
        write(tmp_path / name, "")
    (tmp_path / "dir.jsonl").mkdir()
    explicit = str(tmp_path / "notes.txt")
    paths = expand_paths([explicit, str(tmp_path / "*.jsonl"), "-"])
    assert paths == [
        explicit,
        str(tmp_path / "evaluations-2026-02-12.jsonl"),
        str(tmp_path / "traces-2026-02-12.jsonl"),
        str(tmp_path / "traces-2026-02-13.jsonl"),
        "-",
    ]


def test_expand_paths_character_class_and_question_mark(tmp_path: Path) -> None:
    for name in ("t1.jsonl", "t2.jsonl", "t3.jsonl", "t10.jsonl"):
        write(tmp_path / name, "")
    assert expand_paths([str(tmp_path / "t?.jsonl")]) == [str(tmp_path / f"t{i}.jsonl") for i in (1, 2, 3)]
    assert expand_paths([str(tmp_path / "t[13].jsonl")]) == [str(tmp_path / "t1.jsonl"), str(tmp_path / "t3.jsonl")]


def test_expand_paths_missing_path_is_named(tmp_path: Path) -> None:
    write(tmp_path / "present.jsonl", "")
    missing = str(tmp_path / "absent.jsonl")
    with pytest.raises(FileNotFoundError, match="absent.jsonl"):
        expand_paths([str(tmp_path / "present.jsonl"), missing])


def test_expand_paths_glob_matching_nothing_is_named(tmp_path: Path) -> None:
    pattern = str(tmp_path / "*.jsonl")
    with pytest.raises(FileNotFoundError) as caught:
        expand_paths([pattern])
    assert pattern in str(caught.value)


def test_expand_paths_rejects_a_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        expand_paths([str(tmp_path)])


def test_expand_paths_then_replay_reads_files_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "b.jsonl", line(token_span(2)))
    write(tmp_path / "a.jsonl", line(token_span(1)))
    write(tmp_path / "c.jsonl", line(token_span(3)))
    replay = Replay(*expand_paths([str(tmp_path / "*.jsonl")]))
    replay.run()
    assert [e.input_tokens for e in replay.sink.items if isinstance(e, ApiCall)] == [1, 2, 3]
