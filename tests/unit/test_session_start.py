"""``kpiloop.session_start``: agent type resolution, the context text, the randomized assignment."""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from kpiloop import session_start
from kpiloop.feedback.assignment import assigned
from kpiloop.session_start import (
    MAX_CONTEXT_CHARS,
    active_suggestions,
    build_context,
    hook_output,
    project_agent_type,
    record_assignment,
    resolve_agent_type,
    warning_section,
)

AGENT = "translation-agent"
MARKER = "TELEMETRY-FREE-TEXT-9f3a"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KPILOOP_AGENT_TYPE", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document), encoding="utf-8")


def suggestion(n: int, agent: str = AGENT, **extra: Any) -> dict[str, Any]:
    entry = {
        "id": f"opt-rule-{n}",
        "agent_type": agent,
        "title": f"Rule {n} title",
        "implementation_guidance": f"Rule {n} guidance",
        "expected_impact": {"kpi": "cache_efficiency", "direction": "increase", "magnitude": "to 80% or more"},
        "enabled": True,
    }
    entry.update(extra)
    return entry


# --- assignment -------------------------------------------------------------------------------


def test_assignment_is_the_documented_hash_and_deterministic() -> None:
    for n in range(200):
        sid, opt = f"session-{n}", f"opt-{n % 7}"
        expected = hashlib.sha256(f"{sid}:{opt}".encode()).digest()[0] < 128
        assert assigned(sid, opt) is expected
        assert assigned(sid, opt) is assigned(sid, opt)


def test_assignment_includes_about_half_of_1000_sessions() -> None:
    included = sum(assigned(f"{n:08x}-session", "opt-cache-friendly-prompts") for n in range(1000))
    assert 440 <= included <= 560  # Binomial(1000, ½): mean 500, sd ≈ 15.8


def test_kpi_names_match_the_model() -> None:
    from kpiloop.model import KPI_DIRECTIONS

    assert set(session_start.KPI_NAMES) == set(KPI_DIRECTIONS)


# --- agent type -------------------------------------------------------------------------------


def test_agent_type_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    project = tmp_path / "project"
    nested = project / "src" / "deep" / "er"
    nested.mkdir(parents=True)
    (project / ".kpiloop.yaml").write_text("# kpiloop\nagent_type: Yaml Agent  # from the project\n")
    assert resolve_agent_type("", str(nested)) == "yaml-agent"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=claude-code, agent.type = Otel Agent ,team=x")
    assert resolve_agent_type("", str(nested)) == "otel-agent"
    monkeypatch.setenv("KPILOOP_AGENT_TYPE", "Env Agent")
    assert resolve_agent_type("", str(nested)) == "env-agent"
    assert resolve_agent_type("Flag/Agent", str(nested)) == "flag-agent"


def test_agent_type_defaults(tmp_path: Path) -> None:
    assert resolve_agent_type("", str(tmp_path)) == "default"
    assert resolve_agent_type("", None) == "default"
    assert resolve_agent_type("../..", None) == "default"


def test_nearest_project_file_wins(tmp_path: Path) -> None:
    (tmp_path / ".kpiloop.yaml").write_text("agent_type: outer\n")
    inner = tmp_path / "inner"
    (inner / "sub").mkdir(parents=True)
    (inner / ".kpiloop.yaml").write_text("exporters:\n  agent_type: nested-key-ignored\nagent_type: 'inner-agent'\n")
    assert project_agent_type(str(inner / "sub")) == "inner-agent"
    assert project_agent_type(str(tmp_path)) == "outer"


@pytest.mark.parametrize(
    "text", ["exporters:\n  agent_type: indented\n", "agent_type:\n", "agent_types: x\n", "# agent_type: x\n"]
)
def test_project_file_without_a_top_level_agent_type(tmp_path: Path, text: str) -> None:
    (tmp_path / ".kpiloop.yaml").write_text(text)
    assert project_agent_type(str(tmp_path)) is None
    assert resolve_agent_type("", str(tmp_path)) == "default"


# --- context ----------------------------------------------------------------------------------


