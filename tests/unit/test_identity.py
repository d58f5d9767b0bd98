from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath

import pytest

from kpiloop.identity import (
    DEFAULT_AGENT_TYPE,
    MAX_AGENT_TYPE_LEN,
    MAX_SESSION_ID_LEN,
    resolve_agent_type,
    resolve_session_id,
    sanitize_agent_type,
    sanitize_session_id,
)
from kpiloop.types import AgentType

AGENT_SAFE = re.compile(r"[a-z0-9._-]+")
SESSION_SAFE = re.compile(r"[A-Za-z0-9._-]+")

HOSTILE = [
    "../..",
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/abs/path",
    "C:\\temp",
    "a/../../b",
    ".hidden",
    "...",
    "nul\x00byte",
    "line\nbreak",
    "tab\there",
    "label\"}{quote='x'",
    "ünïcødé",
    "日本語エージェント",
    "emoji 🤖 agent",
    "  spaced out  ",
    "-.-",
    "x" * 1000,
    "a" * 63 + ".b",
    "a" * 63 + "-b",
    "",
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("coder", "coder"),
        ("Translation Agent/v2", "translation-agent-v2"),
        ("code_reviewer.v1", "code_reviewer.v1"),
        ("  Mixed-Case  ", "mixed-case"),
        ("../../etc/passwd", "etc-passwd"),
        ("..\\..\\Windows", "windows"),
        ("a  //  b", "a-b"),
        ("Agént", "ag-nt"),
        ("日本語", "default"),
        ("../..", "default"),
        ("...", "default"),
        ("", "default"),
        ("   ", "default"),
        (None, "default"),
        (42, "default"),
        (["coder"], "default"),
    ],
)
def test_sanitize_agent_type(raw: object, expected: str) -> None:
    assert sanitize_agent_type(raw) == expected


@pytest.mark.parametrize("raw", HOSTILE)
def test_sanitized_agent_types_are_safe_labels_and_path_components(raw: str) -> None:
    cleaned = sanitize_agent_type(raw)
    assert AGENT_SAFE.fullmatch(cleaned)
    assert len(cleaned) <= MAX_AGENT_TYPE_LEN
    assert cleaned[0] not in ".-" and cleaned[-1] not in ".-"
    assert PurePosixPath(cleaned).name == cleaned == PureWindowsPath(cleaned).name
    assert sanitize_agent_type(cleaned) == cleaned


def test_agent_type_length_is_capped() -> None:
    assert sanitize_agent_type("A" * 100) == "a" * MAX_AGENT_TYPE_LEN
    assert sanitize_agent_type("a" * 63 + ".b") == "a" * 63
    assert sanitize_agent_type("a" * 63 + "-b") == "a" * 63


def test_agent_type_custom_default() -> None:
    assert sanitize_agent_type("///", AgentType("fallback")) == "fallback"
    assert sanitize_agent_type("Coder", AgentType("fallback")) == "coder"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("58c5cbd9-f879-42ab-8c47-a1661be51bcb", "58c5cbd9-f879-42ab-8c47-a1661be51bcb"),
        ("Session_A.1", "Session_A.1"),
        ("../etc/passwd", "etc_passwd"),
        ("../../x", "x"),
        ("_leading", "leading"),
        ("-rf", "rf"),
        ("a/b", "a_b"),
        ("a b\tc", "a_b_c"),
        ("..hidden", "hidden"),
        ("sess-ü", "sess-_"),
        ("  trimmed  ", "trimmed"),
        (12345, "12345"),
    ],
)
def test_sanitize_session_id(raw: object, expected: str) -> None:
    assert sanitize_session_id(raw) == expected


@pytest.mark.parametrize("raw", ["", "   ", "..", "/", "///", "日本", "_", None, True, 1.5, {"id": 1}])
def test_session_ids_with_nothing_usable_are_none(raw: object) -> None:
    assert sanitize_session_id(raw) is None


@pytest.mark.parametrize("raw", [r for r in HOSTILE if sanitize_session_id(r) is not None])
def test_sanitized_session_ids_are_single_path_components(raw: str) -> None:
    cleaned = sanitize_session_id(raw)
    assert cleaned is not None
    assert SESSION_SAFE.fullmatch(cleaned)
    assert len(cleaned) <= MAX_SESSION_ID_LEN
    assert not cleaned.startswith(".")
    assert PurePosixPath(cleaned).name == cleaned == PureWindowsPath(cleaned).name
    assert sanitize_session_id(cleaned) == cleaned


def test_session_id_length_is_capped() -> None:
    assert sanitize_session_id("s" * 500) == "s" * MAX_SESSION_ID_LEN


def test_resolve_session_id_order() -> None:
    assert resolve_session_id({"session.id": "a", "gen_ai.conversation.id": "c"}, {"session.id": "r"}) == "a"
    assert resolve_session_id({"gen_ai.conversation.id": "c"}, {"session.id": "r"}) == "r"
    assert resolve_session_id({"session.id": None, "gen_ai.conversation.id": "c"}, {}) == "c"
    assert resolve_session_id({}, {"gen_ai.conversation.id": "rc"}) == "rc"
    assert resolve_session_id({}, {}) is None
    assert resolve_session_id({"session.id": "../x"}, {}) == "x"


def test_resolve_agent_type_order() -> None:
    fallback = AgentType("fallback")
    attrs = {"agent.type": "Item", "gen_ai.agent.name": "genai"}
    assert resolve_agent_type(attrs, {"agent.type": "res"}, fallback) == "item"
    assert resolve_agent_type({"gen_ai.agent.name": "genai"}, {"agent.type": "res"}, fallback) == "res"
    assert resolve_agent_type({"gen_ai.agent.name": "GenAI Bot"}, {}, fallback) == "genai-bot"
    assert resolve_agent_type({"agent.type": ""}, {"gen_ai.agent.name": "r"}, fallback) == "r"
    assert resolve_agent_type({}, {}, fallback) == "fallback"
    assert resolve_agent_type({}, {}) == DEFAULT_AGENT_TYPE == "default"
