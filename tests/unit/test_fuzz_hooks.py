"""Property-based fuzzing of the Claude Code hook commands' stdin: any bytes are read without raising;
any payload gives a record that is strict JSON and that the collector accepts whole (a hook's own
record is never refused); the commands exit 0 and print nothing but their documented answer."""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kpiloop import hooks
from kpiloop.collector.http_codec import decode_body
from tests.strategies import (
    NON_UTF8,
    SESSIONS,
    adapt_and_summarize,
    deep_json,
    hostile_scalars,
    hostile_values,
    json_safe,
    mostly,
)

FUZZ = settings(derandomize=True, max_examples=100, deadline=None, database=None)
NOW_NS = 1_770_920_880 * 10**9
HOOK_EVENTS = (
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionDenied",
    "UserPromptSubmit",
    "SessionStart",
    "SessionEnd",
)

texts = hostile_scalars() | st.sampled_from(("\ud800", "x\udc00y"))  # Python's json reads lone surrogates
payloads = st.fixed_dictionaries(
    {"session_id": mostly(st.sampled_from(SESSIONS), hostile_scalars(), 6)},
    optional={
        "hook_event_name": mostly(st.sampled_from(HOOK_EVENTS), hostile_values(3)),
        "tool_name": st.sampled_from(("Read", "TaskUpdate", "TodoWrite")) | texts,
        "tool_use_id": texts,
        "duration_ms": mostly(st.integers(0, 10_000), hostile_scalars()),
        "prompt": hostile_scalars(),
        "is_interrupt": hostile_scalars(),
        "agent_type": hostile_scalars(),
        "tool_input": st.fixed_dictionaries(
            {},
            optional={
                "taskId": texts,
                "status": texts,
                "todos": st.lists(
                    st.fixed_dictionaries({}, optional={"content": hostile_values(3), "status": hostile_values(2)})
                    | hostile_values(2),
                    max_size=5,
                ),
            },
        ),
        "tool_response": hostile_values(4),
    },
)
stdin_bytes = st.one_of(
    payloads.map(lambda payload: json.dumps(json_safe(payload)).encode()),
    st.binary(max_size=200),
    NON_UTF8,
    st.sampled_from((b"", b"[]", b"null", b'{"session_id": NaN}', deep_json(100_000), b'{"a": ' + b"9" * 5000 + b"}")),
    st.just(b'{"session_id": "s-1", "hook_event_name": "PostToolUse", "tool_use_id": "\\udc00"}'),
)


@FUZZ
@given(data=stdin_bytes)
def test_reading_any_stdin_gives_a_dict(data: bytes) -> None:
    assert isinstance(hooks._read_payload(io.BytesIO(data)), dict)


@FUZZ
@given(payload=payloads, command=st.sampled_from(("event", "session-end")))
@example(payload={"session_id": "s-1", "hook_event_name": "PostToolUse", "duration_ms": float("inf")}, command="event")
@example(payload={"session_id": "s-1", "hook_event_name": "PostToolUse", "duration_ms": 1e300}, command="event")
@example(payload={"session_id": "s-1", "hook_event_name": ["x"] * 3}, command="event")
@example(payload={"session_id": "s-1", "hook_event_name": "PostToolUse", "tool_name": "R\ud800"}, command="event")
@example(
    payload={"session_id": "s-1", "tool_name": "TodoWrite", "tool_input": {"todos": [{"content": {"a": [1]}}]}},
    command="event",
)
def test_every_record_is_strict_json_the_collector_accepts_whole(payload: dict[str, Any], command: str) -> None:
    record = hooks.build_record(command, payload, "default", NOW_NS)
    if record is None:
        return
    body = json.dumps(record, allow_nan=False).encode()
    items = list(decode_body("logs", {b"content-type": b"application/json"}, body, 16 * 1024 * 1024))
    rejected, _ = adapt_and_summarize(items)
    assert rejected == 0, (payload, record)


@settings(FUZZ, max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=stdin_bytes, command=st.sampled_from(("event", "session-end", "session-start", "bogus")))
def test_the_commands_exit_0_and_print_only_their_answer(
    data: bytes, command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        argv = [command, "--endpoint", "http://127.0.0.1:1", "--data-dir", folder]
        assert hooks.main(argv) == 0
        out, err = capsys.readouterr()
        assert err == ""
        if command == "session-start":
            assert isinstance(json.loads(out), dict)
        else:
            assert out == ""
        pending = Path(folder) / hooks.PENDING_DIR / hooks.PENDING_FILE
        for line in pending.read_bytes().splitlines() if pending.exists() else []:
            orjson.loads(line)  # what waits for the collector is JSON the collector reads (no NaN, no lone surrogate)
        log = Path(folder) / "logs" / "hooks.log"
        assert not log.exists(), log.read_text()
