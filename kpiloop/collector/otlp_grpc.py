"""The OTLP/gRPC receiver: ``TraceService/Export``, ``LogsService/Export``, ``MetricsService/Export``.

Handlers take the raw request bytes and decode them here, so an undecodable request is answered
``INVALID_ARGUMENT`` with a message (a generated servicer would answer ``INTERNAL``). Items that
cannot be used are reported in ``partial_success``; a full ingest queue answers
``RESOURCE_EXHAUSTED`` with a ``RetryInfo`` detail, and a stopping server ``UNAVAILABLE``; both are
retryable for OTLP exporters. gzip-compressed requests are decompressed by gRPC itself. With a
bearer token configured, a call without ``authorization: Bearer <token>`` metadata is answered
``UNAUTHENTICATED`` before its request is decoded; with server credentials the port speaks TLS only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from kpiloop.collector import otlp_proto
from kpiloop.collector.http_codec import REJECTED_FIELD, sendable
from kpiloop.collector.ingest import Ingest, Overloaded, Record
from kpiloop.errors import InputError
from kpiloop.exposure import UNAUTHENTICATED, bearer_token_ok

log = logging.getLogger(__name__)

INTERNAL = "internal"
"""Refusal reason of a request that hit a bug (answered INTERNAL and counted, never silent)."""

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}
_RESPONSES: dict[str, Callable[[], Any]] = {
    "traces": ExportTraceServiceResponse,
    "logs": ExportLogsServiceResponse,
    "metrics": ExportMetricsServiceResponse,
}
_OK: dict[str, bytes] = {signal: response().SerializeToString() for signal, response in _RESPONSES.items()}
"""The full-success answer of each signal, serialized once."""
_DECODERS: dict[str, Callable[[bytes], Iterator[Record | InputError]]] = {
    "traces": lambda data: otlp_proto.decode_traces(otlp_proto.parse_traces(data)),
    "logs": lambda data: otlp_proto.decode_logs(otlp_proto.parse_logs(data)),
    "metrics": lambda data: otlp_proto.decode_metrics(otlp_proto.parse_metrics(data)),
}
STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass(frozen=True, slots=True)
class GrpcSettings:
    """Where to listen, the largest request, and how many requests run at once."""

    host: str
    port: int
    max_request_bytes: int
    workers: int = 8
    bearer_token: str | None = field(default=None, repr=False)
    """Required in the ``authorization`` metadata (``Bearer <token>``) when set."""
    credentials: grpc.ServerCredentials | None = None
    """TLS credentials (:func:`server_credentials`); None serves plaintext."""


class OtlpGrpcReceiver:
    """A grpcio server with one generic handler per OTLP service."""

    def __init__(self, settings: GrpcSettings, ingest: Ingest) -> None:
        self.settings = settings
        self._ingest = ingest
        self._server: grpc.Server | None = None
        self._executor: futures.ThreadPoolExecutor | None = None
        self.port = settings.port

    def start(self) -> None:
        """Bind and serve; raises RuntimeError when the address cannot be bound."""
        options = [
            ("grpc.max_receive_message_length", self.settings.max_request_bytes),
            ("grpc.so_reuseport", 0),
        ]
        self._executor = futures.ThreadPoolExecutor(
            max_workers=self.settings.workers, thread_name_prefix="kpiloop-grpc"
        )
        server = grpc.server(self._executor, options=options)
        for signal, service in SERVICES.items():
            handler: grpc.RpcMethodHandler[bytes, Any] = grpc.unary_unary_rpc_method_handler(
                self._export_handler(signal), request_deserializer=None, response_serializer=None
            )
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
        address = f"{self.settings.host}:{self.settings.port}"
        credentials = self.settings.credentials
        self.port = (
            server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
        )
        if self.port == 0:
            raise RuntimeError(f"cannot listen on {self.settings.host}:{self.settings.port}")
        server.start()
        self._server = server

    def shutdown(self, grace: float = 5.0) -> None:
        """Stop accepting RPCs and let running ones finish; safe to call twice or before start."""
        if self._server is not None:
            self._server.stop(grace).wait()
            self._server = None
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _export_handler(self, signal: str) -> Callable[[bytes, grpc.ServicerContext], bytes]:
        def export(request: bytes, context: grpc.ServicerContext) -> bytes:
            return self._export(signal, request, context)

        return export

    def _export(self, signal: str, request: bytes, context: grpc.ServicerContext) -> bytes:
        """The serialized Export*ServiceResponse of one request (or the call aborted with a status)."""
        token = self.settings.bearer_token
        if token is not None and not bearer_token_ok(_authorization(context), token):
            self._ingest.refuse(signal, UNAUTHENTICATED)
            context.abort(
                grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token in 'authorization' metadata"
            )
        try:
            result = self._ingest.submit(signal, _DECODERS[signal](request))
        except InputError as error:
            self._ingest.refuse(signal, error.reason)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, sendable(str(error)))
        except Overloaded as busy:
            code = grpc.StatusCode.UNAVAILABLE if busy.stopping else grpc.StatusCode.RESOURCE_EXHAUSTED
            context.set_trailing_metadata(((STATUS_DETAILS_KEY, _retry_status(code, str(busy), busy.retry_after)),))
            context.abort(code, str(busy))
        except Exception:  # a bug must cost one request INTERNAL, counted, never the server
            log.exception("internal error while handling an OTLP/gRPC %s export", signal)
            self._ingest.refuse(signal, INTERNAL)
            context.abort(grpc.StatusCode.INTERNAL, "internal error; the request was not processed")
        if not result.rejected:
            return _OK[signal]
        response = _RESPONSES[signal]()
        setattr(response.partial_success, REJECTED_FIELD[signal], result.rejected)
        response.partial_success.error_message = sendable(result.message)
        serialized: bytes = response.SerializeToString()
        return serialized


def server_credentials(cert_chain: bytes, private_key: bytes, client_ca: bytes | None) -> grpc.ServerCredentials:
    """TLS server credentials from PEM bytes; with ``client_ca``, clients must present a certificate it signed."""
    return grpc.ssl_server_credentials(
        [(private_key, cert_chain)], root_certificates=client_ca, require_client_auth=client_ca is not None
    )


def _authorization(context: grpc.ServicerContext) -> str | bytes | None:
    """The ``authorization`` metadata value of the call, None without one."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value
    return None


def _retry_status(code: grpc.StatusCode, message: str, retry_after: float) -> bytes:
    """A serialized ``google.rpc.Status`` with a ``RetryInfo`` detail telling the client when to retry."""
    status = Status(code=code.value[0], message=message)
    status.details.add().Pack(RetryInfo(retry_delay=Duration(seconds=max(1, round(retry_after)))))
    serialized: bytes = status.SerializeToString()
    return serialized
