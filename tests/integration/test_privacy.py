"""Privacy: what users typed and what tools read or wrote never reaches kpiloop's files or metrics.

The Claude Code captures in ``shared/fixtures/claude-code`` carry content: the prompt in
``UserPromptSubmit`` hooks and ``user_prompt`` events, tool inputs and outputs in ``PreToolUse`` /
``PostToolUse`` hooks and (scenario A) in ``tool_result`` events, assistant responses (A), raw API
bodies (H), and the whole conversation in the transcripts. Every scenario goes through a real
``kpiloop serve`` — session-start hook, every other hook forwarded with ``kpiloop hook event``, the
raw OTLP bodies, the session-end hook — and its transcripts through ``kpiloop replay``. Then every
file under both data dirs and the live ``/metrics`` page are searched for every content string of
the capture (at least 12 characters long): none may appear. Only ids, names, counts and sizes may.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson

from .conftest import ServeProcess
from .test_claude_code_fixtures import expected_of, raw_bodies

MIN_SECRET_CHARS = 12
CONTENT_KEYS = frozenset({"prompt", "content", "text", "tool_input", "tool_response", "input", "output", "body"})
"""Fields of hook payloads, transcripts and log attributes that hold what users and tools said."""
NOT_SECRET = frozenset({"/home/dev/project", "general-purpose"})
"""Identifiers kept by design: the session's ``cwd`` (recorded with the session-start assignment, it
names the project whose CLAUDE.md a proven suggestion goes to) and the subagent type the Agent tool
was called with (Claude Code's ``agent.name``: subagent usage is broken down by it)."""


def strings(node: object) -> Iterator[str]:
    """Every string inside ``node``, keys excluded."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from strings(item)


def content_strings(node: object) -> Iterator[str]:
    """The strings under content fields (at any depth) of a JSON document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in CONTENT_KEYS:
                yield from strings(value)
            else:
                yield from content_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from content_strings(item)


def log_attribute_contents(otlp_json_line: bytes) -> Iterator[str]:
    """Values of the content attributes of OTLP log records (``prompt``, ``tool_input``, ``body``...)."""
    request = orjson.loads(otlp_json_line)
    for resource in request.get("resourceLogs", []):
        for scope in resource.get("scopeLogs", []):
            for record in scope.get("logRecords", []):
                for attribute in record.get("attributes", []):
                    key = attribute.get("key", "")
                    if key in CONTENT_KEYS or key.endswith(("_input", "_output", "_body", "response")):
                        yield from strings(attribute.get("value"))


def secrets_of(folder: Path) -> set[str]:
    """What users typed and tools saw in this capture: long content strings, and each of their lines."""
    found: set[str] = set()
    for name in ("hooks.jsonl", *(p.name for p in folder.glob("transcript-*.jsonl"))):
        for line in (folder / name).read_bytes().splitlines():
            found.update(content_strings(orjson.loads(line)))
    logs = folder / "otlp-logs.jsonl"
    for line in logs.read_bytes().splitlines():
        found.update(log_attribute_contents(line))
    pieces = {piece.strip() for text in found for piece in [text, *text.splitlines()]}
    return {p for p in pieces if len(p) >= MIN_SECRET_CHARS and p not in NOT_SECRET and not _is_id(p)}


def _is_id(text: str) -> bool:
    """Ids may be stored: tool_use ids, request ids, uuids, model names."""
    return text.startswith(("toolu_", "req_", "msg_", "claude-")) or (len(text) == 36 and text.count("-") == 4)


def files_under(folder: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def leaks(secrets: set[str], haystacks: dict[str, bytes]) -> list[tuple[str, str]]:
    found = []
    for where, data in haystacks.items():
        text = data.decode("utf-8", "replace")
        escaped = orjson.dumps(text).decode()  # also find a secret stored JSON-escaped
        found += [
            (where, secret) for secret in secrets if secret in text or orjson.dumps(secret).decode()[1:-1] in escaped
        ]
    return found


def kpiloop(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "kpiloop", *args], capture_output=True, env=dict(os.environ),
                          timeout=120, check=False)  # fmt: skip


def feed(serve: ServeProcess, folder: Path) -> None:
    """The capture as Claude Code delivered it: hooks and OTLP bodies, SessionEnd last."""
    hooks = [orjson.loads(line) for line in (folder / "hooks.jsonl").read_bytes().splitlines() if line.strip()]
    for payload in hooks:
        if payload["hook_event_name"] == "SessionStart":
            assert serve.hook("session-start", orjson.dumps(payload)).returncode == 0
    for payload in hooks:
        if payload["hook_event_name"] not in ("SessionStart", "SessionEnd"):
            assert serve.hook("event", orjson.dumps(payload)).returncode == 0
    for _, signal, body, content_type in raw_bodies(folder):
        assert serve.post(signal, body, content_type) == 200
    for payload in hooks:
        if payload["hook_event_name"] == "SessionEnd":
            assert serve.hook("session-end", orjson.dumps(payload)).returncode == 0


def test_no_prompt_tool_content_or_response_reaches_disk_or_metrics(claude_code_fixtures, start_server, tmp_path):
    folders = sorted(p for p in claude_code_fixtures.iterdir() if p.is_dir())
    secrets = set().union(*(secrets_of(folder) for folder in folders))
    assert "Create hello.txt containing a greeting, read it back, then list the directory." in secrets
    assert "hello from the mock model" in secrets  # the file content the Write tool was given
    assert len(secrets) > 20, sorted(secrets)

    serve = start_server(tmp_path / "live")
    for folder in folders:
        feed(serve, folder)
    sessions = {sid for folder in folders for sid in expected_of(folder)}
    serve.wait_for_history(len(sessions) + 1, timeout=30)  # F2 resumes F1: one more line than sessions
    metrics = serve.metrics_text().encode()
    serve.stop()

    transcripts = [str(p) for folder in folders for p in sorted(folder.glob("transcript-*.jsonl"))]
    replayed = kpiloop("replay", "--data-dir", str(tmp_path / "backfill"), *transcripts)
    assert replayed.returncode == 0, replayed.stderr

    written = files_under(tmp_path / "live") | files_under(tmp_path / "backfill")
    assert any(path.name == "kpis.jsonl" for path in written) and len(written) > 5, sorted(written)
    haystacks = {str(path): data for path, data in written.items()} | {"/metrics": metrics}
    haystacks |= {"replay stdout": replayed.stdout, "replay stderr": replayed.stderr}
    assert leaks(secrets, haystacks) == []
