"""A real ``kpiloop serve`` process for integration tests, and the hook command run as Claude Code runs it.

Servers bind 127.0.0.1 port 0 only; every server a test starts is stopped with SIGTERM at teardown
and must exit 0 within 20 s (it is killed otherwise, and the test fails).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 20.0
READY = re.compile(
    r"^kpiloop serving: otlp-grpc=(?P<grpc>\S+):(?P<grpc_port>\d+) otlp-http=(?P<http>\S+):(?P<http_port>\d+) "
    r"prometheus=(?P<prom>\S+):(?P<prom_port>\d+) data-dir=(?P<data_dir>.+) restored-sessions=(?P<restored>\d+)$"
)


class ServeProcess:
    """One running ``kpiloop serve``: its addresses, its data dir and helpers to read what it wrote."""

    def __init__(self, data_dir: Path, log_dir: Path, extra_args: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        stamp = f"{time.monotonic_ns()}"
        self.stdout_path = log_dir / f"serve-{stamp}.out"
        self.stderr_path = log_dir / f"serve-{stamp}.err"
        self._stdout: IO[bytes] = open(self.stdout_path, "wb")
        self._stderr: IO[bytes] = open(self.stderr_path, "wb")
        command = [sys.executable, "-m", "kpiloop", "serve", "--data-dir", str(data_dir)]
        command += ["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--prometheus", "127.0.0.1:0"]
        command += list(extra_args)
        self.process = subprocess.Popen(command, stdout=self._stdout, stderr=self._stderr, env=dict(os.environ))
        self.returncode: int | None = None
        try:
            ready = self._wait_ready()
        except BaseException:
            self.stop(check=False)
            raise
        self.http_url = f"http://{ready['http']}:{ready['http_port']}"
        self.grpc_target = f"{ready['grpc']}:{ready['grpc_port']}"
        self.metrics_url = f"http://{ready['prom']}:{ready['prom_port']}/metrics"
        self.restored_sessions = int(ready["restored"])

    @property
    def history_path(self) -> Path:
        return self.data_dir / "history" / "kpis.jsonl"

    def history(self) -> list[dict[str, Any]]:
        """Every complete line of ``{data_dir}/history/kpis.jsonl`` (none when the file does not exist)."""
        if not self.history_path.exists():
            return []
        raw = self.history_path.read_bytes()
        return [orjson.loads(line) for line in raw.split(b"\n")[:-1] if line.strip()]

    def wait_for_history(self, n: int, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Poll until the history has at least ``n`` lines; fail with what it has after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            lines = self.history()
            if len(lines) >= n:
                return lines
            if time.monotonic() > deadline:
                pytest.fail(f"history has {len(lines)} line(s) after {timeout} s, expected {n}: {lines}")
            if self.process.poll() is not None:
                pytest.fail(f"kpiloop serve exited with {self.process.returncode}: {self.stderr()}")
            time.sleep(0.05)

    def post(self, signal_name: str, body: bytes, content_type: str, timeout: float = 10.0) -> int:
        """POST one OTLP/HTTP body to ``/v1/{signal_name}``; the HTTP status."""
        request = urllib.request.Request(
            f"{self.http_url}/v1/{signal_name}", data=body, method="POST", headers={"Content-Type": content_type}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                answer.read()
                return int(answer.status)
        except urllib.error.HTTPError as error:
            with error:
                return int(error.code)

    def metrics_text(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as answer:
            return str(answer.read().decode())

    def samples(self, name: str) -> list[tuple[dict[str, str], float]]:
        """The live ``/metrics`` samples called ``name`` (full sample name, e.g. ``..._total``)."""
        found = []
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name:
                    found.append((dict(sample.labels), float(sample.value)))
        return found

    @property
    def pending_path(self) -> Path:
        return self.data_dir / "pending" / "hook-records.jsonl"

    def hook(self, command: str, payload: bytes, *args: str) -> subprocess.CompletedProcess[bytes]:
        """Run ``kpiloop hook COMMAND`` against this server and return once the server has the record.

        The hook gives the server only ~70 ms; a record it could not deliver in time (a busy test
        machine) waits in this server's data dir, which the server takes every 5 s. Waiting for that
        keeps the records in the order the test sends them.
        """
        done = run_kpiloop_hook(command, payload, self.http_url, "--data-dir", str(self.data_dir), *args)
        deadline = time.monotonic() + 15
        while self.pending_path.exists() and self.pending_path.read_bytes().strip():
            if time.monotonic() > deadline:
                pytest.fail(f"kpiloop serve did not take {self.pending_path} within 15 s")
            time.sleep(0.05)
        return done

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def terminate(self) -> None:
        """Send SIGTERM without waiting."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, check: bool = True) -> int:
        """SIGTERM, wait up to 20 s (kill after that); with ``check``, assert a clean exit 0."""
        if self.returncode is None:
            self.terminate()
            try:
                self.returncode = self.process.wait(timeout=STOP_TIMEOUT_S)
                killed = False
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.returncode = self.process.wait(timeout=STOP_TIMEOUT_S)
                killed = True
            self._stdout.close()
            self._stderr.close()
            if check:
                assert not killed, f"kpiloop serve did not stop within {STOP_TIMEOUT_S} s of SIGTERM; killed"
        if check:
            assert self.returncode == 0, f"kpiloop serve exited {self.returncode}: {self.stderr()}"
        return self.returncode

    def _wait_ready(self) -> dict[str, str]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in self.stdout_path.read_text(errors="replace").splitlines():
                match = READY.match(line)
                if match:
                    return match.groupdict()
            if self.process.poll() is not None:
                raise AssertionError(f"kpiloop serve exited {self.process.returncode} before serving: {self.stderr()}")
            time.sleep(0.02)
        raise AssertionError(f"no 'kpiloop serving:' line within {START_TIMEOUT_S} s: {self.stderr()}")


