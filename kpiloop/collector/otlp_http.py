"""The OTLP/HTTP receiver: ``POST /v1/traces``, ``/v1/logs``, ``/v1/metrics``.

A small HTTP/1.1 server on asyncio + httptools (the fastest pure-Python-callable parser), run on its
own event loop thread. Protobuf and JSON bodies, ``Content-Encoding: gzip``, chunked bodies,
keep-alive. Status codes per the OTLP spec: 200 (with ``partial_success`` when items were
rejected), 400 bad data, 404, 405, 413 too large (decided from Content-Length before the body is
read, or as soon as the body or its decompression passes the limit, so gzip bombs stop early),
415 unsupported content type or encoding, 429/503 with ``Retry-After`` when overloaded or stopping.
Responses use the request's encoding. With a bearer token configured, a request without
``Authorization: Bearer <token>`` gets 401 with ``WWW-Authenticate: Bearer`` before anything else
is looked at, and the connection is closed; with an ``ssl.SSLContext`` the server speaks TLS only.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
import time
from dataclasses import dataclass, field, replace

import httptools
import orjson
from google.rpc.status_pb2 import Status

from kpiloop.collector.http_codec import (
    JSON,
    PROTOBUF,
    SIGNALS,
    HttpReply,
    decode_body,
    error_reply,
    export_reply,
    media_type,
)
from kpiloop.collector.ingest import Ingest, Overloaded
from kpiloop.errors import InputError
from kpiloop.exposure import UNAUTHENTICATED, bearer_token_ok

log = logging.getLogger(__name__)

IDLE_TIMEOUT_S = 60.0
TLS_HANDSHAKE_TIMEOUT_S = 10.0
DRAIN_AFTER_CLOSE_S = 2.0
MAX_HEAD_BYTES = 64 * 1024
"""Request line and headers; httptools buffers them without a bound of its own."""
SUPPORTED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip"})
GRPC_UNAUTHENTICATED = 16
INTERNAL = "internal"
"""Refusal reason of a request that hit a bug (answered 500 and counted, never silent)."""
CLOSE_AFTER_REPLY = frozenset({401, 413})
"""Early answers after which the rest of the body is not worth reading."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Where to listen and how large a body may be (after decompression)."""

    host: str
    port: int
    max_request_bytes: int
    bearer_token: str | None = field(default=None, repr=False)
    """Required in ``Authorization: Bearer ...`` when set."""
    ssl_context: ssl.SSLContext | None = None
    """Serve TLS with it when set."""
    idle_timeout: float = IDLE_TIMEOUT_S
    """Close a keep-alive connection quiet for this many seconds."""


class _Request:
    """Headers and body of the request being read, and what :meth:`OtlpHttpReceiver.check_headers`
    made of them (read once per request, not again by each step)."""

    __slots__ = ("body", "headers", "json", "signal", "url")

    def __init__(self) -> None:
        self.url = b""
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.signal: str | None = None
        """The OTLP signal of the request's path; None until checked, or for another path."""
        self.json = False
        """The body is OTLP/JSON (else protobuf)."""


