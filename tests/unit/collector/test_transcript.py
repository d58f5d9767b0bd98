"""Claude Code transcripts as backfill (``kpiloop/collector/transcript.py``), on the captured fixtures.

Per scenario, the transcript alone gives ``expected.json``'s token totals by type, API requests and
errors, tool calls, failures, denials and ``tools_by_name`` exactly, and the same token and tool
KPIs. What a transcript cannot give by itself:

- ``cost_usd``: no per-request cost is written. The session is priced from the price table, and the
  fixtures' model ``claude-opus-5-5`` is not in the built-in table, so replay gives null; with the
  price the CLI used (4 / 20 / 0.2 / 5 USD per million input / output / cache read / cache write,
  an exact fit of every scenario's expected cost) it gives ``expected.json``'s cost to 1e-9. (The
  transcript's ``cost-state`` line does hold the CLI's running total; ``kpiloop reconcile`` shows it.)
- ``active_time_ratio`` and ``duration_seconds``: a transcript's wall clock runs from its first to its
  last timestamp and its tool intervals from ``tool_use`` to ``tool_result`` (permission checks and
  hooks included), not live telemetry's event times and ``duration_ms``.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import JsonlReplay, LineProblem, expand_paths
from kpiloop.collector.plan_jsonl import to_nanos
from kpiloop.collector.records import LogRecord
from kpiloop.collector.transcript import (
    Bounded,
    TranscriptDecoder,
    TranscriptReader,
    is_transcript_line,
    meta_agent_type,
    subagent_transcripts,
)
from kpiloop.model import ApiCall, Event, SessionSummary, ToolCall
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import ModelPrice, SessionKpiConfig
from kpiloop.testing import FakeClock, ListSink
from kpiloop.types import AgentType

ROOT = next((p for p in Path(__file__).resolve().parents if (p / "pyproject.toml").is_file()), None)
FIXTURES = ROOT.parent / "shared" / "fixtures" / "claude-code" if ROOT is not None else None
MISSING = "<claude-code fixtures missing>"
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation")
EXACT_FIELDS = ("api_requests", "api_errors", "tool_calls", "tool_failures", "tool_denials", "tools_by_name")
TRANSCRIPT_KPIS = ("token_efficiency", "cache_efficiency", "error_rate")
CLI_PRICE = ModelPrice(input=4, output=20, cache_read=0.2, cache_write_5m=5, cache_write_1h=8)
SESSION = "sess-1"
T0 = "2026-11-25T20:50:58.000Z"


def scenarios() -> list[str]:
    if FIXTURES is None or not FIXTURES.is_dir():
        return [MISSING]  # one parameter whose test fails: never an empty (skipped) parametrization
    return sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and not p.name.startswith("."))


def fixture_folder(name: str) -> Path:
    if FIXTURES is None or not FIXTURES.is_dir() or name == MISSING:
        pytest.fail(f"Claude Code fixtures not found: expected ../shared/fixtures/claude-code beside {ROOT}")
    return FIXTURES / name


def transcripts(folder: Path) -> list[str]:
    files = sorted(str(p) for p in folder.glob("transcript-*.jsonl"))
    assert files, f"{folder} has no transcript-*.jsonl"
    return files


def expected(folder: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data
    return data


def replay(
    paths: Sequence[str], config: SessionKpiConfig | None = None, agent: str = "default"
) -> tuple[list[SessionSummary], list[LineProblem], list[Event]]:
    """Replay ``paths`` through the real receiver, adapter and processor; every event is kept too."""
    config = config or SessionKpiConfig(default_agent_type=agent)
    summaries: ListSink[SessionSummary] = ListSink()
    processor = SessionKpiProcessor(summaries, config, FakeClock())
    seen: list[Event] = []

    class Tee:
        def consume(self, event: Event) -> None:
            seen.append(event)
            processor.consume(event)

    problems: list[LineProblem] = []
    JsonlReplay(list(paths), Tee(), EventAdapter(AgentType(config.default_agent_type)), problems.append).run()
    processor.close_all()
    return summaries.items, problems, seen


def only(summaries: list[SessionSummary]) -> SessionSummary:
    assert len(summaries) == 1, [s.session_id for s in summaries]
    return summaries[0]


@pytest.mark.parametrize("scenario", scenarios())
def test_the_transcript_alone_gives_expected_tokens_requests_and_tools(scenario):
    folder = fixture_folder(scenario)
    summaries, problems, _ = replay(transcripts(folder))
    assert problems == []  # housekeeping lines (cost-state, attachments, ...) are skipped silently
    truth = expected(folder)
    assert sorted(s.session_id for s in summaries) == sorted(truth)  # subagent usage is the parent's
    for summary in summaries:
        want = truth[summary.session_id]
        tokens = summary.tokens
        got = {"input": tokens.input, "output": tokens.output, "cache_read": tokens.cache_read}
        got["cache_creation"] = tokens.cache_creation
        assert got == {kind: want["tokens"][kind] for kind in TOKEN_TYPES}
        assert tokens.cache_write_1h == 0 and tokens.cache_write_5m == want["tokens"]["cache_creation"]
        assert {field: getattr(summary, field) for field in EXACT_FIELDS} == {f: want[f] for f in EXACT_FIELDS}
        for kpi in TRANSCRIPT_KPIS:
            assert math.isclose(summary.kpis[kpi] or 0.0, want["kpis"][kpi], rel_tol=1e-9), kpi
        assert summary.data_completeness.sources == ("transcript",)


@pytest.mark.parametrize("scenario", scenarios())
def test_cost_is_priced_from_the_table_never_read_from_the_transcript(scenario):
    folder = fixture_folder(scenario)
    unpriced = only(replay(transcripts(folder))[0])
    assert unpriced.cost_usd is None  # claude-opus-5-5 has no built-in price
    assert not unpriced.data_completeness.cost_from_source
    priced = only(replay(transcripts(folder), SessionKpiConfig(prices={"claude-opus-5-5": CLI_PRICE}))[0])
    assert priced.cost_usd is not None
    assert math.isclose(priced.cost_usd, expected(folder)[priced.session_id]["cost_usd"], rel_tol=1e-9)


@pytest.mark.parametrize("scenario", scenarios())
def test_the_transcript_gives_the_same_counts_and_subagents_as_live_telemetry(scenario):
    folder = fixture_folder(scenario)
    earlier = [fixture_folder(name) for name in scenarios() if scenario.startswith("F2-") and name.startswith("F1-")]
    live = only(replay([str(p) for f in [*earlier, folder] for p in sorted(f.glob("otlp-*.jsonl"))])[0])
    backfill = only(replay(transcripts(folder))[0])
    assert backfill.tokens == live.tokens
    assert (backfill.api_requests, backfill.tool_calls, backfill.tool_failures) == (
        live.api_requests,
        live.tool_calls,
        live.tool_failures,
    )
    assert backfill.subagents.keys() == live.subagents.keys()
    for name, usage in live.subagents.items():
        mine = backfill.subagents[name]
        assert (mine.api_requests, mine.tokens, mine.tool_calls) == (usage.api_requests, usage.tokens, usage.tool_calls)
    assert backfill.prompts == live.prompts


@pytest.mark.parametrize("scenario", scenarios())
def test_the_wall_clock_runs_from_the_first_to_the_last_timestamp(scenario):
    folder = fixture_folder(scenario)
    summary = only(replay(transcripts(folder))[0])
    stamps = [
        to_nanos(doc["timestamp"], "timestamp")
        for path in transcripts(folder)
        for doc in map(json.loads, Path(path).read_text(encoding="utf-8").splitlines())
        if doc.get("timestamp") and doc.get("sessionId")
    ]
    assert (summary.start_ns, summary.end_ns) == (min(stamps), max(stamps))


def test_streamed_assistant_messages_count_once_per_message_id():
    folder = fixture_folder("A-http-protobuf-beta")
    lines = [json.loads(line) for line in Path(transcripts(folder)[0]).read_text(encoding="utf-8").splitlines()]
    assistant = [doc for doc in lines if doc.get("type") == "assistant"]
    ids = {doc["message"]["id"] for doc in assistant}
    assert len(assistant) > len(ids) == 5  # the fixture really repeats message ids
    _, _, events = replay(transcripts(folder))
    calls = [e for e in events if isinstance(e, ApiCall)]
    assert sorted(c.request_id or "" for c in calls) == sorted({doc["requestId"] for doc in assistant})
    assert all(c.cost_usd is None and c.source == "transcript" for c in calls)


def test_the_subagent_is_named_by_its_meta_json():
    folder = fixture_folder("H-http-protobuf-subagent")
    subagent_file = next(p for p in transcripts(folder) if "subagent" in Path(p).name)
    assert meta_agent_type(subagent_file) == "general-purpose"
    _, _, events = replay(transcripts(folder))
    calls = [e for e in events if isinstance(e, ApiCall)]
    assert sum(1 for c in calls if c.subagent == "general-purpose") == 5
    tools = sorted((e.tool, e.subagent or "") for e in events if isinstance(e, ToolCall))
    assert [t for t, agent in tools if agent == "general-purpose"] == ["Bash", "Bash", "Read", "Write"]
    assert [t for t, agent in tools if agent == ""] == ["Agent", "Bash", "Bash", "Read"]


def claude_home_layout(home: Path, *, with_meta: bool) -> Path:
    """The H scenario laid out as Claude Code keeps it: ``projects/<project>/<session>.jsonl`` and
    ``<session>/subagents/agent-<id>.jsonl`` (+ ``.meta.json``)."""
    folder = fixture_folder("H-http-protobuf-subagent")
    project = home / ".claude" / "projects" / "-home-dev-project"
    parent = next(p for p in folder.glob("transcript-*.jsonl") if "subagent" not in p.name)
    session = parent.stem.removeprefix("transcript-")
    subagents = project / session / "subagents"
    subagents.mkdir(parents=True)
    shutil.copy(parent, project / f"{session}.jsonl")
    for path in folder.glob("transcript-subagent-*"):
        if with_meta or not path.name.endswith(".meta.json"):
            shutil.copy(path, subagents / path.name.removeprefix("transcript-subagent-"))
    return project


@pytest.mark.parametrize("with_meta", [True, False])
def test_replaying_the_projects_glob_reads_the_subagent_transcripts_beside_a_session(isolated_home, with_meta):
    project = claude_home_layout(isolated_home, with_meta=with_meta)
    files = expand_paths([str(isolated_home / ".claude" / "projects" / "*" / "*.jsonl")])
    session_file = next(project.glob("*.jsonl"))
    assert files[0] == str(session_file) and len(files) == 2
    assert files[1:] == subagent_transcripts(str(session_file))
    summary = only(replay(files)[0])
    truth = expected(fixture_folder("H-http-protobuf-subagent"))[summary.session_id]
    assert summary.api_requests == truth["api_requests"] and summary.tools_by_name == truth["tools_by_name"]
    # without the .meta.json the name comes from the parent's Agent tool result
    assert list(summary.subagents) == ["general-purpose"]
    assert summary.subagents["general-purpose"].api_requests == 5


def line(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "sessionId": SESSION, "uuid": f"u-{kind}-{len(fields)}", "timestamp": T0, **fields}


def assistant(message_id: str, *blocks: dict[str, Any], usage: dict[str, Any] | None = None, **fields: Any):
    message: dict[str, Any] = {"id": message_id, "model": "claude-sonnet-4-5", "content": list(blocks)}
    message["usage"] = usage if usage is not None else {"input_tokens": 10, "output_tokens": 2}
    return line("assistant", message=message, requestId=f"req-{message_id}", **fields)


def tool_use(tool_id: str, name: str = "Bash") -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": name, "input": {"command": "ls"}}


def tool_result(tool_id: str, is_error: bool | None = None, content: str = "ok", **fields: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": tool_id, "content": content}
    if is_error is not None:
        block["is_error"] = is_error
    return line("user", message={"role": "user", "content": [block]}, **fields)


def decode(*docs: dict[str, Any], decoder: TranscriptDecoder | None = None) -> list[LogRecord]:
    decoder = decoder or TranscriptDecoder()
    return [record for doc in docs for record in decoder.records(doc)]


def events_of(*docs: dict[str, Any], agent: str = "default") -> list[Event]:
    reader = TranscriptReader(EventAdapter(AgentType(agent)))
    return [event for doc in docs for event in reader.events(doc, "-")]


def test_a_streamed_message_is_one_api_request():
    block = {"type": "text", "text": "hi"}
    records = decode(assistant("m1", block), assistant("m1", tool_use("t1")), assistant("m1", block))
    assert [r.body for r in records] == ["claude_code.api_request"]
    assert records[0].attributes["request_id"] == "req-m1"


def test_cache_writes_split_by_ttl_when_the_usage_says_so_else_5_minutes():
    ttl = {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20}
    split = {"cache_creation_input_tokens": 30, "cache_creation": ttl}
    calls = events_of(assistant("m1", usage=split), assistant("m2", usage={"cache_creation_input_tokens": 7}))
    assert [(c.cache_write_5m_tokens, c.cache_write_1h_tokens) for c in calls if isinstance(c, ApiCall)] == [
        (10, 20),
        (7, 0),
    ]
    only_split = {"cache_creation": {"ephemeral_5m_input_tokens": 3, "ephemeral_1h_input_tokens": 4}}
    (call,) = [e for e in events_of(assistant("m3", usage=only_split)) if isinstance(e, ApiCall)]
    assert (call.cache_write_5m_tokens, call.cache_write_1h_tokens) == (3, 4)


def test_tool_results_give_success_failure_and_denial():
    rejected = {"decision": "reject", "source": "user"}
    docs = [
        assistant("m1", tool_use("ok"), tool_use("fails"), tool_use("denied"), tool_use("refused", "Edit")),
        tool_result("ok"),
        tool_result("fails", is_error=True, content="Exit code 1\ncat: x: No such file or directory"),
        tool_result("denied", is_error=True, content="no", permissionDecision=rejected),
        tool_result("refused", is_error=True, content="The user doesn't want to proceed with this tool use. STOP"),
    ]
    tools = [e for e in events_of(*docs) if isinstance(e, ToolCall)]
    assert [(t.tool, t.tool_use_id, t.ok, t.denied) for t in tools] == [
        ("Bash", "ok", True, False),
        ("Bash", "fails", False, False),
        ("Bash", "denied", False, True),
        ("Edit", "refused", False, True),
    ]


def test_api_error_messages_are_failed_requests_and_other_synthetic_messages_no_request():
    error = assistant("e1", {"type": "text", "text": "API Error: 529 overloaded"}, isApiErrorMessage=True)
    error["message"]["model"] = "<synthetic>"
    synthetic = assistant("s1", {"type": "text", "text": "No response requested."})
    synthetic["message"]["model"] = "<synthetic>"
    calls = [e for e in events_of(error, synthetic) if isinstance(e, ApiCall)]
    assert [(c.ok, c.input_tokens, c.model) for c in calls] == [(False, 0, "")]


@pytest.mark.parametrize(
    "doc",
    [
        {"type": "summary", "summary": "Fix the build", "leafUuid": "u-9"},
        {"type": "file-history-snapshot", "messageId": "u-9", "snapshot": {}, "isSnapshotUpdate": False},
        {"type": "system", "subtype": "stop_hook_summary", "sessionId": SESSION, "timestamp": T0},
        {"type": "cost-state", "sessionId": SESSION, "totalCostUSD": 0.1, "startTime": 1795639857254},
        {"type": "atis-latch", "sessionId": SESSION, "atis": {}},
    ],
)
def test_lines_without_a_measurement_are_transcript_lines_with_no_records(doc, tmp_path):
    assert is_transcript_line(doc)
    assert decode(doc) == []
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(doc) + "\n", encoding="utf-8")
    summaries, problems, _ = replay([str(path)])
    assert (summaries, problems) == ([], [])  # skipped silently; no usage means an empty session


@pytest.mark.parametrize(
    "doc",
    [
        {"resourceLogs": []},
        {"name": "hook:builtin-post-tool", "startTime": [1, 0], "type": "user"},
        {"timestamp": T0, "body": "x", "attributes": {"session.id": "s"}, "type": "user"},
        {"type": 3, "sessionId": SESSION},
        ["type", "user"],
    ],
)
def test_other_formats_are_not_transcript_lines(doc):
    assert not is_transcript_line(doc)


def test_user_prompts_count_but_subagent_tasks_and_meta_lines_do_not():
    prompt = line("user", message={"role": "user", "content": "Create hello.txt"}, promptId="p1")
    task = line("user", message={"role": "user", "content": "SUBAGENT TASK"}, isSidechain=True, agentId="a1")
    meta = line("user", message={"role": "user", "content": "<command-name>/clear"}, isMeta=True)
    records = decode(prompt, task, meta)
    assert [(r.body, r.attributes["prompt_length"]) for r in records] == [("claude_code.user_prompt", 16)]


def test_events_carry_the_configured_agent_type_even_the_wall_clock_marks():
    early = line("queue-operation", operation="enqueue", timestamp="2026-11-25T20:50:57.000Z")
    late = line("system", subtype="stop_hook_summary", timestamp="2026-11-25T20:51:09.000Z")
    events = events_of(early, assistant("m1"), late, agent="coder")
    assert [type(e).__name__ for e in events] == ["Event", "ApiCall", "Event"]
    assert {e.agent_type for e in events} == {"coder"}
    assert events[0].start_ns < events[1].start_ns < events[2].start_ns


def test_the_api_request_runs_from_its_api_request_line():
    start = {"type": "api-request", "sessionId": SESSION, "id": "r1", "timestamp": "2026-11-25T20:50:57.800Z"}
    (call,) = [e for e in events_of(start, assistant("m1")) if isinstance(e, ApiCall)]
    assert call.end_ns - call.start_ns == 200_000_000


def test_dedup_and_pairing_state_is_bounded():
    table: Bounded[str, int] = Bounded(limit=2)
    for number in range(5):
        table.put(str(number), number)
    assert len(table) == 2 and "0" not in table and table.get("4") == 4
    decoder = TranscriptDecoder(limit=2)
    docs = [assistant(f"m{n}") for n in range(3)]
    assert len(decode(*docs, assistant("m0"), decoder=decoder)) == 4  # m0 was forgotten: a small window
    assert len(decode(assistant("m9"), assistant("m9"), decoder=TranscriptDecoder(limit=2))) == 1
