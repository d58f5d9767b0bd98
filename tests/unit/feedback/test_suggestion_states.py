"""Counting suggestions by state for the ``agent_performance_suggestions`` gauge."""

from __future__ import annotations

import json
from pathlib import Path

from kpiloop.feedback.active import ACTIVE_FILE, RETIRED_FILE
from kpiloop.feedback.suggestion_states import count_states, read_states


def entry(suggestion_id: str, agent_type: str, enabled: bool = True) -> dict[str, object]:
    return {"id": suggestion_id, "agent_type": agent_type, "enabled": enabled}


def test_enabled_entries_are_active_and_the_ledger_counts_promotions_and_retirements() -> None:
    document = {"suggestions": [entry("a", "coder"), entry("b", "coder", enabled=False), entry("c", "writer")]}
    ledger = [
        {"id": "d", "agent_type": "coder", "state": "promoted"},
        {"id": "e", "agent_type": "coder", "state": "retired"},
        {"id": "f", "agent_type": "coder", "state": "retired"},
        {"id": "g", "agent_type": "reviewer", "state": "promoted"},
    ]
    assert count_states(document, ledger) == {
        "coder": {"active": 1, "promoted": 1, "retired": 2},
        "writer": {"active": 1, "promoted": 0, "retired": 0},
        "reviewer": {"active": 0, "promoted": 1, "retired": 0},
    }


def test_records_without_an_agent_type_or_with_an_unknown_state_are_not_counted() -> None:
    document = {"suggestions": [{"id": "a"}, entry("b", "coder")]}
    ledger = [{"id": "c", "agent_type": "coder", "state": "exploded"}, {"id": "d", "state": "retired"}]
    assert count_states(document, ledger) == {"coder": {"active": 1, "promoted": 0, "retired": 0}}


def test_read_states_reads_active_json_and_retired_jsonl(tmp_path: Path) -> None:
    assert read_states(tmp_path) == {}
    (tmp_path / ACTIVE_FILE).parent.mkdir(parents=True)
    (tmp_path / ACTIVE_FILE).write_text(json.dumps({"version": "1.0.0", "suggestions": [entry("a", "coder")]}))
    (tmp_path / RETIRED_FILE).write_text(json.dumps({"id": "x", "agent_type": "coder", "state": "promoted"}) + "\n")
    assert read_states(tmp_path) == {"coder": {"active": 1, "promoted": 1, "retired": 0}}
