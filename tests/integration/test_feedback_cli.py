"""Feedback through the real CLI: the plan's own case, the files a close writes, and the commands."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson

from kpiloop.sample_sessions import EN_SESSION_ID, en_session, write_daily_files

PLAN_BASELINE = Path(__file__).parents[1] / "testdata" / "baselines" / "translation-agent.plan.json"


def kpiloop(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpiloop", *args], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )


def test_the_plans_en_session_against_the_plans_baseline_file(tmp_path):
    data_dir = tmp_path / "data"
    (data_dir / "baselines").mkdir(parents=True)
    shutil.copy(PLAN_BASELINE, data_dir / "baselines" / "translation-agent.json")
    files = write_daily_files(tmp_path / "telemetry", [en_session()])
    done = kpiloop("replay", "--data-dir", str(data_dir), *map(str, files))
    assert done.returncode == 0, done.stderr

    (line,) = [orjson.loads(x) for x in (data_dir / "history" / "kpis.jsonl").read_bytes().splitlines()]
    assert line["alert_level"] == "CRITICAL"
    severities = {a["kpi"]: (a["severity"], a["kind"]) for a in line["alerts"]}
    for kpi in ("token_efficiency", "tool_overhead_ratio", "active_time_ratio"):
        assert severities[kpi][0] == "CRITICAL", kpi
    assert "cache_efficiency" not in severities  # 0.983 against 0.94: an improvement never alerts
    assert line["baselines"]["token_efficiency"] == 0.048  # the plan file's mean, used as-is

    report = kpiloop("report", EN_SESSION_ID, "--data-dir", str(data_dir))
    assert report.returncode == 0
    assert "**Status**: CRITICAL" in report.stdout
    regressions = report.stdout.split("## Regressions Detected", 1)[1].split("##", 1)[0]
    for name in ("Token Efficiency", "Tool Overhead", "Active Time"):
        assert f"CRITICAL: {name}" in regressions
    assert "Cache Efficiency" not in regressions

    suggestions = orjson.loads((data_dir / "optimizations" / f"{EN_SESSION_ID}.json").read_bytes())
    titles = [s["title"] for s in suggestions["suggestions"]]
    assert any("background agents" in t.lower() for t in titles)
    assert any("batch task operations" in t.lower() for t in titles)
    assert any("pre-load" in t.lower() for t in titles)
    assert suggestions["suggestions"][0]["priority"] == "CRITICAL"

    # the plan-format file is used as-is, not rewritten, until 5 sessions of history exist
    assert (data_dir / "baselines" / "translation-agent.json").read_bytes() == PLAN_BASELINE.read_bytes()


def test_baselines_show_and_reset(tmp_path):
    data_dir = tmp_path / "data"
    examples = sorted(str(p) for p in (Path(__file__).parents[2] / "examples").glob("*.jsonl"))
    assert kpiloop("replay", "--data-dir", str(data_dir), *examples).returncode == 0
    shown = kpiloop("baselines", "show", "--data-dir", str(data_dir))
    assert shown.returncode == 0
    assert shown.stdout.startswith("translation-agent  model=claude-opus-4-6  method=robust  status=bootstrap")
    assert kpiloop("baselines", "reset", "translation-agent", "--data-dir", str(data_dir)).returncode == 0
    assert not (data_dir / "baselines" / "translation-agent.json").exists()
    missing = kpiloop("baselines", "reset", "translation-agent", "--data-dir", str(data_dir))
    assert missing.returncode == 1 and "nothing to reset" in missing.stderr


def test_suggestions_are_activated_and_can_be_disabled_and_enabled(tmp_path):
    data_dir = tmp_path / "data"
    examples = sorted(str(p) for p in (Path(__file__).parents[2] / "examples").glob("*.jsonl"))
    assert kpiloop("replay", "--data-dir", str(data_dir), *examples).returncode == 0
    listed = kpiloop("suggestions", "list", "--data-dir", str(data_dir))
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert 1 <= len(lines) <= 3  # at most max_active (3) per agent type
    assert "opt-background-agents  translation-agent  TRACKING" in listed.stdout
    shown = kpiloop("suggestions", "show", "opt-background-agents", "--data-dir", str(data_dir))
    assert orjson.loads(shown.stdout)["expected_impact"]["kpi"] == "token_efficiency"
    assert kpiloop("suggestions", "disable", "opt-background-agents", "--data-dir", str(data_dir)).returncode == 0
    assert (
        "opt-background-agents  translation-agent  DISABLED"
        in kpiloop("suggestions", "list", "--data-dir", str(data_dir)).stdout
    )
    assert kpiloop("suggestions", "enable", "opt-background-agents", "--data-dir", str(data_dir)).returncode == 0
    missing = kpiloop("suggestions", "disable", "opt-nope", "--data-dir", str(data_dir))
    assert missing.returncode == 1 and "no active suggestion" in missing.stderr
