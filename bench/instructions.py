"""Instructions per span of the replay and ingest hot loops, counted by valgrind's callgrind.

Wall time on a shared 2-core machine moves by ±30 % between identical runs; instruction counts
repeat to within 0.5 % whatever else runs, so before/after comparisons of code are made here.
Each loop runs in a child process under ``valgrind --tool=callgrind --collect-atstart=no
--toggle-collect=starmap_next``: inputs are built and the pipeline warmed up first, then only the
measured loop (driven by ``itertools.starmap``) is counted.

Loops (the floors are what ``bench/replay.py`` and ``bench/ingest.py`` compare against):

- ``replay-floor``: ``orjson.loads`` of each plan-format line;
- ``replay``: ``JsonlReplay`` line → session processor, as ``kpiloop replay`` runs it (with the plan
  shortcut, no live metrics);
- ``replay-general``: the same without the shortcut (``decode_line`` → adapter → processor);
- ``replay-ceiling``: ``orjson.loads`` plus the least any per-line Python fold does (look the
  session up, add four token counts or count the tool by name, widen first/last time; no
  validation, identity, pricing or active time): the best ratio a fold in CPython could reach;
- ``ingest-floor``: the floor sink's decoding of an ``ExportTraceServiceRequest`` of 100 spans;
- ``ingest``: ``decode_body`` → ``Ingest.submit`` → ``IngestWorker._process`` → session processor
  with live metrics, as ``kpiloop serve`` runs it minus the transport.

Prints one JSON line per loop and a table. Usage:
``python bench/instructions.py [--loops replay-floor,replay,...] [--spans 3000]``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

BENCH = Path(__file__).resolve().parent
sys.path.append(str(BENCH.parent))  # the other bench scripts, as ``bench.*`` (kpiloop itself as installed)
LOOPS = ("replay-floor", "replay", "replay-general", "replay-ceiling", "ingest-floor", "ingest")
WARM_UP_SPANS = 2_000
SPANS_PER_REQUEST = 100
FLOORS = {"replay": "replay-floor", "replay-general": "replay-floor", "replay-ceiling": "replay-floor"}
FLOORS["ingest"] = "ingest-floor"
TOKEN_SPAN = "hook:token-metrics-extraction"


def measured(function: Callable[..., object], arguments: Sequence[tuple[Any, ...]]) -> None:
    """Run ``function`` over ``arguments`` inside ``itertools.starmap`` (the counted region)."""
    for _ in itertools.starmap(function, arguments):
        pass


def replay_lines(count: int) -> list[bytes]:
    """Plan-format span lines as ``bench/replay.py`` generates them (seeded, 500 sessions)."""
    from bench import replay as generator

    rng = random.Random(7)
    lines = []
    for index in range(count):
        at = 1_770_000_000 * generator.SECOND + index * 2 * generator.SECOND
        session = f"bench-{index % generator.SESSIONS:04d}"
        lines.append(orjson.dumps(generator.span(session, index, at, rng)) + b"\n")
    return lines


def run_replay(loop: str, spans: int) -> None:
    """The replay loops, in this (child) process."""
    from kpiloop.collector.adapters import EventAdapter
    from kpiloop.collector.jsonl_replay import JsonlReplay
    from kpiloop.collector.plan_shortcut import PlanShortcut
    from kpiloop.processors.session_kpi import SessionKpiProcessor
    from kpiloop.processors.session_kpi_config import SessionKpiConfig
    from kpiloop.testing import FakeClock, ListSink

    lines = replay_lines(WARM_UP_SPANS + spans)
    step: Callable[..., object] = orjson.loads
    arguments: list[tuple[Any, ...]] = [(line,) for line in lines]
    if loop == "replay-ceiling":
        step = minimal_fold({})
    elif loop != "replay-floor":
        processor = SessionKpiProcessor(ListSink(), SessionKpiConfig(), FakeClock())
        adapter = EventAdapter()
        shortcut = PlanShortcut(adapter, processor) if loop == "replay" else None
        step = JsonlReplay([], processor, adapter, print, shortcut=shortcut)._replay_line
        arguments = [("bench", number, line) for number, line in enumerate(lines, start=1)]
    for item in arguments[:WARM_UP_SPANS]:
        step(*item)
    measured(step, arguments[WARM_UP_SPANS:])


class Counts:
    """The counters of :func:`minimal_fold`."""

    __slots__ = ("tokens", "requests", "tools", "failures", "by_tool", "first", "last")

    def __init__(self) -> None:
        self.tokens = [0, 0, 0, 0]
        self.requests = self.tools = self.failures = 0
        self.by_tool: dict[str, int] = {}
        self.first = self.last = 0


def minimal_fold(sessions: dict[str, Counts]) -> Callable[[bytes], None]:
    """Parse a plan-format line and fold it with the least work any fold must do (the ceiling)."""
    loads = orjson.loads

    def fold(line: bytes) -> None:
        doc = loads(line)
        attrs = doc["attributes"]
        counts = sessions.get(attrs["session.id"])
        if counts is None:
            counts = sessions[attrs["session.id"]] = Counts()
        start, end = doc["startTime"], doc["endTime"]
        if doc["name"] == TOKEN_SPAN:
            tokens = counts.tokens
            tokens[0] += attrs["tokens.input"]
            tokens[1] += attrs["tokens.output"]
            tokens[2] += attrs["tokens.cache_read"]
            tokens[3] += attrs["tokens.cache_creation"]
            counts.requests += 1
        else:
            counts.tools += 1
            tool = attrs["builtin.tool"]
            counts.by_tool[tool] = counts.by_tool.get(tool, 0) + 1
            counts.failures += attrs.get("builtin.success") is False
        start_ns, end_ns = start[0] * 1_000_000_000 + start[1], end[0] * 1_000_000_000 + end[1]
        if not counts.first or start_ns < counts.first:
            counts.first = start_ns
        if end_ns > counts.last:
            counts.last = end_ns

    return fold


def run_ingest(loop: str, spans: int) -> None:
    """The ingest loops, in this (child) process."""
    from bench import ingest as load

    requests = (WARM_UP_SPANS + spans) // SPANS_PER_REQUEST
    bodies = [load.request_bytes(SPANS_PER_REQUEST, n * SPANS_PER_REQUEST) for n in range(requests)]
    step = load.floor_decode if loop == "ingest-floor" else ingest_step()
    warm = WARM_UP_SPANS // SPANS_PER_REQUEST
    for body in bodies[:warm]:
        step(body)
    measured(step, [(body,) for body in bodies[warm:]])


def ingest_step() -> Callable[[bytes], None]:
    """One request through kpiloop's ingest path, wired as ``build_server`` wires it."""
    from kpiloop.collector.adapters import EventAdapter
    from kpiloop.collector.http_codec import decode_body
    from kpiloop.collector.ingest import EventQueue, Ingest
    from kpiloop.exporters.kpi_metrics import KpiMetrics
    from kpiloop.exporters.metrics_store import MetricsStore
    from kpiloop.processors.session_kpi import SessionKpiProcessor
    from kpiloop.processors.session_kpi_config import SessionKpiConfig
    from kpiloop.service import IngestWorker
    from kpiloop.testing import FakeClock, ListSink

    metrics = KpiMetrics(MetricsStore())
    processor = SessionKpiProcessor(ListSink(), SessionKpiConfig(), FakeClock(), metrics)
    queue = EventQueue(10_000_000)
    worker = IngestWorker(queue, processor)
    ingest = Ingest("otlp_http", EventAdapter(), queue, metrics)
    headers = {b"content-type": b"application/x-protobuf"}

    def step(body: bytes) -> None:
        ingest.submit("traces", decode_body("traces", headers, body, 1 << 26))
        batch = queue.get(0)
        if batch is not None:
            worker._process(batch)

    return step


