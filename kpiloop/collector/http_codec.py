"""OTLP/HTTP bodies in and out, apart from the transport: bounded gunzip, decoding into records,
and the export responses and ``google.rpc.Status`` error bodies, in protobuf or JSON."""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from kpiloop.collector import otlp_json, otlp_proto
from kpiloop.collector.ingest import IngestResult, Record
from kpiloop.errors import InputError

SIGNALS = {b"/v1/traces": "traces", b"/v1/logs": "logs", b"/v1/metrics": "metrics"}
REJECTED_FIELD = {"traces": "rejected_spans", "logs": "rejected_log_records", "metrics": "rejected_data_points"}
JSON_REJECTED_FIELD = {"traces": "rejectedSpans", "logs": "rejectedLogRecords", "metrics": "rejectedDataPoints"}
GRPC_CODE_FOR_STATUS = {400: 3, 404: 12, 405: 12, 413: 8, 415: 3, 429: 8, 431: 8, 503: 14}
PROTOBUF = b"application/x-protobuf"
JSON = b"application/json"
MAX_MESSAGE_CHARS = 1000
"""Longest error message sent back: enough to name the problem, never an echo of a large input."""


@dataclass(frozen=True, slots=True, eq=False)
class HttpReply:
    """A complete HTTP response (compared and hashed by identity: the cache of encoded answers is
    looked up on every request, and hashing the fields each time cost more than the lookup)."""

    status: int
    content_type: bytes
    body: bytes
    extra: tuple[tuple[bytes, bytes], ...] = ()

    def encode(self, keep_alive: bool) -> bytes:
        """The response bytes, with Content-Length and Connection headers (the full-success answers,
        the same bytes every time, are encoded once)."""
        cached = _ENCODED_OK.get((self, keep_alive))
        if cached is not None:
            return cached
        return self._encode(keep_alive)

    def _encode(self, keep_alive: bool) -> bytes:
        phrase = HTTPStatus(self.status).phrase.encode()
        lines = [
            b"HTTP/1.1 %d %s" % (self.status, phrase),
            b"Content-Type: " + self.content_type,
            b"Content-Length: %d" % len(self.body),
            b"Connection: " + (b"keep-alive" if keep_alive else b"close"),
            *(name + b": " + value for name, value in self.extra),
        ]
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


def media_type(headers: Mapping[bytes, bytes]) -> str:
    """The Content-Type without parameters, lower-cased."""
    return headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower().decode("latin-1")


def gunzip(body: bytes, limit: int) -> bytes:
    """Decompress a gzip body of one or more members, stopping as soon as the output passes
    ``limit`` (gzip bombs)."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(body)) as reader:
            out = reader.read(limit + 1)
    except EOFError:
        raise InputError("gzip body is truncated", reason="bad_gzip") from None
    except (OSError, zlib.error) as error:
        raise InputError(f"body is not valid gzip: {error}", reason="bad_gzip") from None
    if len(out) > limit:
        raise InputError(f"decompressed body larger than max_request_bytes ({limit} bytes)", reason="too_large")
    if not body:
        raise InputError("gzip body is truncated", reason="bad_gzip")
    return out


def decode_body(signal: str, headers: Mapping[bytes, bytes], body: bytes, limit: int) -> Iterator[Record | InputError]:
    """The request's records; raises InputError when the body as a whole cannot be decoded."""
    if headers.get(b"content-encoding", b"").strip().lower() in (b"gzip", b"x-gzip"):
        body = gunzip(body, limit)
    if media_type(headers) == "application/json":
        return _decode_json(signal, body)
    return _decode_protobuf(signal, body)


def export_reply(signal: str, result: IngestResult, json: bool) -> HttpReply:
    """200 with the signal's Export*ServiceResponse, carrying partial_success when items were rejected."""
    if not result.rejected:
        return _OK_REPLIES[signal, json]
    message = sendable(result.message)
    if json:
        partial = {JSON_REJECTED_FIELD[signal]: str(result.rejected), "errorMessage": message}
        return HttpReply(200, JSON, orjson.dumps({"partialSuccess": partial} if result.rejected else {}))
    response = _RESPONSES[signal]()
    if result.rejected:
        setattr(response.partial_success, REJECTED_FIELD[signal], result.rejected)
        response.partial_success.error_message = message
    return HttpReply(200, PROTOBUF, response.SerializeToString())


def _ok_reply(signal: str, json: bool) -> HttpReply:
    """The full-success answer: an empty Export*ServiceResponse."""
    return HttpReply(200, JSON, b"{}") if json else HttpReply(200, PROTOBUF, _RESPONSES[signal]().SerializeToString())


def error_reply(status: int, message: str, json: bool | None, extra: tuple[tuple[bytes, bytes], ...] = ()) -> HttpReply:
    """An error status with a ``google.rpc.Status`` body; JSON unless the request was protobuf."""
    code = GRPC_CODE_FOR_STATUS.get(status, 2)
    message = sendable(message)
    if json is False:
        return HttpReply(status, PROTOBUF, Status(code=code, message=message).SerializeToString(), extra)
    return HttpReply(status, JSON, orjson.dumps({"code": code, "message": message}), extra)


def sendable(message: str) -> str:
    """``message`` cut to :data:`MAX_MESSAGE_CHARS` and made valid UTF-8 (protobuf and JSON refuse
    lone surrogates)."""
    return message[:MAX_MESSAGE_CHARS].encode("utf-8", "replace").decode("utf-8")


def _decode_json(signal: str, body: bytes) -> Iterator[Record | InputError]:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InputError(f"body is not valid JSON: {error}", reason="undecodable") from None
    if not isinstance(doc, dict):
        raise InputError("an OTLP/JSON body must be a JSON object", reason="undecodable")
    decoders = {"traces": otlp_json.decode_traces, "logs": otlp_json.decode_logs, "metrics": otlp_json.decode_metrics}
    return _checked(decoders[signal](doc))


def _checked(items: Iterator[Record | InputError]) -> Iterator[Record | InputError]:
    """Materialize the items so a structural error in the request surfaces before ingest."""
    try:
        return iter(list(items))
    except (TypeError, ValueError, AttributeError, KeyError) as error:
        raise InputError(f"malformed OTLP/JSON request: {error}", reason="undecodable") from None


def _decode_protobuf(signal: str, body: bytes) -> Iterator[Record | InputError]:
    if signal == "traces":
        return otlp_proto.decode_traces(otlp_proto.parse_traces(body))
    if signal == "logs":
        return otlp_proto.decode_logs(otlp_proto.parse_logs(body))
    return otlp_proto.decode_metrics(otlp_proto.parse_metrics(body))


_RESPONSES = {
    "traces": ExportTraceServiceResponse,
    "logs": ExportLogsServiceResponse,
    "metrics": ExportMetricsServiceResponse,
}

_OK_REPLIES = {(signal, json): _ok_reply(signal, json) for signal in _RESPONSES for json in (False, True)}
"""The full-success answer of each signal, protobuf and JSON."""
_ENCODED_OK = {(reply, keep): reply._encode(keep) for reply in _OK_REPLIES.values() for keep in (False, True)}
"""Their response bytes, with and without keep-alive."""
