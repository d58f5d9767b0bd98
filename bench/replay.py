"""Replay throughput and memory: ``kpiloop replay`` on generated plan-format files vs an orjson floor.

Generates traces files of the requested sizes (seeded; 500 sessions interleaved, as in daily files,
so a bigger file means longer sessions, not more of them), then for each
size runs the real CLI in a child process and reports MB/s, spans/s and the child's peak RSS, next
to the floor of merely parsing the same lines with orjson. Prints one JSON line per measurement and
a table. Usage: ``python bench/replay.py [--quick] [--sizes-mb 250,1000] [--workdir DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
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


def replay(path: Path, data_dir: Path) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of ``kpiloop replay`` on ``path`` in a child process."""
    script = (
        "import resource, sys\n"
        "from kpiloop.__main__ import main\n"
        "code = main(sys.argv[1:])\n"
        "print('RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", script, "replay", "--data-dir", str(data_dir), str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = time.perf_counter() - started
    rss_kb = int(next(line.split()[1] for line in done.stderr.splitlines() if line.startswith("RSS_KB")))
    return elapsed, rss_kb / 1024


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
        replay_s, rss_mb = replay(path, workdir / f"data-{size_mb}")
        row = {
            "bench": "replay",
            "file_mb": round(mb, 1),
            "spans": spans,
            "sessions": min(spans, SESSIONS),
            "replay_s": round(replay_s, 2),
            "replay_mb_per_s": round(mb / replay_s, 2),
            "replay_spans_per_s": round(spans / replay_s),
            "floor_spans_per_s": round(spans / floor_s),
            "ratio_vs_floor": round(floor_s / replay_s, 3),
            "peak_rss_mb": round(rss_mb, 1),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
        path.unlink()
    print()
    header = ("file MB", "spans", "sessions", "MB/s", "spans/s", "floor/s", "ratio", "RSS MB")
    print(" ".join(f"{h:>9}" for h in header))
    for r in rows:
        keys = ("file_mb", "spans", "sessions", "replay_mb_per_s", "replay_spans_per_s", "floor_spans_per_s")
        print(" ".join(f"{r[k]:>9}" for k in (*keys, "ratio_vs_floor", "peak_rss_mb")))
    print(f"(peak RSS of the child includes the interpreter; max RSS of this process {_self_rss():.0f} MB)")


def _self_rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
