"""Active suggestions: ``{data_dir}/optimizations/active.json`` (the plan's schema) and the ledger
of retired and promoted ones, ``{data_dir}/optimizations/retired.jsonl``.

Every change re-reads the file under its lock and changes only the fields it means to change, so a
user's manual edit (a disabled suggestion, a reworded title, an extra field, a removed entry) is
kept. A corrupt file is logged and treated as empty; the next change moves it aside as
``active.json.corrupt-{UTC time}`` (never overwritten) before writing; reading never raises.

Rules of activation (DESIGN.md section 5): at most ``config.max_active`` enabled suggestions per
agent type, free slots filled by priority; a rule is never active twice for one agent type; a rule
retired for an agent type stays out for :data:`RETIRE_COOLDOWN`; a promoted rule stays out for good
(its guidance now lives in the agent file or CLAUDE.md). Disabled suggestions keep their rule out
but do not take a slot.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.documents import encode, read_document, update_document
from kpiloop.feedback.suggestions import PRIORITY_ORDER, Suggestion
from kpiloop.storage import atomic_write, locked_append

log = logging.getLogger(__name__)

ACTIVE_FILE = Path("optimizations") / "active.json"
RETIRED_FILE = Path("optimizations") / "retired.jsonl"
VERSION = "1.0.0"
RETIRE_COOLDOWN = timedelta(days=30)
"""How long a retired rule stays out of active.json for its agent type."""

T = TypeVar("T")


def empty_document(now: str = "") -> dict[str, Any]:
    """An active.json with no suggestions."""
    return {"version": VERSION, "last_updated": now, "suggestions": []}


def load_active(data_dir: Path) -> dict[str, Any]:
    """The active.json document; missing or corrupt → an empty one (corruption is logged)."""
    document, _ = read_document(data_dir / ACTIVE_FILE, "suggestions", empty_document)
    return document


def save_active(data_dir: Path, document: Mapping[str, Any]) -> None:
    """Write ``document`` atomically (prefer :func:`update_active`, which re-reads first)."""
    atomic_write(data_dir / ACTIVE_FILE, encode(document))


def update_active(data_dir: Path, change: Callable[[dict[str, Any]], T], now: str) -> T:
    """Under the file's lock: read active.json afresh, apply ``change`` to it in place, and write it
    back (with ``last_updated = now``) only when ``change`` altered it. Returns ``change``'s result.

    A corrupt file is moved aside first (:func:`kpiloop.storage.quarantine`) and ``change`` sees an
    empty document; a file that cannot be read raises OSError and is left as it is."""

    def stamp(document: dict[str, Any]) -> None:
        document["last_updated"] = now
        document.setdefault("version", VERSION)

    return update_document(data_dir / ACTIVE_FILE, "suggestions", empty_document, change, stamp)


def suggestions_of(document: Mapping[str, Any], agent_type: str | None = None) -> list[dict[str, Any]]:
    """The suggestion entries (dicts with a string ``id``), optionally of one agent type."""
    return [
        entry
        for entry in document.get("suggestions", [])
        if isinstance(entry, dict)
        and isinstance(entry.get("id"), str)
        and (agent_type is None or entry.get("agent_type") == agent_type)
    ]


def is_enabled(entry: Mapping[str, Any]) -> bool:
    """An entry is enabled unless ``enabled`` is explicitly false."""
    return entry.get("enabled", True) is not False


def rule_id_of(entry: Mapping[str, Any]) -> str:
    """The entry's ``rule_id``, else its id without the ``opt-`` prefix."""
    rule_id = entry.get("rule_id")
    return rule_id if isinstance(rule_id, str) else str(entry.get("id", "")).removeprefix("opt-")


def new_tracking() -> dict[str, Any]:
    """The tracking of a freshly activated suggestion."""
    return {
        "sessions_applied": [],
        "session_count": 0,
        "impact_results": [],
        "effectiveness": "TRACKING",
        "estimate": None,
        "interval": None,
        "promotion_eligible": False,
    }


