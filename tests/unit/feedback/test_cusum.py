"""One-sided CUSUM on the bad-direction robust z: hand-computed sums, firing, reset, None handling."""

from __future__ import annotations

import random

import pytest

from kpiloop.feedback.cusum import update_cusum

K, H = 0.5, 8.0


def run(zs: list[float | None], kpi: str = "token_efficiency") -> tuple[list[float], list[bool]]:
    state: dict[str, float] = {}
    sums, fires = [], []
    for z in zs:
        state, fired = update_cusum(state, {kpi: z}, K, H)
        sums.append(state.get(kpi, 0.0))
        fires.append(kpi in fired)
    return sums, fires


def test_sum_adds_z_minus_k_and_never_goes_below_zero() -> None:
    sums, fires = run([1.5, 2.5, -4.0, 0.5, 3.0])
    # 0+1.5-0.5=1.0; 1.0+2.5-0.5=3.0; max(0, 3.0-4.0-0.5)=0; max(0, 0+0.5-0.5)=0; 0+3.0-0.5=2.5
    assert sums == [1.0, 3.0, 0.0, 0.0, 2.5]
    assert fires == [False] * 5


def test_fires_only_when_the_sum_exceeds_h_then_restarts_at_zero() -> None:
    sums, fires = run([4.0, 4.5, 1.0])  # 3.5, 3.5+min(4.5,4)-0.5 = 7.0, 7.0+0.5 = 7.5, then 2.0 -> 9.0 > 8
    assert sums == [3.5, 7.0, 7.5]
    assert fires == [False, False, False]
    state, fired = update_cusum({"token_efficiency": 7.5}, {"token_efficiency": 1.0}, K, H)  # 8.0 == h: not yet
    assert (state, fired) == ({"token_efficiency": 8.0}, frozenset())
    state, fired = update_cusum(state, {"token_efficiency": 1.0}, K, H)  # 8.5 > 8: fires and restarts
    assert (state, fired) == ({"token_efficiency": 0.0}, frozenset({"token_efficiency"}))


def test_one_extreme_session_never_opens_an_incident_alone() -> None:
    sums, fires = run([50.0, 0.0, 0.0])  # z capped at h / 2 = 4: 3.5, then it decays
    assert sums == [3.5, 3.0, 2.5]
    assert fires == [False, False, False]


def test_a_sustained_two_sd_shift_fires_on_the_sixth_session() -> None:
    # S_n = 1.5 n: 7.5 after 5 sessions, 9.0 > 8 after 6.
    _, fires = run([2.0] * 8)
    assert fires.index(True) == 5
    assert fires.count(True) == 1


def test_none_leaves_the_sum_unchanged() -> None:
    state, fired = update_cusum({"error_rate": 3.0}, {"error_rate": None, "cache_efficiency": None}, K, H)
    assert state == {"error_rate": 3.0}
    assert fired == frozenset()


def test_only_the_kpi_that_fired_is_reset_and_the_input_is_not_mutated() -> None:
    before = {"error_rate": 7.9, "active_time_ratio": 7.9}
    state, fired = update_cusum(before, {"error_rate": 1.0, "active_time_ratio": 0.5}, K, H)
    assert fired == frozenset({"error_rate"})
    assert state == {"error_rate": 0.0, "active_time_ratio": pytest.approx(7.9)}
    assert before == {"error_rate": 7.9, "active_time_ratio": 7.9}


def test_state_of_kpis_without_a_z_this_session_is_kept() -> None:
    state, _ = update_cusum({"quality_relevance": 2.0}, {"token_efficiency": 1.0}, K, H)
    assert state == {"quality_relevance": 2.0, "token_efficiency": 0.5}


def test_matches_a_batch_recomputation_step_by_step() -> None:
    rng = random.Random(7)
    zs: list[float | None] = [None if rng.random() < 0.1 else rng.gauss(0.8, 1.5) for _ in range(400)]
    state: dict[str, float] = {}
    for n, z in enumerate(zs, start=1):
        state, fired = update_cusum(state, {"tool_overhead_ratio": z}, K, H)
        # Batch truth: replay the prefix with the textbook recursion.
        s, last_fire = 0.0, False
        for value in zs[:n]:
            if value is None:
                last_fire = False
                continue
            s = max(0.0, s + min(value, H / 2) - K)
            last_fire = s > H
            s = 0.0 if last_fire else s
        assert state.get("tool_overhead_ratio", 0.0) == pytest.approx(s, abs=1e-10)
        assert ("tool_overhead_ratio" in fired) == last_fire
