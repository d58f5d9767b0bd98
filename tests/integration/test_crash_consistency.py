"""kill -9 at seeded random points while kpiloop replays and serves sessions into one growing data dir.

Each iteration starts a real process — mostly ``kpiloop replay`` of a fresh batch of sessions plus
the previous (maybe half-recorded) batch, every few iterations ``kpiloop serve`` receiving
sessions over OTLP/HTTP and closing them with ``session.end`` spans — and SIGKILLs it: mostly a
seeded delay after it began writing the history, sometimes at a seeded time from its start. After
every kill the data dir must hold only whole files and whole lines; the next process starting on it
is the restart check. A last replay of every batch and a ``kpiloop serve`` start/stop end the run.

Invariants after every kill:
- every ``*.json`` parses (baselines and active.json as valid documents: readers see the old or
  the new version, never a mix), and temporary files end in ``.tmp``, never ``.json``/``.jsonl``;
- every ``*.jsonl`` is whole lines that parse, except at most a torn last line of a write the
  kill cut short, which the next writer cuts off (kept aside as ``*.corrupt-*``);
- no session has two lines in the history (replay skips the sessions already recorded).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest

from kpiloop.feedback.baselines import baseline_from_json
from kpiloop.sample_sessions import SECOND, healthy_session, write_daily_files

from .conftest import ServeProcess, StartServer

SEED = 20260214
REPLAY_ITERATIONS = 42
SERVE_EVERY = 6  # every 6th iteration is a server instead of a replay: 50 iterations in all
ITERATIONS = REPLAY_ITERATIONS + REPLAY_ITERATIONS // (SERVE_EVERY - 1)
SESSIONS_PER_BATCH = 24
AGENT_TYPES = ("crash-coder", "crash-writer")
BATCH_START_NS = 1_770_000_000 * SECOND
WAIT_FOR_WRITES_S = 20.0
PROCESS_TIMEOUT_S = 60.0


@dataclass
class CrashLog:
    """What the run saw, for the assertions at the end and the failure messages."""

    kills: int = 0
    finished_before_kill: int = 0
    torn_tails: int = 0
    serve_acknowledged: set[str] = field(default_factory=set)
    serve_sent: set[str] = field(default_factory=set)


def write_batch(inputs: Path, index: int) -> tuple[Path, set[str]]:
    """Batch ``index``: SESSIONS_PER_BATCH seeded sessions (ids unique across batches), in daily files."""
    folder = inputs / f"batch-{index:03d}"
    seeds = range(index * SESSIONS_PER_BATCH, (index + 1) * SESSIONS_PER_BATCH)
    sessions = [
        healthy_session(seed, BATCH_START_NS + seed * 900 * SECOND, AGENT_TYPES[seed % len(AGENT_TYPES)])
        for seed in seeds
    ]
    write_daily_files(folder, sessions)
    return folder, {s.session_id for s in sessions}


def replay_command(data_dir: Path, folders: list[Path]) -> list[str]:
    globs = [str(folder / "*.jsonl") for folder in folders]
    return [sys.executable, "-m", "kpiloop", "replay", "--data-dir", str(data_dir), *globs]


def history_size(data_dir: Path) -> int:
    try:
        return (data_dir / "history" / "kpis.jsonl").stat().st_size
    except FileNotFoundError:
        return 0


def kill_replay(data_dir: Path, folders: list[Path], rng: random.Random, crash: CrashLog, logs: Path) -> None:
    """Start a replay and SIGKILL it: after it began writing (4 in 5) or at a random time from its start."""
    start_size = history_size(data_dir)
    with open(logs / "replay.err", "ab") as err:
        process = subprocess.Popen(replay_command(data_dir, folders), stdout=subprocess.DEVNULL, stderr=err)
        if rng.random() < 0.8:
            deadline = time.monotonic() + WAIT_FOR_WRITES_S
            while history_size(data_dir) == start_size and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.002)
            time.sleep(rng.uniform(0.0, 0.25))
        else:
            time.sleep(rng.uniform(0.0, 1.5))
        _kill(process, crash)


def _kill(process: subprocess.Popen[bytes], crash: CrashLog) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        crash.kills += 1
    else:
        crash.finished_before_kill += 1
        assert process.returncode == 0, f"exited {process.returncode} before the kill"
    process.wait(timeout=PROCESS_TIMEOUT_S)


def spans_request(session_id: str, at_ns: int, end: bool = True) -> bytes:
    """One API call (a plan token span) and (with ``end``) a ``session.end`` span for ``session_id``, as OTLP/JSON."""

    def attr(key: str, value: str | int) -> dict[str, Any]:
        typed = {"intValue": str(value)} if isinstance(value, int) else {"stringValue": value}
        return {"key": key, "value": typed}

    trace_id = f"{abs(hash(session_id)):032x}"[-32:]
    common = [attr("session.id", session_id), attr("agent.type", "crash-serve")]
    token = {
        "traceId": trace_id,
        "spanId": "0000000000000001",
        "name": "hook:token-metrics-extraction",
        "startTimeUnixNano": str(at_ns),
        "endTimeUnixNano": str(at_ns + SECOND),
        "attributes": common
        + [attr("tokens.input", 1000), attr("tokens.output", 50), attr("tokens.model", "claude-sonnet-4-5")],
    }
    ending = {
        "traceId": trace_id,
        "spanId": "0000000000000002",
        "name": "session.end",
        "startTimeUnixNano": str(at_ns + 2 * SECOND),
        "endTimeUnixNano": str(at_ns + 2 * SECOND),
        "attributes": common,
    }
    spans = [token, ending] if end else [token]
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]})


class SessionSender(threading.Thread):
    """Posts one whole session per request until stopped or the server is gone; remembers each 200."""

    def __init__(self, url: str, prefix: str, crash: CrashLog) -> None:
        super().__init__(name="crash-sender", daemon=True)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=5)
        self.prefix, self.crash = prefix, crash
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self._send_until_stopped()
        finally:
            self.connection.close()  # or its socket is left to the garbage collector (ResourceWarning)

    def _send_until_stopped(self) -> None:
        index = 0
        while not self.stop.is_set():
            session_id = f"{self.prefix}-{index:04d}"
            self.crash.serve_sent.add(session_id)
            try:
                self.connection.request(
                    "POST",
                    "/v1/traces",
                    spans_request(session_id, time.time_ns()),
                    {"Content-Type": "application/json"},
                )
                answer = self.connection.getresponse()
                answer.read()
            except OSError:
                return  # killed
            if answer.status == 200:
                self.crash.serve_acknowledged.add(session_id)
            index += 1


def kill_serve(data_dir: Path, iteration: int, rng: random.Random, crash: CrashLog, logs: Path) -> None:
    """Start ``kpiloop serve``, stream sessions into it, SIGKILL it a seeded delay later."""
    server = ServeProcess(data_dir, logs)
    sender = SessionSender(server.http_url, f"serve-{iteration:03d}", crash)
    sender.start()
    time.sleep(rng.uniform(0.05, 0.6))
    _kill(server.process, crash)
    sender.stop.set()
    sender.join(PROCESS_TIMEOUT_S)
    server.stop(check=False)


def check_data_dir(data_dir: Path, crash: CrashLog) -> dict[str, int]:
    """Assert the invariants after a kill; returns each history session's line count."""
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        name = path.name
        if ".tmp" in name:
            assert name.startswith(".") and name.endswith(".tmp"), f"temporary file with a scanned name: {path}"
        elif name.endswith(".json"):
            check_json_file(path)
        elif name.endswith(".jsonl"):
            check_jsonl_file(path, crash)
    counts: dict[str, int] = {}
    history = data_dir / "history" / "kpis.jsonl"
    for line in history.read_bytes().split(b"\n")[:-1] if history.exists() else []:
        session_id = orjson.loads(line)["session_id"]
        counts[session_id] = counts.get(session_id, 0) + 1
    twice = sorted(s for s, n in counts.items() if n > 1)
    assert not twice, f"sessions recorded more than once: {twice}"
    return counts