def test_baseline_table_numbers(tmp_path: Path) -> None:
    write_json(
        tmp_path / "baselines" / f"{AGENT}.json",
        {
            "agent_type": AGENT,
            "session_count": 12,
            "baselines": {
                "token_efficiency": {"mean": 0.0412, "p95": 0.0788},
                "error_rate": {"mean": 0.02, "p95": None},
                "cost_per_output_token": {"mean": 0.0000153, "p95": 0.0000212},
                "cache_efficiency": {"mean": 0.8, "p95": 0.95, "status": "bootstrap"},
                "not_a_kpi": {"mean": 1.0, "p95": 2.0},
            },
        },
    )
    context, *_ = build_context(str(tmp_path), AGENT, "s1", time.time())
    assert "## Performance Baselines" in context
    assert f"Your historical performance for {AGENT} (12 sessions):" in context
    assert "| Metric | Target | Your Average | Your p95 |" in context
    assert "| Token Efficiency | > 0.05 | 0.041 | 0.079 |" in context
    assert "| Error Rate | 0% | 0.020 | - |" in context
    assert "| Cost Per Output Token | -- | 1.53e-05 | 2.12e-05 |" in context
    assert "| Cache Efficiency | > 0.90 | 0.800 | 0.950 |" in context
    assert "Not A Kpi" not in context and "not_a_kpi" not in context


def test_suggestions_filtered_and_assigned(tmp_path: Path) -> None:
    live = [suggestion(n) for n in range(8)]
    dead = [
        suggestion(100, enabled=False),
        suggestion(101, state="retired"),
        suggestion(102, tracking={"effectiveness": "HARMFUL"}),
        suggestion(103, tracking={"effectiveness": "PROVEN"}),
        suggestion(104, agent="other-agent"),
    ]
    write_json(tmp_path / "optimizations" / "active.json", {"suggestions": live + dead})
    for sid in ("a", "b", "c", "d"):
        context, included, excluded, omitted = build_context(str(tmp_path), AGENT, sid, time.time())
        assert included == [e["id"] for e in live if assigned(sid, e["id"])]
        assert excluded == [e["id"] for e in live if not assigned(sid, e["id"])]
        assert omitted == []
        for entry in live:
            assert (f"### {entry['title']}\n" in context) is (entry["id"] in included)
        for entry in dead:
            assert entry["title"] not in context
        if included:
            assert "- **Expected Impact**: to 80% or more increase in Cache Efficiency" in context


def test_no_session_id_means_nothing_included(tmp_path: Path) -> None:
    write_json(tmp_path / "optimizations" / "active.json", {"suggestions": [suggestion(1)]})
    context, included, excluded, _ = build_context(str(tmp_path), AGENT, None, time.time())
    assert (context, included, excluded) == ("", [], ["opt-rule-1"])


def test_context_stays_under_the_cap(tmp_path: Path) -> None:
    write_json(
        tmp_path / "baselines" / f"{AGENT}.json",
        {"baselines": {k: {"mean": 0.5, "p95": 0.9} for k in session_start.KPI_NAMES}},
    )
    many = [
        suggestion(n, title="Long " * 400, implementation_guidance="Guidance " * 300,
                   expected_impact={"kpi": "error_rate", "direction": "decrease", "magnitude": "m" * 2000})
        for n in range(300)
    ]  # fmt: skip
    write_json(tmp_path / "optimizations" / "active.json", {"suggestions": many})
    incidents = tmp_path / "incidents"
    incidents.mkdir()
    for kpi in session_start.KPI_NAMES:
        (incidents / f"{AGENT}-{kpi}-20261101T000000Z.md").write_text("x")
    context, included, excluded, omitted = build_context(str(tmp_path), AGENT, "session-x", time.time())
    assert len(context) < MAX_CONTEXT_CHARS
    assert included and omitted
    assert len(included) + len(excluded) + len(omitted) == 300
    assert context.count("### Long") == len(included)
    assert "## Open Warnings" in context
    assert len(json.dumps(hook_output(context))) < 3 * MAX_CONTEXT_CHARS


def test_incidents_recent_and_of_this_agent_only(tmp_path: Path) -> None:
    incidents = tmp_path / "incidents"
    incidents.mkdir()
    fresh = incidents / f"{AGENT}-error_rate-20261120T101010Z.md"
    fresh.write_text(f"# {MARKER}\n")
    old = incidents / f"{AGENT}-cache_efficiency-20261001T000000Z.md"
    old.write_text("old")
    eight_days = time.time() - 8 * 24 * 3600
    os.utime(old, (eight_days, eight_days))
    (incidents / f"{AGENT}-v2-token_efficiency-20261120T101010Z.md").write_text("other agent")
    (incidents / f"{AGENT}-{MARKER}-20261120T101010Z.md").write_text("unknown kpi")
    section = warning_section(str(tmp_path), AGENT, time.time(), {})
    assert section == f"\n## Open Warnings\n\n- Open incident: error_rate degraded (see {fresh})\n"
    assert warning_section(str(tmp_path), "nobody", time.time(), {}) == ""


