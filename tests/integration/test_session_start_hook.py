"""``kpiloop hook session-start`` run as Claude Code runs it: a fresh process, the payload on stdin."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kpiloop.sample_sessions import en_session, write_daily_files

AGENT = "translation-agent"
MARKER = "TELEMETRY-FREE-TEXT-77c1"
HEAVY = ("pydantic", "orjson", "yaml", "click", "prometheus_client", "grpc", "opentelemetry")
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "claude-code"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def run_start(
    payload: bytes, data_dir: Path, *args: str, env: dict[str, str] | None = None, python_flags: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if k not in ("KPILOOP_AGENT_TYPE", "OTEL_RESOURCE_ATTRIBUTES")}
    environ["KPILOOP_ENDPOINT"] = f"http://127.0.0.1:{closed_port()}"
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "kpiloop", "hook", "session-start", "--data-dir", str(data_dir), *args],
        input=payload,
        capture_output=True,
        env=environ,
        timeout=30,
        check=False,
    )


def check_hook_json(stdout: bytes) -> dict[str, Any]:
    """Claude Code's SessionStart hook answer: ``{}``, or exactly
    ``{"hookSpecificOutput": {"hookEventName": "SessionStart", "additionalContext": str}}`` with
    the context under 10,000 characters, and/or a short ``systemMessage`` for the user. One JSON
    object, nothing else on stdout."""
    text = stdout.decode("utf-8")
    assert text.endswith("\n") and text.count("\n") == 1, text
    answer = json.loads(text)
    assert isinstance(answer, dict)
    if not answer:
        return answer
    assert set(answer) in ({"hookSpecificOutput"}, {"hookSpecificOutput", "systemMessage"}, {"systemMessage"})
    if "systemMessage" in answer:
        assert isinstance(answer["systemMessage"], str) and 0 < len(answer["systemMessage"]) < 2_000
    if "hookSpecificOutput" not in answer:
        return answer
    specific = answer["hookSpecificOutput"]
    assert isinstance(specific, dict)
    assert set(specific) == {"hookEventName", "additionalContext"}
    assert specific["hookEventName"] == "SessionStart"
    assert isinstance(specific["additionalContext"], str)
    assert 0 < len(specific["additionalContext"]) < 10_000
    return answer


def context_of(answer: dict[str, Any]) -> str:
    return str(answer["hookSpecificOutput"]["additionalContext"]) if answer else ""


def payload(session_id: str = "58c5cbd9-f879-42ab-8c47-a1661be51bcb", cwd: str = "/home/dev/project") -> bytes:
    document = {
        "session_id": session_id,
        "transcript_path": f"/home/dev/.claude/projects/{MARKER}/x.jsonl",
        "cwd": cwd,
        "hook_event_name": "SessionStart",
        "source": "startup",
        "model": MARKER,
        "prompt": MARKER,
    }
    return json.dumps(document).encode()


def assigned(session_id: str, suggestion_id: str) -> bool:
    return hashlib.sha256(f"{session_id}:{suggestion_id}".encode()).digest()[0] < 128


def seed(data_dir: Path) -> list[str]:
    """A baseline, four active suggestions (one disabled) and an incident for AGENT; the live ids."""
    (data_dir / "baselines").mkdir(parents=True)
    (data_dir / "optimizations").mkdir(parents=True)
    (data_dir / "incidents").mkdir(parents=True)
    baseline = {
        "agent_type": AGENT,
        "model": MARKER,
        "session_count": 30,
        "baselines": {
            "token_efficiency": {"mean": 0.0412, "p95": 0.0788, "status": MARKER},
            "task_completion_rate": {"mean": 0.9, "p95": None},
        },
    }
    (data_dir / "baselines" / f"{AGENT}.json").write_text(json.dumps(baseline))
    suggestions = [
        {
            "id": f"opt-rule-{n}",
            "agent_type": AGENT,
            "source_session": MARKER,
            "title": f"Rule {n} title",
            "implementation_guidance": f"Rule {n} guidance",
            "expected_impact": {"kpi": "cache_efficiency", "direction": "increase", "magnitude": "to 80% or more"},
            "enabled": n != 3,
        }
        for n in range(4)
    ]
    (data_dir / "optimizations" / "active.json").write_text(json.dumps({"suggestions": suggestions}))
    (data_dir / "incidents" / f"{AGENT}-error_rate-20261120T101010Z.md").write_text(f"# {MARKER}\n")
    return [f"opt-rule-{n}" for n in range(3)]


def assignments(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "optimizations" / "assignments.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_full_context_and_assignment_record(tmp_path: Path) -> None:
    data = tmp_path / "data"
    live = seed(data)
    sid = next(f"sess-{n}" for n in range(200) if sum(assigned(f"sess-{n}", i) for i in live) == 2)
    done = run_start(payload(sid), data, "--agent-type", AGENT)
    assert done.returncode == 0 and done.stderr == b""
    context = context_of(check_hook_json(done.stdout))
    assert "| Token Efficiency | > 0.05 | 0.041 | 0.079 |" in context
    assert "| Task Completion Rate | > 0.95 | 0.900 | - |" in context
    assert "(30 sessions)" in context
    included = [i for i in live if assigned(sid, i)]
    for n in range(4):
        assert (f"### Rule {n} title" in context) is (f"opt-rule-{n}" in included)
    assert f"- Open incident: error_rate degraded (see {data / 'incidents'}" in context
    assert MARKER not in context
    (record,) = assignments(data)
    assert record["session_id"] == sid and record["agent_type"] == AGENT and record["cwd"] == "/home/dev/project"
    assert record["source"] == "startup" and isinstance(record["time"], str)
    assert record["included"] == included
    assert record["excluded"] == [i for i in live if i not in included]
    # forwarded like `hook event`: no collector answered, so the record waits under pending/
    pending = (data / "pending" / "hook-records.jsonl").read_text()
    assert sid in pending and '"SessionStart"' in pending and MARKER not in pending


def test_same_session_gets_the_same_assignment_again(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data)
    first = run_start(payload("resumed-1"), data, "--agent-type", AGENT)
    second = run_start(payload("resumed-1"), data, "--agent-type", AGENT)
    assert first.stdout == second.stdout
    one, two = assignments(data)
    assert (one["included"], one["excluded"]) == (two["included"], two["excluded"])


def test_fixture_session_start_payloads(tmp_path: Path) -> None:
    lines = [line for path in sorted(FIXTURES.glob("*/hooks.jsonl")) for line in path.read_text().splitlines()]
    starts = [line for line in lines if '"SessionStart"' in line][:3]
    if not starts:
        pytest.fail(f"no SessionStart payloads under {FIXTURES}")
    data = tmp_path / "data"
    seed(data)
    for line in starts:
        done = run_start(line.encode(), data, env={"KPILOOP_AGENT_TYPE": AGENT})
        assert done.returncode == 0
        assert "## Performance Baselines" in context_of(check_hook_json(done.stdout))
    assert [r["session_id"] for r in assignments(data)] == [json.loads(s)["session_id"] for s in starts]


def test_project_file_from_a_nested_cwd(tmp_path: Path) -> None:
    data = tmp_path / "data"
    seed(data)
    nested = tmp_path / "repo" / "pkg" / "sub"
    nested.mkdir(parents=True)
    (tmp_path / "repo" / ".kpiloop.yaml").write_text(f"version: 1\nagent_type: {AGENT.upper()}\n")
    done = run_start(payload("s-yaml", cwd=str(nested)), data)
    assert "Your historical performance for translation-agent" in context_of(check_hook_json(done.stdout))
    assert assignments(data)[0]["agent_type"] == AGENT
    otel = run_start(payload("s-otel", cwd=str(nested)), data, env={"OTEL_RESOURCE_ATTRIBUTES": "agent.type=other"})
    assert check_hook_json(otel.stdout) == {}
    assert assignments(data)[1]["agent_type"] == "other"


def test_empty_data_dir(tmp_path: Path) -> None:
    done = run_start(payload(), tmp_path / "empty", "--agent-type", AGENT)
    assert done.returncode == 0 and check_hook_json(done.stdout) == {}
    assert len(assignments(tmp_path / "empty")) == 1


def test_corrupt_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "data"
    for name in (f"baselines/{AGENT}.json", "optimizations/active.json", "optimizations/assignments.jsonl"):
        (data / name).parent.mkdir(parents=True, exist_ok=True)
        (data / name).write_bytes(b"{\x00not json \xff")
    (data / "incidents").write_text("a file where a folder belongs")
    done = run_start(payload(), data, "--agent-type", AGENT)
    assert done.returncode == 0 and check_hook_json(done.stdout) == {}
    assert "JSONDecodeError" in (data / "logs" / "hooks.log").read_text()


def test_unwritable_data_dir(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    done = run_start(payload(), blocker / "data", "--agent-type", AGENT)
    assert done.returncode == 0 and done.stderr == b"" and check_hook_json(done.stdout) == {}
    # readable but not writable: assignments file and log are folders, so every write fails
    data = tmp_path / "data"
    seed(data)
    (data / "optimizations" / "assignments.jsonl").mkdir()
    (data / "logs" / "hooks.log").mkdir(parents=True)
    (data / "pending" / "hook-records.jsonl").mkdir(parents=True)
    done = run_start(payload(), data, "--agent-type", AGENT)
    assert done.returncode == 0 and done.stderr == b""
    assert "## Performance Baselines" in context_of(check_hook_json(done.stdout))


@pytest.mark.parametrize("stdin", [b"", b"not json", b"[1, 2]", b'{"session_id": 5}', b"\xff\xfe"])
def test_odd_payloads(tmp_path: Path, stdin: bytes) -> None:
    data = tmp_path / "data"
    seed(data)
    done = run_start(stdin, data, "--agent-type", AGENT)
    assert done.returncode == 0
    check_hook_json(done.stdout)


def test_stdlib_only_import_path(tmp_path: Path) -> None:
    done = run_start(payload(), tmp_path / "data", python_flags=("-X", "importtime"))
    assert done.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.decode().splitlines() if "|" in line}
    assert "kpiloop.session_start" in imported
    heavy = sorted(name for name in imported if name.split(".")[0].lstrip("_") in HEAVY)
    assert heavy == []


def test_forwarded_to_a_running_collector(serve: Any) -> None:
    done = serve.hook("session-start", payload("sess-forwarded"), "--agent-type", AGENT)
    assert done.returncode == 0 and check_hook_json(done.stdout) == {}
    assert not serve.pending_path.exists() or not serve.pending_path.read_bytes().strip()
    assert assignments(serve.data_dir)[0]["session_id"] == "sess-forwarded"
    assert serve.process.poll() is None


def kpiloop_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kpiloop", *args], capture_output=True, text=True, env=dict(os.environ), timeout=120
    )


def test_block_on_critical_shows_an_unacknowledged_page_until_it_is_acknowledged(tmp_path: Path) -> None:
    """The plan's E&N session crosses CRITICAL hard thresholds: with ``block_on_critical`` its pages
    are shown as ``systemMessage`` at every session start of its agent type until ``kpiloop alerts ack``."""
    data, config = tmp_path / "data", tmp_path / "otel-config.yaml"
    config.write_text("exporters:\n  feedback:\n    block_on_critical: true\n")
    files = write_daily_files(tmp_path / "telemetry", [en_session()])
    replayed = kpiloop_cli("replay", "--config", str(config), "--data-dir", str(data), *map(str, files))
    assert replayed.returncode == 0, replayed.stderr
    agent = "translation-agent"

    listed = kpiloop_cli("alerts", "list", "--data-dir", str(data))
    open_kpis = sorted(line.split()[3] for line in listed.stdout.splitlines())
    assert listed.returncode == 0 and open_kpis == ["token_efficiency"]  # E&N: 0.001 < the 0.01 hard threshold
    assert all(" OPEN  threshold " in line for line in listed.stdout.splitlines())

    shown = check_hook_json(run_start(payload("s-next"), data, "--agent-type", agent).stdout)
    assert shown["systemMessage"] == (
        f"kpiloop: 1 unacknowledged page for agent type {agent}: token_efficiency (hard threshold). "
        "See `kpiloop alerts list`; acknowledge with `kpiloop alerts ack`."
    )
    assert "- Open page: token_efficiency crossed its CRITICAL hard threshold at 0.00" in context_of(shown)
    other = check_hook_json(run_start(payload("s-other"), data, "--agent-type", "another-agent").stdout)
    assert "systemMessage" not in other

    acked = kpiloop_cli("alerts", "ack", "--data-dir", str(data))
    assert acked.returncode == 0 and acked.stdout.startswith(f"acknowledged {agent}-token_efficiency-threshold-")
    after = check_hook_json(run_start(payload("s-after"), data, "--agent-type", agent).stdout)
    assert "systemMessage" not in after and "Open page" not in context_of(after)
    assert kpiloop_cli("alerts", "list", "--data-dir", str(data)).stdout == "no open pages\n"
    missing = kpiloop_cli("alerts", "ack", "no-such-page", "--data-dir", str(data))
    assert missing.returncode == 1 and "no open page 'no-such-page'" in missing.stderr


def test_without_block_on_critical_pages_are_warnings_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    files = write_daily_files(tmp_path / "telemetry", [en_session()])
    assert kpiloop_cli("replay", "--data-dir", str(data), *map(str, files)).returncode == 0
    answer = check_hook_json(run_start(payload("s-next"), data, "--agent-type", "translation-agent").stdout)
    assert "systemMessage" not in answer
    assert "- Open page: token_efficiency crossed its CRITICAL hard threshold" in context_of(answer)
