"""The whole loop through the real commands: a bad session activates suggestions; then, session by
session, ``kpiloop hook session-start`` decides what each session is shown, the session's telemetry
is replayed with ``kpiloop replay`` (which closes it), and the suggestion that really works is
proven, promoted into the project's CLAUDE.md and retired from active.json — within 80 sessions.

The simulated agent follows only one suggestion for real: a session shown "Use background agents"
produces 1.5 times the output tokens for the same input (token efficiency ×1.34), the others change
nothing. (Seeded: it is proven after 29 tracked sessions, 11 treated and 18 control.) Whether a
session was shown a suggestion is read from the hook's printed context, as Claude Code would see it.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from kpiloop.sample_sessions import EN_START_NS, SECOND, PlanSession, en_session, write_daily_files

AGENT = "translation-agent"
WORKING = "opt-background-agents"
WORKING_TITLE = "Use background agents for independent work units"
MAX_SESSIONS = 80
BATCH = 5
PROJECT_NOTES = "# Project notes\n\nTranslate with care.\r\nKeep the glossary.\n"


def kpiloop(*args: str, stdin: bytes | None = None, env: dict[str, str] | None = None) -> bytes:
    done = subprocess.run(
        [sys.executable, "-m", "kpiloop", *args],
        input=stdin,
        capture_output=True,
        env=env or dict(os.environ),
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def session_start(data_dir: Path, session_id: str, cwd: Path) -> str:
    """What the SessionStart hook tells Claude Code (its additionalContext)."""
    env = dict(os.environ, KPILOOP_ENDPOINT=f"http://127.0.0.1:{closed_port()}")
    env.pop("KPILOOP_AGENT_TYPE", None)
    env.pop("OTEL_RESOURCE_ATTRIBUTES", None)
    payload = {"session_id": session_id, "cwd": str(cwd), "hook_event_name": "SessionStart", "source": "startup"}
    out = kpiloop("hook", "session-start", "--agent-type", AGENT, "--data-dir", str(data_dir),
                  stdin=json.dumps(payload).encode(), env=env)  # fmt: skip
    answer: dict[str, Any] = json.loads(out)
    return str(answer.get("hookSpecificOutput", {}).get("additionalContext", ""))


def simulated_session(index: int, follows_working_suggestion: bool) -> PlanSession:
    """Four turns and a few tools; output tokens ×1.5 when the session applied the working suggestion."""
    rng = random.Random(index)
    session = PlanSession(f"loop-{index:03d}", AGENT)
    at = EN_START_NS + (10 + index) * 3600 * SECOND
    lift = 1.5 if follows_working_suggestion else 1.0
    for _ in range(4):
        output = round(1_500 * math.exp(rng.gauss(0, 0.3)) * lift)
        session.api_call(at, at + 60 * SECOND, input=4_000, output=output, cache_read=40_000, cache_creation=1_000)
        at += 70 * SECOND
        for tool in ("Read", "Edit", "Bash"):
            session.tool(at, at + 5 * SECOND, tool)
            at += 6 * SECOND
    session.tool(at, at + SECOND, "TaskCreate")
    session.tool(at + 2 * SECOND, at + 3 * SECOND, "TaskUpdate")
    return session


def ledger(data_dir: Path) -> list[dict[str, Any]]:
    path = data_dir / "optimizations" / "retired.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_a_suggestion_that_works_is_promoted_into_the_projects_claude_md(tmp_path: Path) -> None:
    data_dir, project = tmp_path / "data", tmp_path / "project"
    (project / ".git").mkdir(parents=True)
    (project / "CLAUDE.md").write_bytes(PROJECT_NOTES.encode())
    bad = write_daily_files(tmp_path / "telemetry" / "en", [en_session()])
    kpiloop("replay", "--data-dir", str(data_dir), *map(str, bad))
    active = json.loads((data_dir / "optimizations" / "active.json").read_bytes())["suggestions"]
    assert WORKING in [entry["id"] for entry in active]
    others = [entry["id"] for entry in active if entry["id"] != WORKING]

    shown_count, index = 0, 0
    while index < MAX_SESSIONS and not ledger(data_dir):
        batch = []
        for number in range(index + 1, index + BATCH + 1):
            shown = WORKING_TITLE in session_start(data_dir, f"loop-{number:03d}", project)
            shown_count += shown
            batch.append(simulated_session(number, follows_working_suggestion=shown))
        index += BATCH
        files = write_daily_files(tmp_path / "telemetry" / f"batch-{index}", batch)
        kpiloop("replay", "--data-dir", str(data_dir), *map(str, files))

    [decided] = ledger(data_dir)
    assert (decided["id"], decided["state"], decided["reason"]) == (WORKING, "promoted", "PROVEN")
    assert decided["promoted_to"] == str(project / "CLAUDE.md")
    assert 0 < shown_count < index  # randomized: some sessions were shown it, some were not
    tracking = decided["tracking"]
    arms = {result["arm"] for result in tracking["impact_results"]}
    assert arms == {"treated", "control"} and tracking["session_count"] == len(tracking["impact_results"]) <= index

    text = (project / "CLAUDE.md").read_bytes().decode()
    assert text.startswith(PROJECT_NOTES)  # every byte of the user's file kept, CRLF included
    block = text[len(PROJECT_NOTES) :]
    assert block.startswith(f"\n<!-- kpiloop:begin {WORKING} -->\n## Optimization: {WORKING_TITLE}\n")
    assert block.endswith(f"<!-- kpiloop:end {WORKING} -->\n")
    assert f"Proven for agent type `{AGENT}`" in block and "token_efficiency x1.3" in block

    remaining = json.loads((data_dir / "optimizations" / "active.json").read_bytes())["suggestions"]
    assert [entry["id"] for entry in remaining if entry["agent_type"] == AGENT] == others
    after = session_start(data_dir, "loop-after", project)
    assert WORKING_TITLE not in after  # promoted: no longer an experiment
