"""Promotion and retirement of active suggestions (DESIGN.md section 5).

A PROVEN suggestion is written, with its measured effect and interval, inside a marked block::

    <!-- kpiloop:begin opt-id -->
    ...
    <!-- kpiloop:end opt-id -->

into ``{agents_dir}/{agent_type}.md`` when that Claude Code subagent file exists, else into the
project's ``CLAUDE.md`` (the project holding the ``cwd`` recorded at session start: the nearest
directory up from it with a ``CLAUDE.md`` or ``.git``, else the ``cwd`` itself), or
``~/.claude/CLAUDE.md`` when no ``cwd`` is known or ``claude_md: user`` is configured. A subagent
file is never created. Writing is idempotent (a block already there is replaced) and leaves every
other byte of the file as it was.

Retired and promoted suggestions leave active.json and are appended to ``retired.jsonl`` with
``state`` (``retired``/``promoted``), ``reason``, ``evidence`` and ``retired_at``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kpiloop.feedback.active import append_retired
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.experiment import Decision, describe
from kpiloop.feedback.suggestions import SAFE_NAME
from kpiloop.storage import atomic_write

ENCODING = "utf-8"
ERRORS = "surrogateescape"  # undecodable bytes survive a read-modify-write unchanged


def begin_marker(suggestion_id: str) -> str:
    """The line that opens a suggestion's block."""
    return f"<!-- kpiloop:begin {suggestion_id} -->"


def end_marker(suggestion_id: str) -> str:
    """The line that closes a suggestion's block."""
    return f"<!-- kpiloop:end {suggestion_id} -->"


def promotion_target(agent_type: str, cwd: str | None, config: FeedbackConfig, home: Path | None = None) -> Path:
    """The file a promoted suggestion of ``agent_type`` goes into (see the module docstring)."""
    agent_file = config.agents_dir.expanduser() / f"{agent_type}.md"
    if SAFE_NAME.fullmatch(agent_type) and agent_file.is_file():
        return agent_file
    if config.claude_md == "user" or not cwd or not Path(cwd).is_absolute():
        return (home if home is not None else Path.home()) / ".claude" / "CLAUDE.md"
    return project_root(Path(cwd)) / "CLAUDE.md"


def project_root(cwd: Path) -> Path:
    """The nearest directory from ``cwd`` up holding a ``CLAUDE.md`` or ``.git``; else ``cwd``."""
    for directory in (cwd, *cwd.parents):
        if (directory / "CLAUDE.md").exists() or (directory / ".git").exists():
            return directory
    return cwd


def render_block(entry: Mapping[str, Any], decision: Decision, now: str) -> str:
    """The marked block of a promoted suggestion (text from the rule's template and numbers)."""
    suggestion_id = str(entry["id"])
    impact = entry.get("expected_impact") or {}
    kpi = str(impact.get("kpi", ""))
    lines = [
        begin_marker(suggestion_id),
        f"## Optimization: {entry.get('title', suggestion_id)}",
        "",
        f"{entry.get('implementation_guidance', '')}",
        "",
        f"Proven for agent type `{entry.get('agent_type', '')}` ({now[:10]}): {describe(decision, kpi)}.",
        end_marker(suggestion_id),
    ]
    return "\n".join(lines)


def insert_block(text: str, suggestion_id: str, block: str) -> str:
    """``text`` with the suggestion's block replaced, or appended after a blank line when absent."""
    begin, end = begin_marker(suggestion_id), end_marker(suggestion_id)
    start = text.find(begin)
    stop = text.find(end, start) if start >= 0 else -1
    if start >= 0 and stop >= 0:
        return text[:start] + block + text[stop + len(end) :]
    if not text:
        return block + "\n"
    separator = "\n" if text.endswith("\n") else "\n\n"
    return text + separator + block + "\n"


def write_block(path: Path, suggestion_id: str, block: str) -> bool:
    """Put the block into ``path`` (created only if missing and not a subagent file); False if unchanged."""
    try:
        raw = path.read_bytes()
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        raw, mode = b"", None
    text = raw.decode(ENCODING, ERRORS)
    updated = insert_block(text, suggestion_id, block).encode(ENCODING, ERRORS)
    if updated == raw:
        return False
    atomic_write(path, updated)
    if mode is not None:
        os.chmod(path, mode)
    return True


def promote(
    data_dir: Path,
    entry: Mapping[str, Any],
    decision: Decision,
    cwd: str | None,
    config: FeedbackConfig,
    now: str,
) -> Path:
    """Write the block into its target file and record the promotion in retired.jsonl; returns the file."""
    target = promotion_target(str(entry.get("agent_type", "")), cwd, config)
    write_block(target, str(entry["id"]), render_block(entry, decision, now))
    kpi = str((entry.get("expected_impact") or {}).get("kpi", ""))
    append_retired(data_dir, ledger_record(entry, "promoted", "PROVEN", describe(decision, kpi), now, target))
    return target


def retire(data_dir: Path, entry: Mapping[str, Any], decision: Decision, now: str) -> None:
    """Record a HARMFUL or INEFFECTIVE suggestion in retired.jsonl (the caller drops it from active.json)."""
    kpi = str((entry.get("expected_impact") or {}).get("kpi", ""))
    append_retired(data_dir, ledger_record(entry, "retired", decision.effectiveness, describe(decision, kpi), now))


def ledger_record(
    entry: Mapping[str, Any], state: str, reason: str, evidence: str, now: str, target: Path | None = None
) -> dict[str, Any]:
    """The retired.jsonl line of ``entry``: the entry itself plus state, reason, evidence, retired_at."""
    record = dict(entry)
    record.update({"state": state, "reason": reason, "evidence": evidence, "retired_at": now})
    if target is not None:
        record["promoted_to"] = str(target)
    return record
