"""Memory per open session: N sessions open at once, M spans each, fed straight into the processor.

Spans become events in this process as the adapters would make them from Claude Code telemetry:
every third one an API call with its request id, the rest tool calls with their tool-use ids
(TaskCreate/TaskUpdate with a task id). They go round robin over the sessions into a
``SessionKpiProcessor`` with a ``FakeClock`` (nothing idles out), so all N sessions are open at the
end. Two measurements:

- tracemalloc: bytes held per session for a sample of sessions at 10, 100, … M spans, to show
  whether the state grows with the span count (exact, Python allocations only);
- RSS (``/proc/self/statm``) before and after the full N × M run, divided by N.

The sample estimates the full run's memory first; a run that would need more than ``--max-gib`` is
refused. Prints one JSON line per measurement and a table.
Usage: ``python bench/sessions.py [--quick] [--sessions 10000] [--spans 1000] [--sample 200]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import sys
import time
import tracemalloc
from typing import Any

from kpiloop.model import ApiCall, Event, ToolCall
from kpiloop.processors.session_kpi import SessionKpiProcessor
from kpiloop.processors.session_kpi_config import SessionKpiConfig
from kpiloop.testing import FakeClock, ListSink
from kpiloop.types import AgentType, SessionId

SECOND = 1_000_000_000
START_NS = 1_770_000_000 * SECOND
TOOLS = ("Read", "Edit", "Write", "Bash", "Grep", "TaskCreate", "TaskUpdate")
AGENT = AgentType("bench-agent")
TARGET_BYTES = 16 * 1024
TOP_SITES = 6


def span_event(session: int, index: int) -> Event:
    """The ``index``-th span of session ``session``: an API call or a tool call, 2 s apart."""
    sid = SessionId(f"bench-{session:06d}")
    at = START_NS + index * 2 * SECOND
    if index % 3 == 0:
        return ApiCall(
            session_id=sid,
            agent_type=AGENT,
            start_ns=at,
            end_ns=at + SECOND,
            source="claude_code",
            model="claude-sonnet-4-5",
            request_id=f"req_{session:06d}_{index:07d}",
            input_tokens=1_000 + index % 500,
            output_tokens=200 + index % 300,
            cache_read_tokens=40_000,
            cache_write_5m_tokens=500,
        )
    tool = TOOLS[(index + session) % len(TOOLS)]
    task = tool in ("TaskCreate", "TaskUpdate")
    return ToolCall(
        session_id=sid,
        agent_type=AGENT,
        start_ns=at,
        end_ns=at + SECOND // 2,
        source="claude_code",
        tool=tool,
        tool_use_id=f"toolu_{session:06d}_{index:07d}",
        ok=index % 50 != 1,
        task_id=f"{index // 14}" if task else None,
        task_status="completed" if tool == "TaskUpdate" else None,
    )


def processor_for(sessions: int) -> SessionKpiProcessor:
    config = SessionKpiConfig(max_open_sessions=max(sessions, 1))
    return SessionKpiProcessor(ListSink(), config, FakeClock())


def feed(processor: SessionKpiProcessor, sessions: int, spans: int) -> None:
    """Every session's spans, round robin, so all sessions stay open."""
    for index in range(spans):
        for session in range(sessions):
            processor.consume(span_event(session, index))


def traced_bytes_per_session(sessions: int, spans: int) -> tuple[float, list[tuple[str, float]]]:
    """Python bytes held per open session after ``spans`` spans each (tracemalloc), and the
    allocation sites holding the most of it (bytes per session)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    processor = processor_for(sessions)
    feed(processor, sessions, spans)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    assert processor.open_sessions() == sessions
    top = [(_site(stat.traceback[0]), stat.size / sessions) for stat in snapshot.statistics("lineno")[:TOP_SITES]]
    return (after - before) / sessions, top


def _site(frame: tracemalloc.Frame) -> str:
    path = frame.filename.replace(os.sep, "/")
    for root in ("/kpiloop/", "/bench/"):
        if root in path:
            path = path[path.rfind(root) + 1 :]
    return f"{path}:{frame.lineno}"


def rss_bytes() -> int:
    """Current resident set size of this process."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 sessions of 200 spans, sample of 50")
    parser.add_argument("--sessions", type=int, default=10_000, help="sessions open at once")
    parser.add_argument("--spans", type=int, default=1_000, help="spans per session")
    parser.add_argument("--sample", type=int, default=200, help="sessions in each tracemalloc sample")
    parser.add_argument("--max-gib", type=float, default=12.0, help="refuse a full run estimated above this")
    args = parser.parse_args()
    sessions, spans, sample = (1_000, 200, 50) if args.quick else (args.sessions, args.spans, args.sample)
    sample = min(sample, sessions)
    base = {"python": platform.python_version(), "cpus": os.cpu_count()}
    rows: list[dict[str, Any]] = []

    counts = sorted({c for c in (10, 100, 1_000, spans) if c <= spans})
    top: list[tuple[str, float]] = []
    for count in counts:
        per_session, top = traced_bytes_per_session(sample, count)
        row = {"bench": "sessions", "method": "tracemalloc", "sessions": sample, "spans": count}
        row |= {"bytes_per_session": round(per_session), "within_16kb": per_session <= TARGET_BYTES, **base}
        print(json.dumps(row), flush=True)
        rows.append(row)

    estimate = rows[-1]["bytes_per_session"] * sessions
    if estimate > args.max_gib * 2**30:
        sys.exit(f"refused: {sessions} sessions of {spans} spans need ~{estimate / 2**30:.1f} GiB (> --max-gib)")
    gc.collect()
    processor = processor_for(sessions)
    rss_before = rss_bytes()
    started = time.perf_counter()
    feed(processor, sessions, spans)
    elapsed = time.perf_counter() - started
    gc.collect()
    rss_after = rss_bytes()
    assert processor.open_sessions() == sessions
    per_session = (rss_after - rss_before) / sessions
    row = {"bench": "sessions", "method": "rss", "sessions": sessions, "spans": spans}
    row |= {
        "bytes_per_session": round(per_session),
        "within_16kb": per_session <= TARGET_BYTES,
        "rss_before_mb": round(rss_before / 1e6, 1),
        "rss_after_mb": round(rss_after / 1e6, 1),
        "peak_rss_mb": round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, rss_after) / 1e6, 1),
        "events_per_s": round(sessions * spans / elapsed),
        "feed_s": round(elapsed, 1),
        **base,
    }
    print(json.dumps(row), flush=True)
    rows.append(row)

    print()
    print(f"{'method':>12} {'sessions':>9} {'spans':>7} {'B/session':>10} {'<= 16 KB':>9}")
    for r in rows:
        cells = (r["method"], r["sessions"], r["spans"], r["bytes_per_session"], r["within_16kb"])
        print(" ".join(f"{c!s:>{w}}" for c, w in zip(cells, (12, 9, 7, 10, 9), strict=True)))
    print(
        f"(RSS {row['rss_before_mb']} → {row['rss_after_mb']} MB, peak {row['peak_rss_mb']} MB; "
        f"{row['events_per_s']:,} events/s into the processor)"
    )
    print(f"\nwhere a session's bytes are at {counts[-1]} spans (tracemalloc, by allocation site;")
    print("ids and timestamps allocated in bench/ are the events' own, kept by the state):")
    for site, size in top:
        print(f"{size:>10,.0f}  {site}")


if __name__ == "__main__":
    main()
