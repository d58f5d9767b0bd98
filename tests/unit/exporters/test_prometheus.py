"""The /metrics exposition: every catalogue family before any data, and a golden file after the
example sessions, scraped over real HTTP."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.jsonl_replay import JsonlReplay
from kpiloop.exporters import catalogue
from kpiloop.exporters.kpi_metrics import KpiMetrics
from kpiloop.exporters.metrics_store import MetricsStore
from kpiloop.exporters.prometheus import PrometheusExporter
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.testing import FakeClock

EXAMPLES = sorted(str(p) for p in (Path(__file__).parents[3] / "examples").glob("*.jsonl"))


def scrape(exporter: PrometheusExporter) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics", timeout=10) as response:
        return str(response.read().decode())


@pytest.fixture
def exporter_and_store():
    store = MetricsStore()
    exporter = PrometheusExporter(store, "127.0.0.1", 0)
    exporter.start()
    yield exporter, store
    exporter.shutdown()


def test_every_catalogue_family_is_exposed_before_any_data(exporter_and_store):
    exporter, _ = exporter_and_store
    text = scrape(exporter)
    for metric in catalogue.ALL_METRICS:
        assert f"# TYPE {metric.prom_name} {metric.kind}" in text, metric.prom_name
    assert "session_id" not in text


def test_the_examples_exposition_matches_the_golden_file(exporter_and_store, golden):
    exporter, store = exporter_and_store
    metrics = KpiMetrics(store)
    processor = SessionKpiProcessor(metrics, SessionKpiConfig(), FakeClock(), metrics)
    problems: list[object] = []
    JsonlReplay(EXAMPLES, processor, EventAdapter(), problems.append).run()
    processor.close_all()
    assert problems == []
    text = scrape(exporter)
    assert "kpiloop_session_close_seconds_count 4.0" in text
    timing = "kpiloop_session_close_seconds_"  # wall-clock durations: checked above, kept out of the golden file
    golden.check("examples.prom", "".join(line for line in text.splitlines(keepends=True) if timing not in line))


def test_label_values_are_capped_and_the_rest_fold_into_other():
    store = MetricsStore()
    for index in range(catalogue.MAX_LABEL_VALUES + 5):
        store.add(catalogue.TOOL_CALLS, (f"agent-{index}", "success"), 1)
    (tool_calls,) = [v for v in store.snapshot() if v.definition is catalogue.TOOL_CALLS]
    assert len(tool_calls.series) == catalogue.MAX_LABEL_VALUES + 1
    assert tool_calls.series[("other", "success")] == 5


def test_wrong_label_count_is_a_programming_error():
    with pytest.raises(ValueError, match="takes labels"):
        MetricsStore().add(catalogue.SESSIONS, ("only-one",), 1)
