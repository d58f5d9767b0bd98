"""Replay throughput and memory: ``kpiloop replay`` on generated plan-format files vs an orjson floor.

Generates traces files of the requested sizes (seeded; 500 sessions interleaved, as in daily files,
so a bigger file means longer sessions, not more of them), then for each size runs the replay
pipeline of ``kpiloop replay`` (``build_replay_pipeline``, the command minus argument parsing and
console output) in a child process and reports MB/s, spans/s and the child's peak RSS, next to the
floor of merely parsing the same lines with orjson: for the whole process, and for the loop over
the lines alone (without start-up and the closing of the sessions still open at the end of input,
a fixed cost of a few ms per session that dominates small files). Prints one JSON line per
measurement and a table. Usage: ``python bench/replay.py [--quick] [--sizes-mb 250,1000] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

SECOND = 1_000_000_000
SESSIONS = 500
TOOLS = ("Read", "Edit", "Write", "Bash", "Grep", "TaskCreate", "TaskUpdate")


def span(session: str, index: int, at: int, rng: random.Random) -> dict[str, object]:
    """One plan-format span: every third one an API call, the rest tool calls."""
    end = at + rng.randint(1, 30) * SECOND
    if index % 3 == 0:
        name = "hook:token-metrics-extraction"
        attrs: dict[str, object] = {
            "tokens.input": rng.randint(1_000, 9_000),
            "tokens.output": rng.randint(100, 3_000),
            "tokens.cache_read": rng.randint(10_000, 90_000),
            "tokens.cache_creation": rng.randint(0, 3_000),
            "tokens.model": "claude-sonnet-4-5",
        }
    else:
        name = "hook:builtin-post-tool"
        attrs = {"builtin.tool": rng.choice(TOOLS), "builtin.success": rng.random() > 0.03, "builtin.has_error": False}
    attrs["session.id"] = session
    attrs["agent.type"] = "bench-agent"
    return {
        "name": name,
        "kind": 0,
        "startTime": [at // SECOND, at % SECOND],
        "endTime": [end // SECOND, end % SECOND],
        "duration": [(end - at) // SECOND, (end - at) % SECOND],
        "attributes": attrs,
        "status": {"code": 1},
        "events": [],
    }


def generate(path: Path, size_bytes: int, seed: int) -> int:
    """Write plan-format spans until the file reaches ``size_bytes``; return the span count."""
    rng = random.Random(seed)
    spans = 0
    with open(path, "wb") as handle:
        while handle.tell() < size_bytes:
            session = f"bench-{spans % SESSIONS:04d}"
            at = 1_770_000_000 * SECOND + spans * 2 * SECOND
            handle.write(orjson.dumps(span(session, spans, at, rng)) + b"\n")
            spans += 1
    return spans


def orjson_floor(path: Path) -> float:
    """Seconds to read and parse every line with orjson, discarding the result."""
    started = time.perf_counter()
    with open(path, "rb") as handle:
        for line in handle:
            orjson.loads(line)
    return time.perf_counter() - started


CHILD = """
import json, resource, sys, time
from pathlib import Path
from kpiloop.config import KpiloopConfig
from kpiloop.pipeline import build_replay_pipeline
from kpiloop.types import SystemClock

problems = []
started = time.perf_counter()
pipeline = build_replay_pipeline(KpiloopConfig(), [sys.argv[1]], Path(sys.argv[2]), SystemClock(), problems.append)
built = time.perf_counter()
pipeline.receiver.run()
read = time.perf_counter()
pipeline.processor.close_all()
pipeline.processor.shutdown()
pipeline.history.shutdown()
pipeline.table.render()
done = time.perf_counter()
rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"start_s": built - started, "loop_s": read - built, "close_s": done - read, "rss_kb": rss_kb,
                  "problems": len(problems), "sessions": len(pipeline.table.rows)}))
"""


def replay(path: Path, data_dir: Path) -> dict[str, float]:
    """``kpiloop replay``'s pipeline (as ``build_replay_pipeline`` wires it for the command) on
    ``path`` in a fresh child process: seconds to start (read history and baselines), to read every
    line (the loop), and to close the sessions open at the end of input (reports, baselines,
    history, each written atomically with its fsyncs); the whole process's wall time; peak RSS."""
    shutil.rmtree(data_dir, ignore_errors=True)  # sessions already in its history would be skipped
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path), str(data_dir)], capture_output=True, text=True, check=True
    )
    phases: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    if phases["problems"]:
        raise RuntimeError(f"the replay reported {phases['problems']} problem lines")
    phases["process_s"] = time.perf_counter() - started
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one small size (50 MB) instead of the full sizes")
    parser.add_argument("--sizes-mb", default="250,1000", help="comma-separated file sizes in MB")
    parser.add_argument("--workdir", type=Path, default=None, help="where to write the generated files")
    args = parser.parse_args()
    sizes = [50] if args.quick else [int(x) for x in args.sizes_mb.split(",")]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="kpiloop-bench-"))
    rows = []
    for size_mb in sizes:
        path = workdir / f"traces-{size_mb}mb.jsonl"
        spans = generate(path, size_mb * 1_000_000, seed=size_mb)
        mb = path.stat().st_size / 1e6
        floor_s = orjson_floor(path)
        phases = replay(path, workdir / f"data-{size_mb}")
        replay_s, loop_s = phases["process_s"], phases["loop_s"]
        row = {
            "bench": "replay",
            "file_mb": round(mb, 1),
            "spans": spans,
            "sessions": int(phases["sessions"]),
            "replay_s": round(replay_s, 2),
            "replay_mb_per_s": round(mb / replay_s, 2),
            "replay_spans_per_s": round(spans / replay_s),
            "floor_spans_per_s": round(spans / floor_s),
            "ratio_vs_floor": round(floor_s / replay_s, 3),
            "loop_s": round(loop_s, 2),
            "loop_spans_per_s": round(spans / loop_s),
            "loop_ratio_vs_floor": round(floor_s / loop_s, 3),
            "start_s": round(phases["start_s"], 2),
            "close_s": round(phases["close_s"], 2),
            "peak_rss_mb": round(phases["rss_kb"] / 1024, 1),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        path.unlink()
    print()
    header = ("file MB", "spans", "sessions", "MB/s", "spans/s", "floor/s", "ratio", "loop/s", "loop x", "close s")
    print(" ".join(f"{h:>9}" for h in (*header, "RSS MB")))
    for r in rows:
        keys = ("file_mb", "spans", "sessions", "replay_mb_per_s", "replay_spans_per_s", "floor_spans_per_s")
        more = ("ratio_vs_floor", "loop_spans_per_s", "loop_ratio_vs_floor", "close_s", "peak_rss_mb")
        print(" ".join(f"{r[k]:>9}" for k in (*keys, *more)))
    print("(ratio: the whole replay process against the orjson floor; loop x: reading the lines only,")
    print(" without start-up and the closing of the sessions still open at the end of input)")
    print(f"(peak RSS of the child includes the interpreter; max RSS of this process {_self_rss():.0f} MB)")


def _self_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
