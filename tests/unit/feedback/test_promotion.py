"""Promotion into an existing subagent file or CLAUDE.md: only the marked block changes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.experiment import Decision
from kpiloop.feedback.promotion import (
    begin_marker,
    end_marker,
    insert_block,
    promote,
    promotion_target,
    render_block,
    write_block,
)

NOW = "2026-03-01T12:00:00Z"
AGENT_FILE = """---
name: translation-agent
description: Translates documents; keeps the author's voice.
tools: Read, Write
---

You translate one document at a time.

## Rules
- Keep terminology consistent.
- No trailing newline at the end of this file."""

CLAUDE_MD = "# Project\n\nBuild with `make`.\n\n<!-- someone else's marker -->\n"


def entry(agent: str = "translation-agent") -> dict[str, Any]:
    return {
        "id": "opt-background-agents",
        "rule_id": "background-agents",
        "agent_type": agent,
        "title": "Use background agents for independent work units",
        "implementation_guidance": "Launch a dedicated agent per work unit with pre-loaded context",
        "expected_impact": {"kpi": "token_efficiency", "direction": "increase", "magnitude": "10-20x"},
    }


DECISION = Decision("PROVEN", "sequential", 34, 18, 16, estimate=0.69, interval=(0.12, 1.26))


def config(tmp_path: Path, **fields: Any) -> FeedbackConfig:
    return FeedbackConfig(agents_dir=tmp_path / "agents", **fields)


def test_promotion_into_an_existing_subagent_file_changes_only_the_block(tmp_path: Path, golden: Any) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    path = agents / "translation-agent.md"
    path.write_bytes(AGENT_FILE.encode())
    os.chmod(path, 0o600)
    target = promote(tmp_path / "data", entry(), DECISION, str(tmp_path / "project"), config(tmp_path), NOW)
    assert target == path
    written = path.read_bytes().decode()
    golden.check("promotion_agent_file.md", written)
    assert written.startswith(AGENT_FILE)
    assert path.stat().st_mode & 0o777 == 0o600
    again = promote(tmp_path / "data", entry(), DECISION, None, config(tmp_path), NOW)
    assert again == path and path.read_bytes().decode() == written


def test_promotion_into_the_project_claude_md_and_replacing_the_block(tmp_path: Path, golden: Any) -> None:
    project = tmp_path / "project"
    (project / "src" / "deep").mkdir(parents=True)
    (project / "CLAUDE.md").write_text(CLAUDE_MD)
    cfg = config(tmp_path)
    target = promote(tmp_path / "data", entry("coder"), DECISION, str(project / "src" / "deep"), cfg, NOW)
    assert target == project / "CLAUDE.md"
    first = target.read_text()
    golden.check("promotion_claude_md.md", first)
    (project / "CLAUDE.md").write_text(first + "\n## Added by the user after the block\n")
    better = Decision("PROVEN", "sequential", 40, 20, 20, estimate=0.9, interval=(0.3, 1.5))
    promote(tmp_path / "data", entry("coder"), better, str(project), cfg, NOW)
    text = target.read_text()
    assert text.startswith(CLAUDE_MD) and text.endswith("\n## Added by the user after the block\n")
    assert text.count(begin_marker("opt-background-agents")) == 1 and "x2.46" in text
    assert not (tmp_path / "agents" / "coder.md").exists()


def test_no_subagent_file_is_created_and_user_claude_md_is_the_fallback(tmp_path: Path, isolated_home: Path) -> None:
    cfg = config(tmp_path)
    assert promotion_target("coder", None, cfg) == isolated_home / ".claude" / "CLAUDE.md"
    assert promotion_target("coder", "relative/dir", cfg) == isolated_home / ".claude" / "CLAUDE.md"
    assert promotion_target("coder", str(tmp_path), config(tmp_path, claude_md="user")) == (
        isolated_home / ".claude" / "CLAUDE.md"
    )
    assert promotion_target("../evil", str(tmp_path), cfg) == tmp_path / "CLAUDE.md"
    promote(tmp_path / "data", entry("coder"), DECISION, None, cfg, NOW)
    assert (isolated_home / ".claude" / "CLAUDE.md").read_text().startswith(begin_marker("opt-background-agents"))
    assert not (tmp_path / "agents").exists()
    ledger = (tmp_path / "data" / "optimizations" / "retired.jsonl").read_text()
    assert '"state": "promoted"' in ledger and '"reason": "PROVEN"' in ledger


def test_insert_block_appends_and_replaces() -> None:
    block = f"{begin_marker('opt-x')}\nbody\n{end_marker('opt-x')}"
    assert insert_block("", "opt-x", block) == block + "\n"
    assert insert_block("a", "opt-x", block) == "a\n\n" + block + "\n"
    once = insert_block("a\n", "opt-x", block)
    assert once == "a\n\n" + block + "\n"
    assert insert_block(once, "opt-x", block) == once
    other = f"{begin_marker('opt-x')}\nnew\n{end_marker('opt-x')}"
    assert insert_block(once, "opt-x", other) == "a\n\n" + other + "\n"


def test_undecodable_bytes_survive(tmp_path: Path) -> None:
    path = tmp_path / "CLAUDE.md"
    path.write_bytes(b"caf\xe9 \xff\r\n")
    block = render_block(entry(), DECISION, NOW)
    assert write_block(path, "opt-background-agents", block)
    assert path.read_bytes().startswith(b"caf\xe9 \xff\r\n\n<!-- kpiloop:begin")
    assert not write_block(path, "opt-background-agents", block)
