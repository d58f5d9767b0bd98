"""Randomized assignment of active suggestions to sessions (stdlib only: the session-start hook
imports this module, so it must stay free of third-party imports).

Suggestion ``S`` is included in session ``X`` iff the first byte of ``sha256("X:S")`` is below 128:
probability ½, independent across sessions, and the same answer every time it is asked. The hook
appends one line per session start to ``{data_dir}/optimizations/assignments.jsonl``::

    {"session_id", "agent_type", "cwd", "time", "included": [ids], "excluded": [ids]}

and the close reads it back by session id to tell treated from control sessions.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

ASSIGNMENTS_FILE = Path("optimizations") / "assignments.jsonl"
"""Where the hook records assignments, relative to the data dir."""


def assigned(session_id: str, suggestion_id: str) -> bool:
    """True when ``suggestion_id`` is shown in session ``session_id`` (probability ½, deterministic).

    >>> assigned("abc123", "opt-background-agents") == assigned("abc123", "opt-background-agents")
    True
    """
    return hashlib.sha256(f"{session_id}:{suggestion_id}".encode()).digest()[0] < 128


def session_assignments(data_dir: Path, session_id: str) -> list[dict[str, Any]]:
    """Every assignment record of ``session_id`` in file order (a resumed session may have several).

    Unreadable lines are skipped; a missing or unreadable file gives ``[]``.
    """
    path = data_dir / ASSIGNMENTS_FILE
    records: list[dict[str, Any]] = []
    needle = json.dumps(session_id).encode()
    try:
        with open(path, "rb") as handle:
            for raw in handle:
                if needle not in raw:
                    continue
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("session_id") == session_id:
                    records.append(record)
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return []
    return records


def arm_of(records: list[dict[str, Any]], suggestion_id: str) -> str | None:
    """``treated`` if any record included the suggestion, ``control`` if one excluded it, else None."""
    if any(suggestion_id in _ids(record.get("included")) for record in records):
        return "treated"
    if any(suggestion_id in _ids(record.get("excluded")) for record in records):
        return "control"
    return None


def recorded_cwd(records: list[dict[str, Any]]) -> str | None:
    """The last non-empty ``cwd`` recorded for the session, or None."""
    for record in reversed(records):
        cwd = record.get("cwd")
        if isinstance(cwd, str) and cwd:
            return cwd
    return None


def _ids(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
