"""Baselines against batch truth, exclusions, floors, bootstrap, plan files, model changes, the store."""

from __future__ import annotations

import json
import logging
import math
import random
import statistics
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from kpiloop.feedback.alerts import bad_direction_z, evaluate_alerts
from kpiloop.feedback.baselines import (
    BaselineStore,
    baseline_from_json,
    baseline_to_json,
    choose_baseline,
    compute_baseline,
    percentile,
)
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.transforms import KPI_SCALES
from kpiloop.feedback.types import Baseline, KpiBaseline, SessionRecord
from kpiloop.model import KPI_NAMES
from kpiloop.testing import FakeClock

PLAN_FILE = Path(__file__).parents[2] / "testdata" / "baselines" / "translation-agent.plan.json"
NOW = "2026-02-15T10:00:00Z"
CONFIG = FeedbackConfig()


def rec(i: int, model: str = "claude-x", critical: frozenset[str] = frozenset(), **kpis: float | None) -> SessionRecord:
    return SessionRecord(f"s{i}", "2026-02-14", "general-purpose", model, kpis, critical_kpis=critical)


def batch_truth(kpi: str, values: list[float], min_scale: float) -> dict[str, float | bool]:
    """The baseline of ``values`` from the definitions, with the stdlib's statistics."""
    forward = KPI_SCALES[kpi].forward
    transformed = [forward(v) for v in values]
    centre = statistics.median(transformed)
    scale = max(1.4826 * statistics.median([abs(t - centre) for t in transformed]), min_scale)
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    inverse = KPI_SCALES[kpi].inverse
    spread = (inverse(centre + scale) - inverse(centre - scale)) / 2
    return {
        "center": centre,
        "scale": scale,
        "mean": statistics.fmean(values),
        "std_dev": statistics.pstdev(values),
        "p50": cuts[49],
        "p95": cuts[94],
        "p99": cuts[98],
        "low_confidence": spread > 0.5 * abs(inverse(centre)),
    }


def assert_matches(kb: KpiBaseline, truth: dict[str, float | bool], count: int) -> None:
    assert kb.count == count
    assert (kb.status, kb.raw) == ("converged", False)
    assert kb.low_confidence == truth["low_confidence"]
    for name in ("center", "scale", "mean", "std_dev", "p50", "p95", "p99"):
        actual = getattr(kb, name)
        assert math.isclose(actual, float(truth[name]), rel_tol=1e-12, abs_tol=1e-10), (name, actual, truth[name])


# --- against batch truth ------------------------------------------------------------------------------


def lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(math.log(0.003), 0.5)


def uniform(rng: random.Random) -> float:
    return rng.uniform(0.0, 1.0)


def bimodal(rng: random.Random) -> float:
    return rng.betavariate(20, 5) if rng.random() < 0.6 else rng.betavariate(3, 12)


def constant(rng: random.Random) -> float:
    return 0.4


def mostly_zero(rng: random.Random) -> float:
    operations = rng.randint(10, 120)
    return sum(rng.random() < 0.003 for _ in range(operations)) / operations


CASES: list[tuple[str, Callable[[random.Random], float]]] = [
    ("token_efficiency", lognormal),
    ("cache_efficiency", uniform),
    ("active_time_ratio", bimodal),
    ("tool_overhead_ratio", constant),
    ("error_rate", mostly_zero),
]


@pytest.mark.parametrize(("kpi", "draw"), CASES, ids=[c[0] for c in CASES])
def test_matches_batch_truth_after_every_session(kpi: str, draw: Callable[[random.Random], float]) -> None:
    rng = random.Random(kpi)
    config = FeedbackConfig(baseline_window=30)
    records: list[SessionRecord] = []
    for i in range(80):
        records.append(SessionRecord(f"s{i}", "2026-02-14", "general-purpose", "claude-x", {kpi: draw(rng)}))
        baseline = compute_baseline("general-purpose", "claude-x", records, config, NOW)
        assert baseline.session_count == len(records)
        values = [r.kpis[kpi] for r in records[-30:]]
        if len(values) < 5:
            assert kpi not in baseline.kpis or baseline.kpis[kpi].status == "bootstrap"
            continue
        truth = batch_truth(kpi, [v for v in values if v is not None], KPI_SCALES[kpi].min_scale)
        assert_matches(baseline.kpis[kpi], truth, len(values))


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 101])
def test_percentile_is_numpys_linear_interpolation(n: int) -> None:
    rng = random.Random(n)
    values = sorted(rng.uniform(-5, 5) for _ in range(n))
    cuts = statistics.quantiles(values, n=100, method="inclusive") if n > 1 else [values[0]] * 99
    for q in (1, 25, 50, 95, 99):
        assert math.isclose(percentile(values, q / 100), cuts[q - 1], abs_tol=1e-12)
    assert percentile(values, 0.0) == values[0]
    assert percentile(values, 1.0) == values[-1]


