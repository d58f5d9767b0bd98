"""Claude Code transcripts (``~/.claude/projects/<project>/<session>.jsonl``) as telemetry, for backfill.

Each transcript line is JSON with a ``type`` (``user``, ``assistant``, ``system``, ``summary``,
``attachment``, ``file-history-snapshot``, ...) and mostly a ``sessionId``, ``uuid`` and ``timestamp``.
:class:`TranscriptDecoder` turns the lines that carry a measurement into the log records Claude Code's
own telemetry sends, so the adapter maps them exactly as it maps live telemetry:

- an ``assistant`` line is one API request (``claude_code.api_request``) with the message's ``usage``:
  ``input_tokens`` (uncached), ``output_tokens``, ``cache_read_input_tokens`` and
  ``cache_creation_input_tokens`` (1-hour writes from ``usage.cache_creation.ephemeral_1h_input_tokens``,
  the rest 5-minute). A streamed message is written as several lines repeating its message id and
  usage: it counts once (the first line's usage). Transcripts carry no per-request cost: the
  processor prices the call from its table. An API-error message (``isApiErrorMessage``) is a failed
  request (``claude_code.api_error``); other ``<synthetic>`` messages made no request.
- each ``tool_use`` block of an assistant message is a tool call, counted when its ``tool_result``
  arrives in a later ``user`` line (``claude_code.tool_result``; ``is_error`` = failure). A result whose
  line records a rejected ``permissionDecision``, or that carries Claude Code's rejection text, is a
  denial (``claude_code.tool_decision`` = reject), not a call.
- a ``user`` line with the user's own text is a prompt (``claude_code.user_prompt``, its length only).
- subagent transcripts (``<session>/subagents/agent-<id>.jsonl``) carry the parent's ``sessionId``
  and an ``agentId``: their usage is the parent session's, attributed to the subagent named by the
  ``agentType`` of ``agent-<id>.meta.json`` beside them, else of the parent's Agent tool result.

Every other line (summaries, system and housekeeping lines) carries no measurement and is skipped;
:class:`TranscriptReader` still lets its timestamp extend the session's wall clock, so a transcript's
session lasts from its first to its last timestamp. All state is bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic, TypeVar

import orjson

from kpiloop.collector.adapters import EventAdapter
from kpiloop.collector.adapters.common import model_of
from kpiloop.collector.plan_jsonl import to_nanos
from kpiloop.collector.records import LogRecord
from kpiloop.collector.values import as_time_ns
from kpiloop.errors import InputError
from kpiloop.model import Event
from kpiloop.types import AgentType, SessionId

LINE_TYPES = frozenset(
    {"user", "assistant", "system", "summary", "attachment", "file-history-snapshot", "progress", "queue-operation"}
)
"""Transcript line types recognized even without a ``sessionId`` or ``uuid`` (e.g. ``summary``)."""
ID_KEYS = ("uuid", "leafUuid", "messageId")
OTHER_FORMAT_KEYS = ("attributes", "body", "startTime", "resourceSpans", "resourceLogs", "resourceMetrics")
MAX_REMEMBERED = 4096
"""Bound of every table the decoder keeps (message ids, open tool uses, subagent names, ...)."""
SUBAGENT = "subagent"
"""Subagent name when neither a ``.meta.json`` nor the parent's Agent result names it."""
TASK_TOOLS = frozenset({"TaskUpdate", "TodoWrite"})
"""Tools whose input the adapter reads (task status); other tools' inputs are not passed on."""
REJECTED_DECISIONS = frozenset({"reject", "deny", "denied"})
REJECTION_TEXTS = (
    "The user doesn't want to proceed with this tool use",
    "The user doesn't want to take this action right now",
    "Permission to use ",
)
"""How Claude Code words a refused tool use in the ``tool_result`` it gives the model."""
SYNTHETIC_MODEL = "<synthetic>"
PREFIX = "claude_code."

K = TypeVar("K")
V = TypeVar("V")


def is_transcript_line(doc: object) -> bool:
    """A Claude Code transcript line: a string ``type`` and a ``sessionId``; or, without one (``summary``,
    ``file-history-snapshot``), a known line type or transcript id and none of the OTLP or plan-format keys.

    >>> is_transcript_line({"type": "summary", "summary": "Fix the build", "leafUuid": "u-1"})
    True
    >>> is_transcript_line({"name": "x", "startTime": [0, 0], "type": "user"})
    False
    """
    if not isinstance(doc, Mapping) or not isinstance(doc.get("type"), str):
        return False
    if isinstance(doc.get("sessionId"), str):
        return True
    if any(key in doc for key in OTHER_FORMAT_KEYS):
        return False
    return doc["type"] in LINE_TYPES or any(key in doc for key in ID_KEYS)


