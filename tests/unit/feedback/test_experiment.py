"""The decision statistics of the impact experiment, measured in-process on seeded simulated runs
with the library's own code (assignment hash, result recording, decision).

Simulation: the target KPI is token_efficiency, log-normal around 0.03 with sd 0.6 on the log scale
(the transformed scale the test runs on); a treated session's log value is shifted by
``effect`` sd. Each run closes sessions one by one, records the session in the suggestion's
tracking, and stops at the first decision or at ``max_tracked_sessions`` (60).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

import pytest

from kpiloop.feedback.active import new_tracking
from kpiloop.feedback.assignment import assigned
from kpiloop.feedback.config import FeedbackConfig
from kpiloop.feedback.experiment import (
    Arm,
    Decision,
    confidence_sequence,
    decide,
    decide_plan,
    decide_sequential,
    pseudo_outcomes,
    record_result,
)

RUNS = 300
CENTRE = 0.03
SIGMA = 0.6
SEQUENTIAL = FeedbackConfig()
PLAN = FeedbackConfig(effectiveness="plan")


def entry(kpi: str = "token_efficiency", direction: str = "increase") -> dict[str, Any]:
    return {
        "id": "opt-background-agents",
        "expected_impact": {"kpi": kpi, "direction": direction},
        "tracking": new_tracking(),
    }


def simulate(effect: float, seed: int, config: FeedbackConfig) -> tuple[str, int]:
    """(decision, sessions used) of one run."""
    rng = random.Random(seed)
    suggestion = entry()
    tracking = suggestion["tracking"]
    for index in range(config.max_tracked_sessions):
        session = f"run{seed}-s{index}"
        treated = assigned(session, suggestion["id"])
        arm: Arm = "treated" if treated else "control"
        shift = effect * SIGMA if treated else 0.0
        value = CENTRE * math.exp(SIGMA * rng.gauss(0.0, 1.0) + shift)
        record_result(tracking, session, arm, CENTRE, value)
        decision = decide(suggestion, config)
        if decision.effectiveness != "TRACKING":
            return decision.effectiveness, index + 1
    return "TRACKING", config.max_tracked_sessions


def rates(effect: float, config: FeedbackConfig) -> Counter[str]:
    return Counter(simulate(effect, seed, config)[0] for seed in range(RUNS))


@pytest.fixture(scope="module")
def measured() -> dict[tuple[str, float], Counter[str]]:
    table = {}
    for name, config in (("sequential", SEQUENTIAL), ("plan", PLAN)):
        for effect in (1.0, 0.0, -1.0):
            table[(name, effect)] = rates(effect, config)
    print(f"\nimpact experiment, {RUNS} runs each (share of runs):")
    for (name, effect), counts in sorted(table.items()):
        shares = ", ".join(f"{state} {count / RUNS:.1%}" for state, count in sorted(counts.items()))
        print(f"  {name:10s} effect {effect:+.0f} sd: {shares}")
    return table


def test_a_true_one_sd_effect_is_promoted_within_60_sessions_in_most_runs(measured: Any) -> None:
    counts = measured[("sequential", 1.0)]
    assert counts["PROVEN"] / RUNS >= 0.70
    assert counts["HARMFUL"] == 0


def test_no_effect_is_promoted_in_at_most_five_percent_of_runs(measured: Any) -> None:
    counts = measured[("sequential", 0.0)]
    assert counts["PROVEN"] / RUNS <= 0.05
    assert counts["TRACKING"] == 0  # every run ends decided by session 60


def test_a_harmful_effect_is_retired_and_never_promoted(measured: Any) -> None:
    counts = measured[("sequential", -1.0)]
    assert counts["PROVEN"] == 0
    assert counts["HARMFUL"] / RUNS >= 0.70
    assert counts["HARMFUL"] + counts["INEFFECTIVE"] == RUNS


def test_the_plan_rule_promotes_suggestions_without_effect_often(measured: Any) -> None:
    false_promotions = measured[("plan", 0.0)]["PROVEN"] / RUNS
    assert 0.20 <= false_promotions <= 0.70
    assert false_promotions > 4 * measured[("sequential", 0.0)]["PROVEN"] / RUNS


def test_a_decrease_rule_is_proven_by_a_decrease() -> None:
    rng = random.Random(7)
    observations = [
        (arm, math.log(0.4) + 0.3 * rng.gauss(0, 1) - (0.6 if arm == "treated" else 0.0))
        for arm in ["treated", "control"] * 20
    ]
    decision = decide_sequential(observations, "tool_overhead_ratio", "decrease", 60)
    assert decision.effectiveness == "PROVEN"
    assert decision.estimate is not None and decision.estimate < 0
    flipped = decide_sequential(observations, "tool_overhead_ratio", "increase", 60)
    assert flipped.effectiveness == "HARMFUL"


def test_no_decision_before_ten_sessions_with_three_per_arm() -> None:
    huge = [("treated", 10.0), ("control", 0.0)] * 4
    assert decide_sequential(huge, "token_efficiency", "increase", 60).effectiveness == "TRACKING"
    one_arm = [("treated", 10.0 + i) for i in range(12)]
    assert decide_sequential(one_arm, "token_efficiency", "increase", 60).effectiveness == "TRACKING"


def test_undecided_at_the_session_limit_is_ineffective() -> None:
    flat = [("treated" if i % 2 else "control", 0.1 * ((i * 7) % 5)) for i in range(20)]
    assert decide_sequential(flat, "token_efficiency", "increase", 20).effectiveness == "INEFFECTIVE"
    assert decide_sequential(flat[:19], "token_efficiency", "increase", 20).effectiveness == "TRACKING"


def test_pseudo_outcomes_centre_on_the_earlier_mean_and_sign_by_arm() -> None:
    assert pseudo_outcomes([("control", 1.0), ("treated", 3.0), ("control", 0.0)]) == [4.0, 4.0]


def test_the_confidence_sequence_shrinks_and_contains_the_mean() -> None:
    wide = confidence_sequence([1.0, -1.0] * 5, 30.0)
    narrow = confidence_sequence([1.0, -1.0] * 50, 30.0)
    assert wide is not None and narrow is not None
    assert wide[1] < 0 < wide[2] and narrow[2] - narrow[1] < wide[2] - wide[1]
    assert confidence_sequence([], 30.0) is None
    floored = confidence_sequence([0.5] * 20, 30.0, sd_floor=1.0)
    assert floored is not None and floored[1] < 0


def test_the_plan_rule_uses_the_first_three_treated_sessions() -> None:
    results = [
        {"session": "a", "arm": "treated", "kpi_before": 1.0, "kpi_after": 1.3},
        {"session": "b", "arm": "control", "kpi_before": 1.0, "kpi_after": 5.0},
        {"session": "c", "arm": "treated", "kpi_before": 1.0, "kpi_after": 1.0},
    ]
    assert decide_plan(results, "token_efficiency", "increase").effectiveness == "TRACKING"
    results.append({"session": "d", "arm": "treated", "kpi_before": 1.0, "kpi_after": 1.25})
    decision = decide_plan(results, "token_efficiency", "increase")
    assert decision == Decision("PROVEN", "plan", 4, 3, 1, relative=decision.relative)
    assert decision.relative == pytest.approx(0.55 / 3)
    assert "plan rule" in decision.label
    assert decide_plan(results, "token_efficiency", "decrease").effectiveness == "INEFFECTIVE"


def test_record_result_replaces_a_reclosed_session() -> None:
    tracking = new_tracking()
    record_result(tracking, "a", "treated", 0.05, 0.06)
    record_result(tracking, "b", "control", 0.05, 0.04)
    record_result(tracking, "a", "treated", 0.05, 0.07)
    assert tracking["session_count"] == 2
    assert tracking["sessions_applied"] == ["a"]
    assert [r["kpi_after"] for r in tracking["impact_results"]] == [0.07, 0.04]
    assert tracking["impact_results"][0]["delta"] == "+40.0%"
