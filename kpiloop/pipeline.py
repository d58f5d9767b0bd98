"""Wiring: the only module (beside cli.py) that imports concrete components and connects them."""

from __future__ import annotations

import logging
import os
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import grpc
import orjson

from kpiloop.collector import otlp_json
from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.ingest import EventQueue, Ingest, Overloaded
from kpiloop.collector.jsonl_replay import JsonlReplay, LineProblem
from kpiloop.collector.otlp_grpc import GrpcSettings, OtlpGrpcReceiver, server_credentials
from kpiloop.collector.otlp_http import HttpSettings, OtlpHttpReceiver
from kpiloop.collector.plan_shortcut import PlanShortcut
from kpiloop.config import KpiloopConfig, TlsConfig, resolve_bearer_token
from kpiloop.errors import ConfigError, InputError
from kpiloop.exporters import catalogue
from kpiloop.exporters.console import SummaryTable
from kpiloop.exporters.history import HistoryWriter
from kpiloop.exporters.kpi_metrics import KpiMetrics
from kpiloop.exporters.metrics_store import Labels, MetricsStore
from kpiloop.exporters.otlp_metrics import OtlpMetrics
from kpiloop.exporters.otlp_metrics_config import resolve_otlp_settings
from kpiloop.exporters.prometheus import PrometheusExporter
from kpiloop.exposure import exposure_warnings, read_pem, server_ssl_context
from kpiloop.feedback.base import FeedbackObserver
from kpiloop.feedback.stage import FeedbackStage
from kpiloop.model import ApiCall, SessionSummary, ToolCall
from kpiloop.pending import drain_pending
from kpiloop.processors.base import LiveObserver, SummaryConsumer
from kpiloop.processors.known_sessions import SkipKnownSessions
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.service import IngestWorker
from kpiloop.session_store import clear_state, load_state, save_state
from kpiloop.types import AgentType, Clock

log = logging.getLogger(__name__)


class FanOut:
    """Hands each summary to every sink in order."""

    def __init__(self, sinks: Sequence[SummaryConsumer]) -> None:
        self._sinks = list(sinks)

    def consume(self, summary: SessionSummary) -> None:
        """Pass ``summary`` to every sink."""
        for sink in self._sinks:
            sink.consume(summary)


class Observer(LiveObserver, FeedbackObserver, Protocol):
    """Both observer roles: what the metrics exporters are told besides closed sessions."""


class ObserverFanOut:
    """Tells every observer about each counted call and each feedback conclusion, in order."""

    def __init__(self, observers: Sequence[Observer]) -> None:
        self._observers = list(observers)

    def api_call(self, call: ApiCall, cost_usd: float | None) -> None:
        """Pass a counted API call on."""
        for observer in self._observers:
            observer.api_call(call, cost_usd)

    def late_cost(self, call: ApiCall, cost_usd: float) -> None:
        """Pass a late cost on."""
        for observer in self._observers:
            observer.late_cost(call, cost_usd)

    def tool_call(self, call: ToolCall) -> None:
        """Pass a counted tool call on."""
        for observer in self._observers:
            observer.tool_call(call)

    def session_empty(self) -> None:
        """Pass an empty close on."""
        for observer in self._observers:
            observer.session_empty()

    def session_closed(self, seconds: float) -> None:
        """Pass a close's duration on."""
        for observer in self._observers:
            observer.session_closed(seconds)

    def late_event(self) -> None:
        """Pass a reopening on."""
        for observer in self._observers:
            observer.late_event()

    def baseline_updated(self, agent_type: str, kpi: str, center: float, scale: float) -> None:
        """Pass a baseline on."""
        for observer in self._observers:
            observer.baseline_updated(agent_type, kpi, center, scale)

    def incident(self, agent_type: str, kpi: str) -> None:
        """Pass an incident on."""
        for observer in self._observers:
            observer.incident(agent_type, kpi)

    def suggestions_counted(self, agent_type: str, counts: Mapping[str, int]) -> None:
        """Pass suggestion counts on."""
        for observer in self._observers:
            observer.suggestions_counted(agent_type, counts)


@dataclass
class ReplayPipeline:
    """A replay's components, connected: receiver → processor → (skip known) → history + table."""

    receiver: JsonlReplay
    adapter: EventAdapter
    processor: SessionKpiProcessor
    history: HistoryWriter
    table: SummaryTable

    def run(self) -> None:
        """Replay all input, then close every session still open (end of input)."""
        self.receiver.run()
        self.processor.close_all()
        self.processor.shutdown()
        self.history.shutdown()


