"""The feedback stage end to end: real history writer, real files in a temp data dir, a fake clock."""

from __future__ import annotations

import json
import math
import random
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from kpiloop.exporters.history import HistoryWriter
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.pages import load_pages
from kpiloop.feedback.stage import FeedbackStage
from kpiloop.model import DataCompleteness, SessionSummary, TokenCounts
from kpiloop.pipeline import FanOut
from kpiloop.testing import FakeClock, ListSink, make_summary
from kpiloop.types import AgentType, SessionId

TESTDATA = Path(__file__).parents[2] / "testdata"
AGENT = "coder"
MODEL = "claude-sonnet-4-5"
HEALTHY_TOKEN_EFFICIENCY = 0.05  # well above the plan's 0.01 hard threshold


def summary(
    index: int,
    *,
    agent_type: str = AGENT,
    model: str = MODEL,
    close_count: int = 1,
    session_id: str | None = None,
    **kpis: float | None,
) -> SessionSummary:
    """A closed session whose KPIs are healthy unless given; ``index`` orders sessions in time."""
    rng = random.Random(index)
    values: dict[str, float | None] = {
        "token_efficiency": HEALTHY_TOKEN_EFFICIENCY * math.exp(rng.gauss(0, 0.15)),
        "task_completion_rate": None,
        "active_time_ratio": 0.7 + rng.uniform(-0.05, 0.05),
        "tool_overhead_ratio": 0.3 * math.exp(rng.gauss(0, 0.15)),
        "cache_efficiency": 0.9 + rng.uniform(-0.02, 0.02),
        "error_rate": 0.0,
    }
    values.update(kpis)
    start = 1_770_000_000 + index * 3_600
    return make_summary(
        session_id=SessionId(session_id or f"s-{index:03d}"),
        agent_type=AgentType(agent_type),
        model=model,
        start_ns=start * 10**9,
        end_ns=(start + 600) * 10**9,
        tokens=TokenCounts(input=1_000, output=500, cache_read=9_000),
        cost_usd=0.05,
        api_requests=10,
        tool_calls=20,
        tool_failures=0,
        tool_denials=0,
        tools_by_name={"Read": 10, "Edit": 10},
        productive_tool_calls=20,
        active_seconds=420.0,
        prompts=2,
        lines_added=10,
        lines_removed=2,
        kpis=values,
        cost_per_output_token=0.0001,
        data_completeness=DataCompleteness(api_calls=True, tool_calls=True, sources=("claude_code",)),
        close_count=close_count,
    )


@dataclass
class Observer:
    """Records what the stage tells its observer (the metrics, in ``kpiloop serve``)."""

    incidents: list[tuple[str, str]] = field(default_factory=list)
    baselines: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
    suggestions: dict[str, dict[str, int]] = field(default_factory=dict)

    def baseline_updated(self, agent_type: str, kpi: str, center: float, scale: float) -> None:
        self.baselines[(agent_type, kpi)] = (center, scale)

    def incident(self, agent_type: str, kpi: str) -> None:
        self.incidents.append((agent_type, kpi))

    def suggestions_counted(self, agent_type: str, counts: Mapping[str, int]) -> None:
        self.suggestions[agent_type] = dict(counts)


@dataclass
class Harness:
    """A feedback stage wired as in ``kpiloop serve``: stage → (history writer, a list sink)."""

    data_dir: Path
    clock: FakeClock
    stage: FeedbackStage
    writer: HistoryWriter
    sink: ListSink[SessionSummary]
    observer: Observer

    def close(self, item: SessionSummary) -> SessionSummary:
        """Close one session a minute after the previous one; return what went downstream."""
        self.clock.advance(60)
        self.stage.consume(item)
        return self.sink.items[-1]

    def baseline_file(self, agent_type: str = AGENT) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.data_dir / "baselines" / f"{agent_type}.json").read_bytes())
        return data

    def history(self) -> list[dict[str, Any]]:
        return [orjson.loads(raw) for raw in (self.data_dir / "history" / "kpis.jsonl").read_bytes().splitlines()]

    def incident_files(self) -> list[Path]:
        folder = self.data_dir / "incidents"
        return sorted(folder.glob("*.md")) if folder.exists() else []


def harness(data_dir: Path, config: FeedbackConfig | None = None) -> Harness:
    clock, observer, sink = FakeClock(1_771_000_000.0), Observer(), ListSink[SessionSummary]()
    writer = HistoryWriter(data_dir)
    stage = FeedbackStage(FanOut([writer, sink]), config or FeedbackConfig(), data_dir, clock, observer)
    writer.start()
    stage.start()
    return Harness(data_dir, clock, stage, writer, sink, observer)


