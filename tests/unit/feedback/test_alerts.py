"""One-sided alerts: robust and raw z, bands, hard thresholds, one alert per KPI, the plan's own case."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kpiloop.feedback.alerts import (
    alert_level,
    bad_direction_z,
    deviation_severity,
    evaluate_alerts,
    thresholds_for,
    unfit_thresholds,
)
from kpiloop.feedback.baselines import baseline_from_json, choose_baseline
from kpiloop.feedback.config import DEFAULT_THRESHOLDS, FeedbackConfig, HardThreshold
from kpiloop.feedback.transforms import KPI_SCALES
from kpiloop.feedback.types import Baseline, KpiBaseline, SessionRecord
from kpiloop.model import KPI_DIRECTIONS, Alert, Direction

PLAN_FILE = Path(__file__).parents[2] / "testdata" / "baselines" / "translation-agent.plan.json"
ROBUST = FeedbackConfig()
PLAN_BANDS = FeedbackConfig(alert_bands="plan")

# The E&N session's KPIs (core issue): 10,000 output of 10,000,000 tokens, 14 TaskUpdate / 12 TaskCreate
# capped at 1 (no task status), 22 % of the wall clock active, 26 management / 15 productive tool calls,
# 9,820,170 cache reads of 9,990,000 input-side tokens, no failures, the judges' medians and mean.
EN_KPIS: dict[str, float | None] = {
    "token_efficiency": 0.001,
    "task_completion_rate": 1.0,
    "active_time_ratio": 0.22,
    "tool_overhead_ratio": 26 / 15,
    "cache_efficiency": 0.983,
    "error_rate": 0.0,
    "quality_relevance": 0.95,
    "quality_faithfulness": 0.94,
    "quality_coherence": 0.93,
    "quality_hallucination": 0.03,
}


def robust_kb(kpi: str, centre: float, scale: float) -> KpiBaseline:
    return KpiBaseline(mean=centre, std_dev=0.0, center=KPI_SCALES[kpi].forward(centre), scale=scale, count=50)


def baseline_of(**kpis: KpiBaseline) -> Baseline:
    return Baseline(agent_type="general-purpose", model="claude-x", session_count=50, kpis=kpis)


def record(value: float | None, kpi: str = "token_efficiency") -> SessionRecord:
    return SessionRecord("s", "2026-02-14", "general-purpose", "claude-x", {kpi: value})


def plan_baseline() -> Baseline:
    return baseline_from_json(json.loads(PLAN_FILE.read_text(encoding="utf-8")))


# --- the robust z ---------------------------------------------------------------------------------


def test_robust_z_is_on_the_log_scale_and_positive_when_worse() -> None:
    kb = robust_kb("token_efficiency", 0.003, 0.5)
    z = bad_direction_z("token_efficiency", 0.003 * math.exp(-1.0), kb)  # one e-fold lower = 1/0.5 = 2 sd worse
    assert z == pytest.approx(2.0, abs=1e-12)
    assert bad_direction_z("token_efficiency", 0.003 * math.exp(1.0), kb) == pytest.approx(-2.0, abs=1e-12)


def test_robust_z_of_a_lower_is_better_rate_uses_the_logit() -> None:
    kb = robust_kb("error_rate", 0.02, 1.0)
    expected = math.log(0.1 / 0.9) - math.log(0.02 / 0.98)
    assert bad_direction_z("error_rate", 0.1, kb) == pytest.approx(expected, abs=1e-12)
    assert bad_direction_z("error_rate", 0.0, kb) == pytest.approx(math.log(0.001 / 0.999) - math.log(0.02 / 0.98))


def test_raw_z_uses_mean_and_std_dev_on_the_kpis_own_scale() -> None:
    raw = KpiBaseline(mean=0.42, std_dev=0.11, raw=True, status="plan")
    assert bad_direction_z("tool_overhead_ratio", 26 / 15, raw) == pytest.approx((26 / 15 - 0.42) / 0.11)
    higher = KpiBaseline(mean=0.68, std_dev=0.08, raw=True, status="plan")
    assert bad_direction_z("active_time_ratio", 0.22, higher) == pytest.approx((0.68 - 0.22) / 0.08)


@pytest.mark.parametrize(
    ("value", "kb"),
    [
        (None, KpiBaseline(mean=0.5, std_dev=0.1, raw=True)),
        (math.nan, KpiBaseline(mean=0.5, std_dev=0.1, raw=True)),
        (0.1, KpiBaseline(mean=0.5, std_dev=0.0, raw=True)),
        (0.1, KpiBaseline(mean=0.5, std_dev=0.1, raw=True, status="bootstrap")),
        (0.1, KpiBaseline(mean=0.5, std_dev=0.1, center=0.0, scale=0.0)),
        (0.1, KpiBaseline(mean=0.5, std_dev=0.1)),  # robust without centre/scale
    ],
    ids=["none", "nan", "zero-sd", "bootstrap", "zero-scale", "no-centre"],
)
def test_no_z_when_it_cannot_be_computed(value: float | None, kb: KpiBaseline) -> None:
    assert bad_direction_z("active_time_ratio", value, kb) is None


@pytest.mark.parametrize(
    ("z", "robust", "plan"),
    [
        (None, None, None),
        (-5.0, None, None),
        (0.99, None, None),
        (1.0, None, None),
        (1.5, "INFO", "WARNING"),
        (2.0, "INFO", "WARNING"),
        (2.5, "WARNING", "CRITICAL"),
        (3.0, "WARNING", "CRITICAL"),
        (3.01, "CRITICAL", "CRITICAL"),
    ],
)
def test_severity_bands(z: float | None, robust: str | None, plan: str | None) -> None:
    assert deviation_severity(z, "robust") == robust
    assert deviation_severity(z, "plan") == plan


# --- evaluate_alerts --------------------------------------------------------------------------------


def test_deviation_alert_message_value_and_baseline() -> None:
    kb = robust_kb("token_efficiency", 0.003, 0.5)
    value = 0.003 * math.exp(-1.9)  # 3.8 robust sd below
    (alert,) = evaluate_alerts({"token_efficiency": value}, baseline_of(token_efficiency=kb), (), frozenset(), ROBUST)
    assert alert.message == "token_efficiency is 3.8 robust sd below baseline"
    assert (alert.kpi, alert.severity, alert.kind) == ("token_efficiency", "CRITICAL", "deviation")
    assert alert.value == value
    assert alert.baseline == pytest.approx(0.003)
    assert alert.z == pytest.approx(3.8)


def test_lower_is_better_deviation_says_above() -> None:
    kb = robust_kb("tool_overhead_ratio", 0.4, 0.25)
    value = 0.4 * math.exp(0.25 * 2.5)
    (alert,) = evaluate_alerts(
        {"tool_overhead_ratio": value}, baseline_of(tool_overhead_ratio=kb), (), frozenset(), ROBUST
    )
    assert alert.message == "tool_overhead_ratio is 2.5 robust sd above baseline"
    assert alert.severity == "WARNING"


def test_hard_threshold_message_severity_and_priority() -> None:
    alerts = evaluate_alerts({"token_efficiency": 0.001}, baseline_of(), DEFAULT_THRESHOLDS, frozenset(), ROBUST)
    assert alerts == (
        Alert(
            "token_efficiency",
            "CRITICAL",
            "threshold",
            0.001,
            message="token_efficiency 0.001 < 0.01 (hard threshold)",
            priority="CRITICAL",
        ),
    )
    (warning,) = evaluate_alerts({"tool_overhead_ratio": 2.5}, baseline_of(), DEFAULT_THRESHOLDS, frozenset(), ROBUST)
    assert (warning.severity, warning.priority, warning.message) == (
        "WARNING",
        "HIGH",
        "tool_overhead_ratio 2.5 > 2 (hard threshold)",
    )


def test_an_unfit_threshold_is_reported_as_info() -> None:
    (alert,) = evaluate_alerts(
        {"token_efficiency": 0.003}, baseline_of(), DEFAULT_THRESHOLDS, frozenset({"token_efficiency"}), ROBUST
    )
    assert (alert.severity, alert.kind) == ("INFO", "threshold_unfit")
    assert alert.message.startswith("token_efficiency 0.003 < 0.01 (hard threshold)")
    assert alert_level((alert,)) == "PASS"


def test_one_alert_per_kpi_deviation_wins_a_tie() -> None:
    kb = robust_kb("token_efficiency", 0.05, 0.25)
    alerts = evaluate_alerts(
        {"token_efficiency": 0.001}, baseline_of(token_efficiency=kb), DEFAULT_THRESHOLDS, frozenset(), ROBUST
    )
    assert [(a.kpi, a.severity, a.kind) for a in alerts] == [("token_efficiency", "CRITICAL", "deviation")]


def test_one_alert_per_kpi_the_more_severe_threshold_wins_over_a_warning_deviation() -> None:
    # 0.009 vs centre 0.016: z = ln(0.016/0.009)/0.25 = 2.3 -> WARNING; the CRITICAL threshold is kept.
    kb = robust_kb("token_efficiency", 0.016, 0.25)
    alerts = evaluate_alerts(
        {"token_efficiency": 0.009}, baseline_of(token_efficiency=kb), DEFAULT_THRESHOLDS, frozenset(), ROBUST
    )
    assert [(a.kpi, a.severity, a.kind) for a in alerts] == [("token_efficiency", "CRITICAL", "threshold")]


def test_unfit_threshold_info_loses_to_a_warning_deviation() -> None:
    kb = robust_kb("token_efficiency", 0.003, 0.25)
    value = 0.003 * math.exp(-0.25 * 2.5)
    alerts = evaluate_alerts(
        {"token_efficiency": value},
        baseline_of(token_efficiency=kb),
        DEFAULT_THRESHOLDS,
        frozenset({"token_efficiency"}),
        ROBUST,
    )
    assert [(a.severity, a.kind) for a in alerts] == [("WARNING", "deviation")]


def test_null_kpis_never_alert() -> None:
    kbs = {kpi: KpiBaseline(mean=0.5, std_dev=0.01, raw=True, status="plan") for kpi in KPI_DIRECTIONS}
    nulls: dict[str, float | None] = dict.fromkeys(KPI_DIRECTIONS)
    assert evaluate_alerts(nulls, baseline_of(**kbs), DEFAULT_THRESHOLDS, frozenset(), PLAN_BANDS) == ()


def test_a_bootstrap_baseline_raises_no_deviation_alerts_but_thresholds_still_apply() -> None:
    bootstrap = Baseline(
        agent_type="new-agent",
        model="claude-x",
        session_count=2,
        kpis={"token_efficiency": KpiBaseline(mean=0.03, std_dev=0.02, status="bootstrap", raw=True)},
    )
    assert evaluate_alerts({"token_efficiency": 0.011}, bootstrap, DEFAULT_THRESHOLDS, frozenset(), PLAN_BANDS) == ()
    alerts = evaluate_alerts({"token_efficiency": 0.001}, bootstrap, DEFAULT_THRESHOLDS, frozenset(), PLAN_BANDS)
    assert [a.kind for a in alerts] == ["threshold"]


def test_alerts_come_out_in_kpi_order() -> None:
    kpis = {"tool_overhead_ratio": 3.0, "error_rate": 0.5, "token_efficiency": 0.001}
    alerts = evaluate_alerts(kpis, baseline_of(), DEFAULT_THRESHOLDS, frozenset(), ROBUST)
    assert [a.kpi for a in alerts] == ["token_efficiency", "tool_overhead_ratio", "error_rate"]


def test_alert_level() -> None:
    info = Alert("error_rate", "INFO", "deviation", 0.1)
    warning = Alert("cache_efficiency", "WARNING", "deviation", 0.5)
    critical = Alert("token_efficiency", "CRITICAL", "threshold", 0.001)
    assert alert_level(()) == "PASS"
    assert alert_level((info,)) == "PASS"
    assert alert_level((info, warning)) == "WARNING"
    assert alert_level((warning, critical, info)) == "CRITICAL"


# --- the plan's own case ------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [ROBUST, PLAN_BANDS], ids=["robust-bands", "plan-bands"])
def test_the_plans_own_case_is_critical_on_the_three_regressions(config: FeedbackConfig) -> None:
    baseline = choose_baseline(plan_baseline(), "translation-agent", "claude-opus-4-6", [], config, "2026-02-15")
    assert baseline.method == "plan"
    thresholds = thresholds_for("translation-agent", config)
    alerts = evaluate_alerts(EN_KPIS, baseline, thresholds, frozenset(), config)
    by_kpi = {a.kpi: a for a in alerts}
    assert alert_level(alerts) == "CRITICAL"
    assert set(by_kpi) == {"token_efficiency", "active_time_ratio", "tool_overhead_ratio"}
    assert all(a.severity == "CRITICAL" and a.kind == "deviation" for a in alerts)
    assert by_kpi["token_efficiency"].z == pytest.approx((0.048 - 0.001) / 0.012)  # 3.9 sd
    assert by_kpi["active_time_ratio"].z == pytest.approx((0.68 - 0.22) / 0.08)  # 5.75 sd
    assert by_kpi["tool_overhead_ratio"].z == pytest.approx((26 / 15 - 0.42) / 0.11)  # 11.9 sd
    assert by_kpi["token_efficiency"].message == "token_efficiency is 3.9 sd below baseline"
    assert "cache_efficiency" not in by_kpi  # 0.983 vs 0.94: an improvement
    cache_z = bad_direction_z("cache_efficiency", 0.983, baseline.kpis["cache_efficiency"])
    assert cache_z is not None and cache_z < 0


# --- improvements never alert --------------------------------------------------------------------------

# A healthy baseline centre per KPI (on the good side of the plan's hard thresholds).
HEALTHY = {
    "token_efficiency": 0.05,
    "task_completion_rate": 0.9,
    "active_time_ratio": 0.6,
    "tool_overhead_ratio": 0.4,
    "cache_efficiency": 0.9,
    "error_rate": 0.02,
    "quality_relevance": 0.9,
    "quality_faithfulness": 0.9,
    "quality_coherence": 0.9,
    "quality_hallucination": 0.05,
    "cost_per_output_token": 1e-5,
}


def improvements(kpi: str, centre: float) -> list[float]:
    if KPI_DIRECTIONS[kpi] is Direction.HIGHER_IS_BETTER:
        return [centre, centre * 1.0001, (centre + 1.0) / 2, 0.999, 1.0, 2.0, 1e12]
    return [centre, centre * 0.9999, centre / 2, centre / 1000, 1e-300, 0.0]


def kpi_baseline(kpi: str, centre: float, kind: str) -> KpiBaseline:
    if kind == "raw":
        return KpiBaseline(mean=centre, std_dev=centre / 100, raw=True, status="plan")
    return robust_kb(kpi, centre, KPI_SCALES[kpi].min_scale / 10)


@pytest.mark.parametrize("kind", ["robust", "raw"])
@pytest.mark.parametrize("config", [ROBUST, PLAN_BANDS], ids=["robust-bands", "plan-bands"])
@pytest.mark.parametrize("kpi", list(KPI_DIRECTIONS))
def test_an_improvement_of_any_size_never_alerts(kpi: str, config: FeedbackConfig, kind: str) -> None:
    centre = HEALTHY[kpi]
    baseline = baseline_of(**{kpi: kpi_baseline(kpi, centre, kind)})
    for value in improvements(kpi, centre):
        assert evaluate_alerts({kpi: value}, baseline, DEFAULT_THRESHOLDS, frozenset(), config) == (), value
    # The same baseline does alert on a regression, so the test can fail.
    worse = centre / 3 if KPI_DIRECTIONS[kpi] is Direction.HIGHER_IS_BETTER else min(centre * 3, 0.99)
    assert evaluate_alerts({kpi: worse}, baseline, (), frozenset(), config) != ()


@settings(max_examples=300, deadline=None)
@given(
    kpi=st.sampled_from(list(KPI_DIRECTIONS)),
    centre=st.floats(min_value=1e-9, max_value=0.999999),
    gain=st.floats(min_value=0.0, max_value=1e12, allow_nan=False),
    spread=st.floats(min_value=1e-6, max_value=10.0),
    kind=st.sampled_from(["robust", "raw"]),
    bands=st.sampled_from(["robust", "plan"]),
)
def test_improvements_never_alert_property(
    kpi: str, centre: float, gain: float, spread: float, kind: str, bands: str
) -> None:
    higher = KPI_DIRECTIONS[kpi] is Direction.HIGHER_IS_BETTER
    value = centre + gain if higher else max(centre - gain, 0.0)
    if kind == "raw":
        kb = KpiBaseline(mean=centre, std_dev=spread, raw=True, status="plan")
    else:
        kb = KpiBaseline(mean=centre, std_dev=0.0, center=KPI_SCALES[kpi].forward(centre), scale=spread)
    config = ROBUST if bands == "robust" else PLAN_BANDS
    assert evaluate_alerts({kpi: value}, baseline_of(**{kpi: kb}), (), frozenset(), config) == ()


# --- thresholds per agent type and fit ------------------------------------------------------------------


def test_thresholds_for_agent_type_then_default_then_the_plans() -> None:
    mine = HardThreshold(kpi="token_efficiency", operator="<", threshold=0.001, severity="WARNING", priority="LOW")
    default = HardThreshold(kpi="error_rate", operator=">", threshold=0.5, severity="CRITICAL", priority="HIGH")
    config = FeedbackConfig(hard_thresholds={"general-purpose": [mine], "default": [default], "quiet": []})
    assert thresholds_for("general-purpose", config) == (mine,)
    assert thresholds_for("translation-agent", config) == (default,)
    assert thresholds_for("quiet", config) == ()
    assert thresholds_for("general-purpose", FeedbackConfig()) == DEFAULT_THRESHOLDS


def test_unfit_needs_ten_known_values() -> None:
    assert unfit_thresholds([record(0.003)] * 9, DEFAULT_THRESHOLDS) == frozenset()
    assert unfit_thresholds([record(0.003)] * 10, DEFAULT_THRESHOLDS) == frozenset({"token_efficiency"})
    nulls_then_nine = [record(None)] * 11 + [record(0.003)] * 9
    assert unfit_thresholds(nulls_then_nine, DEFAULT_THRESHOLDS) == frozenset()


def test_unfit_needs_more_than_half_of_the_last_twenty() -> None:
    half = [record(0.003), record(0.05)] * 10
    assert unfit_thresholds(half, DEFAULT_THRESHOLDS) == frozenset()
    assert unfit_thresholds([*half[:-1], record(0.003)], DEFAULT_THRESHOLDS) == frozenset({"token_efficiency"})


def test_unfit_looks_only_at_the_last_twenty_sessions() -> None:
    old_failures = [record(0.003)] * 30 + [record(0.05)] * 20
    assert unfit_thresholds(old_failures, DEFAULT_THRESHOLDS) == frozenset()
    recent_failures = [record(0.05)] * 30 + [record(0.003)] * 11
    assert unfit_thresholds(recent_failures, DEFAULT_THRESHOLDS) == frozenset({"token_efficiency"})