def _project_root() -> Path | None:
    for folder in Path(__file__).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            return folder
    return None


PROJECT_ROOT = _project_root()
CLAUDE_CODE_FIXTURES = PROJECT_ROOT.parent / "shared" / "fixtures" / "claude-code" if PROJECT_ROOT else None
MISSING_FIXTURES = "<claude-code fixtures missing>"


def claude_code_scenarios() -> list[str]:
    """Every scenario folder of the Claude Code fixtures, or one marker that makes its test fail (never an
    empty parametrization, which pytest would skip)."""
    if CLAUDE_CODE_FIXTURES is None or not CLAUDE_CODE_FIXTURES.is_dir():
        return [MISSING_FIXTURES]
    return sorted(p.name for p in CLAUDE_CODE_FIXTURES.iterdir() if p.is_dir() and not p.name.startswith("."))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test asking for ``claude_code_scenario`` runs once per fixture folder."""
    if "claude_code_scenario" in metafunc.fixturenames:
        metafunc.parametrize("claude_code_scenario", claude_code_scenarios())


@pytest.fixture
def claude_code_fixtures() -> Path:
    """``../shared/fixtures/claude-code`` next to the project root (found by walking up to pyproject.toml);
    the test fails when it is missing."""
    if CLAUDE_CODE_FIXTURES is None or not CLAUDE_CODE_FIXTURES.is_dir():
        pytest.fail(
            f"Claude Code fixtures not found: expected ../shared/fixtures/claude-code next to the project root "
            f"({PROJECT_ROOT}), looked for {CLAUDE_CODE_FIXTURES}"
        )
    return CLAUDE_CODE_FIXTURES


StartServer = Callable[..., ServeProcess]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """Start ``kpiloop serve`` processes (default data dir ``tmp_path/data``); all are stopped at teardown,
    and each must exit 0."""
    started: list[ServeProcess] = []

    def start(data_dir: Path | None = None, extra_args: Sequence[str] = ()) -> ServeProcess:
        server = ServeProcess(data_dir or tmp_path / "data", tmp_path / "logs", extra_args)
        started.append(server)
        return server

    yield start
    failures = []
    for server in started:
        try:
            server.stop()
        except AssertionError as error:
            failures.append(str(error))
    assert not failures, failures


@pytest.fixture
def serve(start_server: StartServer) -> ServeProcess:
    """One ``kpiloop serve`` on 127.0.0.1 with port 0 for every listener, data in ``tmp_path/data``."""
    return start_server()


RunHook = Callable[..., subprocess.CompletedProcess[bytes]]


def run_kpiloop_hook(
    command: str, payload: bytes, endpoint: str, *args: str, timeout: float = 30.0
) -> subprocess.CompletedProcess[bytes]:
    """Run ``kpiloop hook COMMAND ARGS`` with ``payload`` on stdin and ``KPILOOP_ENDPOINT=endpoint``."""
    env = {**os.environ, "KPILOOP_ENDPOINT": endpoint}
    return subprocess.run(
        [sys.executable, "-m", "kpiloop", "hook", command, *args],
        input=payload,
        capture_output=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def run_hook() -> RunHook:
    """``run_hook(command, payload, endpoint, *args)``: the hook command as a subprocess (see run_kpiloop_hook)."""
    return run_kpiloop_hook