def activate(
    new_suggestions: Sequence[Suggestion],
    agent_type: str,
    source_session: str,
    now: str,
    config: FeedbackConfig,
    *,
    current: Sequence[Mapping[str, Any]] = (),
    retired: Iterable[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The entries to add to active.json for ``agent_type`` (pure: the caller writes them).

    ``current`` is active.json's suggestions, ``retired`` the retired.jsonl records. Free slots
    (``max_active`` minus the enabled entries of the agent type) are filled in priority order,
    skipping rules already in active.json for the agent type, promoted rules, and rules retired
    less than :data:`RETIRE_COOLDOWN` before ``now``.
    """
    mine = [entry for entry in current if entry.get("agent_type") == agent_type]
    free = config.max_active - sum(1 for entry in mine if is_enabled(entry))
    blocked = {rule_id_of(entry) for entry in mine} | blocked_rules(retired, agent_type, now)
    added: list[dict[str, Any]] = []
    ranked = sorted(new_suggestions, key=lambda s: PRIORITY_ORDER.get(s.priority, len(PRIORITY_ORDER)))
    for suggestion in ranked:
        if len(added) >= free:
            break
        rule_id = suggestion.id.removeprefix("opt-")
        if rule_id in blocked:
            continue
        blocked.add(rule_id)
        added.append(_entry(suggestion, rule_id, agent_type, source_session, now))
    return added


def blocked_rules(retired: Iterable[Mapping[str, Any]], agent_type: str, now: str) -> set[str]:
    """Rule ids kept out for ``agent_type``: promoted ones, and ones retired within the cool-down."""
    now_time = parse_time(now)
    blocked: set[str] = set()
    for record in retired:
        if record.get("agent_type") != agent_type:
            continue
        if record.get("state") == "promoted":
            blocked.add(rule_id_of(record))
            continue
        retired_at = parse_time(str(record.get("retired_at", "")))
        if now_time is None or retired_at is None or now_time - retired_at < RETIRE_COOLDOWN:
            blocked.add(rule_id_of(record))
    return blocked


def load_retired(data_dir: Path) -> list[dict[str, Any]]:
    """The records of retired.jsonl (unreadable lines skipped; a missing file gives ``[]``)."""
    path = data_dir / RETIRED_FILE
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc)
        return []
    records = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def append_retired(data_dir: Path, record: Mapping[str, Any]) -> None:
    """Append one record to retired.jsonl (locked append)."""
    line = json.dumps(record, ensure_ascii=False, allow_nan=False) + "\n"
    locked_append(data_dir / RETIRED_FILE, line.encode("utf-8"))


def set_enabled(data_dir: Path, suggestion_id: str, enabled: bool, now: str) -> bool:
    """Set ``enabled`` of every entry with this id; False when there is none."""

    def change(document: dict[str, Any]) -> bool:
        found = [entry for entry in suggestions_of(document) if entry["id"] == suggestion_id]
        for entry in found:
            entry["enabled"] = enabled
        return bool(found)

    return update_active(data_dir, change, now)


def disable(data_dir: Path, suggestion_id: str, now: str) -> bool:
    """Disable a suggestion: no longer shown, tracked or counted against ``max_active``."""
    return set_enabled(data_dir, suggestion_id, False, now)


def enable(data_dir: Path, suggestion_id: str, now: str) -> bool:
    """Enable a suggestion again (the user's choice: ``max_active`` is not checked)."""
    return set_enabled(data_dir, suggestion_id, True, now)


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time (``Z`` allowed) or None."""
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _entry(suggestion: Suggestion, rule_id: str, agent_type: str, source_session: str, now: str) -> dict[str, Any]:
    return {
        "id": suggestion.id,
        "rule_id": rule_id,
        "source_session": source_session,
        "agent_type": agent_type,
        "activated_at": now,
        "title": suggestion.title,
        "implementation_guidance": suggestion.implementation,
        "expected_impact": {
            "kpi": suggestion.target_kpi,
            "direction": suggestion.direction,
            "magnitude": suggestion.magnitude,
        },
        "priority": suggestion.priority,
        "enabled": True,
        "tracking": new_tracking(),
    }