def test_hand_computed_robust_baseline() -> None:
    # log(tool_overhead): ln 0.2, ln 0.4, ln 0.4, ln 0.8, ln 6.4 -> median ln 0.4;
    # |deviations| = ln 2, 0, 0, ln 2, 4 ln 2 -> MAD = ln 2
    values = [0.2, 0.4, 0.4, 0.8, 6.4]
    records = [rec(i, tool_overhead_ratio=v) for i, v in enumerate(values)]
    kb = compute_baseline("general-purpose", "claude-x", records, CONFIG, NOW).kpis["tool_overhead_ratio"]
    assert kb.center == pytest.approx(math.log(0.4))
    assert kb.scale == pytest.approx(1.4826 * math.log(2))
    assert kb.mean == pytest.approx(8.2 / 5)
    assert kb.p50 == pytest.approx(0.4)
    assert kb.p95 == pytest.approx(0.8 + 0.8 * (6.4 - 0.8))  # rank 0.95·4 = 3.8
    # scale back on the KPI's own scale: (0.4·2^1.4826 − 0.4·2^−1.4826)/2 = 0.49 > 0.5·0.4
    assert kb.low_confidence


def test_only_the_last_window_sessions_count() -> None:
    config = FeedbackConfig(baseline_window=10)
    records = [rec(i, cache_efficiency=0.2) for i in range(50)] + [rec(i, cache_efficiency=0.9) for i in range(50, 60)]
    kb = compute_baseline("general-purpose", "claude-x", records, config, NOW).kpis["cache_efficiency"]
    assert kb.count == 10
    assert kb.mean == pytest.approx(0.9)
    assert compute_baseline("general-purpose", "claude-x", records, config, NOW).window == 10


# --- what is left out ----------------------------------------------------------------------------------


def test_critical_sessions_are_left_out_of_that_kpi_only() -> None:
    healthy = [rec(i, token_efficiency=0.003, cache_efficiency=0.9) for i in range(10)]
    outliers = [
        rec(10 + i, critical=frozenset({"token_efficiency"}), token_efficiency=1e-5, cache_efficiency=0.5)
        for i in range(10)
    ]
    baseline = compute_baseline("general-purpose", "claude-x", healthy + outliers, CONFIG, NOW)
    te, cache = baseline.kpis["token_efficiency"], baseline.kpis["cache_efficiency"]
    assert te.count == 10 and te.mean == pytest.approx(0.003)
    assert cache.count == 20 and cache.mean == pytest.approx(0.7)
    assert baseline.session_count == 20


def test_null_and_non_finite_values_are_left_out() -> None:
    records = [rec(i, active_time_ratio=0.5) for i in range(6)]
    records += [rec(6, active_time_ratio=None), rec(7, active_time_ratio=math.nan), rec(8, active_time_ratio=math.inf)]
    kb = compute_baseline("general-purpose", "claude-x", records, CONFIG, NOW).kpis["active_time_ratio"]
    assert kb.count == 6
    assert kb.mean == 0.5


def test_a_kpi_with_too_few_values_is_absent_or_bootstrap() -> None:
    records = [rec(i, cache_efficiency=0.9, token_efficiency=None) for i in range(20)]
    records[-1] = rec(19, cache_efficiency=0.9, token_efficiency=0.003, quality_relevance=0.9)
    baseline = compute_baseline("general-purpose", "claude-x", records, CONFIG, NOW)
    assert baseline.kpis["token_efficiency"].status == "bootstrap"
    assert "quality_relevance" not in baseline.kpis
    assert baseline.kpis["cache_efficiency"].status == "converged"


