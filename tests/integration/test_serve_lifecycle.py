"""``kpiloop serve`` as a long-running process: SIGTERM while data arrives, restarts on the same data
dir, and the hook commands with and without a collector listening."""

from __future__ import annotations

import http.client
import math
import os
import signal
import socket
import threading
import time
from pathlib import Path

import orjson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

SESSION = "lifecycle-session-0001"
PROTOBUF = {"Content-Type": "application/x-protobuf"}
MIN_ACCEPTED_BEFORE_SIGTERM = 150
MAX_REQUESTS = 20_000
SENDERS = 3
SECOND = 1_000_000_000


def _attr(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def token_span_request(session_id: str, index: int) -> bytes:
    """One plan-vocabulary ``hook:token-metrics-extraction`` span: one API call with one output token."""
    start = time.time_ns()
    span = Span(
        trace_id=index.to_bytes(16, "big"),
        span_id=(index + 1).to_bytes(8, "big"),
        name="hook:token-metrics-extraction",
        kind=Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000,
        attributes=[_attr("session.id", session_id), _attr("tokens.output", 1), _attr("tokens.model", "test-model")],
    )
    resource = Resource(attributes=[_attr("service.name", "lifecycle-test")])
    request = ExportTraceServiceRequest(
        resource_spans=[ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=[span])])]
    )
    return request.SerializeToString()


def session_end_request(session_id: str) -> bytes:
    """A ``session.end`` log record (the plan's explicit end) for ``session_id``."""
    record = LogRecord(
        time_unix_nano=time.time_ns(),
        event_name="session.end",
        body=AnyValue(string_value="session.end"),
        attributes=[_attr("session.id", session_id), _attr("reason", "test")],
    )
    request = ExportLogsServiceRequest(resource_logs=[ResourceLogs(scope_logs=[ScopeLogs(log_records=[record])])])
    return request.SerializeToString()


class Sender(threading.Thread):
    """Sends one small request after another over keep-alive connections until the server stops answering;
    counts the 200 answers (each one is data the server accepted)."""

    def __init__(self, host: str, port: int, offset: int) -> None:
        super().__init__(name=f"lifecycle-sender-{offset}", daemon=True)
        self.host, self.port, self.offset = host, port, offset
        self.accepted = 0
        self.other: dict[int, int] = {}
        self.failures: list[str] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        index = self.offset
        connection: http.client.HTTPConnection | None = None
        try:
            while not self.stop_event.is_set() and index < self.offset + MAX_REQUESTS:
                index += 1
                body = token_span_request(SESSION, index)
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
                    connection.request("POST", "/v1/traces", body=body, headers=PROTOBUF)
                    answer = connection.getresponse()
                    answer.read()
                    if answer.status == 200:
                        self.accepted += 1
                    else:
                        self.other[answer.status] = self.other.get(answer.status, 0) + 1
                    if answer.will_close:
                        connection.close()
                        connection = None
                except ConnectionRefusedError:
                    return  # the listener is gone: the server is stopping or stopped
                except (OSError, http.client.HTTPException) as error:
                    self.failures.append(repr(error))  # no answer: not accepted as far as the sender knows
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()