def subagent_transcripts(path: str) -> list[str]:
    """The subagent transcripts Claude Code keeps beside a session's transcript
    (``<dir>/<session>.jsonl`` → ``<dir>/<session>/subagents/*.jsonl``), sorted; none for other files."""
    if not path.endswith(".jsonl"):
        return []
    folder = Path(path[: -len(".jsonl")]) / "subagents"
    if not folder.is_dir():
        return []
    return sorted(str(p) for p in folder.glob("*.jsonl") if p.is_file())


def meta_agent_type(path: str) -> str | None:
    """``agentType`` of the ``.meta.json`` beside a subagent transcript (``agent-X.jsonl`` →
    ``agent-X.meta.json``); None when there is none or it cannot be read."""
    if not path.endswith(".jsonl"):
        return None
    meta = Path(path[: -len(".jsonl")] + ".meta.json")
    try:
        doc = orjson.loads(meta.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    agent_type = doc.get("agentType") if isinstance(doc, dict) else None
    return agent_type if isinstance(agent_type, str) and agent_type else None


def line_time(doc: Mapping[str, Any]) -> int | None:
    """The line's ``timestamp`` in ns since the epoch; None when it has none (InputError when unreadable
    or outside 1970 to 2262)."""
    value = doc.get("timestamp")
    if value is None or value == "":
        return None
    try:
        return as_time_ns(to_nanos(value, "timestamp"), "timestamp")
    except (ValueError, OverflowError) as error:  # what the date parser raises past its range
        raise InputError(f"timestamp is not a usable time: {error}", reason="bad_value") from None


class Bounded(Generic[K, V]):
    """A mapping that forgets its oldest entries beyond ``limit``."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._limit = limit

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: K) -> V | None:
        """The value of ``key``, or None."""
        return self._items.get(key)

    def pop(self, key: K) -> V | None:
        """Remove and return the value of ``key``, or None."""
        return self._items.pop(key, None)

    def put(self, key: K, value: V) -> None:
        """Set ``key`` (as the newest entry), forgetting the oldest beyond the limit."""
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self._limit:
            self._items.popitem(last=False)


@dataclass(frozen=True, slots=True)
class LineContext:
    """Who one line belongs to: the session, when, and which subagent (None for the main agent)."""

    session_id: str
    time_ns: int
    agent_id: str | None
    subagent: str | None

    def record(self, name: str, attributes: dict[str, Any], time_ns: int | None = None) -> LogRecord:
        """A Claude Code log record ``claude_code.<name>`` of this line."""
        attrs: dict[str, Any] = {"session.id": self.session_id, "event.name": name, **attributes}
        if self.subagent is not None:
            attrs["agent.name"] = self.subagent
        if self.agent_id is not None:
            attrs["agent_id"] = self.agent_id
        return LogRecord(
            time_ns=self.time_ns if time_ns is None else time_ns, body=PREFIX + name, attributes=attrs, resource={}
        )


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A ``tool_use`` block waiting for its result."""

    name: str
    start_ns: int
    tool_input: str | None


class TranscriptDecoder:
    """Transcript lines → Claude Code log records; remembers (boundedly) what spans several lines."""

    def __init__(self, limit: int = MAX_REMEMBERED) -> None:
        self._messages: Bounded[str, None] = Bounded(limit)
        self._tool_uses: Bounded[str, ToolUse] = Bounded(limit)
        self._agent_types: Bounded[str, str] = Bounded(limit)
        self._request_starts: Bounded[tuple[str, str | None], int] = Bounded(limit)

    def records(self, doc: Mapping[str, Any], subagent_hint: str | None = None) -> list[LogRecord]:
        """The records of one transcript line (none for a line without a measurement).

        ``subagent_hint`` names the subagent whose transcript file the line comes from (its
        ``.meta.json``); raises InputError for a line with unusable values.
        """
        kind = doc.get("type")
        context = self._context(doc, subagent_hint)
        if context is None:
            return []
        if kind == "api-request":
            self._request_starts.put((context.session_id, context.agent_id), context.time_ns)
            return []
        message = doc.get("message")
        if not isinstance(message, Mapping):
            return []
        if kind == "assistant":
            return self._assistant(doc, message, context)
        if kind == "user":
            return self._user(doc, message, context)
        return []

    def _context(self, doc: Mapping[str, Any], subagent_hint: str | None) -> LineContext | None:
        session_id = doc.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            return None
        time_ns = line_time(doc)
        if time_ns is None:
            return None
        agent_id = _text(doc.get("agentId"))
        subagent = None
        if agent_id is not None or doc.get("isSidechain") is True:
            subagent = subagent_hint or (self._agent_types.get(agent_id) if agent_id else None) or SUBAGENT
        return LineContext(session_id, time_ns, agent_id, subagent)

    def _assistant(self, doc: Mapping[str, Any], message: Mapping[str, Any], context: LineContext) -> list[LogRecord]:
        """One API request per message id; every line's ``tool_use`` blocks are remembered."""
        for block in _blocks(message):
            if (
                block.get("type") == "tool_use"
                and isinstance(block.get("id"), str)
                and block["id"] not in self._tool_uses
            ):
                self._tool_uses.put(block["id"], _tool_use(block, context.time_ns))
        key = _text(message.get("id")) or _text(doc.get("requestId")) or _text(doc.get("uuid"))
        if key is None or key in self._messages:
            return []
        self._messages.put(key, None)
        request_id = _text(doc.get("requestId")) or _text(message.get("id"))
        start = self._request_starts.pop((context.session_id, context.agent_id))
        duration_ms = (context.time_ns - start) / 1e6 if start is not None and start <= context.time_ns else 0.0
        model = _text(message.get("model")) or ""
        usage = message.get("usage")
        call = {
            "request_id": request_id,
            "model": "" if model == SYNTHETIC_MODEL else model_of(model),
            "duration_ms": duration_ms,
        }
        if doc.get("isApiErrorMessage") is True:
            return [context.record("api_error", call)]
        if model == SYNTHETIC_MODEL or not isinstance(usage, Mapping):
            return []
        return [context.record("api_request", {**call, **usage_attributes(usage)})]

    def _user(self, doc: Mapping[str, Any], message: Mapping[str, Any], context: LineContext) -> list[LogRecord]:
        """Tool results (calls or denials) and the user's own prompts."""
        self._learn_agent_type(doc.get("toolUseResult"))
        results = [block for block in _blocks(message) if block.get("type") == "tool_result"]
        if results:
            return [self._tool_result(doc, block, context) for block in results]
        length = _prompt_length(doc, message)
        if length is None:
            return []
        return [context.record("user_prompt", {"prompt.id": _text(doc.get("promptId")), "prompt_length": length})]

    def _tool_result(self, doc: Mapping[str, Any], block: Mapping[str, Any], context: LineContext) -> LogRecord:
        tool_use_id = _text(block.get("tool_use_id"))
        use = self._tool_uses.pop(tool_use_id) if tool_use_id else None
        name = use.name if use is not None else "unknown"
        if is_denied(doc, block):
            return context.record(
                "tool_decision", {"decision": "reject", "tool_name": name, "tool_use_id": tool_use_id}
            )
        start = use.start_ns if use is not None and use.start_ns <= context.time_ns else context.time_ns
        attributes = {
            "tool_name": name,
            "tool_use_id": tool_use_id,
            "success": "false" if block.get("is_error") is True else "true",
            "duration_ms": (context.time_ns - start) / 1e6,
            "tool_input": use.tool_input if use is not None else None,
        }
        return context.record("tool_result", attributes)

    def _learn_agent_type(self, result: object) -> None:
        """The parent's Agent tool result names the subagent it ran (``agentId`` → ``agentType``)."""
        if isinstance(result, Mapping):
            agent_id, agent_type = _text(result.get("agentId")), _text(result.get("agentType"))
            if agent_id and agent_type:
                self._agent_types.put(agent_id, agent_type)


def usage_attributes(usage: Mapping[str, Any]) -> dict[str, Any]:
    """Claude Code's ``api_request`` token attributes from an Anthropic ``usage`` object.

    >>> usage_attributes(
    ...     {
    ...         "input_tokens": 5,
    ...         "cache_creation_input_tokens": 30,
    ...         "cache_creation": {"ephemeral_5m_input_tokens": 10, "ephemeral_1h_input_tokens": 20},
    ...     }
    ... )
    {'input_tokens': 5, 'output_tokens': None, 'cache_read_tokens': None, 'cache_creation_tokens': 30,
     'cache_creation_1h_tokens': 20}
    """
    split = usage.get("cache_creation")
    split = split if isinstance(split, Mapping) else {}
    five, hour = _number(split.get("ephemeral_5m_input_tokens")), _number(split.get("ephemeral_1h_input_tokens"))
    total = usage.get("cache_creation_input_tokens")
    if five + hour > _number(total):
        total = five + hour  # the split is present but the total is missing or smaller
    return {
        "input_tokens": usage.get("input_tokens"),
        "output_tokens": usage.get("output_tokens"),
        "cache_read_tokens": usage.get("cache_read_input_tokens"),
        "cache_creation_tokens": total,
        "cache_creation_1h_tokens": split.get("ephemeral_1h_input_tokens"),
    }


def is_denied(doc: Mapping[str, Any], block: Mapping[str, Any]) -> bool:
    """A tool result for a refused tool use: the line's ``permissionDecision`` rejects it, or the
    error text is Claude Code's rejection message.

    >>> is_denied({"permissionDecision": {"decision": "reject"}}, {"is_error": True})
    True
    >>> is_denied({}, {"is_error": True, "content": "Exit code 1"})
    False
    """
    decision = doc.get("permissionDecision")
    if isinstance(decision, Mapping) and (_text(decision.get("decision")) or "").lower() in REJECTED_DECISIONS:
        return True
    if block.get("is_error") is not True:
        return False
    text = _content_text(block.get("content"))
    return any(text.startswith(prefix) for prefix in REJECTION_TEXTS)


@dataclass
class _SessionMarks:
    """What the reader knows of one session for wall-clock marks."""

    origin: tuple[SessionId, AgentType] | None = None
    earliest_ns: int | None = None


class TranscriptReader:
    """Transcript lines → events, through the same adapter as live telemetry (one agent-type resolver,
    one mapping); events are labelled ``transcript``. Timestamped lines without a measurement become
    bare :class:`Event` marks that only extend the session's wall clock."""

    def __init__(self, adapter: EventAdapter, decoder: TranscriptDecoder | None = None) -> None:
        self._adapter = adapter
        self._decoder = decoder or TranscriptDecoder()
        self._sessions: Bounded[str, _SessionMarks] = Bounded()
        self._meta: tuple[str, str | None] | None = None

    def events(self, doc: Mapping[str, Any], path: str) -> list[Event]:
        """The events of one transcript line of file ``path``; raises InputError for unusable values."""
        hint = self._subagent_hint(path) if "agentId" in doc else None
        events: list[Event] = []
        for record in self._decoder.records(doc, hint):
            events.extend(replace(event, source="transcript") for event in self._adapter.from_log(record))
        session = doc.get("sessionId")
        if not isinstance(session, str) or not session:
            return events
        if events:
            return self._first_events(session, events)
        time_ns = line_time(doc)
        return [] if time_ns is None else self._mark(session, time_ns)

    def _first_events(self, session: str, events: list[Event]) -> list[Event]:
        """Learn the session's id and agent type as the adapter resolved them; emit a mark for any
        earlier line that came before them."""
        marks = self._sessions.get(session) or _SessionMarks()
        first = events[0]
        marks.origin = (first.session_id, first.agent_type)
        earliest, marks.earliest_ns = marks.earliest_ns, None
        self._sessions.put(session, marks)
        return events if earliest is None else [*self._mark(session, earliest), *events]

    def _mark(self, session: str, time_ns: int) -> list[Event]:
        marks = self._sessions.get(session) or _SessionMarks()
        if marks.origin is None:
            marks.earliest_ns = time_ns if marks.earliest_ns is None else min(marks.earliest_ns, time_ns)
            self._sessions.put(session, marks)
            return []
        session_id, agent_type = marks.origin
        return [
            Event(session_id=session_id, agent_type=agent_type, start_ns=time_ns, end_ns=time_ns, source="transcript")
        ]

    def _subagent_hint(self, path: str) -> str | None:
        if self._meta is None or self._meta[0] != path:
            self._meta = (path, meta_agent_type(path))
        return self._meta[1]


def _tool_use(block: Mapping[str, Any], time_ns: int) -> ToolUse:
    name = _text(block.get("name")) or "unknown"
    raw = block.get("input")
    tool_input = None
    if name in TASK_TOOLS and isinstance(raw, dict):
        try:
            tool_input = orjson.dumps(raw).decode()
        except orjson.JSONEncodeError:  # nested past orjson's depth limit: no task status from it
            tool_input = None
    return ToolUse(name, time_ns, tool_input)


def _prompt_length(doc: Mapping[str, Any], message: Mapping[str, Any]) -> int | None:
    """Length of the user's own prompt; None for lines that are not one (subagent tasks, meta lines,
    compaction summaries, tool results)."""
    if doc.get("isSidechain") is True or doc.get("isMeta") is True or doc.get("isCompactSummary") is True:
        return None
    if "toolUseResult" in doc:
        return None
    content = message.get("content")
    if isinstance(content, str):
        return len(content)
    texts = [block.get("text") for block in _blocks(message) if block.get("type") == "text"]
    strings = [text for text in texts if isinstance(text, str)]
    return sum(map(len, strings)) if strings else None


def _blocks(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    content = message.get("content")
    return [block for block in content if isinstance(block, Mapping)] if isinstance(content, list) else []


def _content_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = (b.get("text") for b in content if isinstance(b, Mapping) and b.get("type") == "text")
        return "".join(text for text in texts if isinstance(text, str))
    return ""


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _number(value: object) -> int:
    """A token count for comparisons only (the adapter validates the values it uses)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
