"""Claude Code hook commands: ``kpiloop hook session-end`` and ``kpiloop hook event``.

They run before and after every Claude Code session, so this module imports the standard library
only, never waits on the network for more than a few tens of milliseconds, prints nothing Claude
Code would read, and always exits 0. Each reads the hook's JSON payload on stdin and sends one
OTLP/JSON log record to the collector's ``/v1/logs``; when no collector answers in time it keeps
the record under ``{data_dir}/pending/`` so the next ``kpiloop serve`` or ``replay`` still sees it.

Only ids, names, counts and durations leave the payload: never prompt text, tool inputs or
outputs. TodoWrite items are sent as hashes of their text with their status.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
from typing import Any

from kpiloop import storage
from kpiloop.identity import DEFAULT_AGENT_TYPE, sanitize_agent_type, sanitize_session_id

DEFAULT_ENDPOINT = "http://127.0.0.1:4318"
CONNECT_TIMEOUT_S = 0.03
TOTAL_TIMEOUT_S = 0.07
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
HOOK_EVENT = "kpiloop.hook"
SESSION_END_EVENT = "session.end"
PENDING_DIR = "pending"
PENDING_FILE = "hook-records.jsonl"
COMMANDS = ("session-end", "event", "session-start")


def main(argv: list[str]) -> int:
    """Run one hook command; always returns 0."""
    if argv[:1] == ["session-start"]:
        from kpiloop import session_start  # stdlib only, like this module

        return session_start.run(argv[1:])
    options = _options(argv)
    try:
        payload = _read_payload(sys.stdin.buffer)
        record = build_record(options["command"], payload, _agent_type(options), time.time_ns())
        if record is not None:
            deliver(record, options)
    except Exception as error:  # a hook must never break the session; note the problem and go on
        _note_error(options, error)
    return 0


def build_record(command: str, payload: dict[str, Any], agent_type: str, now_ns: int) -> dict[str, Any] | None:
    """The OTLP/JSON ``ExportLogsServiceRequest`` for one hook payload; None without a session id."""
    session_id = sanitize_session_id(payload.get("session_id"))
    if session_id is None:
        return None
    named = payload.get("hook_event_name")
    default_event = "SessionEnd" if command == "session-end" else "unknown"
    hook_event = named[:100] if isinstance(named, str) and named else default_event
    attrs: dict[str, Any] = {"session.id": session_id, "hook.event": hook_event}
    if agent_type != DEFAULT_AGENT_TYPE:
        attrs["agent.type"] = agent_type
    attrs.update(_details(hook_event, payload, now_ns))
    event_name = SESSION_END_EVENT if command == "session-end" or hook_event == "SessionEnd" else HOOK_EVENT
    record = {
        "timeUnixNano": str(now_ns),
        "eventName": event_name,
        "body": {"stringValue": event_name},
        "attributes": [{"key": k, "value": _any_value(v)} for k, v in attrs.items()],
    }
    resource = [{"key": "service.name", "value": {"stringValue": "kpiloop-hook"}}]
    scope = {"scope": {"name": "kpiloop.hooks"}, "logRecords": [record]}
    return {"resourceLogs": [{"resource": {"attributes": resource}, "scopeLogs": [scope]}]}


def deliver(request: dict[str, Any], options: dict[str, str]) -> bool:
    """POST the request to the collector; keep it under pending/ when that fails. True if sent."""
    body = json.dumps(request, separators=(",", ":"), allow_nan=False).encode()
    if post_json(options["endpoint"], "/v1/logs", body, options.get("token", "")):
        return True
    pending = os.path.join(options["data_dir"], PENDING_DIR, PENDING_FILE)
    storage.locked_append(_path(pending), body + b"\n")
    return False


def post_json(endpoint: str, path: str, body: bytes, token: str = "") -> bool:
    """One HTTP/1.1 POST over a plain (``http://``) or TLS (``https://``) socket with tight timeouts,
    with ``Authorization: Bearer token`` when a token is given; True on a 2xx answer."""
    try:
        host, port, prefix = _split_endpoint(endpoint)
    except ValueError:
        return False  # a malformed endpoint: keep the record under pending/
    deadline = time.monotonic() + TOTAL_TIMEOUT_S
    auth = f"Authorization: Bearer {token}\r\n" if _usable_token(token) else ""
    head = (
        f"POST {prefix}{path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n{auth}"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as raw:
            raw.settimeout(max(0.001, deadline - time.monotonic()))
            with _secured(raw, host) if endpoint.startswith("https://") else raw as conn:
                conn.sendall(head + body)
                status_line = conn.recv(64)
    except (OSError, ValueError):
        return False
    parts = status_line.split(b" ", 2)
    return len(parts) >= 2 and parts[1][:1] == b"2"


def _secured(conn: socket.socket, host: str) -> socket.socket:
    """TLS over ``conn``, verified against the system CAs or ``$KPILOOP_CA_FILE`` (ssl is imported only
    for an ``https://`` endpoint: it costs the plain path nothing)."""
    import ssl

    context = ssl.create_default_context(cafile=os.environ.get("KPILOOP_CA_FILE") or None)
    return context.wrap_socket(conn, server_hostname=host)


def _usable_token(token: str) -> bool:
    """A bearer token as kpiloop serve accepts them (RFC 6750 characters): never a header injection."""
    return bool(token) and len(token) <= 4096 and all(c.isascii() and (c.isalnum() or c in "-._~+/=") for c in token)


def _details(hook_event: str, payload: dict[str, Any], now_ns: int) -> dict[str, Any]:
    """The payload's ids, names, counts and durations; never its free text. A duration that is not
    a finite number of milliseconds since 1970 is left out (the collector would refuse the record)."""
    details: dict[str, Any] = {}
    for key, attr in (("tool_name", "tool_name"), ("tool_use_id", "tool_use_id"), ("prompt_id", "prompt.id"),
                      ("source", "source"), ("reason", "reason"), ("agent_type", "subagent.type"),
                      ("agent_id", "subagent.id")):  # fmt: skip
        if isinstance(payload.get(key), str) and payload[key]:
            details[attr] = payload[key][:200]
    duration = payload.get("duration_ms")
    if isinstance(duration, int | float) and not isinstance(duration, bool) and 0 <= duration <= now_ns / 1e6:
        details["duration_ms"] = float(duration)
    if hook_event in ("PostToolUse", "PostToolUseFailure"):
        details["success"] = hook_event == "PostToolUse"
        if payload.get("is_interrupt") is True:
            details["error_type"] = "interrupted"
    if isinstance(payload.get("prompt"), str):
        details["prompt_length"] = len(payload["prompt"])
    details.update(_task_details(payload.get("tool_name"), payload.get("tool_input")))
    return details


def _task_details(tool: object, tool_input: object) -> dict[str, Any]:
    if not isinstance(tool_input, dict):
        return {}
    if tool == "TaskUpdate":
        task_id, status = tool_input.get("taskId"), tool_input.get("status")
        return {k: v[:100] for k, v in (("task.id", task_id), ("task.status", status)) if isinstance(v, str)}
    if tool == "TodoWrite" and isinstance(tool_input.get("todos"), list):
        todos = [t for t in tool_input["todos"] if isinstance(t, dict)][:1000]
        return {"todos": [f"{_digest(t.get('content'))}:{_short(t.get('status'))}" for t in todos]}
    return {}


def _digest(content: object) -> str:
    """Same as the collector's ``todo_key``: a hash of the text, of a number's or null's repr, else of ""."""
    text = content if isinstance(content, str) else repr(content) if isinstance(content, int | float | None) else ""
    return hashlib.sha256(text.encode(errors="replace")).hexdigest()[:16]


def _short(value: object) -> str:
    return value[:64] if isinstance(value, str) else ""


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, list):
        return {"arrayValue": {"values": [_any_value(item) for item in value]}}
    return {"stringValue": str(value).encode("utf-8", "replace").decode("utf-8")}  # lone surrogates: not JSON


def _read_payload(stream: Any) -> dict[str, Any]:
    raw = stream.read(MAX_PAYLOAD_BYTES)
    try:
        payload = json.loads(raw) if raw.strip() else {}
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep to parse
        return {}
    return payload if isinstance(payload, dict) else {}


def _options(argv: list[str]) -> dict[str, str]:
    """``hook COMMAND [--endpoint URL] [--agent-type T] [--data-dir DIR]`` without argparse."""
    options = {
        "command": argv[0] if argv else "",
        "endpoint": os.environ.get("KPILOOP_ENDPOINT") or DEFAULT_ENDPOINT,
        "token": os.environ.get("KPILOOP_BEARER_TOKEN", "").strip(),
        "agent_type": "",
        "data_dir": os.environ.get("KPILOOP_HOME") or os.path.expanduser("~/.claude/telemetry"),
    }
    flags = {"--endpoint": "endpoint", "--agent-type": "agent_type", "--data-dir": "data_dir"}
    rest = argv[1:]
    for index, arg in enumerate(rest[:-1]):
        if arg in flags:
            options[flags[arg]] = rest[index + 1]
    return options


def _agent_type(options: dict[str, str]) -> str:
    """``--agent-type``, else ``KPILOOP_AGENT_TYPE``, else ``agent.type`` in ``OTEL_RESOURCE_ATTRIBUTES``."""
    chosen = options["agent_type"] or os.environ.get("KPILOOP_AGENT_TYPE", "")
    if not chosen:
        for pair in os.environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(","):
            key, _, value = pair.partition("=")
            if key.strip() == "agent.type":
                chosen = value.strip()
    return str(sanitize_agent_type(chosen)) if chosen else str(DEFAULT_AGENT_TYPE)


def _split_endpoint(endpoint: str) -> tuple[str, int, str]:
    rest = endpoint.split("://", 1)[-1]
    hostport, _, prefix = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    if not host:
        host, port = hostport, "4318"
    return host.strip("[]"), int(port), ("/" + prefix.rstrip("/")) if prefix else ""


def _path(text: str) -> Any:
    from pathlib import Path  # only on the slow path, when the collector did not answer

    return Path(text)


def _note_error(options: dict[str, str], error: Exception) -> None:
    try:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} hook {options['command']}: {error!r}\n"
        storage.locked_append(_path(os.path.join(options["data_dir"], "logs", "hooks.log")), line.encode())
    except OSError:
        pass
