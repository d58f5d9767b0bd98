"""Claude Code's native telemetry, captured from the real CLI (``shared/fixtures/claude-code``), through a
real ``kpiloop serve`` and a real ``kpiloop replay``: every scenario must give exactly its ``expected.json``.

Each scenario's ``raw/`` bodies are POSTed in order to ``/v1/{signal}``, the session is ended by the
real ``kpiloop hook session-end`` fed the captured ``SessionEnd`` payload, and the history line and
the live ``/metrics`` series are compared with the ground truth. ``F2`` resumes ``F1``'s session
(``claude -c``): the two are sent to one server in order and F2's values are cumulative.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

EXACT_FIELDS = ("api_requests", "api_errors", "tool_calls", "tool_failures", "tool_denials", "tools_by_name")
TOKEN_TYPES = ("input", "output", "cache_read", "cache_creation")
RAW_NAME = re.compile(r"^\d+-.+-(?P<signal>logs|metrics|traces)-[a-z]+\.(?P<ext>pb|json)$")
CONTENT_TYPES = {"pb": "application/x-protobuf", "json": "application/json"}
CHAINED = re.compile(r"^(?P<letter>[A-Z])(?P<number>\d+)-")


def scenario_chain(root: Path, name: str) -> list[Path]:
    """The folders to send, in order: ``F2-...`` is a resume of ``F1-...``'s session, so F1 comes first."""
    folder = root / name
    match = CHAINED.match(name)
    if match is None or int(match["number"]) <= 1:
        return [folder]
    prefix = f"{match['letter']}{int(match['number']) - 1}-"
    before = [p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    if len(before) != 1:
        pytest.fail(f"{name} continues a session of a {prefix}* folder, found {before}")
    return [*scenario_chain(root, before[0]), folder]


def expected_of(folder: Path) -> dict[str, dict[str, Any]]:
    expected = orjson.loads((folder / "expected.json").read_bytes())
    assert isinstance(expected, dict) and expected, f"{folder}/expected.json lists no session"
    return expected


def raw_bodies(folder: Path) -> list[tuple[str, str, bytes, str]]:
    """(file name, signal, body, content type) for every ``raw/`` file, in file-name order."""
    files = sorted((folder / "raw").iterdir())
    assert files, f"{folder}/raw is empty"
    bodies = []
    for path in files:
        match = RAW_NAME.match(path.name)
        assert match is not None, f"unexpected raw file name {path.name}"
        bodies.append((path.name, match["signal"], path.read_bytes(), CONTENT_TYPES[match["ext"]]))
    return bodies


def session_end_payloads(folder: Path) -> list[bytes]:
    """The captured stdin of every SessionEnd hook of the folder, byte for byte."""
    lines = (folder / "hooks.jsonl").read_bytes().splitlines()
    ends = [line for line in lines if line.strip() and orjson.loads(line).get("hook_event_name") == "SessionEnd"]
    assert ends, f"{folder}/hooks.jsonl has no SessionEnd payload"
    return ends


def telemetry_session_ids(folder: Path) -> set[str]:
    """Every ``session.id`` attribute value in the folder's OTLP-JSON files."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("key") == "session.id" and isinstance(node.get("value"), dict):
                value = node["value"].get("stringValue")
                if isinstance(value, str):
                    found.add(value)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    for path in sorted(folder.glob("otlp-*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                walk(orjson.loads(line))
    return found


def latest_lines(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each session's line with the highest revision."""
    latest: dict[str, dict[str, Any]] = {}
    for line in lines:
        current = latest.get(line["session_id"])
        if current is None or line["revision"] > current["revision"]:
            latest[line["session_id"]] = line
    return latest


def assert_matches(line: dict[str, Any], expected: dict[str, Any], where: str) -> None:
    """Exactly the ground truth: token counts, counts and tools by name; cost and KPIs to 1e-9."""
    problems = []
    for kind in TOKEN_TYPES:
        if line["tokens"][kind] != expected["tokens"][kind]:
            problems.append(f"tokens.{kind}: {line['tokens'][kind]} != {expected['tokens'][kind]}")
    if line["cost_usd"] is None or not math.isclose(line["cost_usd"], expected["cost_usd"], rel_tol=1e-9):
        problems.append(f"cost_usd: {line['cost_usd']} != {expected['cost_usd']}")
    for field in EXACT_FIELDS:
        if line[field] != expected[field]:
            problems.append(f"{field}: {line[field]} != {expected[field]}")
    for kpi, value in expected["kpis"].items():
        actual = line["kpis"][kpi]
        if actual is None or not math.isclose(actual, value, rel_tol=1e-9):
            problems.append(f"kpis.{kpi}: {actual} != {value}")
    assert not problems, f"{where}, session {line['session_id']}: " + "; ".join(problems)


def test_every_documented_scenario_is_present(claude_code_fixtures):
    root = claude_code_fixtures
    names = {p.name for p in root.iterdir() if p.is_dir()}
    for prefix in ("A-", "B-", "F1-", "F2-", "H-"):
        assert any(name.startswith(prefix) for name in names), f"no {prefix}* scenario in {root}"
    for name in names:
        folder = root / name
        for needed in ("expected.json", "hooks.jsonl", "raw"):
            assert (folder / needed).exists(), f"{folder} has no {needed}"


def test_scenario_through_a_real_server_matches_expected(claude_code_fixtures, claude_code_scenario, serve):
    scenario = claude_code_scenario
    chain = scenario_chain(claude_code_fixtures, scenario)
    expected = expected_of(chain[-1])
    known = {sid for folder in chain for sid in expected_of(folder)}
    closes: dict[str, int] = {}
    lines_so_far = 0

    for folder in chain:
        answers = [(name, serve.post(signal, body, ctype)) for name, signal, body, ctype in raw_bodies(folder)]
        refused = [(name, status) for name, status in answers if status != 200]
        assert not refused, f"{folder.name}: non-200 answers {refused}"

        empty = sorted(telemetry_session_ids(folder) - known)
        for session_id in empty:  # a startup-only session (no usage): even ended, it must write nothing
            payload = orjson.dumps({"session_id": session_id, "hook_event_name": "SessionEnd", "reason": "other"})
            assert serve.hook("session-end", payload).returncode == 0

        for payload in session_end_payloads(folder):
            done = serve.hook("session-end", payload)
            assert done.returncode == 0, done.stderr
            assert done.stdout == b""  # Claude Code would read it
        for session_id in expected_of(folder):
            closes[session_id] = closes.get(session_id, 0) + 1
        lines_so_far += len(expected_of(folder))
        serve.wait_for_history(lines_so_far)

    lines = serve.history()
    assert len(lines) == lines_so_far, lines
    latest = latest_lines(lines)
    assert set(latest) == set(expected), f"history sessions {sorted(latest)} != expected {sorted(expected)}"
    for session_id, truth in expected.items():
        line = latest[session_id]
        assert_matches(line, truth, f"{scenario} via kpiloop serve")
        assert line["revision"] == closes[session_id]
        if closes[session_id] > 1:  # a resumed session: the cumulative line replaces the earlier one
            assert line["supersedes"] == closes[session_id] - 1
        else:
            assert line["supersedes"] is None
        assert line["close_reason"] == "session_end"

    assert_live_metrics(serve, expected, closes)
    serve.stop()  # exits 0; sessions without an end (the startup-only one) are saved, not written
    assert set(latest_lines(serve.history())) == set(expected)


def assert_live_metrics(serve, expected: dict[str, dict[str, Any]], closes: dict[str, int]) -> None:
    output = sum(
        value for labels, value in serve.samples("agent_performance_tokens_total") if labels["type"] == "output"
    )
    assert output == sum(truth["tokens"]["output"] for truth in expected.values())
    for kind in ("input", "cache_read", "cache_creation"):
        total = sum(
            value for labels, value in serve.samples("agent_performance_tokens_total") if labels["type"] == kind
        )
        assert total == sum(truth["tokens"][kind] for truth in expected.values()), kind
    cost = sum(value for _, value in serve.samples("agent_performance_cost_usd_total"))
    assert math.isclose(cost, sum(truth["cost_usd"] for truth in expected.values()), rel_tol=1e-9)
    assert sum(value for _, value in serve.samples("kpiloop_received_items_total")) > 0
    sessions = sum(value for _, value in serve.samples("agent_performance_sessions_total"))
    if max(closes.values()) == 1:
        assert sessions == len(expected)
    else:  # a resumed session closed twice; whether its second close counts again is not pinned here
        assert len(expected) <= sessions <= sum(closes.values())


def test_replaying_the_otlp_json_files_gives_the_same_values(claude_code_fixtures, claude_code_scenario, tmp_path):
    scenario = claude_code_scenario
    chain = scenario_chain(claude_code_fixtures, scenario)
    expected = expected_of(chain[-1])
    files = [str(path) for folder in chain for path in sorted(folder.glob("otlp-*.jsonl"))]
    assert files, f"{scenario} has no otlp-*.jsonl files"
    data_dir = tmp_path / "replay-data"
    done = subprocess.run(
        [sys.executable, "-m", "kpiloop", "replay", "--data-dir", str(data_dir), *files],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "skipped" not in done.stderr, done.stderr
    lines = [orjson.loads(line) for line in (data_dir / "history" / "kpis.jsonl").read_bytes().splitlines()]
    assert sorted(line["session_id"] for line in lines) == sorted(expected)  # one cumulative line each, no empty
    for line in lines:
        assert_matches(line, expected[line["session_id"]], f"{scenario} via kpiloop replay")
        assert (line["revision"], line["supersedes"]) == (1, None)
