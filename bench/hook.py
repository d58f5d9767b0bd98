"""Cold wall time of the hook commands, next to a bare ``python -c pass``.

Runs ``kpiloop hook session-end`` (and ``hook event``, ``hook session-start``) as Claude Code would,
a fresh process each time with the payload on stdin, 20 times each: once with no collector listening (the record goes
to ``pending/``) and once against a running ``kpiloop serve``. Prints one JSON line per
measurement and a table. Usage: ``python bench/hook.py [--runs 20]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PAYLOAD = b'{"session_id":"bench-session","hook_event_name":"SessionEnd","reason":"other"}'
EVENT = (
    b'{"session_id":"bench-session","hook_event_name":"PostToolUse","tool_name":"Read",'
    b'"tool_use_id":"toolu_1","tool_input":{"file_path":"/tmp/x"},"duration_ms":12}'
)

START = b'{"session_id":"bench-session","hook_event_name":"SessionStart","source":"startup","cwd":"/tmp"}'
BASELINE = {
    "agent_type": "bench-agent",
    "session_count": 40,
    "baselines": {
        kpi: {"mean": 0.5, "p95": 0.9}
        for kpi in ("token_efficiency", "task_completion_rate", "active_time_ratio", "cache_efficiency", "error_rate")
    },
}
ACTIVE = {
    "version": "1.0.0",
    "suggestions": [
        {
            "id": f"opt-bench-{n}",
            "agent_type": "bench-agent",
            "title": f"Bench suggestion {n}",
            "implementation_guidance": "Do the thing the rule template says",
            "expected_impact": {"kpi": "cache_efficiency", "direction": "increase", "magnitude": "10%"},
            "enabled": True,
        }
        for n in range(3)
    ],
}


def seed_data_dir(data_dir: Path) -> None:
    """A baseline and three active suggestions for ``bench-agent``, as session-start reads them."""
    (data_dir / "baselines").mkdir(parents=True, exist_ok=True)
    (data_dir / "optimizations").mkdir(parents=True, exist_ok=True)
    (data_dir / "baselines" / "bench-agent.json").write_text(json.dumps(BASELINE))
    (data_dir / "optimizations" / "active.json").write_text(json.dumps(ACTIVE))


def timed(command: list[str], stdin: bytes, env: dict[str, str], runs: int) -> list[float]:
    """Wall seconds of ``runs`` fresh processes."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, input=stdin, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return times


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(data_dir: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "kpiloop", "serve", "--data-dir", str(data_dir), "--otlp-grpc", "127.0.0.1:0",
         "--otlp-http", "127.0.0.1:0", "--prometheus", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    http = next(part.split("=", 1)[1] for part in line.split() if part.startswith("otlp-http="))
    return process, f"http://{http}"


def row(name: str, times: list[float], baseline: float) -> dict[str, object]:
    median = statistics.median(times)
    return {
        "bench": "hook",
        "case": name,
        "runs": len(times),
        "median_ms": round(median * 1000, 1),
        "max_ms": round(max(times) * 1000, 1),
        "vs_bare_python": round(median / baseline, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kpiloop-hook-bench-"))
    env = {**os.environ, "KPILOOP_HOME": str(workdir / "data"), "HOME": str(workdir)}
    hook = [sys.executable, "-m", "kpiloop", "hook"]
    bare = statistics.median(timed([sys.executable, "-c", "pass"], b"", env, args.runs))
    rows = [row("python -c pass", [bare], bare)]
    down = {**env, "KPILOOP_ENDPOINT": f"http://127.0.0.1:{closed_port()}"}
    rows.append(row("session-end, no collector", timed([*hook, "session-end"], PAYLOAD, down, args.runs), bare))
    seed_data_dir(workdir / "data")
    start = [*hook, "session-start", "--agent-type", "bench-agent"]
    rows.append(row("session-start, no collector", timed(start, START, down, args.runs), bare))
    server, endpoint = start_server(workdir / "served")
    try:
        up = {**env, "KPILOOP_ENDPOINT": endpoint}
        rows.append(row("session-end, collector up", timed([*hook, "session-end"], PAYLOAD, up, args.runs), bare))
        rows.append(row("event, collector up", timed([*hook, "event"], EVENT, up, args.runs), bare))
        rows.append(row("session-start, collector up", timed(start, START, up, args.runs), bare))
    finally:
        server.terminate()
        server.wait(30)
    for item in rows:
        print(json.dumps(item))
    print(f"\n{'case':<30} {'median ms':>10} {'max ms':>8} {'x bare':>7}")
    for item in rows:
        print(f"{item['case']:<30} {item['median_ms']:>10} {item['max_ms']:>8} {item['vs_bare_python']:>7}")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
