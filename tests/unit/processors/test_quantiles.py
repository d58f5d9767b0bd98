"""ScoreDigest against batch truth: exact up to 64 scores, the LogSketch guarantee beyond."""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Callable

import pytest

from kpiloop.processors.quantiles import LogSketch, ScoreDigest

ALPHA = 0.005  # LogSketch's default (and ScoreDigest's) relative accuracy
EXACT_LIMIT = 64


def within_guarantee(estimate: float, truth: float) -> bool:
    # A value exactly on a bucket boundary is off by exactly ALPHA; allow float rounding on top.
    return abs(estimate - truth) <= ALPHA * abs(truth) * (1 + 1e-9) + 1e-300


def uniform(rng: random.Random) -> float:
    return rng.uniform(0.0, 1.0)


def lognormal(rng: random.Random) -> float:
    return rng.lognormvariate(0.0, 1.5)


def bimodal(rng: random.Random) -> float:
    return rng.gauss(10.0, 1.0) if rng.random() < 0.5 else rng.gauss(100.0, 5.0)


def constant(rng: random.Random) -> float:
    return 0.73


def zeros_and_negatives(rng: random.Random) -> float:
    draw = rng.random()
    if draw < 0.3:
        return 0.0
    if draw < 0.6:
        return rng.uniform(-5.0, -0.1)
    return rng.expovariate(1.0)


def negative(rng: random.Random) -> float:
    return rng.gauss(-50.0, 10.0)


def mostly_zero(rng: random.Random) -> float:
    return 0.0 if rng.random() < 0.8 else rng.uniform(0.0, 1.0)


DISTRIBUTIONS = [uniform, lognormal, bimodal, constant, zeros_and_negatives, negative, mostly_zero]


def draw(distribution: Callable[[random.Random], float], count: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [distribution(rng) for _ in range(count)]


def test_empty_digest_has_no_median_or_mean():
    digest = ScoreDigest()
    assert digest.count == 0
    assert digest.median() is None
    assert digest.mean() is None


def test_empty_sketch_has_no_quantile():
    sketch = LogSketch()
    assert sketch.count == 0
    assert sketch.quantile(0.5) is None


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_exact_up_to_the_limit(distribution, seed):
    digest = ScoreDigest()
    seen = []
    for value in draw(distribution, EXACT_LIMIT, seed):
        digest.add(value)
        seen.append(value)
        assert digest.count == len(seen)
        median, mean = digest.median(), digest.mean()
        assert median is not None
        assert mean is not None
        assert math.isclose(median, statistics.median(seen), abs_tol=1e-10)
        assert math.isclose(mean, statistics.fmean(seen), abs_tol=1e-10)


def test_even_count_median_is_the_mean_of_the_two_middle_values():
    digest = ScoreDigest()
    for value in [0.9, 0.2, 0.6, 0.4]:
        digest.add(value)
    assert digest.median() == pytest.approx(0.5)  # sorted 0.2 0.4 | 0.6 0.9 → (0.4 + 0.6) / 2
    assert digest.mean() == pytest.approx(0.525)  # 2.1 / 4


def test_median_is_still_exact_at_the_limit_and_sketched_one_past_it():
    # 32 values of 1 and 32 of 3: the exact even-count median is 2, a value no sketch bucket holds.
    digest = ScoreDigest()
    for value in [1.0, 3.0] * 32:
        digest.add(value)
    assert digest.count == EXACT_LIMIT
    assert digest.median() == 2.0
    digest.add(3.0)  # 65 values: sketched; the middle value (rank 32) is 3
    median = digest.median()
    assert median is not None
    assert median != 3.0  # bucketed, no longer the exact value
    assert within_guarantee(median, 3.0)
    assert digest.mean() == pytest.approx((32 * 1.0 + 33 * 3.0) / 65)


def test_exact_limit_is_configurable():
    digest = ScoreDigest(exact_limit=2)
    for value in [1.0, 3.0]:
        digest.add(value)
    assert digest.median() == 2.0
    digest.add(3.0)
    median = digest.median()
    assert median is not None
    assert within_guarantee(median, 3.0)


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("seed", [11, 12])
def test_beyond_the_limit_the_median_keeps_the_documented_relative_accuracy(distribution, seed):
    # The sketch returns the value at rank q * (count - 1) = (count - 1) / 2, i.e. the lower middle
    # value for an even count, within ALPHA relative error; the mean stays exact.
    digest = ScoreDigest()
    ordered: list[float] = []
    total = 0.0
    for value in draw(distribution, 1500, seed):
        digest.add(value)
        bisect.insort(ordered, value)
        total = math.fsum((total, value))
        if len(ordered) <= EXACT_LIMIT:
            continue
        median, mean = digest.median(), digest.mean()
        assert median is not None
        assert mean is not None
        truth = ordered[(len(ordered) - 1) // 2]
        assert within_guarantee(median, truth), (len(ordered), median, truth)
        assert math.isclose(mean, total / len(ordered), rel_tol=1e-9, abs_tol=1e-10)


def test_zero_median_is_exactly_zero():
    digest = ScoreDigest()
    for value in [-1.0, 0.0, 0.0, 2.0] * 50:
        digest.add(value)
    assert digest.median() == 0.0


def test_constant_zero_stream():
    digest = ScoreDigest()
    for _ in range(200):
        digest.add(0.0)
    assert digest.median() == 0.0
    assert digest.mean() == 0.0


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
@pytest.mark.parametrize("q", [0.0, 0.1, 0.25, 0.5, 0.9, 0.99, 1.0])
def test_sketch_quantiles_are_within_relative_accuracy(distribution, q):
    values = draw(distribution, 2000, seed=5)
    sketch = LogSketch(relative_accuracy=ALPHA)
    for value in values:
        sketch.add(value)
    ordered = sorted(values)
    truth = ordered[math.floor(q * (len(ordered) - 1))]
    estimate = sketch.quantile(q)
    assert estimate is not None
    assert within_guarantee(estimate, truth), (estimate, truth)


def test_sketch_relative_accuracy_is_a_parameter():
    sketch = LogSketch(relative_accuracy=0.1)
    sketch.add(100.0)
    estimate = sketch.quantile(0.5)
    assert estimate is not None
    assert abs(estimate - 100.0) <= 0.1 * 100.0
    assert abs(estimate - 100.0) > ALPHA * 100.0  # a coarser sketch really is coarser here