def host_port(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


def test_sigterm_during_ingestion_loses_no_accepted_data(start_server, tmp_path):
    """Several keep-alive senders, so requests are in flight on several connections when SIGTERM lands."""
    data_dir = tmp_path / "data"
    first = start_server(data_dir)
    senders = [Sender(*host_port(first.http_url), offset=n * MAX_REQUESTS) for n in range(SENDERS)]
    for sender in senders:
        sender.start()

    def accepted() -> int:
        return sum(sender.accepted for sender in senders)

    deadline = time.monotonic() + 20
    while accepted() < MIN_ACCEPTED_BEFORE_SIGTERM and time.monotonic() < deadline:
        time.sleep(0.01)
    assert accepted() >= MIN_ACCEPTED_BEFORE_SIGTERM, [(s.accepted, s.other, s.failures[:3]) for s in senders]
    first.terminate()  # while every sender is still sending
    for sender in senders:
        sender.join(timeout=30)
    for sender in senders:  # the server kept answering after SIGTERM: stop sending, the stop check reports it
        sender.stop_event.set()
        sender.join(timeout=30)
    assert first.stop() == 0
    assert not any(sender.is_alive() for sender in senders)
    refusals = {status for sender in senders for status in sender.other}
    assert refusals <= {503}, refusals  # only "stopping" answers besides 200
    assert first.history() == []  # the session was open: saved, not closed
    assert "1 open session(s) saved" in first.stdout()

    second = start_server(data_dir)
    assert second.restored_sessions >= 1
    assert second.post("logs", session_end_request(SESSION), PROTOBUF["Content-Type"]) == 200
    (line,) = second.wait_for_history(1)
    assert line["session_id"] == SESSION
    assert line["tokens"]["output"] == accepted(), [(s.accepted, s.other, s.failures[:3]) for s in senders]
    assert line["api_requests"] == accepted()
    assert line["close_reason"] == "session_end"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def raw_bodies(folder: Path) -> list[tuple[str, bytes, str]]:
    """(signal, body, content type) of the fixture's ``raw/`` files in file-name order."""
    bodies = []
    for path in sorted((folder / "raw").iterdir()):
        signal = path.name.rsplit("-", 2)[-2]
        assert signal in ("logs", "metrics", "traces"), path.name
        bodies.append(
            (signal, path.read_bytes(), "application/x-protobuf" if path.suffix == ".pb" else "application/json")
        )
    return bodies


def hook_payloads(folder: Path, *events: str) -> list[bytes]:
    lines = [line for line in (folder / "hooks.jsonl").read_bytes().splitlines() if line.strip()]
    return [line for line in lines if orjson.loads(line)["hook_event_name"] in events]


def scenario(root: Path, prefix: str) -> Path:
    (folder,) = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return folder


def test_a_session_end_kept_while_no_collector_listens_closes_the_session_at_the_next_start(
    start_server, run_hook, claude_code_fixtures, tmp_path
):
    folder = scenario(claude_code_fixtures, "B-")
    expected = orjson.loads((folder / "expected.json").read_bytes())
    (session_id,) = expected
    data_dir = tmp_path / "data"

    first = start_server(data_dir)
    assert all(first.post(*body) == 200 for body in raw_bodies(folder))
    assert first.stop() == 0  # the open session is saved in the data dir
    assert first.history() == []

    (end,) = hook_payloads(folder, "SessionEnd")
    started = time.monotonic()
    done = run_hook("session-end", end, f"http://127.0.0.1:{closed_port()}", "--data-dir", str(data_dir))
    elapsed = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"", b"")
    assert elapsed < 5, f"the hook took {elapsed:.1f} s with no collector listening"
    pending = data_dir / "pending" / "hook-records.jsonl"
    (record,) = [orjson.loads(line) for line in pending.read_bytes().splitlines() if line.strip()]
    (log,) = record["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
    assert log["eventName"] == "session.end"
    assert {"key": "session.id", "value": {"stringValue": session_id}} in log["attributes"]
    assert not (Path(os.environ["KPILOOP_HOME"]) / "pending").exists()  # --data-dir wins over KPILOOP_HOME

    second = start_server(data_dir)
    assert second.restored_sessions >= 1
    (line,) = second.wait_for_history(1)
    assert line["session_id"] == session_id
    assert line["close_reason"] == "session_end"
    truth = expected[session_id]
    assert line["tokens"]["output"] == truth["tokens"]["output"]
    assert (line["api_requests"], line["tool_calls"], line["tool_failures"]) == (
        truth["api_requests"],
        truth["tool_calls"],
        truth["tool_failures"],
    )
    assert not [raw for raw in pending.read_bytes().splitlines() if raw.strip()]  # taken, not taken twice


def test_hook_event_forwards_a_tool_call(serve, claude_code_fixtures):
    folder = scenario(claude_code_fixtures, "A-")
    post_tool = hook_payloads(folder, "PostToolUse")[0]
    payload = orjson.loads(post_tool)
    done = serve.hook("event", post_tool)
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    (end,) = hook_payloads(folder, "SessionEnd")
    assert serve.hook("session-end", end).returncode == 0
    (line,) = serve.wait_for_history(1)
    assert line["session_id"] == payload["session_id"]
    assert line["tools_by_name"] == {payload["tool_name"]: 1}
    assert (line["tool_calls"], line["tool_failures"], line["api_requests"]) == (1, 0, 0)
    assert "hook" in line["data_completeness"]["sources"]


def test_hook_events_and_native_telemetry_of_one_session_count_each_tool_once(serve, claude_code_fixtures):
    folder = scenario(claude_code_fixtures, "A-")
    expected = orjson.loads((folder / "expected.json").read_bytes())
    (session_id,) = expected
    events = ("SessionStart", "UserPromptSubmit", "PreToolUse", "PostToolUse", "PostToolUseFailure", "Stop")
    for payload in hook_payloads(folder, *events):  # hooks fire before the CLI's batched export
        assert serve.hook("event", payload).returncode == 0
    assert all(serve.post(*body) == 200 for body in raw_bodies(folder))
    (end,) = hook_payloads(folder, "SessionEnd")
    assert serve.hook("session-end", end).returncode == 0
    (line,) = serve.wait_for_history(1)
    truth = expected[session_id]
    for field in ("tool_calls", "tool_failures", "tool_denials", "tools_by_name", "api_requests", "tokens"):
        got = {k: line[field][k] for k in truth[field]} if field == "tokens" else line[field]
        assert got == truth[field], field


def test_a_claude_c_resume_after_a_restart_is_still_cumulative(start_server, claude_code_fixtures, tmp_path):
    """F1's session closes, the server restarts (closed sessions are saved too), F2 resumes the session."""
    data_dir = tmp_path / "data"
    first_run, resume = scenario(claude_code_fixtures, "F1-"), scenario(claude_code_fixtures, "F2-")
    expected = orjson.loads((resume / "expected.json").read_bytes())
    (session_id,) = expected

    first = start_server(data_dir)
    assert all(first.post(*body) == 200 for body in raw_bodies(first_run))
    (end,) = hook_payloads(first_run, "SessionEnd")
    assert first.hook("session-end", end).returncode == 0
    first.wait_for_history(1)
    assert first.stop() == 0

    second = start_server(data_dir)
    assert all(second.post(*body) == 200 for body in raw_bodies(resume))
    (end,) = hook_payloads(resume, "SessionEnd")
    assert second.hook("session-end", end).returncode == 0
    lines = second.wait_for_history(2)
    assert [(line["session_id"], line["revision"], line["supersedes"]) for line in lines] == [
        (session_id, 1, None),
        (session_id, 2, 1),
    ]
    truth = expected[session_id]
    latest = lines[1]
    assert {kind: latest["tokens"][kind] for kind in truth["tokens"]} == truth["tokens"]
    for field in ("api_requests", "api_errors", "tool_calls", "tool_failures", "tool_denials", "tools_by_name"):
        assert latest[field] == truth[field], field
    assert math.isclose(latest["cost_usd"], truth["cost_usd"], rel_tol=1e-9)


def test_a_hook_record_sent_to_a_frozen_collector_is_kept_and_counted_once(serve, run_hook, claude_code_fixtures):
    """The collector is too slow to answer (frozen): the hook keeps the record in pending/ although the
    request did reach the socket. Both copies arrive once it runs again; the tool call counts once."""
    folder = scenario(claude_code_fixtures, "A-")
    post_tool = hook_payloads(folder, "PostToolUse")[0]
    serve.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        done = run_hook("event", post_tool, serve.http_url, "--data-dir", str(serve.data_dir))
        elapsed = time.monotonic() - started
    finally:
        serve.process.send_signal(signal.SIGCONT)
    assert done.returncode == 0, done.stderr
    assert elapsed < 5, f"the hook took {elapsed:.1f} s with a frozen collector"
    assert serve.pending_path.read_bytes().count(b"\n") == 1
    deadline = time.monotonic() + 15  # the running server takes pending records every 5 s
    while serve.pending_path.read_bytes().strip():
        assert time.monotonic() < deadline, "the server did not take the pending record"
        time.sleep(0.05)
    (end,) = hook_payloads(folder, "SessionEnd")
    assert serve.hook("session-end", end).returncode == 0
    (line,) = serve.wait_for_history(1)
    assert (line["tool_calls"], line["tools_by_name"]) == (1, {orjson.loads(post_tool)["tool_name"]: 1})
