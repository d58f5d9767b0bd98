"""Overload: more OTLP/HTTP traffic than a small ingest queue holds, from 8 concurrent clients.

A real ``kpiloop serve`` with ``max_queued_events: 100`` (one 100-span request fits) takes
8 × 40 requests of 100 API-call spans each, spread over 16 sessions. Expected: some requests are
refused with 429 and a ``Retry-After`` header, every refusal is counted in
``kpiloop_refused_items_total``, the server's memory stays flat while it refuses, and every span of
every *acknowledged* request is in the history once the sessions end — exactly, token by token.
Bounded: 320 requests, each with a 10 s timeout; loopback only.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from .conftest import ServeProcess, StartServer

CLIENTS = 8
REQUESTS_PER_CLIENT = 40
SPANS_PER_REQUEST = 100
SESSIONS = 16
QUEUE = 100
RSS_GROWTH_LIMIT_KB = 30 * 1024
PROTOBUF = "application/x-protobuf"
AGENT = "load-agent"
START_NS = 1_780_000_000_000_000_000


def attribute(key: str, value: str | int) -> KeyValue:
    any_value = AnyValue(string_value=value) if isinstance(value, str) else AnyValue(int_value=value)
    return KeyValue(key=key, value=any_value)


def session_id(number: int) -> str:
    return f"load-session-{number:02d}"


def request_body(number: int) -> bytes:
    """Request ``number``: 100 API calls (input 10, output 1 token each, unique request ids) of
    session ``number % SESSIONS``."""
    session = session_id(number % SESSIONS)
    spans = []
    for index in range(SPANS_PER_REQUEST):
        serial = number * SPANS_PER_REQUEST + index
        start = START_NS + serial * 1_000_000
        spans.append(
            Span(
                trace_id=serial.to_bytes(16, "big"),
                span_id=(serial + 1).to_bytes(8, "big"),
                name="hook:token-metrics-extraction",
                start_time_unix_nano=start,
                end_time_unix_nano=start + 500_000,
                attributes=[
                    attribute("session.id", session),
                    attribute("agent.type", AGENT),
                    attribute("request_id", f"req-{serial}"),
                    attribute("tokens.model", "claude-sonnet-4-5"),
                    attribute("tokens.input", 10),
                    attribute("tokens.output", 1),
                ],
            )
        )
    return export_request(spans)


def session_end_body(number: int) -> bytes:
    end = START_NS + 10**12 + number
    span = Span(
        trace_id=(10**6 + number).to_bytes(16, "big"),
        span_id=(10**6 + number).to_bytes(8, "big"),
        name="session.end",
        start_time_unix_nano=end,
        end_time_unix_nano=end,
        attributes=[attribute("session.id", session_id(number)), attribute("agent.type", AGENT)],
    )
    return export_request([span])


def export_request(spans: list[Span]) -> bytes:
    resource = ResourceSpans(scope_spans=[ScopeSpans(spans=spans)])
    resource.resource.attributes.append(attribute("service.name", "load-test"))
    return ExportTraceServiceRequest(resource_spans=[resource]).SerializeToString()


def post(url: str, body: bytes) -> tuple[int, str | None]:
    """(status, Retry-After) of one POST."""
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": PROTOBUF})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            answer.read()
            return int(answer.status), None
    except urllib.error.HTTPError as error:
        with error:
            error.read()
            return int(error.code), error.headers.get("Retry-After")


def rss_kb(server: ServeProcess) -> int:
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


class Load:
    """Numbers the requests and records their outcome: acknowledged requests per session, statuses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.accepted: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.retry_after: set[str | None] = set()
        self._next = 0
        self._lock = threading.Lock()

    def send(self) -> int:
        """Send the next request; its status."""
        with self._lock:
            number, self._next = self._next, self._next + 1
        status, retry_after = post(self.url, request_body(number))
        with self._lock:
            self.statuses[status] += 1
            if status == 200:
                self.accepted[session_id(number % SESSIONS)] += 1
            elif status == 429:
                self.retry_after.add(retry_after)
        return status

    def run_clients(self) -> Counter[int]:
        """CLIENTS threads sending REQUESTS_PER_CLIENT requests each; the statuses of this round."""
        before = Counter(self.statuses)
        threads = [threading.Thread(target=self._client) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
            assert not thread.is_alive(), "a load client did not finish"
        return self.statuses - before

    def _client(self) -> None:
        for _ in range(REQUESTS_PER_CLIENT):
            self.send()


def test_overload_refuses_with_429_keeps_memory_flat_and_processes_everything_acknowledged(
    start_server: StartServer, tmp_path: Path
) -> None:
    config = tmp_path / "otel-config.yaml"
    config.write_text(f"receivers:\n  otlp:\n    max_queued_events: {QUEUE}\n")
    server = start_server(extra_args=["--config", str(config)])
    url = f"{server.http_url}/v1/traces"
    load = Load(url)
    for _ in range(50 * SESSIONS):  # warm up one at a time until every session is open (a 429 waits a bit)
        if len(load.accepted) == SESSIONS:
            break
        if load.send() == 429:
            time.sleep(0.02)
    assert len(load.accepted) == SESSIONS and set(load.statuses) <= {200, 429}, load.statuses
    load.run_clients()
    before = rss_kb(server)
    measured = load.run_clients()
    after = rss_kb(server)

    assert set(measured) <= {200, 429}, measured
    assert measured[429] > 0 and measured[200] > 0, measured
    assert load.retry_after and None not in load.retry_after  # every 429 says when to come back
    assert after - before < RSS_GROWTH_LIMIT_KB, f"RSS grew from {before} kB to {after} kB while refusing"

    for number in range(SESSIONS):
        assert post(url, session_end_body(number))[0] == 200
    lines = server.wait_for_history(SESSIONS, timeout=60)
    refused = sum(value for labels, value in server.samples("kpiloop_refused_items_total")
                  if labels.get("receiver") == "otlp_http" and labels.get("reason") != "stopping")  # fmt: skip
    assert refused == load.statuses[429] * SPANS_PER_REQUEST
    output_tokens = {line["session_id"]: line["tokens"]["output"] for line in lines}
    api_requests = {line["session_id"]: line["api_requests"] for line in lines}
    expected = {session_id(n): load.accepted[session_id(n)] * SPANS_PER_REQUEST for n in range(SESSIONS)}
    assert output_tokens == expected  # everything acknowledged, nothing refused, each span once
    assert api_requests == expected
