"""The label cap of :class:`MetricsStore` and the memo that makes it cheap: same series as capping
every update afresh, and a memo no larger than the series, whatever label values a sender makes up."""

from __future__ import annotations

import random

from kpiloop.exporters import catalogue as c
from kpiloop.exporters.metrics_store import HistogramValue, Labels, MetricsStore

HOSTILE = 10_000


def capped_afresh(seen: dict[tuple[str, int], set[str]], metric: c.MetricDef, labels: Labels) -> Labels:
    """The cap as the store applied it on every update before the memo: first come, at most
    ``MAX_LABEL_VALUES`` values per label, the rest ``other``."""
    capped = []
    for position, value in enumerate(labels):
        known = seen.setdefault((metric.prom_name, position), set())
        if value not in known and len(known) >= c.MAX_LABEL_VALUES:
            value = c.OTHER
        known.add(value)
        capped.append(value)
    return tuple(capped)


def series(store: MetricsStore, metric: c.MetricDef) -> dict[Labels, float | HistogramValue]:
    (values,) = [v for v in store.snapshot() if v.definition is metric]
    return values.series


def memo_size(store: MetricsStore) -> int:
    return sum(len(admitted) for admitted in store._admitted.values())


def hostile_labels(rng: random.Random) -> list[Labels]:
    """10,000 made-up agent types and models (and the literal ``other``), interleaved with a few
    real ones that keep coming back."""
    real = [("coder", "claude-opus-4-6"), ("reviewer", "claude-sonnet-4-5")]
    labels: list[Labels] = []
    for index in range(HOSTILE):
        labels.append((f"agent-{index}-{rng.random()}", f"model-{rng.randrange(HOSTILE)}"))
        labels.append(rng.choice(real))
        if index % 997 == 0:
            labels.append((c.OTHER, f"model-{index}"))
    return labels


def test_hostile_label_values_keep_the_memo_no_larger_than_the_series() -> None:
    store = MetricsStore()
    for labels in hostile_labels(random.Random(9)):
        store.add(c.COST, labels, 1.0)
    assert len(series(store, c.COST)) <= (c.MAX_LABEL_VALUES + 1) ** 2
    assert memo_size(store) <= len(series(store, c.COST))


def test_the_cap_gives_the_same_series_as_capping_every_update_afresh() -> None:
    rng = random.Random(11)
    store, seen = MetricsStore(), dict[tuple[str, int], set[str]]()
    expected: dict[Labels, float] = {}
    for labels in hostile_labels(rng):
        kind = rng.choice(("input", "output"))
        if rng.random() < 0.5:
            store.add(c.TOKENS, (*labels, kind), 2)
        else:
            store.add_many([(c.TOKENS, (*labels, kind), 2)])
        key = capped_afresh(seen, c.TOKENS, (*labels, kind))
        expected[key] = expected.get(key, 0.0) + 2
    assert series(store, c.TOKENS) == expected
    assert memo_size(store) <= len(expected)


def test_set_and_observe_are_capped_first_come_as_add_is() -> None:
    store = MetricsStore()
    for index in range(c.MAX_LABEL_VALUES + 5):
        store.set(c.SUGGESTIONS, (f"agent-{index}", "active"), index)
        store.observe(c.KPI_METRICS["cache_efficiency"], (f"agent-{index}", "m"), 0.5)
    store.set(c.SUGGESTIONS, ("agent-0", "active"), 42)  # admitted before the cap: stays its own series
    gauges = series(store, c.SUGGESTIONS)
    assert len(gauges) == c.MAX_LABEL_VALUES + 1
    assert gauges[("agent-0", "active")] == 42
    assert gauges[(c.OTHER, "active")] == c.MAX_LABEL_VALUES + 4
    histogram = series(store, c.KPI_METRICS["cache_efficiency"])[(c.OTHER, "m")]
    assert isinstance(histogram, HistogramValue) and histogram.count == 5


def test_add_many_adds_what_add_would() -> None:
    one_by_one, at_once = MetricsStore(), MetricsStore()
    updates = [
        (c.TOKENS, ("coder", "m", "input"), 3.0),
        (c.TOKENS, ("coder", "m", "input"), 4.0),
        (c.COST, ("coder", "m"), 0.5),
    ]
    for metric, labels, amount in updates:
        one_by_one.add(metric, labels, amount)
    at_once.add_many(updates)
    assert [v.series for v in one_by_one.snapshot()] == [v.series for v in at_once.snapshot()]