# --- minimum scale ---------------------------------------------------------------------------------------


def test_min_scale_floor_keeps_a_single_failure_from_being_critical() -> None:
    records = [rec(i, error_rate=0.0) for i in range(60)] + [rec(60 + i, error_rate=1 / 40) for i in range(5)]
    baseline = compute_baseline("general-purpose", "claude-x", records, CONFIG, NOW)
    kb = baseline.kpis["error_rate"]
    assert kb.center == pytest.approx(math.log(0.001 / 0.999))  # 0 is clamped to 0.001
    assert kb.scale == KPI_SCALES["error_rate"].min_scale  # MAD is 0: the floor
    for failures, operations in [(1, 40), (1, 10), (1, 2)]:
        (alert,) = evaluate_alerts({"error_rate": failures / operations}, baseline, (), frozenset(), CONFIG)
        assert alert.severity != "CRITICAL", (failures, operations, alert)
    # Without the floor the same failure would be off the chart.
    unfloored = compute_baseline("g", "claude-x", records, FeedbackConfig(min_scale={"error_rate": 1e-6}), NOW)
    unfloored_z = bad_direction_z("error_rate", 1 / 40, unfloored.kpis["error_rate"])
    assert unfloored_z is not None and unfloored_z > 1e5


def test_configured_min_scale_overrides_the_default() -> None:
    records = [rec(i, cache_efficiency=0.9) for i in range(10)]
    baseline = compute_baseline("g", "claude-x", records, FeedbackConfig(min_scale={"cache_efficiency": 0.8}), NOW)
    assert baseline.kpis["cache_efficiency"].scale == 0.8


# --- bootstrap --------------------------------------------------------------------------------------------


def test_below_five_sessions_the_plans_bootstrap_defaults() -> None:
    records = [rec(i, token_efficiency=0.003, cache_efficiency=0.9) for i in range(4)]
    baseline = compute_baseline("general-purpose", "claude-x", records, CONFIG, NOW)
    assert baseline.status == "bootstrap"
    assert dict(baseline.kpis) == {
        "token_efficiency": KpiBaseline(mean=0.03, std_dev=0.02, status="bootstrap", raw=True),
        "task_completion_rate": KpiBaseline(mean=0.90, std_dev=0.10, status="bootstrap", raw=True),
        "active_time_ratio": KpiBaseline(mean=0.50, std_dev=0.15, status="bootstrap", raw=True),
    }
    terrible = {"token_efficiency": 1e-6, "task_completion_rate": 0.0, "active_time_ratio": 0.0}
    assert evaluate_alerts(terrible, baseline, (), frozenset(), FeedbackConfig(alert_bands="plan")) == ()
    fifth = compute_baseline("general-purpose", "claude-x", [*records, rec(4, token_efficiency=0.003)], CONFIG, NOW)
    assert fifth.status == "converged"
    assert fifth.kpis["token_efficiency"].status == "converged"


# --- plan-format files -----------------------------------------------------------------------------------


def plan_document() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(PLAN_FILE.read_text(encoding="utf-8"))
    return loaded


def test_plan_format_file_is_read_as_raw_baselines() -> None:
    plan = baseline_from_json(plan_document())
    assert (plan.method, plan.model, plan.status, plan.session_count) == ("plan", None, "plan", 12)
    assert list(plan.kpis) == list(KPI_NAMES)
    te = plan.kpis["token_efficiency"]
    assert te == KpiBaseline(mean=0.048, std_dev=0.012, p50=0.047, p95=0.062, p99=0.068, status="plan", raw=True)
    assert bad_direction_z("token_efficiency", 0.001, te) == pytest.approx((0.048 - 0.001) / 0.012)
    assert bad_direction_z("error_rate", 0.05, plan.kpis["error_rate"]) == pytest.approx((0.05 - 0.01) / 0.02)


