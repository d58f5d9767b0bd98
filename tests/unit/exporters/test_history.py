from __future__ import annotations

import multiprocessing
from pathlib import Path

import orjson

from kpiloop.exporters.history import HistoryWriter
from kpiloop.exporters.history_line import history_line
from kpiloop.model import KPI_NAMES, DataCompleteness, SessionSummary, TokenCounts
from kpiloop.testing import make_summary
from kpiloop.types import SessionId

HISTORY_KEYS = {
    "session_id", "date", "agent_type", "model", "duration_seconds", "kpis", "baselines", "optimizations_active",
    "alert_level", "alerts", "tokens", "cost_usd", "cost_per_output_token", "api_requests", "api_errors", "tool_calls",
    "tool_failures", "tool_denials", "tools_by_name", "tasks", "active_seconds", "subagents", "data_completeness",
    "close_reason", "revision", "supersedes", "schema_version",
}  # fmt: skip


def summary(session_id: str = "s-1", output: int = 10) -> SessionSummary:
    return make_summary(
        session_id=SessionId(session_id),
        tokens=TokenCounts(input=90, output=output, cache_read=900, cache_write_5m=5, cache_write_1h=5),
        kpis={"token_efficiency": 0.01, "error_rate": 0.2},
        cost_per_output_token=0.025,
        data_completeness=DataCompleteness(api_calls=True, tool_calls=True, sources=("genai",)),
    )


def read_lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_history_line_has_the_design_fields_and_all_ten_kpis():
    line = history_line(summary())
    assert set(line) == HISTORY_KEYS
    assert list(line["kpis"]) == list(KPI_NAMES)
    assert line["kpis"]["token_efficiency"] == 0.01
    assert line["kpis"]["quality_relevance"] is None
    assert line["tokens"] == {
        "input": 90, "output": 10, "cache_read": 900, "cache_creation": 10,
        "cache_creation_5m": 5, "cache_creation_1h": 5,
    }  # fmt: skip
    assert line["date"] == "2026-02-12T18:28:00Z"
    assert line["duration_seconds"] == 60.0
    assert line["data_completeness"]["sources"] == ["genai"]
    assert (line["revision"], line["supersedes"]) == (1, None)


def test_a_session_closed_again_supersedes_its_earlier_line(tmp_path):
    writer = HistoryWriter(tmp_path)
    writer.start()
    writer.consume(summary("a"))
    writer.consume(summary("b"))
    writer.consume(summary("a", output=20))
    lines = read_lines(writer.path)
    assert [(x["session_id"], x["revision"], x["supersedes"]) for x in lines] == [
        ("a", 1, None), ("b", 1, None), ("a", 2, 1),
    ]  # fmt: skip
    assert lines[2]["tokens"]["output"] == 20


def test_revisions_continue_from_lines_another_writer_appended(tmp_path):
    first, second = HistoryWriter(tmp_path), HistoryWriter(tmp_path)
    first.start()
    second.start()
    first.consume(summary("a"))
    second.consume(summary("a"))
    assert [x["revision"] for x in read_lines(first.path)] == [1, 2]
    assert second.contains("a") and not second.contains("zzz")


def test_a_partial_last_line_from_a_crash_does_not_corrupt_the_next_line(tmp_path):
    path = tmp_path / "history" / "kpis.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(orjson.dumps(history_line(summary("old"))) + b"\n" + b'{"session_id": "half-writ')
    writer = HistoryWriter(tmp_path)
    writer.start()
    writer.consume(summary("new"))
    assert [x["session_id"] for x in read_lines(path)] == ["old", "new"]  # the torn line is cut off...
    (aside,) = path.parent.glob("kpis.jsonl.corrupt-*")
    assert aside.read_bytes() == b'{"session_id": "half-writ'  # ...and kept aside
    assert writer.contains("old") and writer.contains("new")


def _append_many(data_dir: str, worker: int, count: int) -> None:
    writer = HistoryWriter(Path(data_dir))
    writer.start()
    for index in range(count):
        writer.consume(summary(f"w{worker}-{index}"))
        writer.consume(summary("shared"))


def test_concurrent_processes_never_lose_or_interleave_lines(tmp_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(tmp_path), w, 25)) for w in range(4)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(60)
        assert process.exitcode == 0
    lines = read_lines(tmp_path / "history" / "kpis.jsonl")
    assert len(lines) == 4 * 25 * 2
    own = {x["session_id"] for x in lines if x["session_id"] != "shared"}
    assert own == {f"w{w}-{i}" for w in range(4) for i in range(25)}
    shared_revisions = sorted(x["revision"] for x in lines if x["session_id"] == "shared")
    assert shared_revisions == list(range(1, 101))
