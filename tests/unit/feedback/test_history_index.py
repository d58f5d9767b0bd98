"""The history index: the latest revision of each session's line, by agent type, tailing the file."""

from __future__ import annotations

from pathlib import Path

import orjson

from kpiloop.exporters.history import HistoryWriter
from kpiloop.exporters.history_line import history_line
from kpiloop.feedback.history_index import HistoryIndex
from kpiloop.model import Alert, Assessment, DataCompleteness, SessionSummary, TokenCounts
from kpiloop.testing import make_summary
from kpiloop.types import AgentType, SessionId

MODEL = "claude-sonnet-4-5"


def summary(
    session_id: str,
    agent_type: str = "coder",
    model: str = MODEL,
    token_efficiency: float | None = 0.05,
    assessment: Assessment | None = None,
) -> SessionSummary:
    return make_summary(
        session_id=SessionId(session_id),
        agent_type=AgentType(agent_type),
        model=model,
        tokens=TokenCounts(input=90, output=10, cache_read=900),
        tool_failures=0,
        tool_denials=0,
        tools_by_name={"Read": 3},
        kpis={"token_efficiency": token_efficiency, "error_rate": 0.0},
        cost_per_output_token=0.025,
        data_completeness=DataCompleteness(api_calls=True, tool_calls=True, sources=("genai",)),
        assessment=assessment,
    )


def line(item: SessionSummary, revision: int = 1) -> bytes:
    supersedes = revision - 1 if revision > 1 else None
    return orjson.dumps(history_line(item, revision=revision, supersedes=supersedes)) + b"\n"


def history_path(tmp_path: Path) -> Path:
    path = tmp_path / "history" / "kpis.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data)


def ids(index: HistoryIndex, agent_type: str = "coder") -> list[str]:
    return [record.session_id for record in index.records(agent_type)]


def test_a_missing_file_is_an_empty_history(tmp_path: Path) -> None:
    index = HistoryIndex(tmp_path / "history" / "kpis.jsonl")
    assert index.refresh() == 0
    assert index.records("coder") == []
    assert index.find("a") is None


def test_refresh_reads_only_lines_appended_by_another_writer_since_the_last_call(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path)
    writer.start()
    writer.consume(summary("a"))
    index = HistoryIndex(writer.path)
    assert index.refresh() == 1
    assert index.refresh() == 0
    other = HistoryWriter(tmp_path)  # another process sharing the data dir
    other.start()
    other.consume(summary("b"))
    other.consume(summary("c", agent_type="reviewer"))
    assert index.refresh() == 2
    assert ids(index) == ["a", "b"]
    assert ids(index, "reviewer") == ["c"]


