"""End to end with the real Claude Code CLI: ``claude -p`` against a mock Messages API, exporting its own
OpenTelemetry to a live ``kpiloop serve``, set up by ``kpiloop install claude-code``. The session's
history line must equal, exactly, what the mock served.

One CLI session runs per install scope (module-scoped, so a failed check does not hide the others):
``user`` writes ``~/.claude/settings.json`` of a temporary HOME, ``project`` the project's
``.claude/settings.json``. The CLI is ``@anthropic-ai/claude-code`` at the version the fixtures were
captured with; when ``claude`` on PATH is another version or missing, that version is installed once
with npm under the temp dir. The tests are skipped only when npm or its registry cannot be reached.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .conftest import ServeProcess
from .mock_anthropic import MockAnthropic, Served, Step, ToolUse

CLAUDE_CODE_VERSION = "2.1.332"
PACKAGE = f"@anthropic-ai/claude-code@{CLAUDE_CODE_VERSION}"
AGENT_TYPE = "claude-e2e"
CLI_TIMEOUT_S = 120.0
NPM_TIMEOUT_S = 300.0
LINE_TIMEOUT_S = 20.0
NOTES = "kpiloop-e2e notes: the answer is 42\n"
ECHOED = "kpiloop-e2e-echo"
WRITTEN = "kpiloop-e2e wrote this\n"
TOKEN_FIELDS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cache_read": "cache_read_input_tokens",
    "cache_creation": "cache_creation_input_tokens",
}
# What the CLI could inherit from the machine that would change where it sends data or how it behaves.
FOREIGN_ENV_PREFIXES = ("OTEL_", "ANTHROPIC_", "CLAUDE_", "KPILOOP_ENDPOINT", "KPILOOP_AGENT_TYPE")


@dataclass
class CliRun:
    """One ``claude -p`` session and everything the checks need about it."""

    scope: str
    serve: ServeProcess
    project: Path
    home: Path
    settings: dict[str, Any] = field(repr=False)
    result: dict[str, Any] = field(repr=False)
    served: list[Served] = field(repr=False)
    refused: list[tuple[str, int]] = field(repr=False)
    _line: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def session_id(self) -> str:
        return str(self.result["session_id"])

    def line(self) -> dict[str, Any]:
        """The session's history line, waited for once (see ``wait_for_line``)."""
        if self._line is None:
            self._line = wait_for_line(self)
        return self._line

    def diagnosis(self) -> str:
        """What to read when kpiloop has no line: the CLI's warnings (it says which settings it ignored)."""
        warnings = [
            line
            for path in sorted((self.home / ".claude" / "debug").glob("*.txt"))
            for line in path.read_text(errors="replace").splitlines()
            if "[WARN]" in line or "[ERROR]" in line
        ]
        return "\n".join(["claude --debug warnings:", *warnings, "kpiloop serve stderr:", self.serve.stderr()[-2000:]])


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """The pinned ``claude`` binary: the one on PATH if it is that version, else an npm install under
    the temp dir (kept for later runs). Skips only when npm or the registry is unreachable."""
    on_path = shutil.which("claude")
    if on_path and cli_version(Path(on_path)) == CLAUDE_CODE_VERSION:
        return Path(on_path)
    prefix = Path(tempfile.gettempdir()) / f"kpiloop-claude-code-{CLAUDE_CODE_VERSION}"
    cached = prefix / "node_modules" / ".bin" / "claude"
    if cached.exists() and cli_version(cached) == CLAUDE_CODE_VERSION:
        return cached
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip(f"npm is not installed, so {PACKAGE} cannot be installed (and `claude` is not on PATH)")
    ensure_registry_reachable(npm)
    done = run_npm([npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), PACKAGE])
    assert done.returncode == 0, f"npm install {PACKAGE} failed although the registry answered:\n{done.stderr}"
    assert cli_version(cached) == CLAUDE_CODE_VERSION, f"{cached} is not Claude Code {CLAUDE_CODE_VERSION}"
    return cached


