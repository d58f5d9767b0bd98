"""The OTLP/HTTP receiver on loopback, spoken to as exporters and misbehaving clients do.

Every case checks the status, the Content-Type, the decoded body (``google.rpc.Status`` or the
``Export*ServiceResponse`` in the request's encoding) and the refusal counted, then shows the same
server still accepts a valid request.
"""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import math
import random
import resource
import select
import socket
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceResponse,
)

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.ingest import EventQueue, Ingest
from kpiloop.collector.otlp_http import HttpSettings, OtlpHttpReceiver
from kpiloop.model import ApiCall, Evaluation, Event, ToolCall, UsageMetric
from tests.buggy_adapter import BuggyAdapter, boom_request
from tests.otlp_requests import (
    evaluation_log,
    logs_request,
    metrics_request,
    token_point,
    token_span,
    tool_span,
    traces_request,
)

TESTDATA = Path(__file__).parent.parent / "testdata" / "otlp"
RECEIVER = "otlp_http"
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
SMALL_LIMIT = 64 * 1024
INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, UNIMPLEMENTED = 3, 8, 14, 12


# --- request builders (the plan's span vocabulary, GenAI evaluation logs, Claude Code metrics) ---


def encode(message: Message, content_type: str) -> bytes:
    """The request body in protobuf or OTLP/JSON (the builders set no trace/span ids, the only
    fields where OTLP/JSON differs from the proto3 JSON mapping)."""
    if content_type == PROTOBUF:
        return message.SerializeToString()
    return json.dumps(json_format.MessageToDict(message)).encode()


@dataclass(frozen=True)
class SignalCase:
    """One OTLP signal: its path, response type, good and bad items and the events they make."""

    signal: str
    path: str
    response: type[Message]
    rejected_field: str
    good: Callable[[str | None], Message]
    with_bad_item: Callable[[str], Message]
    event_types: tuple[type[Event], ...]
    item_count: int


CASES = [
    SignalCase(
        "traces",
        "/v1/traces",
        ExportTraceServiceResponse,
        "rejected_spans",
        lambda sid: traces_request(token_span(sid), tool_span(sid)),
        lambda sid: traces_request(token_span(sid), token_span(sid, input_tokens=-5), tool_span(sid)),
        (ApiCall, ToolCall),
        2,
    ),
    SignalCase(
        "logs",
        "/v1/logs",
        ExportLogsServiceResponse,
        "rejected_log_records",
        lambda sid: logs_request(evaluation_log(sid)),
        lambda sid: logs_request(evaluation_log(sid), evaluation_log(sid, score="high")),
        (Evaluation,),
        1,
    ),
    SignalCase(
        "metrics",
        "/v1/metrics",
        ExportMetricsServiceResponse,
        "rejected_data_points",
        lambda sid: metrics_request(token_point(sid)),
        lambda sid: metrics_request(token_point(sid), token_point(sid, value=math.nan)),
        (UsageMetric,),
        1,
    ),
]
TRACES = CASES[0]
ENCODINGS = [PROTOBUF, JSON]


# --- the server and a client ---


class RecordingMetrics:
    """A SelfMetrics fake: sums what the receiver counts, by (signal) and (signal, reason)."""

    def __init__(self) -> None:
        self.received_items: Counter[str] = Counter()
        self.refused_items: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def received(self, receiver: str, signal: str, count: int) -> None:
        assert receiver == RECEIVER
        with self._lock:
            self.received_items[signal] += count

    def refused(self, receiver: str, signal: str, reason: str, count: int) -> None:
        assert receiver == RECEIVER
        with self._lock:
            self.refused_items[signal, reason] += count


@dataclass
class Server:
    receiver: OtlpHttpReceiver
    queue: EventQueue
    metrics: RecordingMetrics = field(default_factory=RecordingMetrics)

    @property
    def port(self) -> int:
        return self.receiver.port

    def drain(self) -> list[Event]:
        """Every queued event (responses are sent after the enqueue, so nothing is in flight)."""
        events: list[Event] = []
        while (batch := self.queue.get(timeout=0)) is not None:
            events.extend(batch)
        return events


