"""Deterministic sessions in the plan's JSONL format, for the examples, tests and benchmarks.

:func:`en_session` rebuilds the plan's Edgar & Nadyne post-mortem session from its published
numbers; :func:`healthy_session` makes seeded, plausible sessions. :class:`PlanSession` writes the
plan's span lines (OpenTelemetry JS ``ReadableSpan`` JSON) and evaluation records.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

SECOND = 1_000_000_000
STATUS_UNSET, STATUS_OK, STATUS_ERROR = 0, 1, 2
EN_SESSION_ID = "d1d142a6-51f3-49d3-b283-c00093880453"
EN_START_NS = 1_770_920_880 * SECOND  # 2026-02-12T18:28:00Z
EN_TOOLS = {"TaskCreate": 12, "TaskUpdate": 14, "Read": 1, "Write": 3, "Edit": 6, "Bash": 5}
EN_QUALITY = {
    "relevance": (0.94, 0.95, 0.96),
    "faithfulness": (0.93, 0.94, 0.95),
    "coherence": (0.92, 0.93, 0.94),
    "hallucination": (0.02, 0.03, 0.04),
}


def hrtime(nanos: int) -> list[int]:
    """Nanoseconds as the JS SDK's ``[seconds, nanos]``."""
    return [nanos // SECOND, nanos % SECOND]


@dataclass
class PlanSession:
    """Builds one session's spans and evaluation records in the plan's formats."""

    session_id: str
    agent_type: str
    model: str = "claude-opus-4-6"
    spans: list[dict[str, Any]] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)

    def api_call(
        self,
        start: int,
        end: int,
        *,
        input: int,
        output: int,
        cache_read: int = 0,
        cache_creation: int = 0,
        status: int = STATUS_OK,
    ) -> None:
        """A ``hook:token-metrics-extraction`` span (one API call)."""
        tokens = {"input": input, "output": output, "cache_read": cache_read, "cache_creation": cache_creation}
        attrs: dict[str, Any] = {f"tokens.{k}": v for k, v in tokens.items()}
        attrs["tokens.model"] = self.model
        self._span("hook:token-metrics-extraction", start, end, attrs, status)

    def tool(
        self,
        start: int,
        end: int,
        tool: str,
        *,
        success: bool = True,
        has_error: bool = False,
        status: int = STATUS_OK,
    ) -> None:
        """A ``hook:builtin-post-tool`` span."""
        category = "task" if tool.startswith("Task") or tool == "TodoWrite" else "file"
        attrs = {
            "builtin.tool": tool,
            "builtin.category": category,
            "builtin.success": success,
            "builtin.has_error": has_error,
        }
        self._span("hook:builtin-post-tool", start, end, attrs, status)

    def mcp_tool(self, start: int, end: int, server: str, tool: str, *, success: bool = True) -> None:
        """A ``hook:mcp-post-tool`` span."""
        attrs = {"mcp.server": server, "mcp.tool": tool, "mcp.success": success}
        self._span("hook:mcp-post-tool", start, end, attrs, STATUS_OK)

    def context(self, at: int, total_tokens: int, utilization_percent: float) -> None:
        """A ``hook:skill-activation-prompt`` span (a context snapshot)."""
        attrs = {
            "context.total_tokens": total_tokens,
            "context.utilization_percent": utilization_percent,
            "context.free_space": 200_000 - total_tokens,
        }
        self._span("hook:skill-activation-prompt", at, at + SECOND // 100, attrs, STATUS_UNSET)

    def evaluation(self, at: int, name: str, score: float, *, evaluator_type: str = "llm") -> None:
        """An evaluation record as the plan's ``evaluations-*.jsonl`` holds them."""
        evaluator = "llm-judge" if evaluator_type == "llm" else "telemetry-rule-engine"
        self.evaluations.append(
            {
                "timestamp": _iso(at),
                "name": "gen_ai.evaluation.result",
                "attributes": {
                    "gen_ai.evaluation.name": name,
                    "gen_ai.evaluation.score.value": score,
                    "gen_ai.evaluation.evaluator": evaluator,
                    "gen_ai.evaluation.evaluator.type": evaluator_type,
                    "session.id": self.session_id,
                },
            }
        )

    def _span(self, name: str, start: int, end: int, attrs: dict[str, Any], status: int) -> None:
        index = len(self.spans)
        self.spans.append(
            {
                "name": name,
                "kind": 0,
                "spanContext": {"traceId": _trace_id(self.session_id), "spanId": f"{index + 1:016x}"},
                "startTime": hrtime(start),
                "endTime": hrtime(end),
                "duration": hrtime(end - start),
                "attributes": {**attrs, "session.id": self.session_id, "agent.type": self.agent_type},
                "status": {"code": status},
                "events": [],
                "resource": {"attributes": {"service.name": "claude-code-hooks"}},
            }
        )


def en_session() -> PlanSession:
    """The plan's E&N session: 30,960 s; 20 API calls (169,830 input, 9,820,170 cache-read and
    10,000 output tokens); 41 tool calls (12 TaskCreate, 14 TaskUpdate, 1 Read, 3 Write, 6 Edit,
    5 Bash); 22 % of the wall clock covered by spans; three judge scores per quality metric."""
    session = PlanSession(EN_SESSION_ID, "translation-agent")
    tools = [name for name, count in EN_TOOLS.items() for _ in range(count)]
    random.Random(7).shuffle(tools)
    api_ns, tool_ns, last_tool_ns = 300 * SECOND, 19_800_000_000, 19_200_000_000
    gap = (30_960 * SECOND - (20 * api_ns + 40 * tool_ns + last_tool_ns)) // 60  # 60 idle gaps
    at = EN_START_NS
    for turn in range(20):
        cache_read = 491_008 + (10 if turn == 19 else 0)
        session.api_call(at, at + api_ns, input=8_491 + (10 if turn == 19 else 0), output=500, cache_read=cache_read)
        at += api_ns + gap
        for position in range(3 if turn == 0 else 2):
            tool = tools.pop()
            length = last_tool_ns if not tools else tool_ns
            status = STATUS_UNSET if position == 1 else STATUS_OK  # UNSET is not a failure
            session.tool(at, at + length, tool, status=status)
            if turn % 5 == 0 and position == 0:
                session.context(at + SECOND, 120_000 + turn * 1_000, 60.0 + turn)
            at += length + (gap if tools else 0)
    judged = EN_START_NS + 31_000 * SECOND
    for name, scores in EN_QUALITY.items():
        for offset, score in enumerate(scores):
            session.evaluation(judged + offset * SECOND, name, score)
    session.evaluation(judged, "tool_correctness", 0.5, evaluator_type="rule")
    return session


def healthy_session(seed: int, start_ns: int, agent_type: str = "translation-agent") -> PlanSession:
    """A seeded, plausible session: a few turns of API calls, productive tools and one task."""
    rng = random.Random(seed)
    session = PlanSession(f"healthy-{seed:04d}", agent_type)
    at = start_ns
    for _ in range(rng.randint(3, 8)):
        length = rng.randint(20, 120) * SECOND
        session.api_call(
            at,
            at + length,
            input=rng.randint(2_000, 9_000),
            output=rng.randint(800, 3_000),
            cache_read=rng.randint(10_000, 60_000),
            cache_creation=rng.randint(0, 4_000),
        )
        at += length + rng.randint(1, 20) * SECOND
        for tool in rng.sample(["Read", "Edit", "Write", "Bash", "Grep"], 2):
            length = rng.randint(1, 30) * SECOND
            session.tool(at, at + length, tool, success=rng.random() > 0.05)
            at += length + rng.randint(1, 10) * SECOND
    session.tool(at, at + SECOND, "TaskCreate")
    session.tool(at + 2 * SECOND, at + 3 * SECOND, "TaskUpdate")
    for name in ("relevance", "faithfulness", "coherence", "hallucination"):
        score = rng.uniform(0.01, 0.05) if name == "hallucination" else rng.uniform(0.88, 0.98)
        session.evaluation(at + 60 * SECOND, name, round(score, 3))
    return session


def write_daily_files(directory: Path, sessions: Iterable[PlanSession]) -> list[Path]:
    """Write ``traces-{date}.jsonl`` (spans by their start date) and ``evaluations-{date}.jsonl``."""
    files: dict[Path, list[dict[str, Any]]] = {}
    for session in sessions:
        for span in session.spans:
            day = _day(span["startTime"][0] * SECOND)
            files.setdefault(directory / f"traces-{day}.jsonl", []).append(span)
        for record in session.evaluations:
            day = record["timestamp"][:10]
            files.setdefault(directory / f"evaluations-{day}.jsonl", []).append(record)
    directory.mkdir(parents=True, exist_ok=True)
    for path, docs in files.items():
        write_jsonl(path, docs)
    return sorted(files)


def write_jsonl(path: Path, docs: Sequence[dict[str, Any]]) -> None:
    """One JSON object per line."""
    path.write_bytes(b"".join(orjson.dumps(doc) + b"\n" for doc in docs))


def write_examples(directory: Path) -> list[Path]:
    """The files shipped in ``examples/``: the E&N session and three healthy sessions."""
    sessions = [en_session()]
    sessions += [healthy_session(seed, EN_START_NS + (3 + seed) * 3600 * SECOND) for seed in (1, 2, 3)]
    return write_daily_files(directory, sessions)


def _trace_id(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()[:32]


def _iso(nanos: int) -> str:
    moment = datetime.fromtimestamp(nanos / SECOND, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{(nanos % SECOND) // 1_000_000:03d}Z"


def _day(nanos: int) -> str:
    return datetime.fromtimestamp(nanos // SECOND, tz=UTC).strftime("%Y-%m-%d")