class _Connection(asyncio.Protocol):
    """One client connection: parses requests with httptools and answers each in order."""

    def __init__(self, receiver: OtlpHttpReceiver) -> None:
        self._receiver = receiver
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._request = _Request()
        self._early: HttpReply | None = None
        self._closing = False
        self._idle: asyncio.TimerHandle | None = None
        self._active_at = 0.0
        self._in_head = True
        self._head_bytes = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._receiver.connections.add(self)
        self._arm_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._receiver.connections.discard(self)
        if self._idle is not None:
            self._idle.cancel()

    def data_received(self, data: bytes) -> None:
        self._active_at = time.monotonic()  # the idle timer checks it when it fires
        if self._closing:
            return  # draining what a client still sends after we answered and closed our side
        was_in_head = self._in_head
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._reply_and_close(error_reply(400, "protocol upgrades are not supported", None))
        except httptools.HttpParserError as error:
            self._reply_and_close(error_reply(400, f"malformed HTTP request: {error}", None))
        if was_in_head and self._in_head and not self._closing:
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._receiver.refuse(self._request, "too_large")
                self._reply_and_close(error_reply(431, f"request headers larger than {MAX_HEAD_BYTES} bytes", None))

    # httptools callbacks
    def on_message_begin(self) -> None:
        self._request = _Request()
        self._early = None
        self._in_head = True
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._request.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._request.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._early = self._receiver.check_headers(self._parser.get_method(), self._request)
        if self._early is not None and self._early.status in CLOSE_AFTER_REPLY:
            self._reply_and_close(self._early)
        elif self._early is None and self._request.headers.get(b"expect", b"").lower() == b"100-continue":
            self._write_raw(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._early is not None or self._closing:
            return
        self._request.body += body
        if len(self._request.body) > self._receiver.settings.max_request_bytes:
            self._receiver.refuse(self._request, "too_large")
            self._reply_and_close(self._receiver.too_large(self._request))

    def on_message_complete(self) -> None:
        if self._closing:
            return
        try:
            reply = self._early or self._receiver.handle(self._request)
        except Exception:  # a bug must cost one request a 500, never the connection or the server
            url = self._request.url[:100].decode("ascii", "backslashreplace")
            log.exception("internal error while handling %s", url)
            self._receiver.refuse(self._request, INTERNAL)
            reply = error_reply(500, "internal error; the request was not processed", None)
        if self._parser.get_method() == b"HEAD":
            reply = replace(reply, body=b"")  # a HEAD answer carries no content, or keep-alive clients desync
        if self._parser.should_keep_alive() and reply.status < 500:
            self._write(reply, keep_alive=True)
        else:
            self._reply_and_close(reply)

    def _write_raw(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _write(self, reply: HttpReply, keep_alive: bool) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(reply.encode(keep_alive))

    def _reply_and_close(self, reply: HttpReply) -> None:
        """Answer, then stop writing but keep reading briefly, so a client still sending sees the answer."""
        if self._closing or self._transport is None:
            return
        self._closing = True
        self._write(reply, keep_alive=False)
        if self._transport.can_write_eof():
            self._transport.write_eof()
        asyncio.get_running_loop().call_later(DRAIN_AFTER_CLOSE_S, self._transport.close)

    def _arm_idle(self) -> None:
        """One timer per connection, re-armed only when it fires (not on every request)."""
        self._active_at = time.monotonic()
        self._idle = asyncio.get_running_loop().call_later(self._receiver.settings.idle_timeout, self._on_idle)

    def _on_idle(self) -> None:
        """Close a connection quiet for ``idle_timeout``; one that was active meanwhile waits the rest."""
        left = self._active_at + self._receiver.settings.idle_timeout - time.monotonic()
        if left > 0:
            self._idle = asyncio.get_running_loop().call_later(left, self._on_idle)
        elif self._transport is not None:
            self._transport.close()


class OtlpHttpReceiver:
    """Serves OTLP/HTTP on its own event-loop thread; ``start()`` returns once it is listening."""

    def __init__(self, settings: HttpSettings, ingest: Ingest) -> None:
        self.settings = settings
        self._ingest = ingest
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self.connections: set[_Connection] = set()
        self.port = settings.port

    def start(self) -> None:
        """Bind and serve; raises OSError when the address cannot be bound."""
        self._thread = threading.Thread(target=self._run, name="kpiloop-otlp-http", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            raise self._startup_error

    def shutdown(self) -> None:
        """Stop accepting connections and stop the loop; safe to call twice or before start."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._stop(), loop).result(timeout=10)
        thread.join(timeout=10)

    def check_headers(self, method: bytes, request: _Request) -> HttpReply | None:
        """An early answer (401/404/405/413/415) decided from the request line and headers, or None;
        notes the request's signal and encoding on it."""
        signal = SIGNALS.get(request.url.split(b"?", 1)[0])
        media = media_type(request.headers)
        json = media == "application/json"
        request.signal, request.json = signal, json
        token = self.settings.bearer_token
        if token is not None and not bearer_token_ok(request.headers.get(b"authorization"), token):
            self.refuse(request, UNAUTHENTICATED)
            return unauthenticated_reply(b"authorization" in request.headers, json)
        if signal is None:
            return error_reply(404, f"unknown path {request.url.decode(errors='replace')[:100]}", json)
        if method != b"POST":
            return error_reply(405, "use POST", json, extra=((b"Allow", b"POST"),))
        if media not in ("application/x-protobuf", "application/json"):
            self.refuse(request, "unsupported_media_type")
            return error_reply(415, "Content-Type must be application/x-protobuf or application/json", None)
        encoding = request.headers.get(b"content-encoding", b"").decode("latin-1").strip().lower()
        if encoding not in SUPPORTED_ENCODINGS:
            self.refuse(request, "unsupported_encoding")
            return error_reply(415, f"unsupported Content-Encoding {encoding!r}; use gzip or none", json)
        length = request.headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.settings.max_request_bytes:
            self.refuse(request, "too_large")
            return self.too_large(request)
        return None

    def too_large(self, request: _Request) -> HttpReply:
        """The 413 answer."""
        limit = self.settings.max_request_bytes
        json = media_type(request.headers) == "application/json"
        return error_reply(413, f"request body larger than max_request_bytes ({limit} bytes)", json)

    def refuse(self, request: _Request, reason: str) -> None:
        """Count a refused request against its signal."""
        signal = SIGNALS.get(request.url.split(b"?", 1)[0])
        self._ingest.refuse(signal or "unknown", reason)

    def handle(self, request: _Request) -> HttpReply:
        """Decode, ingest and answer one complete request (its headers checked)."""
        signal = request.signal or SIGNALS[request.url.split(b"?", 1)[0]]
        json = request.json
        try:
            items = decode_body(signal, request.headers, bytes(request.body), self.settings.max_request_bytes)
            result = self._ingest.submit(signal, items)
        except InputError as error:
            self._ingest.refuse(signal, error.reason)
            status = 413 if error.reason == "too_large" else 400
            return error_reply(status, str(error), json)
        except Overloaded as busy:
            status = 503 if busy.stopping else 429
            retry = (b"Retry-After", str(max(1, round(busy.retry_after))).encode())
            return error_reply(status, str(busy), json, extra=(retry,))
        return export_reply(signal, result, json)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._server = loop.run_until_complete(
                loop.create_server(
                    lambda: _Connection(self),
                    self.settings.host,
                    self.settings.port,
                    backlog=512,
                    ssl=self.settings.ssl_context,
                    ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT_S if self.settings.ssl_context else None,
                )
            )
            self.port = self._server.sockets[0].getsockname()[1]
        except BaseException as error:  # reported to start()'s caller
            self._startup_error = error
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            if connection._transport is not None:
                connection._transport.close()
        asyncio.get_running_loop().call_soon(asyncio.get_running_loop().stop)


def unauthenticated_reply(presented: bool, json: bool) -> HttpReply:
    """401 with a ``google.rpc.Status`` body (code UNAUTHENTICATED) and the RFC 6750 challenge."""
    message = "invalid bearer token" if presented else "missing bearer token: send Authorization: Bearer <token>"
    challenge = b'Bearer realm="kpiloop"' + (b', error="invalid_token"' if presented else b"")
    extra = ((b"WWW-Authenticate", challenge),)
    if json:
        return HttpReply(401, JSON, orjson.dumps({"code": GRPC_UNAUTHENTICATED, "message": message}), extra)
    body = Status(code=GRPC_UNAUTHENTICATED, message=message).SerializeToString()
    return HttpReply(401, PROTOBUF, body, extra)
