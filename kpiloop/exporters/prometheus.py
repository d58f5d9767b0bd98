"""The Prometheus exporter: a custom collector over the metrics store, and the ``/metrics`` server.

``collect()`` builds fresh metric families from a snapshot at scrape time, on a registry kpiloop
owns (never the process-global default). ``PrometheusExporter`` serves it over HTTP on the
configured endpoint.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from kpiloop.exporters.metrics_store import HistogramValue, MetricsStore, MetricValues


class StoreCollector(Collector):
    """Exposes every metric of the store in the Prometheus text format."""

    def __init__(self, store: MetricsStore) -> None:
        self._store = store

    def collect(self) -> Iterator[Metric]:
        """One family per catalogue metric, even before it has data."""
        for values in self._store.snapshot():
            yield _family(values)


def _family(values: MetricValues) -> Metric:
    definition = values.definition
    labels = list(definition.labels)
    if definition.kind == "histogram":
        histogram = HistogramMetricFamily(definition.prom_name, definition.description, labels=labels)
        for key, value in sorted(values.series.items()):
            assert isinstance(value, HistogramValue)
            histogram.add_metric(list(key), _cumulative_buckets(definition.buckets, value), value.total)
        return histogram
    family_type = CounterMetricFamily if definition.kind == "counter" else GaugeMetricFamily
    family = family_type(definition.prom_name, definition.description, labels=labels)
    for key, number in sorted(values.series.items()):
        assert not isinstance(number, HistogramValue)
        family.add_metric(list(key), number)
    return family


def _cumulative_buckets(bounds: tuple[float, ...], value: HistogramValue) -> list[tuple[str, float]]:
    running = 0
    buckets = []
    for bound, count in zip((*bounds, math.inf), value.buckets, strict=True):
        running += count
        buckets.append(("+Inf" if math.isinf(bound) else _bound(bound), float(running)))
    return buckets


def _bound(bound: float) -> str:
    return repr(float(bound))


class PrometheusExporter:
    """Serves ``/metrics`` for the store on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, store: MetricsStore, host: str, port: int) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(StoreCollector(store))
        self.host = host
        self.port = port
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start serving in a daemon thread."""
        self._server, self._thread = start_http_server(self.port, addr=self.host, registry=self.registry)
        self.port = self._server.server_port

    def shutdown(self) -> None:
        """Stop serving; safe to call twice or before start."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