def check_json_file(path: Path) -> None:
    document = json.loads(path.read_bytes())
    if path.parent.name == "baselines":
        assert baseline_from_json(document).agent_type == path.stem
    elif path.name == "active.json":
        assert isinstance(document["suggestions"], list)


def check_jsonl_file(path: Path, crash: CrashLog) -> None:
    raw = path.read_bytes()
    whole, _, torn = raw.rpartition(b"\n")
    for line in whole.split(b"\n") if whole else []:
        orjson.loads(line)
    if torn:
        crash.torn_tails += 1  # a write the kill cut short: the next writer cuts it off


@pytest.mark.slow
def test_kill_9_at_random_points_never_leaves_a_half_written_file(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    data_dir, inputs, logs = tmp_path / "data", tmp_path / "inputs", tmp_path / "logs"
    logs.mkdir()
    crash = CrashLog()
    folders: list[Path] = []
    replayed: set[str] = set()
    started = time.monotonic()
    for iteration in range(ITERATIONS):
        if iteration % SERVE_EVERY == SERVE_EVERY - 1:
            kill_serve(data_dir, iteration, rng, crash, logs)
        else:
            folder, ids = write_batch(inputs, len(folders))
            folders.append(folder)
            replayed |= ids
            kill_replay(data_dir, folders[-2:], rng, crash, logs)
        check_data_dir(data_dir, crash)

    final = subprocess.run(replay_command(data_dir, folders), capture_output=True, timeout=PROCESS_TIMEOUT_S)
    assert final.returncode == 0, final.stderr.decode(errors="replace")
    history = data_dir / "history" / "kpis.jsonl"
    assert history.read_bytes().endswith(b"\n")
    counts = check_data_dir(data_dir, crash)
    assert set(counts) - crash.serve_sent == replayed, "every replayed session is in the history exactly once"

    server = ServeProcess(data_dir, logs)  # the server restarts on the crashed-into data dir
    assert server.stop() == 0
    served = set(counts) & crash.serve_sent
    print(
        f"\n{ITERATIONS} iterations in {time.monotonic() - started:.1f} s: {crash.kills} killed, "
        f"{crash.finished_before_kill} finished first, {crash.torn_tails} torn last line(s) seen; "
        f"serve: {len(crash.serve_acknowledged)} sessions acknowledged, {len(served)} recorded before the kill; "
        f"{sum(1 for p in data_dir.rglob('*.tmp'))} temporary file(s) left by kills"
    )
    assert crash.kills >= ITERATIONS // 2
    assert served <= crash.serve_acknowledged | crash.serve_sent
    assert not list(data_dir.rglob("*.corrupt-*")) or crash.torn_tails > 0
    assert os.path.getsize(history) > 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full on this system")
def test_a_server_on_a_full_disk_keeps_serving_and_writes_the_sessions_once_it_can(
    tmp_path: Path, start_server: StartServer
) -> None:
    data_dir = tmp_path / "data"
    history = data_dir / "history" / "kpis.jsonl"
    history.parent.mkdir(parents=True)
    history.symlink_to("/dev/full")  # every append fails with ENOSPC
    server = start_server(data_dir)
    for index in range(3):
        assert server.post("traces", spans_request(f"full-{index}", time.time_ns()), "application/json") == 200
    deadline = time.monotonic() + WAIT_FOR_WRITES_S
    while server.stderr().count("could not write the history line") < 3:
        assert time.monotonic() < deadline, server.stderr()
        time.sleep(0.05)
    assert "No space left on device" in server.stderr()
    assert server.samples("agent_performance_sessions_total")  # still serving, sessions still counted
    assert server.samples("kpiloop_history_write_failures_total") == [({}, 3.0)]
    assert server.samples("kpiloop_history_unwritten_sessions") == [({}, 3.0)]
    history.unlink()  # space again: the next close writes the waiting lines first
    assert server.post("traces", spans_request("full-3", time.time_ns()), "application/json") == 200
    lines = server.wait_for_history(4)
    assert [x["session_id"] for x in lines] == ["full-0", "full-1", "full-2", "full-3"]
    assert server.samples("kpiloop_history_unwritten_sessions") == [({}, 0.0)]


def test_a_stop_that_cannot_save_open_sessions_says_so_and_exits_non_zero(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "state").write_text("a file where the state folder belongs")
    server = ServeProcess(data_dir, tmp_path / "logs")
    try:
        sent = spans_request("kept-open", time.time_ns(), end=False)
        assert server.post("traces", sent, "application/json") == 200
    finally:
        assert server.stop(check=False) == 1
    assert "could not save 1 open session(s)" in server.stderr()
    assert "Error: stopped, but 1 open session(s) could not be saved" in server.stderr()
