"""Several real kpiloop processes closing sessions into one data dir at the same time.

``tests/unit/exporters/test_history.py`` forks HistoryWriters; this runs the real commands: a
``kpiloop serve`` closing sessions streamed to it, two ``kpiloop replay`` of disjoint batches, and a
dozen ``kpiloop hook session-end`` that find no collector and append to ``pending/`` — which the
server then takes, closing the sessions the hooks ended. No history line may be lost, doubled or
interleaved with another, and every shared file must stay whole.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from .conftest import StartServer
from .test_crash_consistency import CrashLog, check_data_dir, replay_command, spans_request, write_batch

STREAMED_SESSIONS = 40
HOOK_SESSIONS = 12
NO_COLLECTOR = "http://127.0.0.1:9"  # nothing listens on the discard port: hooks keep their record
TIMEOUT_S = 60.0


def post_spans(url: str, bodies: list[bytes]) -> None:
    """POST each OTLP/JSON traces body over one connection; every one must be accepted."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        for body in bodies:
            connection.request("POST", "/v1/traces", body, {"Content-Type": "application/json"})
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 200
    finally:
        connection.close()


def start_hook(data_dir: Path, session_id: str, payloads: Path) -> subprocess.Popen[bytes]:
    """``kpiloop hook session-end`` for ``session_id``, its payload on stdin, no collector listening."""
    payload = payloads / f"{session_id}.json"
    payload.write_bytes(orjson.dumps({"session_id": session_id, "hook_event_name": "SessionEnd", "reason": "exit"}))
    command = [sys.executable, "-m", "kpiloop", "hook", "session-end", "--data-dir", str(data_dir)]
    command += ["--endpoint", NO_COLLECTOR]
    with open(payload, "rb") as stdin:
        return subprocess.Popen(command, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def history_counts(data_dir: Path) -> dict[str, list[int]]:
    """Each session's revisions in ``history/kpis.jsonl`` (the file must end with a whole line)."""
    raw = (data_dir / "history" / "kpis.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    revisions: dict[str, list[int]] = {}
    for line in raw.splitlines():
        entry = orjson.loads(line)
        revisions.setdefault(entry["session_id"], []).append(entry["revision"])
    return revisions


def wait_for_sessions(data_dir: Path, expected: set[str], timeout: float = 30.0) -> dict[str, list[int]]:
    """Poll the history until it has every expected session (the server takes pending records every 5 s)."""
    deadline = time.monotonic() + timeout
    while True:
        history = data_dir / "history" / "kpis.jsonl"
        counts = history_counts(data_dir) if history.exists() else {}
        if expected <= set(counts) or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


@pytest.mark.slow
def test_a_server_two_replays_and_hooks_lose_no_history_line(tmp_path: Path, start_server: StartServer) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir)
    hook_ids = [f"hooked-{i:02d}" for i in range(HOOK_SESSIONS)]
    post_spans(server.http_url, [spans_request(sid, time.time_ns(), end=False) for sid in hook_ids])
    (first, first_ids), (second, second_ids) = write_batch(tmp_path / "in", 0), write_batch(tmp_path / "in", 1)

    replays = [
        subprocess.Popen(replay_command(data_dir, [folder]), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for folder in (first, second)
    ]
    payloads = tmp_path / "payloads"
    payloads.mkdir()
    hooks = [start_hook(data_dir, sid, payloads) for sid in hook_ids]
    streamed = [f"streamed-{i:03d}" for i in range(STREAMED_SESSIONS)]
    post_spans(server.http_url, [spans_request(sid, time.time_ns()) for sid in streamed])
    for process in replays + hooks:
        _, stderr = process.communicate(timeout=TIMEOUT_S)
        assert process.returncode == 0, stderr.decode(errors="replace")

    expected = first_ids | second_ids | set(streamed) | set(hook_ids)
    revisions = wait_for_sessions(data_dir, expected)
    assert set(revisions) == expected
    assert {sid: revs for sid, revs in revisions.items() if revs != [1]} == {}
    check_data_dir(data_dir, CrashLog())
    pending = data_dir / "pending" / "hook-records.jsonl"
    assert pending.read_bytes() == b""  # all twelve records were appended whole and taken
    assert not list(data_dir.rglob("*.corrupt-*")) and not list(data_dir.rglob("*.unreadable"))