def cli_version(binary: Path) -> str | None:
    """``2.1.332`` from ``claude --version`` (``2.1.332 (Claude Code)``); None if it does not run."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.split(" ", 1)[0].strip() if done.returncode == 0 else None


def ensure_registry_reachable(npm: str) -> None:
    """Skip, saying why, when ``npm view`` cannot get the pinned version's metadata."""
    try:
        done = run_npm([npm, "view", PACKAGE, "version", "--fetch-retries", "1"], timeout=60)
    except subprocess.TimeoutExpired:
        pytest.skip(f"the npm registry did not answer `npm view {PACKAGE}` within 60 s")
    if done.returncode == 0 and done.stdout.strip() != CLAUDE_CODE_VERSION:
        pytest.skip(f"the npm registry has no {PACKAGE} (`npm view` printed {done.stdout.strip()!r})")
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("npm error")] or [done.stderr]
        pytest.skip(f"the npm registry is unreachable (`npm view {PACKAGE}`): {errors[0].strip()[:300]}")


def run_npm(command: list[str], timeout: float = NPM_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module", params=["user", "project"])
def cli_run(
    request: pytest.FixtureRequest, claude_cli: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CliRun]:
    """A live ``kpiloop serve``, ``kpiloop install claude-code --scope SCOPE`` pointed at it, and one
    ``claude -p`` session against the mock, in a temporary HOME and project."""
    scope = str(request.param)
    base = tmp_path_factory.mktemp(f"claude-cli-{scope}")
    home, project = base / "home", make_project(base)
    home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))  # the server and every child process get the temporary HOME
        patch.setenv("KPILOOP_HOME", str(base / "data"))
        serve = ServeProcess(base / "data", base / "logs")
        try:
            yield session_in(scope, serve, project, home, claude_cli)
        finally:
            serve.stop()


def make_project(base: Path) -> Path:
    """A project folder holding the file the scripted Read reads."""
    project = base / "project"
    project.mkdir()
    (project / "notes.txt").write_text(NOTES)
    return project


def script_for(project: Path) -> list[Step]:
    """Read a file, then two tools in one message (Bash echo and Write), then a final answer."""
    echo = ToolUse("Bash", {"command": f"echo {ECHOED}", "description": "Print a marker"})
    write = ToolUse("Write", {"file_path": str(project / "answer.txt"), "content": WRITTEN})
    return [
        Step(text="Reading the notes first.", tools=(ToolUse("Read", {"file_path": str(project / "notes.txt")}),)),
        Step(tools=(echo, write)),
        Step(text="Done: the notes say the answer is 42, and answer.txt is written."),
    ]


def session_in(scope: str, serve: ServeProcess, project: Path, home: Path, binary: Path) -> CliRun:
    """Install, then one scripted CLI session; the mock is stopped before any check runs."""
    settings = install_into(project, serve, scope)
    with MockAnthropic(script_for(project)) as mock:
        result = run_claude(binary, project, cli_env(mock, serve))
        served = mock.messages()
        refused = [(s.path, s.status) for s in mock.served if s.status != 200]
    return CliRun(scope, serve, project, home, settings, result, served, refused)


def install_into(project: Path, serve: ServeProcess, scope: str) -> dict[str, Any]:
    """``kpiloop install claude-code --scope SCOPE`` run in the project, pointed at the live server's
    OTLP/gRPC port (install's default protocol) and, for the hooks, its OTLP/HTTP port; the settings
    file it wrote (a project install also writes the telemetry switches into the user's file)."""
    command = [sys.executable, "-m", "kpiloop", "install", "claude-code", "--scope", scope]
    command += ["--agent-type", AGENT_TYPE, "--endpoint", f"http://{serve.grpc_target}", "--protocol", "grpc"]
    command += ["--hook-endpoint", serve.http_url]
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    path = Path.home() / ".claude" if scope == "user" else project / ".claude"
    settings: dict[str, Any] = json.loads((path / "settings.json").read_text())
    return settings