def test_a_reopened_session_counts_once_in_the_baseline_and_leaves_the_cusum_alone(tmp_path: Path) -> None:
    h = harness(tmp_path)
    for i in range(10):
        h.close(summary(i))
    h.close(summary(10, token_efficiency=0.02))  # worse than baseline: the CUSUM moves
    before = h.baseline_file()
    assert before["session_count"] == 11
    assert before["cusum"]["token_efficiency"] > 0

    reopened = h.close(summary(10, close_count=2, token_efficiency=0.001, error_rate=0.5))

    after = h.baseline_file()
    assert after["session_count"] == 11
    assert after["baselines"]["token_efficiency"]["count"] == before["baselines"]["token_efficiency"]["count"]
    assert after["cusum"] == before["cusum"]
    assert reopened.assessment is not None and reopened.assessment.alert_level == "CRITICAL"
    lines = [x for x in h.history() if x["session_id"] == "s-010"]
    assert [(x["revision"], x["supersedes"]) for x in lines] == [(1, None), (2, 1)]
    assert [r.session_id for r in h.stage.history.records(AGENT)].count("s-010") == 1


def test_a_model_change_archives_the_old_baseline_and_starts_fresh(tmp_path: Path) -> None:
    h = harness(tmp_path)
    for i in range(6):
        h.close(summary(i))
    old = h.baseline_file()
    assert (old["model"], old["session_count"]) == (MODEL, 6)

    closed = h.close(summary(6, model="claude-opus-4-5", token_efficiency=0.001))

    archived = list((tmp_path / "baselines" / "archive").glob(f"{AGENT}-{MODEL}-*.json"))
    assert len(archived) == 1
    assert json.loads(archived[0].read_bytes()) == old
    fresh = h.baseline_file()
    assert (fresh["model"], fresh["session_count"], fresh["cusum"]) == ("claude-opus-4-5", 1, {})
    assert {kb["status"] for kb in fresh["baselines"].values()} == {"bootstrap"}
    assert closed.assessment is not None and closed.assessment.baseline_status == "bootstrap"
    assert all(a.kind != "deviation" for a in closed.assessment.alerts)


def test_sustained_degradation_after_thirty_healthy_sessions_opens_an_incident(tmp_path: Path) -> None:
    h = harness(tmp_path)
    for i in range(30):
        h.close(summary(i))
    assert h.incident_files() == [] and h.observer.incidents == []
    healthy_sum = h.baseline_file()["cusum"]["token_efficiency"]
    assert 0 <= healthy_sum < 1

    degraded = 0
    while not h.incident_files() and degraded < 10:
        h.close(summary(30 + degraded, token_efficiency=0.011))  # ~5 robust sd worse, above the hard threshold
        degraded += 1

    assert degraded == 3  # each z (~5) is capped at h/2 = 4: S grows by 3.5 per session and passes 8 at the third
    [incident] = h.incident_files()
    assert incident.name.startswith(f"{AGENT}-token_efficiency-")
    text = incident.read_text(encoding="utf-8")
    assert text.startswith(f"# Performance Incident: {AGENT} - token_efficiency")
    assert f"CUSUM S={healthy_sum + 3 * 3.5:.1f} > h=8" in text  # the sum that fired, capped steps included
    assert "| s-032 |" in text
    assert h.observer.incidents == [(AGENT, "token_efficiency")]
    assert h.baseline_file()["cusum"]["token_efficiency"] == 0.0  # restarts after firing


def test_the_history_line_carries_the_assessment(tmp_path: Path) -> None:
    h = harness(tmp_path)
    h.close(summary(0))
    first = h.history()[-1]
    assert first["alert_level"] == "PASS" and first["alerts"] == []
    assert first["baselines"] == {"token_efficiency": 0.03, "task_completion_rate": 0.9, "active_time_ratio": 0.5}
    for i in range(1, 8):
        h.close(summary(i))

    h.close(summary(8, token_efficiency=0.002))

    last = h.history()[-1]
    assert last["session_id"] == "s-008"
    assert last["alert_level"] == "CRITICAL"
    by_kpi = {a["kpi"]: a for a in last["alerts"]}
    assert by_kpi["token_efficiency"]["severity"] == "CRITICAL"
    assert by_kpi["token_efficiency"]["kind"] == "deviation"
    assert by_kpi["token_efficiency"]["z"] > 3
    assert last["baselines"]["token_efficiency"] == by_kpi["token_efficiency"]["baseline"]
    assert abs(last["baselines"]["token_efficiency"] - HEALTHY_TOKEN_EFFICIENCY) < 0.01
    assert set(last["baselines"]) >= {"token_efficiency", "active_time_ratio", "tool_overhead_ratio"}
    assert (tmp_path / "reports" / "s-008.md").read_text(encoding="utf-8").count("**Status**: CRITICAL") == 1
    assert h.observer.baselines[(AGENT, "token_efficiency")][1] > 0


