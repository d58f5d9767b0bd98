"""track_and_decide / activate_from on files, as the feedback stage calls them on each close."""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import pytest

import kpiloop.feedback.assignment as assignment_module
from kpiloop.feedback.active import ACTIVE_FILE, RETIRED_FILE, load_active
from kpiloop.feedback.assignment import ASSIGNMENTS_FILE, assigned
from kpiloop.feedback.baselines import BaselineStore
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.loop import activate_from, track_and_decide
from kpiloop.feedback.rules import DEFAULT_RULES
from kpiloop.feedback.suggestions import suggest
from kpiloop.feedback.types import Baseline, KpiBaseline

from .test_stage import MODEL, summary

NOW = "2026-03-01T12:00:00Z"
SUGGESTION = "opt-background-agents"


def start_session(data_dir: Path, session_id: str, cwd: str, agent: str = "coder") -> None:
    """What the session-start hook records."""
    ids = [e["id"] for e in load_active(data_dir)["suggestions"] if e["agent_type"] == agent]
    record = {
        "session_id": session_id,
        "agent_type": agent,
        "cwd": cwd,
        "time": NOW,
        "included": [i for i in ids if assigned(session_id, i)],
        "excluded": [i for i in ids if not assigned(session_id, i)],
    }
    path = data_dir / ASSIGNMENTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def activate_background_agents(data_dir: Path, config: FeedbackConfig) -> None:
    bad = summary(0, token_efficiency=0.005)
    suggestions = [s for s in suggest(bad, DEFAULT_RULES) if s.id == SUGGESTION]
    assert activate_from(bad, suggestions, data_dir, config, NOW) == [SUGGESTION]


def run(tmp_path: Path, effect: float, config: FeedbackConfig, sessions: int = 80) -> list[tuple[str, ...]]:
    data_dir, project = tmp_path / "data", tmp_path / "project"
    project.mkdir(exist_ok=True)
    activate_background_agents(data_dir, config)
    rng = random.Random(11)
    returned = []
    for index in range(1, sessions + 1):
        session_id = f"s-{index:03d}"
        start_session(data_dir, session_id, str(project))
        treated = assigned(session_id, SUGGESTION)
        value = 0.03 * math.exp(0.5 * rng.gauss(0, 1) + (effect * 0.5 if treated else 0.0))
        returned.append(track_and_decide(summary(index, token_efficiency=value), data_dir, config, NOW))
        if not load_active(data_dir)["suggestions"]:
            break
    return returned


def retired(data_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (data_dir / RETIRED_FILE).read_text().splitlines()]


def test_a_strong_effect_is_promoted_into_the_existing_subagent_file(tmp_path: Path) -> None:
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "coder.md").write_text("---\nname: coder\n---\nWrite code.\n")
    config = FeedbackConfig(agents_dir=agents)
    returned = run(tmp_path, 2.0, config)
    assert returned[0] == (SUGGESTION,) and len(returned) < 80
    assert load_active(tmp_path / "data")["suggestions"] == []
    text = (agents / "coder.md").read_text()
    assert text.startswith("---\nname: coder\n---\nWrite code.\n\n<!-- kpiloop:begin opt-background-agents -->")
    [record] = retired(tmp_path / "data")
    assert record["state"] == "promoted" and record["reason"] == "PROVEN"
    assert record["tracking"]["effectiveness"] == "PROVEN" and record["tracking"]["promotion_eligible"] is True
    low, high = record["tracking"]["interval"]
    assert 0 < low < record["tracking"]["estimate"] < high
    assert not (tmp_path / "project" / "CLAUDE.md").exists()
    # the rule is not activated again once promoted
    activate_background_agents_again = summary(200, token_efficiency=0.005)
    again = [s for s in suggest(activate_background_agents_again, DEFAULT_RULES) if s.id == SUGGESTION]
    assert activate_from(activate_background_agents_again, again, tmp_path / "data", config, NOW) == []


def test_a_harmful_suggestion_is_retired_and_nothing_is_promoted(tmp_path: Path) -> None:
    config = FeedbackConfig(agents_dir=tmp_path / "agents")
    run(tmp_path, -2.0, config)
    [record] = retired(tmp_path / "data")
    assert record["state"] == "retired" and record["reason"] == "HARMFUL"
    assert "confidence sequence" in record["evidence"] and record["retired_at"] == NOW
    assert not (tmp_path / "project" / "CLAUDE.md").exists() and not (tmp_path / "agents").exists()


def test_the_plan_rule_decides_after_three_treated_sessions(tmp_path: Path) -> None:
    config = FeedbackConfig(agents_dir=tmp_path / "agents", effectiveness="plan")
    data_dir = tmp_path / "data"
    baseline = KpiBaseline(mean=0.03, std_dev=0.015, center=math.log(0.03), scale=0.5, count=50)
    BaselineStore(data_dir).save(Baseline("coder", MODEL, 50, {"token_efficiency": baseline}))
    returned = run(tmp_path, 0.0, config)
    assert len(returned) < 15
    [record] = retired(data_dir)
    assert record["tracking"]["decision_method"] == "plan" and "plan rule" in record["evidence"]
    assert record["tracking"]["impact_results"][0]["kpi_before"] == pytest.approx(0.03)


def test_the_plan_rule_without_a_baseline_gives_up_at_the_session_limit(tmp_path: Path) -> None:
    config = FeedbackConfig(agents_dir=tmp_path / "agents", effectiveness="plan", max_tracked_sessions=10)
    assert len(run(tmp_path, 0.0, config)) == 10
    [record] = retired(tmp_path / "data")
    assert record["reason"] == "INEFFECTIVE"


def test_sessions_without_an_assignment_are_not_tracked_and_reclosing_counts_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = FeedbackConfig()
    activate_background_agents(data_dir, config)
    assert track_and_decide(summary(1), data_dir, config, NOW) == (SUGGESTION,)
    assert load_active(data_dir)["suggestions"][0]["tracking"]["session_count"] == 0
    start_session(data_dir, "s-002", str(tmp_path))
    track_and_decide(summary(2), data_dir, config, NOW)
    track_and_decide(dataclasses.replace(summary(2), close_count=2), data_dir, config, NOW)
    tracking = load_active(data_dir)["suggestions"][0]["tracking"]
    assert tracking["session_count"] == 1
    [result] = tracking["impact_results"]
    assert result["session"] == "s-002" and result["arm"] in ("treated", "control")
    assert track_and_decide(summary(3, agent_type="writer"), data_dir, config, NOW) == ()


def test_a_disabled_suggestion_is_not_tracked(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = FeedbackConfig()
    activate_background_agents(data_dir, config)
    start_session(data_dir, "s-002", str(tmp_path))
    path = data_dir / ACTIVE_FILE
    document = json.loads(path.read_text())
    document["suggestions"][0]["enabled"] = False
    path.write_text(json.dumps(document))
    assert track_and_decide(summary(2), data_dir, config, NOW) == ()
    assert load_active(data_dir)["suggestions"][0]["tracking"]["session_count"] == 0


def test_the_assignment_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(assignment_module.__file__).read_text())
    modules = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    modules |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}