def count(loop: str, spans: int, workdir: Path) -> int:
    """Instructions of ``loop``'s measured region, from a callgrind run of this script."""
    out = workdir / f"callgrind.{loop}.out"
    command = [
        "valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        "--toggle-collect=starmap_next",
        f"--callgrind-out-file={out}",
        sys.executable,
        __file__,
        "--child",
        loop,
        "--spans",
        str(spans),
    ]
    subprocess.run(command, check=True, capture_output=True)
    for line in out.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--loops", default=",".join(LOOPS), help="comma-separated loops to count")
    parser.add_argument("--spans", type=int, default=3_000, help="spans in the measured region")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        (run_replay if args.child.startswith("replay") else run_ingest)(args.child, args.spans)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed (Debian: apt-get install valgrind)")
    per_span: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="kpiloop-instructions-") as workdir:
        for loop in args.loops.split(","):
            per_span[loop] = count(loop, args.spans, Path(workdir)) / args.spans
            floor = per_span.get(FLOORS.get(loop, ""))
            ratio = round(floor / per_span[loop], 3) if floor else None
            print(
                json.dumps({"bench": "instructions", "loop": loop, "per_span": round(per_span[loop]), "ratio": ratio})
            )
    print(f"\n  {'loop':16} {'instructions/span':>18} {'floor/loop':>11}")
    for loop, value in per_span.items():
        floor = per_span.get(FLOORS.get(loop, ""))
        print(f"  {loop:16} {value:18,.0f} {floor / value if floor else float('nan'):11.3f}")


if __name__ == "__main__":
    main()