@pytest.fixture
def start_server(request: pytest.FixtureRequest) -> Callable[..., Server]:
    def start(
        max_request_bytes: int = SMALL_LIMIT,
        max_events: int = 10_000,
        adapter: EventAdapter | None = None,
        idle_timeout: float = 60.0,
    ) -> Server:
        queue = EventQueue(max_events=max_events)
        metrics = RecordingMetrics()
        ingest = Ingest(RECEIVER, adapter or EventAdapter(), queue, metrics)
        settings = HttpSettings("127.0.0.1", 0, max_request_bytes, idle_timeout=idle_timeout)
        receiver = OtlpHttpReceiver(settings, ingest)
        threads_before = set(threading.enumerate())
        receiver.start()
        request.addfinalizer(lambda: stop(receiver, threads_before))
        return Server(receiver, queue, metrics)

    return start


def stop(receiver: OtlpHttpReceiver, threads_before: set[threading.Thread]) -> None:
    receiver.shutdown()
    left = set(threading.enumerate()) - threads_before
    assert not left, f"threads left running: {left}"


@pytest.fixture
def server(start_server: Callable[..., Server]) -> Server:
    return start_server()


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def read_reply(response: http.client.HTTPResponse) -> Reply:
    body = response.read()
    return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, body)


def post(
    port: int,
    path: str,
    body: bytes | Iterator[bytes] | None,
    content_type: str | None = PROTOBUF,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Reply:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        all_headers = {"Content-Type": content_type} if content_type else {}
        connection.request(method, path, body=body, headers={**all_headers, **(headers or {})})
        return read_reply(connection.getresponse())
    finally:
        connection.close()


def rpc_status(reply: Reply) -> Status:
    """The ``google.rpc.Status`` of an error answer to a protobuf request."""
    assert reply.content_type == PROTOBUF
    return Status.FromString(reply.body)


def json_status(reply: Reply) -> dict[str, Any]:
    """The ``google.rpc.Status`` of an error answer in JSON."""
    assert reply.content_type == JSON
    doc: dict[str, Any] = json.loads(reply.body)
    return doc


def error_of(reply: Reply, content_type: str) -> tuple[int, str]:
    """(code, message) of an error answer, decoded per the request's encoding."""
    if content_type == PROTOBUF:
        status = rpc_status(reply)
        return status.code, status.message
    doc = json_status(reply)
    return doc["code"], doc["message"]


def assert_still_serves(server: Server) -> None:
    """A valid request after the case under test is accepted and its events are queued."""
    server.drain()
    reply = post(server.port, "/v1/traces", encode(traces_request(token_span("still-serving")), PROTOBUF))
    assert reply.status == 200, reply
    assert ExportTraceServiceResponse.FromString(reply.body) == ExportTraceServiceResponse()
    assert [event.session_id for event in server.drain()] == ["still-serving"]


# --- 200 ---


@pytest.mark.parametrize("content_type", ENCODINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_a_valid_request_is_accepted_and_its_events_are_queued(server, case, content_type):
    reply = post(server.port, case.path, encode(case.good("s-1"), content_type), content_type)

    assert reply.status == 200
    assert reply.content_type == content_type
    if content_type == PROTOBUF:
        assert case.response.FromString(reply.body) == case.response()
    else:
        assert json.loads(reply.body) == {}
    events = server.drain()
    assert [type(event) for event in events] == list(case.event_types)
    assert {event.session_id for event in events} == {"s-1"}
    assert server.metrics.received_items == {case.signal: case.item_count}
    assert not server.metrics.refused_items
    assert_still_serves(server)


def test_the_queued_events_carry_the_items_values(server):
    post(server.port, "/v1/traces", encode(TRACES.good("s-1"), PROTOBUF))
    post(server.port, "/v1/logs", encode(logs_request(evaluation_log("s-1", score=0.75)), JSON), JSON)
    post(server.port, "/v1/metrics", encode(metrics_request(token_point("s-1", value=321.0)), PROTOBUF))

    api_call, tool_call, evaluation, usage = server.drain()
    assert isinstance(api_call, ApiCall)
    assert (api_call.input_tokens, api_call.output_tokens, api_call.cache_read_tokens) == (100, 20, 5)
    assert isinstance(tool_call, ToolCall) and tool_call.tool == "Read"
    assert isinstance(evaluation, Evaluation) and (evaluation.name, evaluation.score) == ("correctness", 0.75)
    assert isinstance(usage, UsageMetric) and (usage.token_type, usage.value) == ("input", 321.0)


@pytest.mark.parametrize("content_type", ENCODINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_bad_items_are_reported_in_partial_success_and_the_good_ones_queued(server, case, content_type):
    reply = post(server.port, case.path, encode(case.with_bad_item("s-2"), content_type), content_type)

    assert reply.status == 200
    assert reply.content_type == content_type
    if content_type == PROTOBUF:
        partial = case.response.FromString(reply.body).partial_success
        rejected, message = getattr(partial, case.rejected_field), partial.error_message
    else:
        partial = json.loads(reply.body)["partialSuccess"]
        camel = "".join(word.title() if i else word for i, word in enumerate(case.rejected_field.split("_")))
        rejected, message = int(partial[camel]), partial["errorMessage"]
    assert rejected == 1
    assert "1 item(s) rejected" in message and "must be" in message
    events = server.drain()
    assert [type(event) for event in events] == list(case.event_types)
    assert {event.session_id for event in events} == {"s-2"}
    assert server.metrics.refused_items == {(case.signal, "bad_value"): 1}
    assert server.metrics.received_items == {case.signal: case.item_count}
    assert_still_serves(server)


@pytest.mark.parametrize("content_type", ENCODINGS)
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.signal)
def test_items_without_a_session_are_accepted_without_events(server, case, content_type):
    reply = post(server.port, case.path, encode(case.good(None), content_type), content_type)

    assert reply.status == 200
    if content_type == PROTOBUF:
        assert case.response.FromString(reply.body) == case.response()
    else:
        assert json.loads(reply.body) == {}
    assert server.queue.depth() == 0
    assert server.metrics.received_items == {case.signal: case.item_count}
    assert not server.metrics.refused_items
    assert_still_serves(server)


@pytest.mark.parametrize(
    ("path", "example"), [("/v1/traces", "trace"), ("/v1/logs", "logs"), ("/v1/metrics", "metrics")]
)
def test_the_official_otlp_json_examples_are_accepted(server, path, example):
    reply = post(server.port, path, (TESTDATA / f"{example}.json").read_bytes(), JSON)

    assert reply.status == 200
    assert reply.content_type == JSON
    assert json.loads(reply.body) == {}
    assert server.queue.depth() == 0  # the examples name no session
    assert not server.metrics.refused_items
    assert_still_serves(server)


@pytest.mark.parametrize("content_type", ENCODINGS)
@pytest.mark.parametrize("encoding", ["gzip", "x-gzip"])
def test_gzip_compressed_bodies_are_accepted(server, content_type, encoding):
    body = gzip.compress(encode(TRACES.good("s-gz"), content_type))
    reply = post(server.port, "/v1/traces", body, content_type, headers={"Content-Encoding": encoding})

    assert reply.status == 200
    assert reply.content_type == content_type
    assert [event.session_id for event in server.drain()] == ["s-gz", "s-gz"]
    assert_still_serves(server)


def test_a_multi_member_gzip_body_is_read_whole(server):
    members = [gzip.compress(encode(traces_request(token_span(f"member-{n}")), PROTOBUF)) for n in range(3)]
    reply = post(server.port, "/v1/traces", b"".join(members), PROTOBUF, headers={"Content-Encoding": "gzip"})

    assert reply.status == 200
    assert [event.session_id for event in server.drain()] == ["member-0", "member-1", "member-2"]
    assert_still_serves(server)


def test_content_type_parameters_and_case_are_ignored(server):
    body = encode(TRACES.good("s-params"), JSON)
    reply = post(server.port, "/v1/traces?tenant=a", body, "Application/JSON; charset=utf-8")

    assert reply.status == 200
    assert reply.content_type == JSON
    assert {event.session_id for event in server.drain()} == {"s-params"}


def test_concurrent_clients_are_all_served(server):
    replies: list[int] = []

    def client(number: int) -> None:
        for round_ in range(5):
            body = encode(traces_request(token_span(f"c-{number}-{round_}")), PROTOBUF)
            replies.append(post(server.port, "/v1/traces", body).status)

    threads = [threading.Thread(target=client, args=(number,)) for number in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert replies == [200] * 40
    assert len({event.session_id for event in server.drain()}) == 40


def test_keep_alive_serves_several_requests_on_one_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        sockets = set()
        statuses = []
        for number, (case, content_type) in enumerate([(c, t) for c in CASES for t in ENCODINGS]):
            body = encode(case.good(f"ka-{number}"), content_type)
            connection.request("POST", case.path, body=body, headers={"Content-Type": content_type})
            reply = read_reply(connection.getresponse())
            statuses.append(reply.status)
            assert reply.headers["connection"] == "keep-alive"
            sockets.add(id(connection.sock))
        connection.request("POST", "/v1/traces", body=b"\xff\xff", headers={"Content-Type": PROTOBUF})
        statuses.append(read_reply(connection.getresponse()).status)
        body = encode(logs_request(evaluation_log("ka-last")), PROTOBUF)
        connection.request("POST", "/v1/logs", body=body, headers={"Content-Type": PROTOBUF})
        statuses.append(read_reply(connection.getresponse()).status)
        sockets.add(id(connection.sock))
    finally:
        connection.close()
    assert statuses == [200] * 6 + [400, 200]
    assert len(sockets) == 1
    assert {event.session_id for event in server.drain()} == {*(f"ka-{n}" for n in range(6)), "ka-last"}


# --- 400 ---


def truncated_protobuf() -> bytes:
    body = encode(TRACES.good("s-1"), PROTOBUF)
    return body[: len(body) - 7]


GZIP = {"Content-Encoding": "gzip"}
BAD_BODIES = [
    pytest.param(PROTOBUF, {}, truncated_protobuf(), "undecodable", "not a valid", id="truncated-protobuf"),
    pytest.param(PROTOBUF, {}, random.Random(7).randbytes(512), "undecodable", "not a valid", id="random-bytes"),
    pytest.param(JSON, {}, b'{"resourceSpans": [', "undecodable", "not valid JSON", id="invalid-json"),
    pytest.param(JSON, {}, b"[1, 2, 3]", "undecodable", "must be a JSON object", id="json-not-an-object"),
    pytest.param(JSON, {}, b'"resourceSpans"', "undecodable", "must be a JSON object", id="json-string"),
    pytest.param(JSON, {}, b'{"resourceSpans": 5}', "malformed", "must be a list", id="json-wrong-shape"),
    pytest.param(PROTOBUF, GZIP, b"this is not gzip", "bad_gzip", "not valid gzip", id="invalid-gzip"),
    pytest.param(PROTOBUF, GZIP, b"", "bad_gzip", "truncated", id="empty-gzip"),
    pytest.param(
        JSON, GZIP, gzip.compress(encode(TRACES.good("s-1"), JSON))[:-12], "bad_gzip", "truncated", id="truncated-gzip"
    ),
    pytest.param(
        PROTOBUF,
        GZIP,
        gzip.compress(encode(TRACES.good("s-1"), PROTOBUF)) + b"trailing garbage",
        "bad_gzip",
        "not valid gzip",
        id="gzip-with-trailing-garbage",
    ),
]


@pytest.mark.parametrize(("content_type", "headers", "body", "reason", "says"), BAD_BODIES)
def test_an_undecodable_body_is_answered_400(server, content_type, headers, body, reason, says):
    reply = post(server.port, "/v1/traces", body, content_type, headers)

    assert reply.status == 400
    assert reply.content_type == content_type
    code, message = error_of(reply, content_type)
    assert code == INVALID_ARGUMENT
    assert says in message
    assert server.metrics.refused_items == {("traces", reason): 1}
    assert server.queue.depth() == 0
    assert_still_serves(server)


# --- 404, 405, 415 ---


@pytest.mark.parametrize("content_type", ENCODINGS)
def test_an_unknown_path_is_answered_404(server, content_type):
    reply = post(server.port, "/v1/spans", encode(TRACES.good("s-1"), content_type), content_type)

    assert reply.status == 404
    assert reply.content_type == content_type
    code, message = error_of(reply, content_type)
    assert code == UNIMPLEMENTED
    assert "/v1/spans" in message
    assert not server.metrics.refused_items  # no signal, no items: nothing to count
    assert server.queue.depth() == 0
    assert_still_serves(server)


def test_get_is_answered_405_with_allow_post(server):
    reply = post(server.port, "/v1/traces", None, content_type=None, method="GET")

    assert reply.status == 405
    assert reply.headers["allow"] == "POST"
    code, message = error_of(reply, PROTOBUF)
    assert code == UNIMPLEMENTED and message == "use POST"
    assert not server.metrics.refused_items
    assert_still_serves(server)


def test_head_is_answered_405_without_content_and_the_connection_stays_in_step(server):
    """A HEAD answer with a body would be read by a keep-alive client as the start of the next answer."""
    body = encode(TRACES.good("s-head"), PROTOBUF)
    pipelined = (
        b"HEAD /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(pipelined)
        data = b""
        while data.count(b"\r\n\r\n") < 2:
            received = sock.recv(65536)
            assert received, f"connection closed after {data!r}"
            data += received

    head_answer, rest = data.split(b"\r\n\r\n", 1)
    assert head_answer.startswith(b"HTTP/1.1 405 ")
    assert b"Allow: POST" in head_answer
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert {event.session_id for event in server.drain()} == {"s-head"}


@pytest.mark.parametrize(
    ("content_type", "headers", "reason", "answer_type"),
    [
        pytest.param("text/plain", {}, "unsupported_media_type", JSON, id="text-plain"),
        pytest.param(PROTOBUF, {"Content-Encoding": "br"}, "unsupported_encoding", PROTOBUF, id="brotli-protobuf"),
        pytest.param(JSON, {"Content-Encoding": "br"}, "unsupported_encoding", JSON, id="brotli-json"),
    ],
)
def test_an_unsupported_type_or_encoding_is_answered_415(server, content_type, headers, reason, answer_type):
    reply = post(server.port, "/v1/logs", encode(logs_request(evaluation_log("s-1")), PROTOBUF), content_type, headers)

    assert reply.status == 415
    code, message = error_of(reply, answer_type)
    assert code == INVALID_ARGUMENT
    assert "Content-" in message
    assert server.metrics.refused_items == {("logs", reason): 1}
    assert server.queue.depth() == 0
    assert_still_serves(server)


# --- 413 ---


@pytest.mark.parametrize("content_type", ENCODINGS)
def test_a_content_length_over_the_limit_is_answered_413(server, content_type):
    reply = post(server.port, "/v1/metrics", b"\0" * (SMALL_LIMIT + 1), content_type)

    assert reply.status == 413
    assert reply.headers["connection"] == "close"
    code, message = error_of(reply, content_type)
    assert code == RESOURCE_EXHAUSTED
    assert str(SMALL_LIMIT) in message
    assert server.metrics.refused_items == {("metrics", "too_large"): 1}
    assert_still_serves(server)


def test_a_client_still_streaming_a_large_body_reads_the_413(server):
    declared = 100 * SMALL_LIMIT
    head = (
        f"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {PROTOBUF}\r\nContent-Length: {declared}\r\n\r\n"
    )
    reply, sent = stream_until_answered(server.port, head.encode(), b"\0" * 16384, minimum=2 * SMALL_LIMIT)

    assert sent < declared
    assert reply.status == 413
    code, message = error_of(reply, PROTOBUF)
    assert code == RESOURCE_EXHAUSTED and "max_request_bytes" in message
    assert server.metrics.refused_items == {("traces", "too_large"): 1}
    assert_still_serves(server)


def stream_until_answered(port: int, start: bytes, filler: bytes, minimum: int = 0) -> tuple[Reply, int]:
    """Send ``start`` then ``filler`` over and over (at least ``minimum`` bytes) until the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(start)
        sent = 0
        deadline = time.monotonic() + 5
        while sent < minimum or not select.select([sock], [], [], 0)[0]:
            assert time.monotonic() < deadline, f"no answer after {sent} bytes"
            sock.sendall(filler)
            sent += len(filler)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            return read_reply(response), sent
        finally:
            response.close()


@pytest.mark.parametrize(
    "start",
    [b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: ", b"POST /v1/traces?padding="],
    ids=["endless-header", "endless-url"],
)
def test_endless_request_headers_are_answered_431(server, start):
    reply, sent = stream_until_answered(server.port, start, b"a" * 16384)

    assert sent < 16 << 20
    assert reply.status == 431
    code, message = error_of(reply, JSON)
    assert code == RESOURCE_EXHAUSTED and "headers larger than" in message
    assert server.metrics.refused_items == {("traces", "too_large"): 1}
    assert_still_serves(server)


@pytest.mark.parametrize("content_type", ENCODINGS)
def test_a_chunked_body_growing_past_the_limit_is_answered_413(server, content_type):
    def chunks() -> Iterator[bytes]:
        for _ in range(16):
            yield b"\0" * 16384

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/v1/logs", body=chunks(), headers={"Content-Type": content_type})
        reply = read_reply(connection.getresponse())
    finally:
        connection.close()

    assert reply.status == 413
    code, _ = error_of(reply, content_type)
    assert code == RESOURCE_EXHAUSTED
    assert server.metrics.refused_items == {("logs", "too_large"): 1}
    assert_still_serves(server)


def test_a_small_chunked_body_is_accepted(server):
    body = encode(TRACES.good("s-chunked"), PROTOBUF)

    def chunks() -> Iterator[bytes]:
        yield from (body[i : i + 10] for i in range(0, len(body), 10))

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request("POST", "/v1/traces", body=chunks(), headers={"Content-Type": PROTOBUF})
        reply = read_reply(connection.getresponse())
    finally:
        connection.close()

    assert reply.status == 200
    assert {event.session_id for event in server.drain()} == {"s-chunked"}


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """200 MB of zeros in about 200 KB of gzip."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join([*(compressor.compress(block) for _ in range(200)), compressor.flush()])


@pytest.mark.parametrize("content_type", ENCODINGS)
def test_a_gzip_bomb_is_answered_413_without_inflating_it(start_server, gzip_bomb, content_type):
    server = start_server(max_request_bytes=1 << 20)
    assert len(gzip_bomb) < 1 << 20  # small enough on the wire: only decompression can catch it
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    started = time.monotonic()
    reply = post(server.port, "/v1/traces", gzip_bomb, content_type, headers={"Content-Encoding": "gzip"})
    elapsed = time.monotonic() - started

    assert reply.status == 413
    code, message = error_of(reply, content_type)
    assert code == RESOURCE_EXHAUSTED and "decompressed" in message
    assert server.metrics.refused_items == {("traces", "too_large"): 1}
    assert elapsed < 3.0
    peak_growth_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before
    assert peak_growth_kib < 64 * 1024, "the server inflated the bomb"
    assert_still_serves(server)


# --- 429, 503 ---


@pytest.mark.parametrize("content_type", ENCODINGS)
def test_a_full_queue_is_answered_429_with_retry_after(start_server, content_type):
    server = start_server(max_events=2)
    first = post(server.port, "/v1/traces", encode(TRACES.good("s-1"), content_type), content_type)
    assert first.status == 200
    assert server.queue.depth() == 2

    reply = post(server.port, "/v1/traces", encode(TRACES.good("s-2"), content_type), content_type)

    assert reply.status == 429
    assert reply.headers["retry-after"] == "1"
    assert reply.headers["connection"] == "keep-alive"
    code, message = error_of(reply, content_type)
    assert code == RESOURCE_EXHAUSTED and "queue full" in message
    assert server.metrics.refused_items == {("traces", "queue_full"): 2}
    assert server.metrics.received_items == {"traces": 2}
    assert {event.session_id for event in server.drain()} == {"s-1"}  # the refused request left nothing behind
    assert_still_serves(server)


@pytest.mark.parametrize("content_type", ENCODINGS)
def test_a_closed_queue_is_answered_503_with_retry_after(server, content_type):
    server.queue.close()

    for _ in range(2):  # the server keeps answering while it stops
        reply = post(server.port, "/v1/logs", encode(logs_request(evaluation_log("s-1")), content_type), content_type)

        assert reply.status == 503
        assert reply.headers["retry-after"] == "5"
        code, message = error_of(reply, content_type)
        assert code == UNAVAILABLE and "shutting down" in message
    assert server.metrics.refused_items == {("logs", "shutting_down"): 2}
    assert server.queue.depth() == 0


def test_a_bug_costs_one_request_a_counted_500_and_the_server_goes_on(start_server, caplog):
    server = start_server(adapter=BuggyAdapter())
    boom = boom_request()
    with caplog.at_level(logging.ERROR):
        reply = post(server.port, "/v1/traces", boom.SerializeToString(), PROTOBUF)
    assert reply.status == 500
    assert server.metrics.refused_items["traces", "internal"] == 1
    assert "internal error while handling /v1/traces" in caplog.text
    after = traces_request(token_span("after")).SerializeToString()
    assert post(server.port, "/v1/traces", after, PROTOBUF).status == 200


def test_an_idle_keep_alive_connection_is_closed_and_an_active_one_is_not(start_server):
    """Idle timeout 1.5 s: requests every 0.3 s for 2.1 s keep the connection (the timer set at connect
    re-arms for the rest of the window); then, quiet, the server closes it."""
    server = start_server(idle_timeout=1.5)
    body = traces_request(token_span("idle")).SerializeToString()
    head = f"POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: {PROTOBUF}\r\nContent-Length: {len(body)}\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        for _ in range(8):
            sock.sendall(head.encode() + body)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")
            time.sleep(0.3)
        sock.settimeout(8)
        assert sock.recv(1) == b""  # closed by the server, not by our timeout (that would raise)
