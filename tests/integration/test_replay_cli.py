"""``kpiloop replay`` as a user runs it: a real process, real files, history checked line by line."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from kpiloop.sample_sessions import (
    EN_SESSION_ID,
    EN_START_NS,
    SECOND,
    PlanSession,
    en_session,
    healthy_session,
    write_daily_files,
)

PLAN_PRICE_OPUS_4_6 = (5.0, 25.0, 0.5)  # USD per million: input, output, cache read


def kpiloop(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI with the test's HOME and KPILOOP_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "kpiloop", *args],
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def history(data_dir: Path) -> list[dict]:
    return [orjson.loads(line) for line in (data_dir / "history" / "kpis.jsonl").read_bytes().splitlines()]


@pytest.fixture
def sessions() -> list[PlanSession]:
    return [en_session(), *(healthy_session(seed, EN_START_NS + (9 + seed) * 3600 * SECOND) for seed in (1, 2))]


@pytest.fixture
def files(tmp_path, sessions) -> list[Path]:
    return write_daily_files(tmp_path / "telemetry", sessions)


def by_session(lines: list[dict]) -> dict[str, dict]:
    return {line["session_id"]: line for line in lines}


def test_the_plans_en_session_gives_the_post_mortem_numbers(files, tmp_path):
    names = sorted(path.name for path in files)
    assert names == [
        "evaluations-2026-02-13.jsonl",
        "traces-2026-02-12.jsonl",
        "traces-2026-02-13.jsonl",
    ]  # the session spans two daily files; its evaluations come in a later file
    data_dir = tmp_path / "data"
    done = kpiloop("replay", "--data-dir", str(data_dir), *map(str, files))
    assert done.returncode == 0, done.stderr
    line = by_session(history(data_dir))[EN_SESSION_ID]

    assert line["agent_type"] == "translation-agent"
    assert line["model"] == "claude-opus-4-6"
    assert line["date"] == "2026-02-12T18:28:00Z"
    assert line["duration_seconds"] == 30_960.0
    assert line["tokens"] == {
        "input": 169_830, "output": 10_000, "cache_read": 9_820_170,
        "cache_creation": 0, "cache_creation_5m": 0, "cache_creation_1h": 0,
    }  # fmt: skip
    assert (line["api_requests"], line["tool_calls"], line["tool_failures"], line["api_errors"]) == (20, 41, 0, 0)
    assert line["tools_by_name"] == {"TaskCreate": 12, "TaskUpdate": 14, "Read": 1, "Write": 3, "Edit": 6, "Bash": 5}
    kpis = line["kpis"]
    # 10,000 / (169,830 + 10,000 + 9,820,170) = 10,000 / 10,000,000
    assert math.isclose(kpis["token_efficiency"], 0.001, rel_tol=1e-12)
    # 9,820,170 / (169,830 + 9,820,170 + 0)
    assert math.isclose(kpis["cache_efficiency"], 0.983, rel_tol=1e-12)
    # (12 TaskCreate + 14 TaskUpdate) / (1 Read + 3 Write + 6 Edit + 5 Bash)
    assert math.isclose(kpis["tool_overhead_ratio"], 26 / 15, rel_tol=1e-12)
    assert kpis["error_rate"] == 0.0  # UNSET spans are not failures
    # 20 x 300 s + 40 x 19.8 s + 19.2 s = 6,811.2 s of 30,960 s
    assert math.isclose(kpis["active_time_ratio"], 0.22, rel_tol=1e-12)
    assert kpis["task_completion_rate"] == 1.0  # no status visible: min(14 / 12, 1)
    assert math.isclose(kpis["quality_relevance"], 0.95)
    assert math.isclose(kpis["quality_faithfulness"], 0.94)
    assert math.isclose(kpis["quality_coherence"], 0.93)
    assert math.isclose(kpis["quality_hallucination"], 0.03)
    price_in, price_out, price_read = PLAN_PRICE_OPUS_4_6
    cost = (169_830 * price_in + 10_000 * price_out + 9_820_170 * price_read) / 1e6
    assert math.isclose(line["cost_usd"], cost, rel_tol=1e-12)
    assert line["data_completeness"]["evaluations"] is True
    assert line["close_reason"] == "end_of_input"


def test_healthy_sessions_match_their_spans_computed_by_hand(files, sessions, tmp_path):
    data_dir = tmp_path / "data"
    assert kpiloop("replay", "--data-dir", str(data_dir), *map(str, files)).returncode == 0
    lines = by_session(history(data_dir))
    for session in sessions[1:]:
        token_spans = [s["attributes"] for s in session.spans if s["name"] == "hook:token-metrics-extraction"]
        out = sum(a["tokens.output"] for a in token_spans)
        inp = sum(a["tokens.input"] for a in token_spans)
        read = sum(a["tokens.cache_read"] for a in token_spans)
        write = sum(a["tokens.cache_creation"] for a in token_spans)
        failed = sum(1 for s in session.spans if s["attributes"].get("builtin.success") is False)
        tools = sum(1 for s in session.spans if s["name"] == "hook:builtin-post-tool")
        kpis = lines[session.session_id]["kpis"]
        assert math.isclose(kpis["token_efficiency"], out / (inp + out + read + write), rel_tol=1e-12)
        assert math.isclose(kpis["cache_efficiency"], read / (inp + read + write), rel_tol=1e-12)
        assert math.isclose(kpis["error_rate"], failed / (tools + len(token_spans)), rel_tol=1e-12)


def test_replay_is_idempotent_and_force_supersedes(files, tmp_path):
    data_dir = tmp_path / "data"
    args = ("replay", "--data-dir", str(data_dir), *map(str, files))
    assert kpiloop(*args).returncode == 0
    again = kpiloop(*args)
    assert again.returncode == 0
    assert "3 already in history" in again.stdout
    assert len(history(data_dir)) == 3
    forced = kpiloop(*args, "--force")
    assert forced.returncode == 0
    lines = history(data_dir)
    assert len(lines) == 6
    assert {(x["revision"], x["supersedes"]) for x in lines[3:]} == {(2, 1)}


def test_a_malformed_line_is_reported_with_file_and_line_and_skipped(files, tmp_path):
    broken = files[1]
    content = broken.read_bytes().splitlines(keepends=True)
    content.insert(2, b'{"name": "hook:token-metrics-extraction", "startTime": [1, 0], "attributes": \n')
    content.insert(4, b'{"name": "hook:token-metrics-extraction", "startTime": [1, 0], "endTime": [2, 0], '
                      b'"attributes": {"session.id": "x", "tokens.output": -5}}\n')  # fmt: skip
    broken.write_bytes(b"".join(content))
    data_dir = tmp_path / "data"
    done = kpiloop("replay", "--data-dir", str(data_dir), *map(str, files))
    assert done.returncode == 0
    assert f"{broken}:3: skipped: invalid JSON" in done.stderr
    assert f"{broken}:5: skipped: tokens.output must be a non-negative integer" in done.stderr
    assert EN_SESSION_ID in by_session(history(data_dir))


def test_stdin_and_kpiloop_home(files, isolated_home):
    data = b"".join(path.read_bytes() for path in files)
    done = kpiloop("replay", "-", stdin=data)
    assert done.returncode == 0, done.stderr
    assert EN_SESSION_ID in by_session(history(isolated_home / "kpiloop-data"))
    assert not (isolated_home / ".claude").exists()


def test_a_missing_path_is_a_one_line_error(tmp_path):
    done = kpiloop("replay", "--data-dir", str(tmp_path), str(tmp_path / "nope-*.jsonl"))
    assert done.returncode == 2
    assert done.stderr.strip() == f"kpiloop: no such file: {tmp_path / 'nope-*.jsonl'}"


def test_the_shipped_examples_print_their_kpi_table(tmp_path, golden):
    examples = sorted(str(p) for p in (Path(__file__).parents[2] / "examples").glob("*.jsonl"))
    done = kpiloop("replay", "--data-dir", str(tmp_path / "data"), *examples)
    assert done.returncode == 0, done.stderr
    table = done.stdout.replace(str(tmp_path / "data"), "<data-dir>")
    golden.check("replay_examples.txt", table)