def test_no_free_text_from_telemetry(tmp_path: Path) -> None:
    write_json(
        tmp_path / "baselines" / f"{AGENT}.json",
        {
            "agent_type": MARKER,
            "model": MARKER,
            "method": MARKER,
            "session_count": MARKER,
            "baselines": {"token_efficiency": {"mean": 0.1, "p95": MARKER, "status": MARKER}, MARKER: {"mean": 1}},
        },
    )
    entry = suggestion(1, source_session=MARKER, rule_id=MARKER, priority=MARKER)
    entry["expected_impact"] = {"kpi": MARKER, "direction": MARKER, "magnitude": "10%"}
    write_json(tmp_path / "optimizations" / "active.json", {"suggestions": [entry], "last_updated": MARKER})
    (tmp_path / "incidents").mkdir()
    (tmp_path / "incidents" / f"{AGENT}-error_rate-1.md").write_text(MARKER)
    sid = next(f"s{n}" for n in range(100) if assigned(f"s{n}", "opt-rule-1"))
    context, included, _, _ = build_context(str(tmp_path), AGENT, sid, time.time())
    assert included == ["opt-rule-1"]
    assert "| Token Efficiency | > 0.05 | 0.100 | - |" in context
    assert MARKER not in context
    assert MARKER.lower() not in context.lower()


def test_empty_and_corrupt_data_dirs(tmp_path: Path) -> None:
    assert build_context(str(tmp_path / "missing"), AGENT, "s", time.time()) == ("", [], [], [])
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / f"{AGENT}.json").write_text("{not json")
    (tmp_path / "optimizations").mkdir()
    (tmp_path / "optimizations" / "active.json").write_bytes(b"\xff\xfe garbage")
    assert build_context(str(tmp_path), AGENT, "s", time.time()) == ("", [], [], [])
    assert "session-start" in (tmp_path / "logs" / "hooks.log").read_text()
    documents: list[Any] = [[], {"baselines": []}, {"suggestions": {}}, {"suggestions": [1, None, {"id": 3}]}]
    for document in documents:
        write_json(tmp_path / "baselines" / f"{AGENT}.json", document)
        write_json(tmp_path / "optimizations" / "active.json", document)
        assert build_context(str(tmp_path), AGENT, "s", time.time()) == ("", [], [], [])


def test_active_suggestion_text_is_one_clean_line() -> None:
    entry = suggestion(1, title="# Title\nwith\x00control\tchars", implementation_guidance="a\n\n## b")
    (clean,) = active_suggestions({"suggestions": [entry]}, AGENT)
    assert clean["title"] == "Title with control chars"
    assert clean["guidance"] == "a ## b"


def test_hook_output_shapes() -> None:
    assert hook_output("") == {}
    assert hook_output("x") == {"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": "x"}}


def test_record_assignment_appends_one_line(tmp_path: Path) -> None:
    payload = {"cwd": "/home/dev/project", "source": "startup", "prompt": MARKER}
    record_assignment(str(tmp_path), "sess-1", AGENT, payload, ["opt-a"], ["opt-b"], [])
    record_assignment(str(tmp_path), "sess-2", AGENT, {}, [], [], ["opt-c"])
    lines = (tmp_path / "optimizations" / "assignments.jsonl").read_text().splitlines()
    first, second = (json.loads(line) for line in lines)
    assert set(first) == {"session_id", "agent_type", "cwd", "time", "source", "included", "excluded"}
    assert (first["session_id"], first["agent_type"], first["cwd"], first["source"]) == (
        "sess-1", AGENT, "/home/dev/project", "startup"
    )  # fmt: skip
    assert (first["included"], first["excluded"]) == (["opt-a"], ["opt-b"])
    assert second["omitted"] == ["opt-c"] and second["cwd"] is None
    assert MARKER not in "".join(lines)
