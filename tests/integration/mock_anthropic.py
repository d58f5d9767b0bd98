"""A small, honest mock of the Anthropic Messages API for driving the real Claude Code CLI in tests.

It answers ``POST /v1/messages`` the way the real API does: server-sent events when the request asks
for ``stream`` (``message_start`` carrying the input-side usage, one ``content_block_start`` /
``content_block_delta`` / ``content_block_stop`` per block, ``message_delta`` with the stop reason
and the output tokens, ``message_stop``), one JSON message otherwise. Requests that offer tools are
the agent loop: they get the next step of a script (tool calls, then a final text); requests without
tools (side queries) get a short text. Every response carries its own distinct usage numbers and
every request served is recorded, so a test can compute exactly what the CLI should have reported.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "sk-ant-api03-kpiloop-e2e-mock-key"
MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
SIDE_QUERY_TEXT = "OK"


@dataclass(frozen=True, slots=True)
class ToolUse:
    """One ``tool_use`` block the mock asks the agent to run."""

    name: str
    input: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Step:
    """One scripted answer of the agent loop: optional text, then tool calls (all in one message)."""

    text: str = ""
    tools: tuple[ToolUse, ...] = ()


@dataclass(frozen=True, slots=True)
class Served:
    """One request the mock answered, and what it answered."""

    path: str
    body: dict[str, Any]
    status: int
    usage: dict[str, int] = field(default_factory=dict)
    tool_uses: tuple[tuple[str, str], ...] = ()  # (tool_use id, tool name)
    request_id: str = ""

    @property
    def is_message(self) -> bool:
        """A Messages API call answered with a message (what Claude Code reports as an API request)."""
        return self.path == MESSAGES_PATH and self.status == HTTPStatus.OK

    @property
    def agent_loop(self) -> bool:
        """The request offered tools, so it was answered from the script."""
        return bool(self.body.get("tools"))


class MockAnthropic:
    """The mock server on ``127.0.0.1`` port 0; ``base_url`` for ``ANTHROPIC_BASE_URL``, ``served`` for checks.

    Use as a context manager: the server thread starts on enter and stops on exit.
    """

    def __init__(self, script: Sequence[Step], api_key: str = API_KEY) -> None:
        self.script = list(script)
        self.api_key = api_key
        self.served: list[Served] = []
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._turns = itertools.count()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, name="mock-anthropic", daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> MockAnthropic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def messages(self) -> list[Served]:
        """Every Messages API call answered with a message, in order."""
        with self._lock:
            return [served for served in self.served if served.is_message]

    def record(self, served: Served) -> None:
        with self._lock:
            self.served.append(served)

    def answer(self, body: dict[str, Any]) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
        """The message for one request, and its tool_use blocks. The script advances once per
        agent-loop request; past its end (or for side queries) the answer is a short text."""
        with self._lock:
            number = next(self._numbers)
            turn = next(self._turns) if body.get("tools") else len(self.script)
        step = self.script[turn] if turn < len(self.script) else Step(text=SIDE_QUERY_TEXT)
        return build_message(step, str(body.get("model", "")), number)


def build_message(step: Step, model: str, number: int) -> tuple[dict[str, Any], tuple[tuple[str, str], ...]]:
    """A complete Messages API response for ``step``; usage numbers are distinct per ``number``."""
    content: list[dict[str, Any]] = []
    if step.text:
        content.append({"type": "text", "text": step.text})
    uses = tuple((f"toolu_mock_{uuid.uuid4().hex[:20]}", tool.name) for tool in step.tools)
    for (use_id, _), tool in zip(uses, step.tools, strict=True):
        content.append({"type": "tool_use", "id": use_id, "name": tool.name, "input": tool.input})
    message = {
        "id": f"msg_mock_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": "tool_use" if uses else "end_turn",
        "stop_sequence": None,
        "usage": usage_for(number, content),
    }
    return message, uses


def usage_for(number: int, content: list[dict[str, Any]]) -> dict[str, int]:
    """Plausible, distinct usage: a growing cached prefix, a little fresh input, output ~ 4 chars a token."""
    size = sum(len(json.dumps(block)) for block in content)
    return {
        "input_tokens": 310 + 17 * number,
        "cache_creation_input_tokens": 1200 + 53 * number,
        "cache_read_input_tokens": 9000 * number,
        "output_tokens": 5 + size // 4,
    }


def sse_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The stream the real API sends for ``message``: the input usage up front, output tokens at the end."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        yield from _block_events(index, block)
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": {"output_tokens": usage["output_tokens"]}}
    yield "message_stop", {"type": "message_stop"}


def _block_events(index: int, block: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    if block["type"] == "text":
        start: dict[str, Any] = {"type": "text", "text": ""}
        delta: dict[str, Any] = {"type": "text_delta", "text": block["text"]}
    else:
        start = {**block, "input": {}}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
    if index == 0:
        yield "ping", {"type": "ping"}
    yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def _handler_for(mock: MockAnthropic) -> type[BaseHTTPRequestHandler]:
    class Handler(_MessagesHandler):
        owner = mock

    return Handler


class _MessagesHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 with keep-alive, as the CLI's client expects; every answer has a Content-Length."""

    protocol_version = "HTTP/1.1"
    owner: MockAnthropic

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``served`` instead of a request log on stderr."""

    def do_GET(self) -> None:
        self._refuse(HTTPStatus.NOT_FOUND, "not_found_error", f"no route GET {self.path}", {})

    def do_HEAD(self) -> None:
        self._send(HTTPStatus.OK, "text/plain", b"")

    def do_POST(self) -> None:
        body = self._read_json()
        path = self.path.split("?", 1)[0]
        if self.headers.get("x-api-key") != self.owner.api_key:
            self._refuse(HTTPStatus.UNAUTHORIZED, "authentication_error", "invalid x-api-key", body, path)
        elif path == COUNT_TOKENS_PATH:
            self.owner.record(Served(path, body, HTTPStatus.OK))
            self._send_json(HTTPStatus.OK, {"input_tokens": 320})
        elif path != MESSAGES_PATH:
            self._refuse(HTTPStatus.NOT_FOUND, "not_found_error", f"no route POST {path}", body, path)
        else:
            self._answer_messages(body)

    def _answer_messages(self, body: dict[str, Any]) -> None:
        message, uses = self.owner.answer(body)
        request_id = f"req_mock_{uuid.uuid4().hex[:16]}"
        self.owner.record(Served(MESSAGES_PATH, body, HTTPStatus.OK, dict(message["usage"]), uses, request_id))
        if body.get("stream"):
            frames = (f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in sse_events(message))
            self._send(HTTPStatus.OK, "text/event-stream", "".join(frames).encode(), request_id)
        else:
            self._send_json(HTTPStatus.OK, message, request_id)

    def _read_json(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return {}
        return body if isinstance(body, dict) else {}

    def _refuse(self, status: HTTPStatus, kind: str, text: str, body: dict[str, Any], path: str = "") -> None:
        self.owner.record(Served(path or self.path, body, status))
        self._send_json(status, {"type": "error", "error": {"type": kind, "message": text}})

    def _send_json(self, status: HTTPStatus, document: dict[str, Any], request_id: str = "") -> None:
        self._send(status, "application/json", json.dumps(document).encode(), request_id)

    def _send(self, status: HTTPStatus, content_type: str, payload: bytes, request_id: str = "") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if request_id:
            self.send_header("request-id", request_id)
        self.end_headers()
        self.wfile.write(payload)