def test_plan_format_file_round_trips() -> None:
    plan = baseline_from_json(plan_document())
    written = json.loads(json.dumps(baseline_to_json(plan)))
    assert written["method"] == "plan" and written["model"] is None
    assert baseline_from_json(written) == plan


def test_the_plans_bootstrap_file_reads_as_bootstrap() -> None:
    doc = {
        "agent_type": "new-agent",
        "version": "1.0.0",
        "session_count": 0,
        "baselines": {"token_efficiency": {"mean": 0.03, "std_dev": 0.02, "status": "bootstrap"}},
        "bootstrap_threshold": 5,
    }
    baseline = baseline_from_json(doc)
    assert baseline.kpis["token_efficiency"].status == "bootstrap"
    assert bad_direction_z("token_efficiency", 0.0001, baseline.kpis["token_efficiency"]) is None


def test_a_plan_file_is_used_as_is_until_five_sessions_exist() -> None:
    plan = baseline_from_json(plan_document())
    records = [rec(i, token_efficiency=0.003) for i in range(4)]
    assert choose_baseline(plan, "translation-agent", "claude-x", records, CONFIG, NOW) is plan
    records.append(rec(4, token_efficiency=0.003))
    computed = choose_baseline(plan, "translation-agent", "claude-x", records, CONFIG, NOW)
    assert (computed.method, computed.model, computed.status) == ("robust", "claude-x", "converged")
    assert computed.kpis["token_efficiency"].center == pytest.approx(math.log(0.003))


# --- model changes and CUSUM carry-over ------------------------------------------------------------------


def test_model_change_gives_a_fresh_baseline_from_that_models_sessions() -> None:
    old = [rec(i, model="model-a", token_efficiency=0.01) for i in range(20)]
    stored = compute_baseline("general-purpose", "model-a", old, CONFIG, NOW)
    stored = _with_cusum(stored, {"token_efficiency": 6.0})
    few_new = [*old, *(rec(100 + i, model="model-b", token_efficiency=0.002) for i in range(3))]
    fresh = choose_baseline(stored, "general-purpose", "model-b", few_new, CONFIG, NOW)
    assert (fresh.model, fresh.status, fresh.session_count, dict(fresh.cusum)) == ("model-b", "bootstrap", 3, {})
    enough_new = [*few_new, *(rec(200 + i, model="model-b", token_efficiency=0.002) for i in range(3))]
    fresh = choose_baseline(stored, "general-purpose", "model-b", enough_new, CONFIG, NOW)
    assert (fresh.model, fresh.status, fresh.session_count, dict(fresh.cusum)) == ("model-b", "converged", 6, {})
    assert fresh.kpis["token_efficiency"].center == pytest.approx(math.log(0.002))


def test_same_model_carries_the_cusum_state_over() -> None:
    records = [rec(i, token_efficiency=0.003) for i in range(8)]
    stored = _with_cusum(compute_baseline("g", "claude-x", records, CONFIG, NOW), {"token_efficiency": 4.5})
    again = choose_baseline(stored, "g", "claude-x", [*records, rec(9, token_efficiency=0.003)], CONFIG, NOW)
    assert dict(again.cusum) == {"token_efficiency": 4.5}
    assert again.session_count == 9


def _with_cusum(baseline: Baseline, cusum: dict[str, float]) -> Baseline:
    return replace(baseline, cusum=cusum)


# --- JSON and the store -----------------------------------------------------------------------------------


def computed_baseline() -> Baseline:
    rng = random.Random(3)
    records = [
        rec(i, token_efficiency=lognormal(rng), cache_efficiency=uniform(rng), error_rate=mostly_zero(rng))
        for i in range(40)
    ]
    return _with_cusum(compute_baseline("general-purpose", "claude-x", records, CONFIG, NOW), {"error_rate": 1.25})