def test_a_plan_format_baseline_file_is_kept_until_five_sessions_exist(tmp_path: Path) -> None:
    agent = "translation-agent"
    path = tmp_path / "baselines" / f"{agent}.json"
    path.parent.mkdir(parents=True)
    shutil.copyfile(TESTDATA / "baselines" / "translation-agent.plan.json", path)
    original = path.read_bytes()
    h = harness(tmp_path)

    for i in range(4):
        closed = h.close(summary(i, agent_type=agent))
        assert closed.assessment is not None and closed.assessment.baseline_status == "plan"
        assert path.read_bytes() == original

    fifth = h.close(summary(4, agent_type=agent))

    assert fifth.assessment is not None and fifth.assessment.baseline_status == "plan"  # compared with the file
    rewritten = h.baseline_file(agent)
    assert (rewritten["method"], rewritten["model"], rewritten["session_count"]) == ("robust", MODEL, 5)
    assert not (tmp_path / "baselines" / "archive").exists()
    sixth = h.close(summary(5, agent_type=agent))
    assert sixth.assessment is not None and sixth.assessment.baseline_status == "converged"


def test_a_history_line_with_unusable_kpis_does_not_stop_later_closes(tmp_path: Path) -> None:
    h = harness(tmp_path)
    for i in range(6):
        h.close(summary(i))
    with open(h.writer.path, "ab") as handle:  # another tool appended a line kpiloop cannot use
        odd = {"session_id": "odd", "agent_type": AGENT, "model": MODEL, "kpis": {"token_efficiency": "0.05"}}
        handle.write(orjson.dumps(odd) + b"\n")

    closed = h.close(summary(6))

    assert closed.assessment is not None and closed.assessment.baseline_status == "converged"
    assert h.history()[-1]["session_id"] == "s-006"
    assert h.stage.history.malformed_lines == 1
    assert h.baseline_file()["session_count"] == 7


def test_the_observer_is_told_the_suggestion_counts_at_start_and_after_each_close(tmp_path: Path) -> None:
    ledger = tmp_path / "optimizations" / "retired.jsonl"
    ledger.parent.mkdir(parents=True)
    ledger.write_text(json.dumps({"id": "opt-old", "agent_type": "reviewer", "state": "promoted"}) + "\n")
    h = harness(tmp_path)
    assert h.observer.suggestions == {"reviewer": {"active": 0, "promoted": 1, "retired": 0}}
    h.close(summary(0, token_efficiency=0.005))
    active = json.loads((tmp_path / "optimizations" / "active.json").read_bytes())["suggestions"]
    mine = [e for e in active if e["agent_type"] == AGENT]
    assert 1 <= len(mine) <= FeedbackConfig().max_active
    assert h.observer.suggestions[AGENT] == {"active": len(mine), "promoted": 0, "retired": 0}


def test_a_critical_hard_threshold_opens_a_page_once_and_the_block_setting_is_stored(tmp_path: Path) -> None:
    h = harness(tmp_path, FeedbackConfig(block_on_critical=True))
    h.close(summary(0))
    assert load_pages(tmp_path) == {"version": 1, "block_on_critical": True, "pages": []}
    closed = h.close(summary(1, error_rate=0.5))
    assert closed.assessment is not None and closed.assessment.alert_level == "CRITICAL"
    h.close(summary(1, error_rate=0.5, close_count=2))  # the same session closed again: no second page
    [page] = load_pages(tmp_path)["pages"]
    assert (page["agent_type"], page["kpi"], page["kind"], page["value"]) == (AGENT, "error_rate", "threshold", 0.5)
    assert page["session_id"] == closed.session_id and page["acknowledged_at"] is None


def test_an_incident_opens_a_page(tmp_path: Path) -> None:
    h = harness(tmp_path)
    for i in range(12):
        h.close(summary(i))
    for i in range(12, 30):
        h.close(summary(i, token_efficiency=HEALTHY_TOKEN_EFFICIENCY / 4))
        if h.incident_files():
            break
    [incident] = h.incident_files()
    [page] = load_pages(tmp_path)["pages"]
    assert (page["kpi"], page["kind"], page["value"]) == ("token_efficiency", "incident", None)
    stamp = page["opened_at"].replace(":", "").replace("-", "")
    assert incident.name == f"{AGENT}-token_efficiency-{stamp}.md"


def test_an_unwritable_report_or_baseline_does_not_cost_the_rest_of_the_close(tmp_path: Path) -> None:
    h = harness(tmp_path)
    (tmp_path / "reports").write_text("a file where the reports folder belongs")
    (tmp_path / "baselines").write_text("a file where the baselines folder belongs")
    h.close(summary(0, error_rate=0.5, token_efficiency=0.005))
    assert [line["session_id"] for line in h.history()] == [h.sink.items[-1].session_id]
    assert load_pages(tmp_path)["pages"]  # the CRITICAL hard threshold still pages
    assert (tmp_path / "optimizations" / "active.json").exists()  # and its suggestions are activated