def test_the_latest_revision_replaces_earlier_ones_and_moves_last(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    path.write_bytes(line(summary("a", token_efficiency=0.01)) + line(summary("b")))
    index = HistoryIndex(path)
    index.refresh()
    append(path, line(summary("a", token_efficiency=0.02), revision=2))
    index.refresh()
    assert ids(index) == ["b", "a"]
    found = index.find("a")
    assert found is not None and found.kpis["token_efficiency"] == 0.02
    assert [r.kpis["token_efficiency"] for r in index.records("coder")] == [0.05, 0.02]


def test_a_revision_read_in_the_same_refresh_also_replaces_the_earlier_line(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    path.write_bytes(line(summary("a", token_efficiency=0.01)) + line(summary("a", token_efficiency=0.03), revision=2))
    index = HistoryIndex(path)
    assert index.refresh() == 2
    assert [(r.session_id, r.kpis["token_efficiency"]) for r in index.records("coder")] == [("a", 0.03)]


def test_malformed_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    bad = [
        b"not json at all\n",
        b"[1, 2, 3]\n",
        b'{"agent_type": "coder", "kpis": {}}\n',  # no session_id
        b'{"session_id": "x", "kpis": {}}\n',  # no agent_type
        b'{"session_id": "x", "agent_type": "coder", "kpis": "ab"}\n',
        b'{"session_id": "x", "agent_type": "coder", "kpis": {"token_efficiency": "0.5"}}\n',
        b'{"session_id": "x", "agent_type": "coder", "baselines": {"token_efficiency": "high"}}\n',
        b'{"session_id": "x", "agent_type": "coder", "alerts": ["CRITICAL"]}\n',
    ]
    path.write_bytes(line(summary("a")) + b"".join(bad) + line(summary("b")))
    index = HistoryIndex(path)
    assert index.refresh() == 2
    assert ids(index) == ["a", "b"]
    assert index.malformed_lines == len(bad)


def test_a_partial_last_line_waits_until_it_is_complete(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    whole = line(summary("b"))
    path.write_bytes(line(summary("a")) + whole[:25])
    index = HistoryIndex(path)
    assert index.refresh() == 1
    assert (ids(index), index.malformed_lines) == (["a"], 0)
    append(path, whole[25:])  # the writer finishes its line
    assert index.refresh() == 1
    assert ids(index) == ["a", "b"]
    assert index.malformed_lines == 0


def test_a_partial_line_left_by_a_crash_is_skipped_once_the_next_writer_ends_it(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    path.write_bytes(line(summary("a")) + b'{"session_id": "half-writ')
    index = HistoryIndex(path)
    index.refresh()
    writer = HistoryWriter(tmp_path)  # cuts the torn line off (kept aside), so its own line stays whole
    writer.start()
    writer.consume(summary("c"))
    assert index.refresh() == 1
    assert ids(index) == ["a", "c"]
    assert index.malformed_lines == 0


def test_each_agent_type_keeps_only_its_most_recent_sessions(tmp_path: Path) -> None:
    path = history_path(tmp_path)
    path.write_bytes(
        b"".join(line(summary(f"c{i}")) for i in range(5))
        + b"".join(line(summary(f"r{i}", "reviewer")) for i in range(2))
    )
    index = HistoryIndex(path, max_per_agent=3)
    assert index.refresh() == 7
    assert ids(index) == ["c2", "c3", "c4"]
    assert ids(index, "reviewer") == ["r0", "r1"]
    assert index.find("c0") is None
    append(path, line(summary("c5")))
    index.refresh()
    assert ids(index) == ["c3", "c4", "c5"]


def test_records_of_one_model_and_the_alerts_feedback_needs(tmp_path: Path) -> None:
    alerts = (
        Alert("token_efficiency", "CRITICAL", "deviation", 0.001, 0.05, 4.2),
        Alert("error_rate", "CRITICAL", "threshold", 0.3),
        Alert("cache_efficiency", "WARNING", "deviation", 0.5, 0.9, 2.5),
        Alert("active_time_ratio", "INFO", "threshold_unfit", 0.1),
    )
    assessment = Assessment("CRITICAL", {"token_efficiency": 0.05}, alerts, baseline_status="converged")
    path = history_path(tmp_path)
    path.write_bytes(line(summary("a", assessment=assessment)) + line(summary("b", model="claude-opus-4-5")))
    index = HistoryIndex(path)
    index.refresh()
    assert [r.session_id for r in index.records("coder", "claude-opus-4-5")] == ["b"]
    record = index.records("coder", MODEL)[0]
    assert record.critical_kpis == {"token_efficiency"}
    assert record.threshold_kpis == {"error_rate", "active_time_ratio"}
    assert record.baselines == {"token_efficiency": 0.05}
    assert record.date == "2026-02-12T18:28:00Z"


def test_cost_per_output_token_kept_beside_the_ten_kpis_is_indexed_as_a_kpi(tmp_path: Path) -> None:
    writer = HistoryWriter(tmp_path)
    writer.start()
    writer.consume(summary("s1"))
    index = HistoryIndex(writer.path)
    index.refresh()
    (record,) = index.records("coder")
    line = orjson.loads(writer.path.read_bytes())
    assert line["cost_per_output_token"] is not None
    assert record.kpis["cost_per_output_token"] == line["cost_per_output_token"]
    assert record.kpis["token_efficiency"] == line["kpis"]["token_efficiency"]