def test_json_has_the_plans_schema_plus_the_robust_fields() -> None:
    doc = baseline_to_json(computed_baseline())
    assert list(doc) == [
        "agent_type",
        "version",
        "last_updated",
        "session_count",
        "method",
        "model",
        "window",
        "baselines",
        "bootstrap_threshold",
        "cusum",
    ]
    assert (doc["agent_type"], doc["model"], doc["method"], doc["session_count"]) == (
        "general-purpose",
        "claude-x",
        "robust",
        40,
    )
    te = doc["baselines"]["token_efficiency"]
    for key in ("mean", "std_dev", "p50", "p95", "p99", "status", "center", "scale", "transform", "low_confidence"):
        assert key in te
    assert te["transform"] == "log" and doc["baselines"]["cache_efficiency"]["transform"] == "logit"
    assert doc["baselines"]["task_completion_rate"]["status"] == "bootstrap"
    assert doc["baselines"]["task_completion_rate"]["transform"] is None


def test_json_round_trip() -> None:
    baseline = computed_baseline()
    assert baseline_from_json(json.loads(json.dumps(baseline_to_json(baseline)))) == baseline


def test_store_saves_atomically_and_loads(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    baseline = computed_baseline()
    path = store.save(baseline)
    assert path == tmp_path / "baselines" / "general-purpose.json"
    assert [p.name for p in path.parent.iterdir()] == ["general-purpose.json"]
    assert store.load("general-purpose") == baseline
    assert store.load("never-seen") is None


def test_store_reads_a_plan_format_file(tmp_path: Path) -> None:
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "translation-agent.json").write_bytes(PLAN_FILE.read_bytes())
    loaded = BaselineStore(tmp_path).load("translation-agent")
    assert loaded is not None and loaded.method == "plan"


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00",
        b"[]",
        b'{"agent_type": "general-purpose"}',
        b'{"agent_type": "general-purpose", "baselines": {"error_rate": {"mean": "x", "std_dev": 1}}}',
        b'{"agent_type": "general-purpose", "baselines": {"error_rate": {"mean": 0.1, "std_dev": -1}}}',
        b'{"agent_type": "general-purpose", "baselines": {"error_rate": {"mean": NaN, "std_dev": 1}}}',
        b'{"agent_type": "general-purpose", "session_count": -3, "baselines": {}}',
        b'{"agent_type": "general-purpose", "baselines": {"error_rate": {"mean": 0, "std_dev": 1, "status": "?"}}}',
        b"[" * 100_000,
    ],
    ids=["truncated", "binary", "list", "no-baselines", "text-mean", "negative-sd", "nan", "count", "status", "deep"],
)
def test_a_corrupt_file_loads_as_none_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "baselines").mkdir()
    (tmp_path / "baselines" / "general-purpose.json").write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="kpiloop.feedback.baselines"):
        assert BaselineStore(tmp_path).load("general-purpose") is None
    assert "ignoring unreadable baseline file" in caplog.text


def test_archive_moves_the_file_under_its_model_and_time(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path, FakeClock(1_771_070_400.0))  # 2026-02-14T12:00:00Z
    assert store.archive("general-purpose") is None
    store.save(computed_baseline())
    first = store.archive("general-purpose")
    assert first == tmp_path / "baselines" / "archive" / "general-purpose-claude-x-20260214T120000Z.json"
    assert not store.path("general-purpose").exists()
    store.save(computed_baseline())
    second = store.archive("general-purpose")
    assert second is not None and second.name == "general-purpose-claude-x-20260214T120000Z-2.json"
    assert baseline_from_json(json.loads(first.read_bytes())) == computed_baseline()


def test_reset_one_kpi_or_the_whole_file(tmp_path: Path) -> None:
    store = BaselineStore(tmp_path)
    store.save(computed_baseline())
    assert store.reset("general-purpose", "error_rate")
    loaded = store.load("general-purpose")
    assert loaded is not None
    assert "error_rate" not in loaded.kpis and "error_rate" not in loaded.cusum
    assert "token_efficiency" in loaded.kpis
    assert not store.reset("general-purpose", "error_rate")
    assert store.reset("general-purpose")
    assert store.load("general-purpose") is None
    assert not store.reset("general-purpose")


@pytest.mark.parametrize("agent_type", ["../etc", "a/b", "", ".."])
def test_unsafe_agent_types_never_become_paths(tmp_path: Path, agent_type: str) -> None:
    with pytest.raises(ValueError, match="unsafe agent type"):
        BaselineStore(tmp_path).path(agent_type)
