"""active.json: slots per agent type, one activation per rule, cool-down, manual edits, corruption."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from kpiloop.feedback.active import (
    ACTIVE_FILE,
    activate,
    append_retired,
    disable,
    enable,
    load_active,
    load_retired,
    suggestions_of,
    update_active,
)
from kpiloop.feedback.assignment import assigned
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.suggestions import Suggestion

NOW = "2026-03-01T12:00:00Z"
CONFIG = FeedbackConfig()


def suggestion(rule: str, priority: str = "HIGH") -> Suggestion:
    return Suggestion(
        id=f"opt-{rule}",
        priority=priority,
        category="c",
        title=f"Title {rule}",
        description="d",
        impact="i",
        evidence="e",
        implementation=f"Do {rule}",
        target_kpi="token_efficiency",
        direction="increase",
        magnitude="10x",
    )


def add(data_dir: Path, suggestions: list[Suggestion], agent: str = "coder", now: str = NOW) -> list[str]:
    retired = load_retired(data_dir)

    def change(document: dict[str, Any]) -> list[str]:
        added = activate(suggestions, agent, "s-1", now, CONFIG, current=suggestions_of(document), retired=retired)
        document["suggestions"].extend(added)
        return [entry["id"] for entry in added]

    return update_active(data_dir, change, now)


def test_slots_are_filled_by_priority_up_to_max_active(tmp_path: Path) -> None:
    new = [suggestion("d", "LOW"), suggestion("a", "CRITICAL"), suggestion("c", "MEDIUM"), suggestion("b", "HIGH")]
    assert add(tmp_path, new) == ["opt-a", "opt-b", "opt-c"]
    assert add(tmp_path, [suggestion("e", "CRITICAL")]) == []
    assert add(tmp_path, [suggestion("e", "CRITICAL")], agent="writer") == ["opt-e"]
    document = load_active(tmp_path)
    assert document["version"] == "1.0.0" and document["last_updated"] == NOW
    first = document["suggestions"][0]
    assert first["rule_id"] == "a" and first["agent_type"] == "coder" and first["enabled"] is True
    assert first["expected_impact"] == {"kpi": "token_efficiency", "direction": "increase", "magnitude": "10x"}
    assert first["tracking"]["effectiveness"] == "TRACKING" and first["tracking"]["session_count"] == 0


def test_a_rule_is_never_active_twice_for_one_agent_type(tmp_path: Path) -> None:
    assert add(tmp_path, [suggestion("a")]) == ["opt-a"]
    assert add(tmp_path, [suggestion("a"), suggestion("a")]) == []
    assert [e["id"] for e in load_active(tmp_path)["suggestions"]] == ["opt-a"]


def test_a_disabled_suggestion_frees_its_slot_but_keeps_its_rule_out(tmp_path: Path) -> None:
    add(tmp_path, [suggestion("a"), suggestion("b"), suggestion("c")])
    assert disable(tmp_path, "opt-b", NOW)
    assert add(tmp_path, [suggestion("b"), suggestion("d")]) == ["opt-d"]
    assert enable(tmp_path, "opt-b", NOW)
    assert not disable(tmp_path, "opt-missing", NOW)
    assert [e.get("enabled") for e in load_active(tmp_path)["suggestions"]] == [True, True, True, True]


def test_retired_rules_stay_out_until_the_cool_down_ends_and_promoted_ones_for_good(tmp_path: Path) -> None:
    append_retired(tmp_path, {"id": "opt-a", "rule_id": "a", "agent_type": "coder", "state": "retired",
                              "reason": "INEFFECTIVE", "evidence": "x", "retired_at": NOW})  # fmt: skip
    append_retired(tmp_path, {"id": "opt-b", "rule_id": "b", "agent_type": "coder", "state": "promoted",
                              "reason": "PROVEN", "evidence": "x", "retired_at": NOW})  # fmt: skip
    assert add(tmp_path, [suggestion("a"), suggestion("b")], now="2026-03-30T12:00:00Z") == []
    assert add(tmp_path, [suggestion("a")], agent="writer") == ["opt-a"]
    assert add(tmp_path, [suggestion("a"), suggestion("b")], now="2026-04-01T12:00:00Z") == ["opt-a"]


def test_manual_edits_are_kept_when_the_file_changes(tmp_path: Path) -> None:
    add(tmp_path, [suggestion("a")])
    path = tmp_path / ACTIVE_FILE
    document = json.loads(path.read_text())
    document["suggestions"][0]["title"] = "My own wording"
    document["suggestions"][0]["note"] = "keep me"
    document["comment"] = "hand-edited"
    path.write_text(json.dumps(document))
    add(tmp_path, [suggestion("b")])
    after = json.loads(path.read_text())
    assert after["comment"] == "hand-edited"
    assert after["suggestions"][0]["title"] == "My own wording" and after["suggestions"][0]["note"] == "keep me"
    assert [e["id"] for e in after["suggestions"]] == ["opt-a", "opt-b"]


def test_a_file_that_does_not_change_is_not_rewritten(tmp_path: Path) -> None:
    add(tmp_path, [suggestion("a")])
    path = tmp_path / ACTIVE_FILE
    path.write_text(path.read_text() + "\n\n")
    add(tmp_path, [suggestion("a")])
    assert path.read_text().endswith("\n\n\n")


def test_a_corrupt_file_is_treated_as_empty_and_set_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / ACTIVE_FILE
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    with caplog.at_level(logging.WARNING):
        assert load_active(tmp_path)["suggestions"] == []
        assert add(tmp_path, [suggestion("a")]) == ["opt-a"]
    assert "corrupt" in caplog.text
    (aside,) = path.parent.glob("active.json.corrupt-*")
    assert aside.read_text() == "{not json"
    path.write_text('{"suggestions": 3}')
    assert load_active(tmp_path)["suggestions"] == []


def test_assignment_is_deterministic_and_about_half() -> None:
    shown = [assigned(f"session-{i}", "opt-a") for i in range(2000)]
    assert shown == [assigned(f"session-{i}", "opt-a") for i in range(2000)]
    assert 0.45 < sum(shown) / len(shown) < 0.55
    assert [assigned("x", f"opt-{i}") for i in range(50)] != [assigned("y", f"opt-{i}") for i in range(50)]