def build_replay_pipeline(
    config: KpiloopConfig,
    paths: Sequence[str],
    data_dir: Path,
    clock: Clock,
    on_problem: Callable[[LineProblem], None],
    *,
    force: bool = False,
    agent_type: AgentType | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReplayPipeline:
    """Connect a replay of ``paths`` into ``data_dir``; ``force`` re-records sessions already in history."""
    settings = config.processors.session_kpi
    if agent_type is not None:
        settings = settings.model_copy(update={"default_agent_type": agent_type})
    history = HistoryWriter(data_dir)
    history.start()
    table = SummaryTable()
    feedback = FeedbackStage(FanOut([history, table]), config.exporters.feedback, data_dir, clock)
    feedback.start()
    sinks: SummaryConsumer = feedback
    if not force:
        known_before = history.session_ids()
        sinks = SkipKnownSessions(sinks, known_before.__contains__, table.skipped)
    processor = SessionKpiProcessor(sinks, settings, clock)
    adapter = EventAdapter(AgentType(settings.default_agent_type))
    receiver = JsonlReplay(paths, processor, adapter, on_problem, on_progress, PlanShortcut(adapter, processor))
    return ReplayPipeline(receiver, adapter, processor, history, table)


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Command-line overrides of the configured listen addresses (None keeps the config's)."""

    grpc: str | None = None
    http: str | None = None
    prometheus: str | None = None


@dataclass
class Server:
    """``kpiloop serve``: OTLP/gRPC and OTLP/HTTP receivers, the session processor, history and /metrics."""

    data_dir: Path
    queue: EventQueue
    processor: SessionKpiProcessor
    feedback: FeedbackStage
    worker: IngestWorker
    history: HistoryWriter
    store: MetricsStore
    pending: Ingest
    prometheus: PrometheusExporter
    grpc: OtlpGrpcReceiver
    http: OtlpHttpReceiver
    otlp: OtlpMetrics | None = None
    restored_sessions: int = 0
    unsaved_sessions: int = 0
    """Open sessions the last shutdown could not save (the state file was not writable)."""

    def start(self) -> None:
        """Restore saved sessions, take pending hook records, then start serving."""
        if self.otlp is not None:
            self.otlp.start()
        self.history.start()
        self.feedback.start()
        saved = load_state(self.data_dir)
        if saved is not None:
            self.restored_sessions = self.processor.import_state(saved)
            clear_state(self.data_dir)
        self.worker.start()
        self.take_pending()
        self.prometheus.start()
        self.grpc.start()
        self.http.start()

    def take_pending(self) -> int:
        """Ingest the records hook commands kept while no collector was listening (kept for the
        next try when the ingest queue is full)."""
        try:
            return drain_pending(self.data_dir, self._ingest_pending_line)
        except Overloaded:
            return 0

    def shutdown(self) -> Path | None:
        """Stop accepting, process everything accepted, save open sessions; return the state file
        (None when it could not be written: the error is logged and the rest still shuts down)."""
        self.http.shutdown()
        self.grpc.shutdown()
        state = self.worker.shutdown()
        path: Path | None
        try:
            path = save_state(self.data_dir, state)
        except OSError as error:
            self.unsaved_sessions = len(state.get("open", []))
            log.error("could not save %d open session(s) to %s: %s; they are lost", self.unsaved_sessions,
                      self.data_dir / "state", error)  # fmt: skip
            path = None
        self.history.shutdown()
        if self.otlp is not None:
            self.otlp.shutdown()
        self.prometheus.shutdown()
        return path

    def _ingest_pending_line(self, line: bytes) -> None:
        try:
            self.pending.submit("logs", otlp_json.decode_logs(orjson.loads(line)))
        except (orjson.JSONDecodeError, InputError) as error:
            log.warning("skipped an unreadable pending hook record: %s", error)


def build_server(
    config: KpiloopConfig,
    data_dir: Path,
    clock: Clock,
    endpoints: Endpoints = Endpoints(),
    environ: Mapping[str, str] | None = None,
) -> Server:
    """Connect every part of ``kpiloop serve`` (nothing listens until ``start()``); the OTLP metrics
    exporter only when a pipeline names ``otlp`` and it is enabled (``environ``: the ``OTEL_*``
    variables it reads and ``$KPILOOP_BEARER_TOKEN``, ``os.environ`` by default). Raises ConfigError
    when the bearer token or a TLS file is unusable."""
    env = os.environ if environ is None else environ
    grpc_settings, http_settings = receiver_settings(config, endpoints, env)
    settings = config.processors.session_kpi
    store = MetricsStore()
    metrics = KpiMetrics(store)
    history = HistoryWriter(data_dir, on_failure=lambda: store.add(catalogue.HISTORY_WRITE_FAILURES, (), 1))
    store.gauge_callback(catalogue.HISTORY_UNWRITTEN, lambda: {(): float(history.unwritten)})
    otlp = _otlp_exporter(config, store, env)
    sinks: list[SummaryConsumer] = [metrics, history] if otlp is None else [metrics, history, otlp]
    observer: Observer = metrics if otlp is None else ObserverFanOut([metrics, otlp])
    feedback = FeedbackStage(FanOut(sinks), config.exporters.feedback, data_dir, clock, observer)
    processor = SessionKpiProcessor(feedback, settings, clock, observer)
    queue = EventQueue(config.receivers.otlp.max_queued_events)
    worker = IngestWorker(queue, processor)

    def open_sessions() -> Mapping[Labels, float]:
        return {(agent,): float(count) for agent, count in worker.open_sessions.items()}

    store.gauge_callback(catalogue.OPEN_SESSIONS, open_sessions)
    store.gauge_callback(catalogue.QUEUE_DEPTH, lambda: {(): float(queue.depth())})
    if otlp is not None:
        otlp.gauge_callback(catalogue.OPEN_SESSIONS, open_sessions)

    def ingest(receiver: str) -> Ingest:
        return Ingest(receiver, EventAdapter(AgentType(settings.default_agent_type)), queue, metrics)

    prom_host, prom_port = split_endpoint(endpoints.prometheus or config.exporters.prometheus.endpoint)
    return Server(
        data_dir=data_dir,
        queue=queue,
        processor=processor,
        feedback=feedback,
        worker=worker,
        history=history,
        store=store,
        pending=ingest("pending"),
        prometheus=PrometheusExporter(store, prom_host, prom_port),
        grpc=OtlpGrpcReceiver(grpc_settings, ingest("otlp_grpc")),
        http=OtlpHttpReceiver(http_settings, ingest("otlp_http")),
        otlp=otlp,
    )


def receiver_settings(
    config: KpiloopConfig, endpoints: Endpoints, environ: Mapping[str, str]
) -> tuple[GrpcSettings, HttpSettings]:
    """The OTLP receivers' listen addresses, bearer token and TLS, checked (ConfigError on unreadable
    token or TLS files); logs a warning for each receiver exposed beyond loopback without protection."""
    otlp = config.receivers.otlp
    grpc_config, http_config = otlp.protocols.grpc, otlp.protocols.http
    grpc_token, http_token = (
        resolve_bearer_token(protocol.auth, environ, f"receivers.otlp.protocols.{name}.auth")
        if protocol.auth is not None
        else resolve_bearer_token(otlp.auth, environ)
        for name, protocol in (("grpc", grpc_config), ("http", http_config))
    )
    grpc_host, grpc_port = split_endpoint(endpoints.grpc or grpc_config.endpoint)
    http_host, http_port = split_endpoint(endpoints.http or http_config.endpoint)
    grpc_tls = _grpc_credentials(grpc_config.tls)
    http_tls = _ssl_context(http_config.tls, "receivers.otlp.protocols.http.tls")
    for name, host, port, token, tls in (
        ("otlp-grpc", grpc_host, grpc_port, grpc_token, grpc_tls),
        ("otlp-http", http_host, http_port, http_token, http_tls),
    ):
        for warning in exposure_warnings(name, host, port, token is not None, tls is not None):
            log.warning("%s", warning)
    grpc_settings = GrpcSettings(
        grpc_host, grpc_port, grpc_config.max_request_bytes, bearer_token=grpc_token, credentials=grpc_tls
    )
    http_settings = HttpSettings(
        http_host, http_port, http_config.max_request_bytes, bearer_token=http_token, ssl_context=http_tls
    )
    return grpc_settings, http_settings


def _ssl_context(tls: TlsConfig | None, key: str) -> ssl.SSLContext | None:
    if tls is None:
        return None
    return server_ssl_context(tls.cert_file, tls.key_file, tls.client_ca_file, key)


def _grpc_credentials(tls: TlsConfig | None) -> grpc.ServerCredentials | None:
    """gRPC TLS credentials; the files are first loaded as a Python TLS context, so a bad file stops
    start-up with a message naming its key instead of failing every handshake."""
    key = "receivers.otlp.protocols.grpc.tls"
    if tls is None:
        return None
    _ssl_context(tls, key)
    cert, private_key = read_pem(tls.cert_file, f"{key}.cert_file"), read_pem(tls.key_file, f"{key}.key_file")
    client_ca = None if tls.client_ca_file is None else read_pem(tls.client_ca_file, f"{key}.client_ca_file")
    return server_credentials(cert, private_key, client_ca)


def _otlp_exporter(config: KpiloopConfig, store: MetricsStore, environ: Mapping[str, str]) -> OtlpMetrics | None:
    """The OTLP metrics exporter when a pipeline names ``otlp`` and ``exporters.otlp.enabled``; else None."""
    if not (config.exporters.otlp.enabled and config.service.uses_exporter("otlp")):
        return None
    return OtlpMetrics(resolve_otlp_settings(config.exporters.otlp, environ), store)


def split_endpoint(endpoint: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) → (host, port); raises ConfigError naming the endpoint.

    >>> split_endpoint("127.0.0.1:4318"), split_endpoint("[::1]:0")
    (('127.0.0.1', 4318), ('::1', 0))
    """
    host, sep, port = endpoint.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"endpoint {endpoint!r} must be host:port")
    return host.strip("[]"), int(port)