def cli_env(mock: MockAnthropic, serve: ServeProcess) -> dict[str, str]:
    """The CLI's environment: the temporary HOME, the mock as the API and short export intervals
    (everything pointing at kpiloop comes from the installed settings)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(FOREIGN_ENV_PREFIXES)}
    env.update(
        IS_SANDBOX="1",  # lets --dangerously-skip-permissions run as root
        ANTHROPIC_BASE_URL=mock.base_url,
        ANTHROPIC_API_KEY=mock.api_key,
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",  # no update checks or error reports: only /v1/messages
        OTEL_METRIC_EXPORT_INTERVAL="500",
        OTEL_LOGS_EXPORT_INTERVAL="200",
    )
    return env


def run_claude(binary: Path, project: Path, env: dict[str, str]) -> dict[str, Any]:
    """``claude -p`` in the project; its JSON result. ``--debug`` only adds a log under HOME, read on failure."""
    command = [str(binary), "-p", "Read notes.txt, echo a marker and write answer.txt."]
    command += ["--dangerously-skip-permissions", "--output-format", "json", "--debug"]
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S)
    assert done.returncode == 0, f"claude exited {done.returncode}\nstdout: {done.stdout}\nstderr: {done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout)
    assert result.get("is_error") is False, result
    return result


def wait_for_line(run: CliRun) -> dict[str, Any]:
    """The session's latest history line. The CLI has exited, so its telemetry and its SessionEnd hook
    were sent; if kpiloop closed the session as empty instead, fail at once with the CLI's warnings."""
    deadline = time.monotonic() + LINE_TIMEOUT_S
    while True:
        lines = [line for line in run.serve.history() if line["session_id"] == run.session_id]
        if lines:
            return max(lines, key=lambda line: int(line["revision"]))
        empty = live_total(run.serve, "kpiloop_empty_sessions_total")
        if empty or time.monotonic() > deadline:
            why = "closed as empty (no API call reached kpiloop)" if empty else "not in the history in time"
            pytest.fail(f"scope={run.scope}: session {run.session_id} {why}\n{run.diagnosis()}")
        time.sleep(0.1)


def live_total(serve: ServeProcess, name: str, **labels: str) -> float:
    """Sum of ``/metrics`` samples called ``name`` whose labels include ``labels``."""
    samples = serve.samples(name)
    return sum(value for found, value in samples if all(found.get(k) == v for k, v in labels.items()))


def expected_tokens(served: list[Served]) -> dict[str, int]:
    """Token totals by kpiloop's type names, summed over the usage the mock sent."""
    return {kind: sum(s.usage[key] for s in served) for kind, key in TOKEN_FIELDS.items()}


