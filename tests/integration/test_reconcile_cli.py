"""``kpiloop reconcile`` as a user runs it: live telemetry replayed into a data dir (all of it, or only
part, as when an exporter lost batches), then compared with the session's Claude Code transcript."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

CHAINED = re.compile(r"^(?P<letter>[A-Z])(?P<number>\d+)-")
COUNT_ROWS = {
    "input tokens": ("input",),
    "output tokens": ("output",),
    "cache read tokens": ("cache_read",),
    "cache write 5m tokens": ("cache_creation",),
    "all tokens": ("input", "output", "cache_read", "cache_creation"),
}


def kpiloop(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI with the test's HOME and KPILOOP_HOME."""
    return subprocess.run(
        [sys.executable, "-m", "kpiloop", *args],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=120,
        check=False,
    )


def chain(root: Path, name: str) -> list[Path]:
    """The folders whose telemetry makes the scenario's session: ``F2-...`` resumes ``F1-...``."""
    match = CHAINED.match(name)
    if match is None or int(match["number"]) <= 1:
        return [root / name]
    prefix = f"{match['letter']}{int(match['number']) - 1}-"
    (before,) = [p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return [*chain(root, before), root / name]


def expected_session(folder: Path) -> tuple[str, dict[str, Any]]:
    ((session_id, truth),) = orjson.loads((folder / "expected.json").read_bytes()).items()
    return session_id, truth


def replay(data_dir: Path, files: list[Path]) -> dict[str, Any]:
    done = kpiloop("replay", "--data-dir", str(data_dir), *map(str, files))
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stderr, done.stderr
    (line,) = [orjson.loads(raw) for raw in (data_dir / "history" / "kpis.jsonl").read_bytes().splitlines()]
    return dict(line)


def reconcile(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return kpiloop("reconcile", "--data-dir", str(data_dir), *args)


def table(output: str) -> dict[str, list[str]]:
    """The table rows of ``kpiloop reconcile`` output: label → [telemetry, transcript, gap, gap %]."""
    rows = {}
    for text in output.splitlines():
        match = re.match(r"^([a-z][a-z0-9 ]+?)\s{2,}(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", text)
        if match:
            rows[match[1]] = [match[i] for i in range(2, 6)]
    return rows


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


def test_full_telemetry_reconciles_with_the_transcript_without_a_gap(
    claude_code_fixtures, claude_code_scenario, tmp_path
):
    folders = chain(claude_code_fixtures, claude_code_scenario)
    session_id, truth = expected_session(folders[-1])
    data_dir = tmp_path / "data"
    replay(data_dir, [p for folder in folders for p in sorted(folder.glob("otlp-*.jsonl"))])

    done = reconcile(data_dir, session_id, "--transcripts", str(folders[-1] / "transcript-*.jsonl"))

    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert set(COUNT_ROWS) | {"api requests", "tool calls", "tool failures", "cost usd"} <= set(rows), done.stdout
    for label, (telemetry, transcript, gap, _) in rows.items():
        if label != "cost usd":
            assert (number(gap), telemetry) == (0, transcript), f"{label}: {done.stdout}"
    assert number(rows["all tokens"][0]) == sum(truth["tokens"].values())
    assert number(rows["api requests"][1]) == truth["api_requests"]
    assert number(rows["tool calls"][1]) == truth["tool_calls"]
    assert float(rows["cost usd"][1]) == pytest.approx(truth["cost_usd"], abs=1e-6)  # the CLI's cost-state total
    assert "no gap" in done.stdout
    assert "GAP" not in done.stdout


def test_dropped_telemetry_shows_the_missing_tokens_requests_and_tools(
    claude_code_fixtures, claude_code_scenario, tmp_path
):
    folders = chain(claude_code_fixtures, claude_code_scenario)
    session_id, truth = expected_session(folders[-1])
    kept = []
    for folder in folders:  # an exporter that lost the later log batches (and every metric and span)
        lines = (folder / "otlp-logs.jsonl").read_bytes().splitlines(keepends=True)
        part = tmp_path / f"{folder.name}-logs-part.jsonl"
        part.write_bytes(b"".join(lines[: len(lines) // 2]))
        kept.append(part)
    data_dir = tmp_path / "data"
    line = replay(data_dir, kept)
    missing = {kind: truth["tokens"][kind] - line["tokens"][kind] for kind in truth["tokens"]}
    assert sum(missing.values()) > 0, "the test must drop some spend"

    done = reconcile(data_dir, session_id, "--transcripts", str(folders[-1] / "transcript-*.jsonl"))

    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    for label, kinds in COUNT_ROWS.items():
        telemetry, transcript, gap, percent = rows[label]
        assert number(telemetry) == sum(line["tokens"][k] for k in kinds), label
        assert number(transcript) == sum(truth["tokens"][k] for k in kinds), label
        assert number(gap) == sum(missing[k] for k in kinds), label
    total_missing = sum(missing.values())
    share = 100 * total_missing / sum(truth["tokens"].values())
    assert rows["all tokens"][3] == f"{share:.1f}%"
    assert number(rows["api requests"][2]) == truth["api_requests"] - line["api_requests"] > 0
    assert number(rows["tool calls"][2]) == truth["tool_calls"] - line["tool_calls"]
    assert f"all tokens +{total_missing:,} ({share:.1f}%)" in done.stdout
    assert "GAP" in done.stdout and "no gap" not in done.stdout


def test_without_a_session_every_recorded_session_with_a_transcript_is_compared(claude_code_fixtures, tmp_path):
    folders = [p for p in sorted(claude_code_fixtures.iterdir()) if p.name[:2] in ("A-", "H-")]
    assert len(folders) == 2, folders
    data_dir = tmp_path / "data"
    done = kpiloop("replay", "--data-dir", str(data_dir), *(str(p) for f in folders for p in f.glob("otlp-*.jsonl")))
    assert done.returncode == 0, done.stderr

    done = reconcile(data_dir, "--transcripts", str(claude_code_fixtures / "*" / "transcript-*.jsonl"))

    assert done.returncode == 0, done.stderr
    for folder in folders:
        assert f"session {expected_session(folder)[0]} " in done.stdout
    assert "2 session(s) compared, 0 with a gap" in done.stdout


def test_the_default_glob_reads_claudes_projects_folder(claude_code_fixtures, isolated_home, tmp_path):
    folder = claude_code_fixtures / "A-http-protobuf-beta"
    session_id, _ = expected_session(folder)
    project = isolated_home / ".claude" / "projects" / "-home-dev-project"
    project.mkdir(parents=True)
    (project / f"{session_id}.jsonl").write_bytes(next(folder.glob("transcript-*.jsonl")).read_bytes())
    data_dir = tmp_path / "data"
    replay(data_dir, sorted(folder.glob("otlp-*.jsonl")))

    done = reconcile(data_dir, session_id)

    assert done.returncode == 0, done.stderr
    assert str(project / f"{session_id}.jsonl") in done.stdout and "no gap" in done.stdout


def test_a_session_missing_from_history_or_transcripts_is_an_error(claude_code_fixtures, tmp_path):
    folder = claude_code_fixtures / "A-http-protobuf-beta"
    session_id, _ = expected_session(folder)
    data_dir = tmp_path / "data"
    done = reconcile(data_dir, session_id, "--transcripts", str(folder / "transcript-*.jsonl"))
    assert done.returncode == 1 and "no history line" in done.stderr, done.stderr
    replay(data_dir, sorted(folder.glob("otlp-*.jsonl")))
    done = reconcile(data_dir, session_id, "--transcripts", str(tmp_path / "none-*.jsonl"))
    assert done.returncode == 1 and "no transcript" in done.stderr, done.stderr
