"""IntervalUnion against a brute-force union, in order, shuffled within the window, and beyond it."""

from __future__ import annotations

import random
from collections.abc import Iterable

from hypothesis import given, settings
from hypothesis import strategies as st

from kpiloop.processors.intervals import IntervalUnion


def union_length(intervals: Iterable[tuple[int, int]]) -> int:
    """Length of the union, by sorting and merging (the batch truth)."""
    total = 0
    current_start: int | None = None
    current_end = 0
    for start, end in sorted((s, e) for s, e in intervals if e > s):
        if current_start is None or start > current_end:
            if current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_start is not None:
        total += current_end - current_start
    return total


def streamed(intervals: Iterable[tuple[int, int]], window: int = 64) -> int:
    union = IntervalUnion(window)
    for start, end in intervals:
        union.add(start, end)
    return union.total()


interval = st.tuples(st.integers(0, 1000), st.integers(0, 60)).map(lambda p: (p[0], p[0] + p[1]))
intervals = st.lists(interval, max_size=80)
windows = st.integers(1, 8)


def test_brute_force_reference():
    assert union_length([]) == 0
    assert union_length([(0, 10), (5, 15), (20, 30)]) == 25
    assert union_length([(0, 10), (10, 20)]) == 20
    assert union_length([(5, 5), (9, 3)]) == 0


def test_overlapping_and_disjoint():
    # [0, 10] ∪ [5, 15] = [0, 15] → 15; [20, 30] → 10; total 25 (a plain sum would say 30)
    assert streamed([(0, 10), (5, 15), (20, 30)]) == 25


def test_nested_and_touching_intervals_merge():
    union = IntervalUnion()
    for start, end in [(0, 10), (10, 20), (2, 8), (20, 20), (15, 25)]:
        union.add(start, end)
    assert union.total() == 25  # [0, 25]
    assert strip_window(union.to_state()) == {"starts": [0], "ends": [25], "folded": 0, "frontier": None}


def test_empty_and_inverted_intervals_add_nothing():
    union = IntervalUnion()
    union.add(5, 5)
    union.add(10, 3)
    assert union.total() == 0
    union.add(0, 4)
    union.add(4, 4)
    assert union.total() == 4


def test_new_union_is_zero():
    assert IntervalUnion().total() == 0


def test_duplicates_count_once():
    assert streamed([(3, 9)] * 10, window=1) == 6


@settings(derandomize=True, max_examples=200)
@given(intervals)
def test_any_order_is_exact_while_the_buffer_never_overflows(items):
    # 80 intervals can never make more than 80 disjoint pieces: the default window of 64 would
    # overflow, so use a window of 80 to keep every piece in the buffer.
    assert streamed(items, window=80) == union_length(items)


@settings(derandomize=True, max_examples=200)
@given(intervals, windows)
def test_in_order_arrival_is_exact_for_any_window(items, window):
    items = sorted(items)
    assert streamed(items, window) == union_length(items)


@settings(derandomize=True, max_examples=200)
@given(intervals, windows, st.randoms(use_true_random=False))
def test_shuffled_within_the_window_is_exact(items, window, rng):
    # Sort by start, then shuffle inside consecutive blocks of `window` intervals: no interval
    # arrives after `window` later-starting ones, so nothing ever starts before the frontier.
    items = sorted(items)
    shuffled = []
    for block_start in range(0, len(items), window):
        block = items[block_start : block_start + window]
        rng.shuffle(block)
        shuffled.extend(block)
    assert streamed(shuffled, window) == union_length(items)


@settings(derandomize=True, max_examples=200)
@given(intervals, windows)
def test_beyond_the_window_never_overcounts_and_never_shrinks(items, window):
    union = IntervalUnion(window)
    previous = 0
    for count, (start, end) in enumerate(items, start=1):
        union.add(start, end)
        total = union.total()
        assert previous <= total <= union_length(items[:count])
        previous = total


def test_late_interval_before_the_frontier_is_dropped():
    union = IntervalUnion(window=1)
    union.add(20, 30)
    union.add(40, 50)  # two pieces > window 1: [20, 30] is folded, frontier = 30
    assert strip_window(union.to_state()) == {"starts": [40], "ends": [50], "folded": 10, "frontier": 30}
    union.add(0, 10)  # entirely before the frontier: lost, by design
    assert union.total() == 20  # the true union is 30
    union.add(25, 28)  # inside the folded piece: must not be counted again
    assert union.total() == 20


def test_late_interval_straddling_the_frontier_is_clipped_not_double_counted():
    union = IntervalUnion(window=1)
    union.add(20, 30)
    union.add(40, 50)  # frontier = 30, folded = 10
    union.add(0, 35)  # clipped to [30, 35]: [20, 30] is not counted twice
    # [30, 35] overflows the window and is folded too: folded 10 + 5 = 15, frontier = 35
    assert strip_window(union.to_state()) == {"starts": [40], "ends": [50], "folded": 15, "frontier": 35}
    # 15 + [40, 50] 10 = 25; the true union [0, 35] ∪ [40, 50] is 45
    assert union.total() == 25
    union.add(28, 45)  # clipped to [35, 45], merged with [40, 50] into [35, 50]
    # folded 15 + [35, 50] 15 = 30; the true union [0, 50] is 50
    assert union.total() == 30


def test_late_interval_reaching_back_over_the_frontier_is_exact_when_it_covers_no_lost_time():
    union = IntervalUnion(window=1)
    union.add(0, 10)
    union.add(20, 30)  # frontier = 10
    union.add(5, 25)  # clipped to [10, 25]; [5, 10] was already counted, so nothing is lost
    assert union.total() == union_length([(0, 10), (20, 30), (5, 25)]) == 30


def test_window_bounds_the_buffer():
    union = IntervalUnion(window=4)
    rng = random.Random(7)
    for index in range(1000):
        start = index * 10 + rng.randrange(3)
        union.add(start, start + 5)
        state = union.to_state()
        assert isinstance(state["starts"], list)
        assert len(state["starts"]) <= 4
    assert union.total() == 5000  # 1000 disjoint intervals of 5, in order: exact


def strip_window(state: dict) -> dict:
    return {key: value for key, value in state.items() if key != "window"}


def test_state_round_trip_continues_exactly():
    union = IntervalUnion(window=3)
    for start in (0, 20, 40, 60, 80):
        union.add(start, start + 10)
    copy = IntervalUnion.from_state(union.to_state())
    for target in (union, copy):
        target.add(85, 95)
        target.add(70, 72)
    assert copy.total() == union.total() == 10 * 5 + 5 + 2  # 80-90 grows to 95; 60-70 to 72


def test_times_outside_64_bits_are_clamped_not_raised():
    union = IntervalUnion()
    union.add(-5, 10)
    union.add(2**63 - 11, 2**70)
    assert union.total() == 10 + 10