def tool_results(served: list[Served]) -> dict[str, str]:
    """tool_use id -> the tool_result content the CLI sent back in a later request."""
    results: dict[str, str] = {}
    for request in served:
        for message in request.body.get("messages", []):
            content = message.get("content")
            for block in content if isinstance(content, list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    results[str(block["tool_use_id"])] = json.dumps(block.get("content"))
    return results


def tool_uses(served: list[Served]) -> list[tuple[str, str]]:
    """Every (id, name) of a tool_use block the mock sent."""
    return [use for request in served for use in request.tool_uses]


def test_the_cli_ran_the_script_against_the_mock(cli_run: CliRun) -> None:
    """The harness itself: every scripted tool ran, and the CLI's own totals equal the mock's."""
    results = tool_results(cli_run.served)
    assert [use for use in tool_uses(cli_run.served) if use[0] not in results] == []
    assert any(NOTES.strip() in text for text in results.values()), results
    assert any(ECHOED in text for text in results.values()), results
    assert (cli_run.project / "answer.txt").read_text() == WRITTEN
    assert sum(1 for s in cli_run.served if s.agent_loop) == len(script_for(cli_run.project))
    assert cli_run.refused == []
    usage = cli_run.result["usage"]
    assert {kind: usage[key] for kind, key in TOKEN_FIELDS.items()} == expected_tokens(cli_run.served)


def test_the_installed_hooks_run_this_kpiloop(cli_run: CliRun) -> None:
    entries = [entry for event in cli_run.settings["hooks"].values() for entry in event]
    commands = [hook["command"] for entry in entries for hook in entry["hooks"]]
    assert commands and all(Path(command.split(" ")[0]).is_absolute() for command in commands), commands


def test_history_line_equals_what_the_mock_served(cli_run: CliRun) -> None:
    line = cli_run.line()
    uses = tool_uses(cli_run.served)
    assert {kind: line["tokens"][kind] for kind in TOKEN_FIELDS} == expected_tokens(cli_run.served)
    assert line["api_requests"] == len(cli_run.served)
    assert line["tool_calls"] == len(uses)
    assert line["tools_by_name"] == dict(Counter(name for _, name in uses))
    assert (line["api_errors"], line["tool_failures"], line["tool_denials"]) == (0, 0, 0)
    assert line["cost_usd"] is not None
    assert math.isclose(line["cost_usd"], cli_run.result["total_cost_usd"], rel_tol=1e-9)
    assert (line["agent_type"], line["close_reason"], line["revision"]) == (AGENT_TYPE, "session_end", 1)


def test_metrics_count_the_session(cli_run: CliRun) -> None:
    cli_run.line()
    serve = cli_run.serve
    assert live_total(serve, "agent_performance_sessions_total", agent_type=AGENT_TYPE) == 1
    for kind, total in expected_tokens(cli_run.served).items():
        assert live_total(serve, "agent_performance_tokens_total", type=kind, agent_type=AGENT_TYPE) == total, kind
    assert math.isclose(
        live_total(serve, "agent_performance_cost_usd_total"), cli_run.result["total_cost_usd"], rel_tol=1e-9
    )
    assert live_total(serve, "kpiloop_late_events_total") == 0


def test_session_start_hook_knows_the_installed_agent_type(cli_run: CliRun) -> None:
    """``install --agent-type`` must reach the SessionStart hook, which picks the baselines and
    suggestions it injects by agent type."""
    path = cli_run.serve.data_dir / "optimizations" / "assignments.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["session_id"], r["agent_type"]) for r in records] == [(cli_run.session_id, AGENT_TYPE)]


def post_to_mock(mock: MockAnthropic, body: dict[str, Any], api_key: str) -> tuple[int, str]:
    """POST /v1/messages as the SDK does; the status and the response text."""
    request = urllib.request.Request(
        f"{mock.base_url}/v1/messages",
        data=json.dumps(body).encode(),
        headers={"x-api-key": api_key, "anthropic-version": "2023-06-01", "content-type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return int(answer.status), answer.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code), error.read().decode()


def test_the_mock_answers_like_the_messages_api(tmp_path: Path) -> None:
    """Without the CLI: the JSON answer, the event stream (same usage split as the real API) and a 401."""
    body = {"model": "claude-test", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}], "tools": [{}]}
    with MockAnthropic(script_for(tmp_path)) as mock:
        status, text = post_to_mock(mock, body, mock.api_key)
        streamed_status, stream = post_to_mock(mock, {**body, "stream": True}, mock.api_key)
        assert post_to_mock(mock, body, "wrong-key")[0] == 401
    message = json.loads(text)
    assert status == streamed_status == 200
    assert (message["model"], message["stop_reason"]) == ("claude-test", "tool_use")
    assert [block["type"] for block in message["content"]] == ["text", "tool_use"]
    events = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]
    kinds = [event["type"] for event in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"], kinds
    usage = {**events[0]["message"]["usage"], "output_tokens": events[-2]["usage"]["output_tokens"]}
    assert usage == mock.messages()[1].usage
    inputs = [json.loads(e["delta"]["partial_json"]) for e in events if e["type"] == "content_block_delta"]
    assert inputs == [tool.input for tool in script_for(tmp_path)[1].tools]
    assert [s.status for s in mock.served] == [200, 200, 401]
